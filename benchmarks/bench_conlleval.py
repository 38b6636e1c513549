"""How long conlleval scoring of 10,000 sentence pairs takes: ours against seqeval.

Generates random BIO gold sequences (3-25 tokens, 30 slot types, some with '.' and '-' in the
name) and predictions made from them by changing ~10% of the tags (wrong type, B<->I, O, an
`I-x` with no `B-x`), then times `score_tag_sequences` and, in the same run, seqeval's
`classification_report` (default, conlleval-compatible mode: precision, recall, F1 overall and
per type), which is what a user would otherwise call; it checks both give the same F1.

    python benchmarks/bench_conlleval.py --n 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import random
import resource
import time

from mckd.tasks.slots.conlleval import score_tag_sequences

TYPES = [f"slot{i}" for i in range(24)] + ["fromloc.city_name", "toloc.city_name",
                                            "music-item", "depart_date.day_name", "a-b.c", "x"]


def gold_sequence(rng: random.Random) -> list[str]:
    tags: list[str] = []
    n = rng.randint(3, 25)
    while len(tags) < n:
        if rng.random() < 0.55:
            tags.append("O")
            continue
        kind = rng.choice(TYPES)
        tags.append(f"B-{kind}")
        tags.extend(f"I-{kind}" for _ in range(rng.choice([0, 0, 1, 2])))
    return tags[:n]


def damaged(rng: random.Random, gold: list[str]) -> list[str]:
    out = []
    for tag in gold:
        r = rng.random()
        if r < 0.03:
            tag = "O"
        elif r < 0.06:
            tag = f"{rng.choice('BI')}-{rng.choice(TYPES)}"
        elif r < 0.10 and tag != "O":
            tag = ("I" if tag[0] == "B" else "B") + tag[1:]
        out.append(tag)
    return out


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Best wall and CPU seconds over `repeat` runs, and the last result."""
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(repeat):
        w, c = time.perf_counter(), cpu()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, cpu() - c)
    return best_wall, best_cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    gold = [gold_sequence(rng) for _ in range(args.n)]
    pred = [damaged(rng, g) for g in gold]
    tokens = sum(map(len, gold))
    print(f"{args.n} sentences, {tokens} tokens; best of {args.repeat}")
    wall, cpu_s, ours = timed(lambda: score_tag_sequences(gold, pred), args.repeat)
    print(f"mckd score_tag_sequences  wall {wall:.3f}s  cpu {cpu_s:.3f}s  F1 {ours['f1']:.4f}")
    try:
        from seqeval.metrics import classification_report
    except ImportError:
        print("seqeval not installed: no baseline")
        return
    wall, cpu_s, report = timed(
        lambda: classification_report(gold, pred, output_dict=True, zero_division=0), args.repeat
    )
    f1 = 100 * report["micro avg"]["f1-score"]
    print(f"seqeval classification_report  wall {wall:.3f}s  cpu {cpu_s:.3f}s  F1 {f1:.4f}")
    assert abs(f1 - ours["f1"]) < 1e-6, (f1, ours["f1"])


if __name__ == "__main__":
    main()
