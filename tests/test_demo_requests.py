"""Both demos' teacher requests, built through the real data, prompt and grammar code without
calling an LLM, hash to the digests recorded in tests/data/demo_requests.json.

Each request is identified by its cache key (sha256 of the request as sorted JSON with the
model name: prompt or messages, grammar, token limit, stop strings, seed), so a change to any
byte a demo would send changes a key; the run's data files (labeled, unlabeled, test) are
hashed too. The requests are built as the pipeline builds them: the task's built-in corpus
written and read back as JSONL, demonstrations from labeled.jsonl, the teacher's test subset
(`data.teacher_test`), the teacher's own token count (llama.cpp's teacher counts tokens as
`approx_tokens` does) and context size.

Record the digests again (only when a change is meant to alter what a demo sends):
    python tests/test_demo_requests.py --record
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from mckd.config import load_config
from mckd.distill.methods import make_data, teacher_subset
from mckd.examples import Example, read_examples, write_examples
from mckd.teacher.backends.base import approx_tokens
from mckd.teacher.cache import request_key
from mckd.teacher.label import model_id, task_prompting

RECORDED = Path(__file__).parent / "data" / "demo_requests.json"
DEMOS = ("demo", "slots-demo")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _round_trip(folder: Path, name: str, examples: list[Example]) -> tuple[list[Example], str]:
    """The examples as the pipeline's later steps read them, and the file's digest."""
    path = folder / name
    write_examples(path, examples)
    return read_examples(path, require_target=name != "unlabeled.jsonl"), _sha(
        path.read_text(encoding="utf-8"))


def demo_requests(name: str) -> dict[str, Any]:
    """Digests of one demo's data files and of every teacher request (pool, then test)."""
    cfg = load_config(name)
    task = cfg.make_task()
    teacher = cfg.teacher
    labeled, pool, test = make_data(cfg, task)
    out: dict[str, Any] = {"data": {}, "requests": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        labeled, out["data"]["labeled"] = _round_trip(folder, "labeled.jsonl", labeled)
        pool, out["data"]["unlabeled"] = _round_trip(folder, "unlabeled.jsonl", pool)
        test, out["data"]["test"] = _round_trip(folder, "test.jsonl", test)
    # the teacher step's inputs: its test subset, gold left out
    blind_test = [Example(ex.id, ex.source, None, {}) for ex in teacher_subset(cfg, test)]
    model = model_id(teacher)
    for step, inputs in (("teacher_pool", pool), ("teacher_test", blind_test)):
        build = task_prompting(task, teacher, labeled, inputs, count_tokens=approx_tokens,
                               context_size=teacher.context_size,
                               extra_labels=cfg.task_labels()).build
        keys = [request_key(model, build(ex, s)) for ex in inputs for s in range(teacher.samples)]
        out["requests"][step] = {"count": len(keys), "sha256": _sha("\n".join(keys)), "keys": keys}
    return out


def _first_difference(got: list[str], want: list[str]) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"request {i} differs"
    return f"{len(got)} requests, {len(want)} recorded"


@pytest.mark.parametrize("name", DEMOS)
def test_demo_requests_unchanged(name: str) -> None:
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))[name]
    got = demo_requests(name)
    assert got["data"] == recorded["data"]
    for step, want in recorded["requests"].items():
        have = got["requests"][step]
        assert have["sha256"] == want["sha256"], (
            f"{name} {step}: {_first_difference(have['keys'], want['keys'])}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_demo_requests.py --record")
    RECORDED.write_text(json.dumps({n: demo_requests(n) for n in DEMOS}, indent=1) + "\n",
                        encoding="utf-8")
    print(f"recorded {RECORDED}")
