"""How long BIO-constrained Viterbi takes for 10,000 sentences with an ATIS-sized tag set,
against the obvious baseline in the same run: the textbook dense step that adds the full
tags x tags transition matrix at every position (what the decoder does when a CRF gives
transition scores; here all zero). Both must find the same paths.

    OMP_NUM_THREADS=1 python benchmarks/bench_viterbi.py [--n 10000 --types 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mckd.student.bio import bio_constraints, viterbi
from mckd.tasks.slots import tag_set


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
    zeros = np.zeros((len(tags), len(tags)))  # transition scores force the dense step
    for name, extra in (("ours", {}), ("dense", {"transitions": zeros})):
        started = time.perf_counter()
        paths[name] = [viterbi(scores, chunk, start_ok, trans_ok, **extra)
                       for scores, chunk in batches]
        timings[name] = time.perf_counter() - started
    assert paths["ours"] == paths["dense"], "the two decoders disagree"
    print(f"{len(tags)} tags, {args.n:,} sentences of 4-24 words, batches of {args.batch}: "
          f"ours {timings['ours']:.2f} s, dense {timings['dense']:.2f} s "
          f"({timings['dense'] / timings['ours']:.1f}x); same paths")


if __name__ == "__main__":
    main()
