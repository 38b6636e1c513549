"""The tagging student trained on 50, 200 and 2,000 gold sentences of the built-in slot corpus,
scored with conlleval on 500 held-out test sentences (30% of them from templates and slot
values training never saw) next to the all-`O` baseline. Slow (minutes on two CPU cores); the
figures go to test-artifacts/tagger_sizes.json. benchmarks/tagger_sizes.py is the same
measurement as a script (results in benchmarks/tagger_sizes_results.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mckd.tasks.slots import SlotsTask, is_valid
from mckd.tasks.slots.synth import synth_slot_corpus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # ~10 minutes on 2 cores

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SIZES = (50, 200, 2000)


def test_tagger_by_gold_size(tmp_path: Path, torch_threads: None) -> None:
    from mckd.student.config import TaggerConfig
    from mckd.student.tagger import TaggerStudent

    task = SlotsTask()
    corpus = synth_slot_corpus(max(SIZES), 10, 500, seed=0)
    train, test = corpus.labeled, corpus.test
    assert not {ex.source for ex in test} & {ex.source for ex in train}

    all_o = task.score(test, [" ".join("O" for _ in ex.source.split()) for ex in test])
    rows = [{"student": "all O", "f1": all_o["f1"]}]
    scores = {}
    for size in SIZES:
        student = TaggerStudent(TaggerConfig(seed=0, threads=2), task)
        report = student.fit(train[:size], tmp_path / f"tagger-{size}")
        preds = student.predict([ex.source for ex in test])
        # one valid BIO tag per input word, by construction
        assert all(len(p.text.split()) == len(ex.source.split()) and is_valid(p.text.split())
                   for p, ex in zip(preds, test, strict=True))
        result = task.score(test, [p.text for p in preds])
        scores[size] = result["f1"]
        rows.append({"student": "tagger", "gold_sentences": size, "epochs": report.epochs,
                     "train_s": round(report.seconds, 1), "f1": round(result["f1"], 2),
                     "accuracy": round(result["accuracy"], 2)})

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "tagger_sizes.json").write_text(json.dumps(rows, indent=1) + "\n")
    assert all_o["f1"] == 0.0
    assert scores[2000] >= 85.0, rows
    assert scores[50] > 30.0 and scores[200] > scores[50] and scores[2000] > scores[200], rows
