"""The tagging student trained on the first N labeled sentences, for each N, scored with
conlleval chunk F1 on a test set next to the all-`O` baseline (the majority tag).

    OMP_NUM_THREADS=2 python benchmarks/tagger_sizes.py --train labeled.jsonl \\
        --test test.jsonl --out /tmp/tagger-sizes [--sizes 50,200,2000] [--set epochs=10]

Both files are Example JSONL (source: words joined by spaces, target: one BIO tag per word),
e.g. `labeled.jsonl` and `test.jsonl` of a slot corpus written by `mckd data split --task
slots`. Every training writes into OUT/nN and resumes there, so a killed run picks up where it
stopped and a finished one is only reloaded. Writes OUT/results.json and OUT/results.md (the
table); paste the table into benchmarks/tagger_sizes_results.md with the command.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from mckd.examples import Example, read_examples
from mckd.io import atomic_write

log = logging.getLogger("tagger_sizes")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, type=Path, help="labeled Example JSONL")
    p.add_argument("--test", required=True, type=Path, help="test Example JSONL")
    p.add_argument("--out", required=True, type=Path, help="folder for models and results")
    p.add_argument("--sizes", default="50,200,2000", type=sizes,
                   help="comma-separated training set sizes (first N of --train)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="tagger setting, e.g. --set epochs=10 --set pooling=mean (repeatable)")
    return p.parse_args(argv)


def sizes(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes expects numbers like 50,200,2000, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"--sizes expects positive numbers, got {text!r}")
    return out


def score(gold: list[Example], pred: list[str]) -> dict[str, Any]:
    """conlleval's figures for predicted tag strings against the gold examples."""
    from mckd.tasks.slots.conlleval import score_tag_sequences  # the slot task's scorer

    return score_tag_sequences([ex.target.split() for ex in gold], [p.split() for p in pred])


def run_size(n: int, train: list[Example], test: list[Example], out: Path,
             overrides: list[str]) -> dict[str, Any]:
    from mckd.student import build_student, parse_student_config
    from mckd.student.config import parse_overrides
    from mckd.tasks import TASKS

    cfg = parse_student_config({**parse_overrides(overrides), "kind": "tagger"})
    student = build_student(cfg, TASKS.get("slots"))  # its fidelity; token accuracy without
    train = train[:n]
    report = student.fit(train, out / f"n{n}")
    started = time.time()
    preds = student.predict([ex.source for ex in test])
    seconds = time.time() - started
    scores = score(test, [p.text for p in preds])
    return {"gold": len(train), "f1": scores["f1"], "accuracy": scores["accuracy"],
            "epochs": report.epochs, "train_seconds": report.seconds,
            "test_sentences_per_second": len(test) / max(seconds, 1e-9)}


def table(rows: list[dict[str, Any]], baseline: dict[str, Any]) -> str:
    lines = ["| gold sentences | epochs | train s | test conlleval F1 | token accuracy |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['gold']:,} | {r['epochs']} | {r['train_seconds']:.0f} | "
                     f"{r['f1']:.1f} | {r['accuracy']:.1f} |")
    lines.append(f"| (all `O`) | | | {baseline['f1']:.1f} | {baseline['accuracy']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    train = read_examples(args.train, require_target=True)
    test = read_examples(args.test, require_target=True)
    if max(args.sizes) > len(train):
        log.warning("%s has %d sentences; larger sizes use all of them", args.train, len(train))
    baseline = score(test, [" ".join("O" for _ in ex.source.split()) for ex in test])
    rows = [run_size(n, train, test, args.out, args.overrides) for n in args.sizes]
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"train": str(args.train), "test": str(args.test), "test_sentences": len(test),
               "overrides": args.overrides, "sizes": rows,
               "all_O": {"f1": baseline["f1"], "accuracy": baseline["accuracy"]}}
    with atomic_write(args.out / "results.json") as f:
        f.write(json.dumps(results, indent=2) + "\n")
    with atomic_write(args.out / "results.md") as f:
        f.write(table(rows, baseline))
    print(table(rows, baseline))


if __name__ == "__main__":
    main()
