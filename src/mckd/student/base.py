"""What the pipeline needs from a student, whatever its kind (seq2seq, decoder-only, span chart).

A student is trained on `Example`s whose `target` is the task's linearized output and writes
predictions for sources. `mean_logprob` is the per-sequence mean token log-probability (the
self-distillation baseline keeps the most confident half by it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mckd.examples import Example


@dataclass
class Prediction:
    """`meta` flags how the text came about: `fallback` (a reason) when the student could not
    run on the input and gave a fixed output instead (the chart student's right-branching tree
    for a sentence too long for its encoder); `complete` from constrained decoding, False when
    the length limit cut the tree short."""

    text: str
    mean_logprob: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def count_flags(preds: list[Prediction]) -> dict[str, int]:
    """How many predictions are fallbacks, and how many constrained decodes were cut short."""
    return {"predictions": len(preds),
            "fallback": sum("fallback" in p.meta for p in preds),
            "incomplete": sum(p.meta.get("complete") is False for p in preds)}


@dataclass
class TrainReport:
    epochs: int
    steps: int
    seconds: float
    final_loss: float | None = None
    fidelity: list[float] = field(default_factory=list)  # per-epoch F1 against own training labels
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def fidelity_converged(history: list[float], patience: int, tolerance: float, min_epochs: int = 1) -> bool:
    """The early-stopping rule of every student (METHOD.md): True once at least `min_epochs`
    epochs are done and fidelity (one value per epoch) moved by at most `tolerance` points over
    the last `patience` epochs. A fidelity that stayed at 0 over that window never counts: the
    student has not matched its labels once yet (no valid output, or no exact match early in
    training), which says nothing about convergence."""
    if len(history) < max(min_epochs, patience + 1):
        return False
    window = history[-(patience + 1):]
    return max(window) > 0 and max(window) - min(window) <= tolerance


class Student(Protocol):
    def fit(self, train: list[Example], out_dir: Path) -> TrainReport:
        """Train from the student's initial weights; checkpoints and logs go in `out_dir`, and a
        rerun with the same `out_dir` resumes an interrupted training."""
        ...

    def predict(self, sources: list[str]) -> list[Prediction]: ...

    def save(self, path: Path) -> None: ...
