"""How long the bootstrap of a run's scores takes: vectorised (mckd.evidence) against loops.

Makes per-sentence chunk counts (correct, found, gold) for M methods on N test sentences, the
shape conlleval F1 and EVALB are recomputed from, and resamples every method's corpus-level
F1 R times with one seeded index matrix, three ways, in the same run:

- vectorised: `Resamples.replicates` (multiplicities by one bincount, sums by one matrix
  product per method), the code `mckd run` uses;
- numpy loop: one resample at a time, fancy indexing and a column sum per method;
- Python loop: one resample at a time, the counts added in plain Python (what a first version
  would write).

All three use the same index matrix and must give the same replicates; the script checks it,
then also times the paired differences of the run's comparisons (vectorised) and the tasks'
per-sentence statistics (`Task.sentence_stats`) for N parsing and N slot sentences, the other
cost a run's results pay.

    python benchmarks/bootstrap_speed.py --sentences 2000 --methods 6 --resamples 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mckd.evidence import Resamples, SentenceStats, f1_from_counts, f1_stats, paired_difference


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall and CPU seconds over `repeat` runs, and the last result."""
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(repeat):
        w, c = time.perf_counter(), cpu()
        result = fn()
        best_wall, best_cpu = min(best_wall, time.perf_counter() - w), min(best_cpu, cpu() - c)
    return best_wall, best_cpu, result


def method_counts(rng: np.random.Generator, n: int, m: int) -> list[SentenceStats]:
    """M methods' (correct, found, gold) chunk counts on the same N sentences."""
    gold = rng.integers(0, 6, size=n)
    out = []
    for _ in range(m):
        found = np.maximum(0, gold + rng.integers(-1, 2, size=n))
        correct = np.minimum(np.minimum(found, gold), rng.binomial(gold, rng.uniform(0.5, 0.9)))
        out.append(f1_stats(correct, found, gold))
    return out


def vectorised(indices: np.ndarray, stats: list[SentenceStats]) -> np.ndarray:
    draws = Resamples(indices)  # multiplicities computed once, shared by every method
    return np.array([draws.replicates(s) for s in stats])


def numpy_loop(indices: np.ndarray, stats: list[SentenceStats]) -> np.ndarray:
    return np.array([[float(f1_from_counts(*s.counts[row].sum(axis=0))) for row in indices]
                     for s in stats])


def python_loop(indices: np.ndarray, stats: list[SentenceStats]) -> np.ndarray:
    rows = indices.tolist()
    out = []
    for s in stats:
        counts = s.counts.tolist()
        reps = []
        for row in rows:
            c = f = g = 0.0
            for i in row:
                ci, fi, gi = counts[i]
                c, f, g = c + ci, f + fi, g + gi
            p = 100 * c / f if f else 0.0
            r = 100 * c / g if g else 0.0
            reps.append(2 * p * r / (p + r) if p + r else 0.0)
        out.append(reps)
    return np.array(out)


def task_statistics(n: int) -> dict[str, float]:
    """Seconds of `sentence_stats` for n built-in parsing / slot test sentences scored against
    their right-branching / all-O baseline (one method)."""
    from mckd.tasks import get_task

    out = {}
    for name in ("constituency", "slots"):
        task = get_task(name)
        test = task.builtin_corpus(5, 5, n, seed=0, max_words=20).test
        preds = next(iter(task.baselines().values()))([ex.source for ex in test])
        wall, _, _ = timed(lambda task=task, test=test, preds=preds: task.sentence_stats(test, preds), 1)
        out[name] = wall
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--methods", type=int, default=6)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    stats = method_counts(rng, args.sentences, args.methods)
    indices = Resamples.draw(args.sentences, args.resamples, seed=0).indices
    print(f"{args.sentences} sentences x {args.methods} methods x {args.resamples} resamples; "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    results = {}
    for name, fn, repeat in (("vectorised (mckd.evidence)", vectorised, args.repeat),
                             ("numpy loop over resamples", numpy_loop, args.repeat),
                             ("Python loop", python_loop, 1)):
        wall, used, reps = timed(lambda fn=fn: fn(indices, stats), repeat)
        results[name] = reps
        print(f"| {name} | {wall:.3f} | {used:.3f} |")
    first = next(iter(results.values()))
    for name, reps in results.items():
        assert np.allclose(reps, first), f"{name} differs"
    draws = Resamples(indices)
    pairs = [(stats[-1], s) for s in stats[:-1]]
    wall, used, _ = timed(lambda: [paired_difference([a], [b], draws, 0.95) for a, b in pairs], args.repeat)
    print(f"| {len(pairs)} paired differences, vectorised | {wall:.3f} | {used:.3f} |")
    for name, seconds in task_statistics(args.sentences).items():
        print(f"| {name} sentence_stats, {args.sentences} sentences, one method | {seconds:.3f} | |")
    print("all three give the same replicates")


if __name__ == "__main__":
    main()
