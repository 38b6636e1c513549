"""Bootstrap intervals over test sentences, and paired differences between methods.

A metric is given as per-sentence statistics (`SentenceStats`: an array of shape
(sentences, k)) and a function from their column sums to the metric. A per-sentence mean (the
paper's parsing F1, exact match) is the statistics `[value, 1]` and sum / count; a corpus-level
metric (conlleval chunk F1, EVALB) is per-sentence counts (correct, predicted, gold), summed
and only then turned into F1, so every resample recomputes the metric as its scorer would on
that resample, instead of averaging per-sentence F1s.

A resample draws n sentences with replacement; all of a run's resamples are one index matrix
(`Resamples`, seeded), turned into per-sentence multiplicities so that the resampled sums of
every method are one matrix product. Two methods scored on the same sentences are compared on
the same resamples (the paired bootstrap): the interval of their difference is much narrower
than what two separate intervals suggest, because a hard sentence is hard for both.

The percentile interval is used: the `(1 - level) / 2` and `(1 + level) / 2` quantiles of the
resampled values. A difference whose interval lies above 0 is "better", below 0 "worse", and
one that contains 0 is "no difference shown" (not "equal": the test set cannot tell).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MetricFn = Callable[[np.ndarray], np.ndarray]
# Rows of the index matrix turned into multiplicities at a time: bounds the memory of one
# (rows, sentences) float matrix to about 32 MB whatever the test set's size.
_CELLS_PER_CHUNK = 1 << 22


class BootstrapConfig(BaseModel):
    """How scores get their intervals: resamples of the test sentences, seeded."""

    model_config = ConfigDict(extra="forbid")

    resamples: int = Field(1000, ge=10, le=100_000, description="Bootstrap resamples of the "
                           "test sentences (and of the pool, for pseudolabel quality).")
    level: float = Field(0.95, gt=0.5, lt=1.0, description="Coverage of the intervals.")
    seed: int = Field(0, description="Seed of the resamples (the same resamples for every "
                      "method, so that differences are paired).")


@dataclass(frozen=True)
class SentenceStats:
    """Per-sentence statistics of one metric and the function from their sums to the metric.

    `counts` has one row per sentence; `metric` maps an array of summed rows, shape (..., k),
    to the metric's values, shape (...), so it works on one sum and on many resamples alike."""

    counts: np.ndarray
    metric: MetricFn

    def __post_init__(self) -> None:
        if self.counts.ndim != 2:
            raise ValueError(f"per-sentence statistics must be 2-D (sentences, k), got shape "
                             f"{self.counts.shape}")

    @property
    def sentences(self) -> int:
        return int(self.counts.shape[0])

    def value(self) -> float:
        """The metric on all sentences (what the scorer reports)."""
        return float(self.metric(self.counts.sum(axis=0)))

    def take(self, rows: Sequence[int] | np.ndarray) -> SentenceStats:
        """The same metric on a subset of the sentences, in the given order."""
        return SentenceStats(self.counts[np.asarray(rows, dtype=np.int64)], self.metric)


def _mean(sums: np.ndarray) -> np.ndarray:
    return safe_ratio(sums[..., 0], sums[..., 1], scale=1.0)


def mean_stats(values: Sequence[float] | np.ndarray) -> SentenceStats:
    """A metric that is the mean of one value per sentence (0 for no sentences)."""
    v = np.asarray(values, dtype=np.float64)
    return SentenceStats(np.column_stack([v, np.ones_like(v)]), _mean)


def safe_ratio(num: np.ndarray, den: np.ndarray, *, scale: float = 100.0) -> np.ndarray:
    """scale * num / den, and 0 where den is 0 (scorers report an undefined share as 0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(scale * num, den, out=out, where=den != 0)
    return out


def f1_from_counts(correct: np.ndarray, predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """F1 (0-100) from summed counts, as conlleval and EVALB compute it: precision and recall
    are 0 when undefined, and F1 is 0 when both are."""
    p, r = safe_ratio(correct, predicted), safe_ratio(correct, gold)
    return safe_ratio(2 * p * r, p + r, scale=1.0)


def _f1(sums: np.ndarray) -> np.ndarray:
    return f1_from_counts(sums[..., 0], sums[..., 1], sums[..., 2])


def f1_stats(correct: Sequence[float], predicted: Sequence[float], gold: Sequence[float]) -> SentenceStats:
    """Corpus-level F1 from per-sentence counts of correct, predicted and gold units (chunks,
    brackets): the counts are summed over the (resampled) sentences before dividing."""
    return SentenceStats(np.column_stack([np.asarray(c, dtype=np.float64)
                                          for c in (correct, predicted, gold)]), _f1)


# --- resamples ---------------------------------------------------------------------------------


class Resamples:
    """B resamples of n sentences as a (B, n) matrix of sentence indices, drawn with
    replacement. `sums` adds up per-sentence statistics over every resample at once."""

    def __init__(self, indices: np.ndarray, sentences: int | None = None) -> None:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.ndim != 2:
            raise ValueError(f"resample indices must be 2-D (resamples, draws), got {indices.shape}")
        self.indices = indices
        self.sentences = int(indices.shape[1] if sentences is None else sentences)
        if indices.size and (indices.min() < 0 or indices.max() >= self.sentences):
            raise ValueError(f"resample indices must lie in [0, {self.sentences})")
        self._weights: np.ndarray | None = None  # kept when small: every method reuses it

    @classmethod
    def draw(cls, sentences: int, resamples: int, seed: int) -> Resamples:
        """`resamples` rows of `sentences` indices drawn uniformly with replacement, seeded."""
        if sentences < 1:
            raise ValueError("cannot resample an empty set of sentences")
        rng = np.random.default_rng(seed)
        return cls(rng.integers(0, sentences, size=(resamples, sentences), dtype=np.int64), sentences)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def sums(self, counts: np.ndarray) -> np.ndarray:
        """Resampled sums, shape (B, k), of per-sentence statistics of shape (n, k).

        Each block of rows becomes a matrix of multiplicities (how often each sentence was
        drawn) by one bincount, and the sums are that matrix times `counts`."""
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape[0] != self.sentences:
            raise ValueError(f"statistics for {counts.shape[0]} sentences, resamples of {self.sentences}")
        n, b = self.sentences, len(self)
        if self._weights is not None:
            return self._weights @ counts
        step = max(1, _CELLS_PER_CHUNK // max(1, n))
        out = np.empty((b, counts.shape[1]))
        for start in range(0, b, step):
            weights = self._multiplicities(self.indices[start:start + step])
            if step >= b:
                self._weights = weights
            out[start:start + step] = weights @ counts
        return out

    def _multiplicities(self, rows: np.ndarray) -> np.ndarray:
        """(rows, n) counts of how often each sentence is drawn in each row, by one bincount."""
        n = self.sentences
        flat = rows + (np.arange(rows.shape[0], dtype=np.int64) * n)[:, None]
        return np.bincount(flat.ravel(), minlength=rows.shape[0] * n).reshape(rows.shape[0], n).astype(np.float64)

    def replicates(self, stats: SentenceStats) -> np.ndarray:
        """The metric on every resample, shape (B,)."""
        return np.asarray(stats.metric(self.sums(stats.counts)), dtype=np.float64)


# --- intervals and differences -------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval."""

    value: float
    low: float
    high: float

    def to_json(self, digits: int = 4) -> list[float]:
        return [round(self.low, digits), round(self.high, digits)]


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` share of the resampled values (numpy's linear quantiles)."""
    low, high = np.quantile(np.asarray(values, dtype=np.float64), [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _check_runs(runs: Sequence[SentenceStats], resamples: Resamples) -> None:
    if not runs:
        raise ValueError("no scores to resample")
    for s in runs:
        if s.sentences != resamples.sentences:
            raise ValueError(f"scores on {s.sentences} sentences, resamples of {resamples.sentences}")


def score_interval(runs: Sequence[SentenceStats], resamples: Resamples, level: float) -> Interval:
    """The metric (averaged over `runs`: one per seed, on the same sentences) and its interval:
    each resample averages the seeds' metrics on the same drawn sentences."""
    _check_runs(runs, resamples)
    point = float(np.mean([s.value() for s in runs]))
    reps = np.mean([resamples.replicates(s) for s in runs], axis=0)
    return Interval(point, *percentile_interval(reps, level))


def paired_difference(a: Sequence[SentenceStats], b: Sequence[SentenceStats], resamples: Resamples,
                      level: float) -> Interval:
    """Metric of A minus metric of B on the same sentences (seed-averaged when each side has
    several runs), with the interval of that difference over the same resamples."""
    _check_runs([*a, *b], resamples)
    point = float(np.mean([s.value() for s in a]) - np.mean([s.value() for s in b]))
    diff = (np.mean([resamples.replicates(s) for s in a], axis=0)
            - np.mean([resamples.replicates(s) for s in b], axis=0))
    return Interval(point, *percentile_interval(diff, level))


BETTER, WORSE, NOT_SHOWN = "better", "worse", "no difference shown"


def verdict(difference: Interval) -> str:
    """'better' when the whole interval of A − B is above 0, 'worse' when below, else 'no
    difference shown'."""
    if difference.low > 0:
        return BETTER
    if difference.high < 0:
        return WORSE
    return NOT_SHOWN


def signed(x: float, digits: int = 1) -> str:
    """A number with its sign, minus as U+2212: +2.1, −0.4."""
    text = f"{x:+.{digits}f}"
    return text.replace("-", "\u2212")


def describe_difference(a: str, b: str, difference: Interval, digits: int = 1) -> str:
    """`MCKD-3 − vanilla KD: +2.1 [+0.4, +3.9]: better`."""
    return (f"{a} \u2212 {b}: {signed(difference.value, digits)} "
            f"[{signed(difference.low, digits)}, {signed(difference.high, digits)}]: {verdict(difference)}")
