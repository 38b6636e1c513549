"""How long BIO-constrained Viterbi takes for 10,000 sentences with an ATIS-sized tag set,
against the obvious baseline in the same run: the textbook dense step that adds the full
tags x tags transition matrix at every position. Both must find the same paths.

    OMP_NUM_THREADS=1 python benchmarks/bench_viterbi.py [--n 10000 --types 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mckd.student.bio import bio_constraints, tag_set, viterbi


def dense_viterbi(
    scores: np.ndarray, lengths: list[int], start_ok: np.ndarray, trans_ok: np.ndarray
) -> list[list[int]]:
    """Viterbi with a (batch, tags, tags) candidate array per position."""
    batch, width, n_tags = scores.shape
    blocked = np.where(trans_ok, 0.0, -np.inf)
    best = np.where(start_ok, scores[:, 0], -np.inf)
    back = np.zeros((batch, width, n_tags), dtype=np.int64)
    for i in range(1, width):
        cand = best[:, :, None] + blocked[None]
        prev = cand.argmax(axis=1)
        step = np.take_along_axis(cand, prev[:, None, :], axis=1)[:, 0] + scores[:, i]
        active = (i < np.asarray(lengths))[:, None]
        best = np.where(active, step, best)
        back[:, i] = np.where(active, prev, np.arange(n_tags))
    paths = np.zeros((batch, width), dtype=np.int64)
    paths[:, -1] = best.argmax(axis=1)
    for i in range(width - 1, 0, -1):
        paths[:, i - 1] = back[np.arange(batch), i, paths[:, i]]
    return [paths[b, :n].tolist() for b, n in enumerate(lengths)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000, help="sentences")
    p.add_argument("--types", type=int, default=60, help="slot types (tags: 2 x types + 1)")
    p.add_argument("--batch", type=int, default=64, help="sentences per batch (length-sorted)")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    tags = tag_set([[f"B-type{k}" for k in range(args.types)]])
    start_ok, trans_ok = bio_constraints(tags)
    lengths = np.sort(rng.integers(4, 25, size=args.n))
    batches = []
    for i in range(0, args.n, args.batch):
        chunk = lengths[i : i + args.batch].tolist()
        batches.append((rng.normal(size=(len(chunk), max(chunk), len(tags))), chunk))
    timings, paths = {}, {}
    for name, fn in (("ours", viterbi), ("dense", dense_viterbi)):
        started = time.perf_counter()
        paths[name] = [fn(scores, chunk, start_ok, trans_ok) for scores, chunk in batches]
        timings[name] = time.perf_counter() - started
    assert paths["ours"] == paths["dense"], "the two decoders disagree"
    print(f"{len(tags)} tags, {args.n:,} sentences of 4-24 words, batches of {args.batch}: "
          f"ours {timings['ours']:.2f} s, dense {timings['dense']:.2f} s "
          f"({timings['dense'] / timings['ours']:.1f}x); same paths")


if __name__ == "__main__":
    main()
