"""Test-only: small finished runs to export, load, serve and report, each made once per test
session by the real pipeline with a fake teacher and real students on a tiny random encoder.

- `slots_run`: slot filling, the tagging student; the teacher answers the gold tags with the
  last slot value dropped (and nothing usable for every fifth sentence).
- `chart_run`: parsing on the tiny treebank of pipeline_fakes, the span-chart student; the
  default fake teacher (it echoes the words, which the task repairs into a flat tree).
- `seq2seq_run`: parsing with a tiny T5 student, sft only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mckd.teacher.backends as backends
import pipeline_fakes as pf
from mckd.config import config_from_dict
from mckd.distill.pipeline import run_pipeline
from mckd.tasks import TASKS
from mckd.teacher.backends.base import TeacherRequest
from mckd.teacher.backends.fake import FakeBackend, last_input

SLOT_SIZES = {"n_labeled": 16, "n_unlabeled": 32, "n_test": 12, "seed": 3, "max_len": 12}
_RUNS: dict[str, Path] = {}


def encoder_student(kind: str, encoder: str, epochs: int) -> dict[str, Any]:
    """A chart or tagger student on the tiny encoder, trained hard enough (high learning rates,
    many epochs of a few examples) to output more than one kind of answer."""
    return {"kind": kind, "encoder": encoder, "epochs": epochs, "min_steps": 0, "min_epochs": 1,
            "batch_size": 8, "early_stopping": "none", "lr_encoder": 5e-3, "lr_head": 1e-2,
            "device": "cpu", "threads": 1}


def weak_teacher(gold: str, k: int) -> str:
    """The gold tags with the last slot value dropped; nothing usable for every fifth input."""
    if k % 5 == 4:
        return "no idea"
    tags = gold.split()
    starts = [i for i, t in enumerate(tags) if t.startswith("B-")]
    if starts:
        i = starts[-1]
        tags[i] = "O"
        while i + 1 < len(tags) and tags[i + 1].startswith("I-"):
            i += 1
            tags[i] = "O"
    return " ".join(tags)


def slots_run(factory: pytest.TempPathFactory, encoder: str) -> Path:
    if "slots" in _RUNS:
        return _RUNS["slots"]
    root = factory.mktemp("slots-run")
    corpus = TASKS["slots"].builtin_corpus(SLOT_SIZES["n_labeled"], SLOT_SIZES["n_unlabeled"],
                                           SLOT_SIZES["n_test"], seed=SLOT_SIZES["seed"],
                                           max_words=SLOT_SIZES["max_len"])
    answers = {ex.source: weak_teacher(ex.meta["gold"], k)
               for k, ex in enumerate(corpus.labeled + corpus.pool + corpus.test)}

    def respond(request: TeacherRequest) -> str:
        return " " + answers[last_input(request)]

    cfg = {"name": "slots-ship", "task": "slots", "data": {"source": "demo", "demo": SLOT_SIZES},
           "teacher": {"backend": "fake", "model": "fake", "k_demos": 4,
                       "cache_path": str(root / "cache.sqlite")},
           "student": encoder_student("tagger", encoder, 25), "methods": ["teacher", "sft", "vanilla_kd", "mckd"],
           "stages": [2], "run_dir": str(root / "run")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backends, "build_backend", lambda _cfg: FakeBackend(respond))
        run_pipeline(config_from_dict(cfg))
    _RUNS["slots"] = root / "run"
    return _RUNS["slots"]


def chart_run(factory: pytest.TempPathFactory, encoder: str) -> Path:
    if "chart" in _RUNS:
        return _RUNS["chart"]
    root = factory.mktemp("chart-run")
    cfg = pf.tiny_config(root, name="chart-ship", student=encoder_student("chart", encoder, 25),
                         methods=["teacher", "sft", "mckd"], stages=[2])
    run_pipeline(config_from_dict(cfg))
    _RUNS["chart"] = root / "run"
    return _RUNS["chart"]


def seq2seq_run(factory: pytest.TempPathFactory) -> Path:
    if "seq2seq" in _RUNS:
        return _RUNS["seq2seq"]
    root = factory.mktemp("seq2seq-run")
    student = {"kind": "seq2seq", "model": "t5-tiny",
               "t5_shape": {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 2},
               "train": {"epochs": 1, "batch_size": 8, "fidelity_sample": 0, "progress": False}}
    cfg = pf.tiny_config(root, name="t5-ship", student=student, methods=["teacher", "sft"])
    run_pipeline(config_from_dict(cfg))
    _RUNS["seq2seq"] = root / "run"
    return _RUNS["seq2seq"]


def exported(name: str, run: Path, factory: pytest.TempPathFactory, **options: Any) -> Path:
    """`mckd export` of a run, made once per session under `name`."""
    from mckd.ship.export import export_run

    key = f"export:{name}"
    if key not in _RUNS:
        out = factory.mktemp("exports") / name
        export_run(run, out, **options)
        _RUNS[key] = out
    return _RUNS[key]
