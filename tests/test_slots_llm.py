"""The real local teacher labels built-in slot sentences through the labelling run
(`mckd.teacher.label`), with the per-input tag grammar: every answer must be a valid tag sequence
over exactly the input words, from the label set, with nothing to repair.

Run with `pytest -m llm tests/test_slots_llm.py`; needs `mckd models fetch qwen2.5-coder-0.5b`
(what CI fetches). About a minute per prompt form on 2 CPU cores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mckd.examples import read_examples, write_examples
from mckd.tasks import TASKS
from mckd.tasks.slots import is_valid
from mckd.teacher.models import ModelFetchError, model_path

pytestmark = pytest.mark.llm
TASK = TASKS["slots"]
MODEL = "qwen2.5-coder-0.5b"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("form", ["tags", "interleaved"])
def test_ten_sentences_ten_valid_tag_sequences(form: str, tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp")
    from mckd.teacher.config import TeacherConfig
    from mckd.teacher.label import label_files

    try:
        model_path(MODEL)
    except ModelFetchError:
        pytest.skip(f"{MODEL} not fetched: run `mckd models fetch {MODEL}`")
    corpus = TASK.builtin_corpus(20, 10, 0, seed=4)
    write_examples(tmp_path / "labeled.jsonl", corpus.labeled)
    write_examples(tmp_path / "pool.jsonl", corpus.pool)
    cfg = TeacherConfig(backend="llamacpp", model=MODEL, context_size=4096, k_demos=10, cache=False,
                        n_threads=int(os.environ.get("MCKD_TEST_THREADS", "2")),
                        prompt={"form": form, "demos": "shared", "grammar": True})
    result = label_files(tmp_path / "pool.jsonl", tmp_path / "out", cfg, task="slots",
                         labeled_path=tmp_path / "labeled.jsonl", progress=False)
    labels = set(TASK.label_set(corpus.labeled))
    assert result.usage["inputs"] == 10 and result.usage["valid"] == 10, result.usage
    for ex in read_examples(tmp_path / "out" / "pseudolabels.jsonl"):
        tags = ex.target.split()
        assert len(tags) == len(ex.source.split()) and is_valid(tags) and set(tags) <= labels, ex
    ledger = [json.loads(line) for line in (tmp_path / "out" / "ledger.jsonl").read_text().splitlines()]
    assert [rec["problems"] for rec in ledger] == [[]] * 10  # valid as written: nothing repaired
