"""Paired bootstrap of two predictions of the same gold: each score's interval and the interval
of their difference, on the shared resampling of mckd.evidence.

Both predictions are scored on the same resamples of the sentences, so a sentence that is hard
for both moves both scores together and the difference's interval is narrower than two separate
intervals suggest. The task's per-sentence statistics (`Task.sentence_stats`) make each resample
recompute the metric as its scorer would (summed counts for conlleval and EVALB, a mean for the
paper's parsing F1). A task without them for its primary metric is resampled by the mean of its
one-sentence scores, an approximation for corpus-level metrics (`how` says which was used).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mckd.evidence import (
    BETTER,
    WORSE,
    Interval,
    Resamples,
    SentenceStats,
    mean_stats,
    paired_difference,
    score_interval,
)
from mckd.evidence import verdict as evidence_verdict
from mckd.examples import Example
from mckd.tasks.base import Task, primary_metric


def paired_bootstrap(task: Task, golds: Sequence[Example], preds_a: Sequence[str | None],
                     preds_b: Sequence[str | None], *, resamples: int = 1000, level: float = 0.95,
                     seed: int = 0) -> dict[str, Any]:
    """The primary metric of `preds_a` and `preds_b` on `golds` with `level` intervals, and of
    their difference a - b: {"a": {value, low, high}, "b": ..., "diff": ..., "sentences",
    "resamples", "level", "how"}."""
    n = len(golds)
    if not n or len(preds_a) != n or len(preds_b) != n:
        raise ValueError(f"{n} gold examples, {len(preds_a)} and {len(preds_b)} predictions")
    (a, b), how = _stats(task, golds, [p or "" for p in preds_a], [p or "" for p in preds_b])
    draws = Resamples.draw(n, resamples, seed)
    return {"a": _json(score_interval([a], draws, level)), "b": _json(score_interval([b], draws, level)),
            "diff": _json(paired_difference([a], [b], draws, level)), "sentences": n,
            "resamples": resamples, "level": level, "how": how}


def verdict(diff: dict[str, float]) -> str:
    """"better" when the difference's interval lies above 0, "worse" below, else "none"."""
    found = evidence_verdict(Interval(diff["value"], diff["low"], diff["high"]))
    return {BETTER: "better", WORSE: "worse"}.get(found, "none")


def _json(i: Interval) -> dict[str, float]:
    return {"value": i.value, "low": i.low, "high": i.high}


def sentence_stats(task: Any, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, SentenceStats]:
    """The task's per-sentence statistics; none (so no intervals) from a task installed from
    another package that predates `Task.sentence_stats`."""
    hook = getattr(task, "sentence_stats", None)
    return hook(golds, preds) if hook is not None else {}


def _stats(task: Task, golds: Sequence[Example], *preds: list[str]) -> tuple[list[SentenceStats], str]:
    key = primary_metric(task).key
    found = [sentence_stats(task, golds, p).get(key) for p in preds]
    if all(s is not None for s in found):
        return found, "counts"
    ones = [mean_stats([float(task.score([g], [x])[key]) for g, x in zip(golds, p, strict=True)])
            for p in preds]
    return ones, "sentence mean"
