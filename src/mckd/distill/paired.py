"""Paired bootstrap over sentences: two predictions of the same gold, each score's interval and
the interval of their difference.

A resample draws the sentences with replacement; both predictions are scored on the same
resample, so a sentence that is hard for both moves both scores together and the difference's
interval is narrower than two separate intervals suggest. Percentile intervals.

How a resample is scored, by what the task offers:
- `sentence_stats` (per-sentence counts and the function from their sums to the metric): the
  counts are summed over the resample and turned into the metric, as the scorer would;
- otherwise, when the primary metric is a mean over sentences (the paper's parsing F1, checked:
  the mean of one-sentence scores equals the whole set's score), the mean of the resample's
  one-sentence scores;
- otherwise (a corpus-level metric such as conlleval's chunk F1) the task scores every
  resample in full.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mckd.examples import Example
from mckd.tasks.base import Task, primary_metric

Scorer = Callable[[np.ndarray], np.ndarray]  # resample index rows (R, n) -> scores (R,)


def paired_bootstrap(task: Task, golds: Sequence[Example], preds_a: Sequence[str | None],
                     preds_b: Sequence[str | None], *, resamples: int = 1000, level: float = 0.95,
                     seed: int = 0) -> dict[str, Any]:
    """The primary metric of `preds_a` and `preds_b` on `golds` with `level` intervals, and of
    their difference a - b: {"a": {value, low, high}, "b": ..., "diff": ..., "sentences",
    "resamples", "level", "how"}."""
    n = len(golds)
    if not n or len(preds_a) != n or len(preds_b) != n:
        raise ValueError(f"{n} gold examples, {len(preds_a)} and {len(preds_b)} predictions")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, size=(resamples, n))
    key = primary_metric(task).key
    a_preds, b_preds = [p or "" for p in preds_a], [p or "" for p in preds_b]
    value_a, value_b = (float(task.score(golds, p)[key]) for p in (a_preds, b_preds))
    (score_a, score_b), how = _scorers(task, golds, a_preds, b_preds)
    a, b = score_a(rows), score_b(rows)
    return {"a": _interval(value_a, a, level), "b": _interval(value_b, b, level),
            "diff": _interval(value_a - value_b, a - b, level), "sentences": n,
            "resamples": resamples, "level": level, "how": how}


def verdict(diff: dict[str, float]) -> str:
    """"better" when the difference's interval lies above 0, "worse" below, else "none"."""
    if diff["low"] > 0:
        return "better"
    if diff["high"] < 0:
        return "worse"
    return "none"


def _interval(value: float, samples: np.ndarray, level: float) -> dict[str, float]:
    low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return {"value": value, "low": float(low), "high": float(high)}


def _scorers(task: Task, golds: Sequence[Example], *preds: list[str]) -> tuple[list[Scorer], str]:
    """One resample scorer per prediction set, all of one kind (see the module's docstring)."""
    key = primary_metric(task).key
    stats_fn = getattr(task, "sentence_stats", None)
    if callable(stats_fn):
        stats = [stats_fn(golds, p).get(key) for p in preds]
        if all(s is not None for s in stats):
            return [_summed(s.counts, s.metric) for s in stats], "counts"
    ones = [np.array([float(task.score([g], [x])[key]) for g, x in zip(golds, p, strict=True)])
            for p in preds]
    # a per-sentence mean only if it is one for every set (a perfect set matches any metric)
    if all(abs(float(one.mean()) - float(task.score(golds, p)[key])) < 1e-6
           for one, p in zip(ones, preds, strict=True)):
        return [_mean_of(one) for one in ones], "mean"
    return [_rescored(task, golds, p, key) for p in preds], "rescore"


def _summed(counts: Any, metric: Callable[[np.ndarray], Any]) -> Scorer:
    table = np.asarray(counts, dtype=float)
    return lambda rows: np.asarray(metric(table[rows].sum(axis=1)), dtype=float)


def _mean_of(one: np.ndarray) -> Scorer:
    return lambda rows: one[rows].mean(axis=1)


def _rescored(task: Task, golds: Sequence[Example], preds: list[str], key: str) -> Scorer:
    def score(rows: np.ndarray) -> np.ndarray:
        return np.array([task.score([golds[i] for i in r], [preds[i] for i in r])[key] for r in rows])

    return score
