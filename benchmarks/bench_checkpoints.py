"""What a resumable checkpoint at each epoch end costs a small training: the tagging student
on 50 sentences (batch 16: 4 steps an epoch) with a checkpoint every 4 steps (what saving at
each epoch end amounts to) against the default of every 200 steps, same run, same weights.

    OMP_NUM_THREADS=1 python benchmarks/bench_checkpoints.py [--steps 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mckd.examples import Example
from mckd.student.config import TaggerConfig
from mckd.student.tagger import TaggerStudent

CITIES = ["boston", "denver", "new york", "paris", "san francisco", "chicago", "rome", "oslo"]


def examples(n: int) -> list[Example]:
    out = []
    for k in range(n):
        a, b = CITIES[k % len(CITIES)], CITIES[(k * 3 + 1) % len(CITIES)]
        words = ["flights", "from", *a.split(), "to", *b.split()]
        tags = ["O", "O", "B-from", *["I-from"] * (len(a.split()) - 1),
                "O", "B-to", *["I-to"] * (len(b.split()) - 1)]
        out.append(Example(str(k), " ".join(words), " ".join(tags)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40, help="optimizer steps per training")
    args = p.parse_args()
    torch.set_num_threads(1)
    data, weights, seconds = examples(50), {}, {}
    for every in (4, 200):
        cfg = TaggerConfig(epochs=1, min_steps=args.steps, early_stopping="none",
                           checkpoint_every=every, device="cpu")
        student = TaggerStudent(cfg)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            student.fit(data, Path(tmp) / "run")
            seconds[every] = time.perf_counter() - started
        weights[every] = student.model.state_dict()
    same = all(torch.equal(v, weights[200][k]) for k, v in weights[4].items())
    print(f"50 sentences, {args.steps} steps, fit incl. the final save: checkpoint every 4 steps "
          f"{seconds[4]:.1f} s, every 200 steps {seconds[200]:.1f} s "
          f"({seconds[4] / seconds[200]:.2f}x); identical weights: {same}")


if __name__ == "__main__":
    main()
