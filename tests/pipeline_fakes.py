"""Test-only helpers for the pipeline tests: a tiny treebank written as JSONL, a fake student
that follows the student protocol (resumable fit, predict with mean_logprob, save), and a tiny
run config. The real students and teacher have their own tests; these keep the pipeline's
tests fast and make interruptions controllable."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mckd.examples import Example, write_examples
from mckd.student.base import Prediction, TrainReport
from mckd.tasks.constituency.trees import (
    parse_tree,
    right_branching,
    to_labeled,
    to_unlabeled,
    tree_words,
)

_DT = ["the", "a", "every", "some"]
_NN = ["dog", "cat", "bird", "farmer", "child", "teacher", "river", "house"]
_VBD = ["saw", "liked", "found", "chased", "painted"]
_IN = ["near", "behind", "with"]
_JJ = ["old", "small", "green"]


def _np(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return f"(NP (DT {rng.choice(_DT)}) (JJ {rng.choice(_JJ)}) (NN {rng.choice(_NN)}))"
    return f"(NP (DT {rng.choice(_DT)}) (NN {rng.choice(_NN)}))"


def tiny_tree(rng: random.Random) -> str:
    vp = f"(VP (VBD {rng.choice(_VBD)}) {_np(rng)})"
    if rng.random() < 0.5:
        vp = f"(VP {vp} (PP (IN {rng.choice(_IN)}) {_np(rng)}))"
    return f"(S {_np(rng)} {vp} (. .))"


def tree_example(ex_id: str, text: str, *, labeled: bool) -> Example:
    tree = parse_tree(text)
    return Example(ex_id, " ".join(tree_words(tree)), to_unlabeled(tree) if labeled else None,
                   {"tree": to_labeled(tree, pos=True)})


def write_tiny_corpus(folder: Path, *, n_labeled: int = 8, n_pool: int = 16, n_test: int = 8,
                      seed: int = 0) -> dict[str, Path]:
    """labeled.jsonl, unlabeled.jsonl (gold only in meta) and test.jsonl under `folder`."""
    rng = random.Random(seed)
    paths = {}
    for name, n, labeled in (("labeled", n_labeled, True), ("unlabeled", n_pool, False),
                             ("test", n_test, True)):
        paths[name] = folder / f"{name}.jsonl"
        write_examples(paths[name], [tree_example(f"{name}-{i}", tiny_tree(rng), labeled=labeled)
                                     for i in range(n)])
    return paths


def tiny_config(folder: Path, **overrides: Any) -> dict[str, Any]:
    """A run config (as a dict) on the tiny corpus with the fake teacher; every method."""
    paths = write_tiny_corpus(folder / "corpus")
    cfg: dict[str, Any] = {
        "name": "tiny",
        "task": "constituency",
        "data": {"source": "files", "labeled": str(paths["labeled"]),
                 "unlabeled": str(paths["unlabeled"]), "test": str(paths["test"]), "n_labeled": 8},
        "teacher": {"backend": "fake", "model": "fake", "k_demos": 3, "concurrency": 2,
                    "cache_path": str(folder / "teacher-cache.sqlite")},
        "stages": [2, 3],
        "partitions": 2,
        "run_dir": str(folder / "run"),
    }
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


# --- a student that follows the protocol ----------------------------------------------------------

# Called as on_epoch(out_dir, epoch) after each finished epoch; the resume tests kill here.
on_epoch: Callable[[Path, int], None] | None = None
# When set, every trained epoch is logged here as "<step> <epoch>".
EPOCH_LOG: Path | None = None


class FakeStudent:
    """Remembers its training pairs (and writes them to `trained_on.jsonl` in its folder) and
    answers right-branching, flagged as a fallback, for anything else. Training
    takes `EPOCHS` epochs, each checkpointed in `state.json` (and logged to EPOCH_LOG), so an
    interrupted fit resumes after its last finished epoch."""

    EPOCHS = 3

    def __init__(self, cfg: Any = None, task: Any = None) -> None:
        self.memory: dict[str, str] = {}
        self.loaded_from: str | None = None
        saved = Path(getattr(cfg, "model", "")) / "memory.json"
        if saved.exists():  # like a pretrained model directory: start from what it knows
            self.memory = json.loads(saved.read_text())
            self.loaded_from = str(saved.parent)

    def fit(self, train: list[Example], out_dir: Path) -> TrainReport:
        out_dir.mkdir(parents=True, exist_ok=True)
        state_path = out_dir / "state.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {"epoch": 0}
        for epoch in range(state["epoch"] + 1, self.EPOCHS + 1):
            if EPOCH_LOG is not None:  # outside the run directory: survives a wiped step folder
                with open(EPOCH_LOG, "a") as f:
                    f.write(f"{out_dir.parent.name} {epoch}\n")
            state_path.write_text(json.dumps({"epoch": epoch}))
            if on_epoch is not None:
                on_epoch(out_dir, epoch)
        self.memory.update({ex.source: ex.target for ex in train if ex.target is not None})
        write_examples(out_dir / "trained_on.jsonl", train)  # what it learned, for the tests
        return TrainReport(epochs=self.EPOCHS, steps=self.EPOCHS * len(train), seconds=0.01,
                           final_loss=0.5, fidelity=[100.0] * self.EPOCHS,
                           extra={"loaded_from": self.loaded_from})

    def predict(self, sources: list[str]) -> list[Prediction]:
        out = []
        for src in sources:
            if src in self.memory:
                out.append(Prediction(self.memory[src], mean_logprob=-(len(src) % 7) / 3.0))
            else:  # flagged like the chart student's fallback for sentences it cannot parse
                out.append(Prediction(right_branching(src.split()), mean_logprob=-(len(src) % 7) / 3.0,
                                      meta={"fallback": "not seen in training: right-branching"}))
        return out

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "memory.json").write_text(json.dumps(self.memory))


def fake_build_student(cfg: Any, task: Any) -> FakeStudent:
    return FakeStudent(cfg, task)
