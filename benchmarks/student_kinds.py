"""Student kinds on the built-in treebank: test F1 after training on 50, 200 and 2,000 gold
trees, next to right-branching on the same test sentences, and seconds to relabel 1,000 inputs.

    OMP_NUM_THREADS=2 python benchmarks/student_kinds.py --out /tmp/student-kinds

Gold training trees and relabel inputs come from the built-in synthetic treebank; the test set
is `test.jsonl` of a corpus written by `mckd data split` (--corpus DIR) or, without one, 500
trees drawn with a seed the training trees do not use. Every training writes into --out and
resumes there, so a killed run picks up where it stopped; a finished one is only reloaded.
Results go to OUT/results.json; paste the table into benchmarks/student_kinds_results.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mckd.examples import Example, read_examples, write_examples
from mckd.tasks.constituency import trees

log = logging.getLogger("student_kinds")

EPOCHS = {50: 30, 200: 15, 2000: 3}  # fewer trees need more passes; short for a shared CPU


def gold_examples(tree_list: list[Any], prefix: str) -> list[Example]:
    out = []
    for k, tree in enumerate(tree_list):
        words = trees.tree_words(tree)
        meta = {"tree": trees.to_labeled(tree, pos=True)}
        out.append(Example(f"{prefix}{k}", " ".join(words), trees.to_unlabeled(tree), meta))
    return out


def load_corpus(args: argparse.Namespace) -> tuple[list[Example], list[str], list[Example]]:
    """Gold training pool, relabel inputs, test examples."""
    from mckd.tasks.constituency.synth import synth_treebank

    pool = gold_examples(synth_treebank(max(args.sizes) + args.relabel, args.seed), "train-")
    train, relabel = pool[: max(args.sizes)], [ex.source for ex in pool[max(args.sizes) :]]
    if args.corpus:
        test = read_examples(Path(args.corpus) / "test.jsonl")
    else:
        test = gold_examples(synth_treebank(args.test, args.seed + 1000), "test-")
    return train, relabel, test


def score(golds: list[Example], preds: list[str]) -> dict[str, float]:
    """The constituency task's scores (paper metric as "f1", EVALB next to it)."""
    try:
        from mckd.tasks.constituency import ConstituencyTask
    except ImportError:  # only the paper metric is available
        from mckd.tasks.paper_metric import paper_metric

        result = paper_metric([ex.meta["tree"] for ex in golds], preds)
        return {"f1": round(result.mean_f1, 2), "failed": result.failed}
    scores = ConstituencyTask().score(golds, preds)
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in scores.items()}


def chart_student(size: int, threads: int) -> Any:
    from mckd.student.chart import ChartConfig, ChartStudent

    return ChartStudent(ChartConfig(epochs=EPOCHS.get(size, 20), early_stopping="none"))


KINDS: dict[str, Callable[[int, int], Any]] = {"chart": chart_student}


def run_kind(kind: str, args: argparse.Namespace, corpus: tuple, rows: list[dict]) -> None:
    train, relabel, test = corpus
    for size in args.sizes:
        student = KINDS[kind](size, args.threads)
        run_dir = args.out / f"{kind}-{size}"
        report = student.fit(train[:size], run_dir)
        started = time.perf_counter()
        preds = student.predict([ex.source for ex in test])
        predict_s = time.perf_counter() - started
        write_examples(
            run_dir / "test_predictions.jsonl",
            [ex.with_target(p.text) for ex, p in zip(test, preds, strict=True)],
        )
        row = {
            "kind": kind,
            "train_trees": size,
            "epochs": report.epochs,
            "train_s": report.seconds,
            "s_per_epoch": report.seconds / max(1, report.epochs),
            "test_sentences": len(test),
            "test_predict_s": round(predict_s, 2),
            **score(test, [p.text for p in preds]),
        }
        log.info("%s", row)
        rows.append(row)
        for threshold in args.thresholds if kind == "chart" else []:
            rows.append(rescore_threshold(student, test, row, threshold))
        if args.relabel and size == max(args.sizes):
            rows.append(time_relabel(kind, student, relabel))


def rescore_threshold(student: Any, test: list[Example], row: dict, threshold: float) -> dict:
    """The same chart model decoded with another span threshold (information only: picking
    it by these numbers would tune on the test set)."""
    default = student.cfg.span_threshold
    student.cfg.span_threshold = threshold
    preds = student.predict([ex.source for ex in test])
    student.cfg.span_threshold = default
    scores = score(test, [p.text for p in preds])
    return {
        "kind": row["kind"],
        "train_trees": row["train_trees"],
        "span_threshold": threshold,
        **scores,
    }


def time_relabel(kind: str, student: Any, relabel: list[str]) -> dict:
    started = time.perf_counter()
    student.predict(relabel)
    seconds = time.perf_counter() - started
    return {
        "kind": kind,
        "relabel_inputs": len(relabel),
        "relabel_s": round(seconds, 2),
        "sentences_per_s": round(len(relabel) / seconds, 1),
    }


def markdown_table(rows: list[dict]) -> str:
    """The results file's tables, from the rows of one or more results.json files."""
    lines = [
        "| student | gold training trees | epochs | train s | s / epoch | test F1 (paper) "
        "| EVALB unlabeled F1 | valid |",
        "|---|---|---|---|---|---|---|---|",
    ]
    seen = set()
    for r in rows:
        if (
            "relabel_inputs" in r
            or "span_threshold" in r
            or (r["kind"], r.get("train_trees")) in seen
        ):
            continue
        seen.add((r["kind"], r.get("train_trees")))
        cells = [
            r["kind"],
            r.get("train_trees", "–"),
            r.get("epochs", "–"),
            r.get("train_s", "–"),
            _round(r.get("s_per_epoch")),
            r.get("f1"),
            r.get("evalb_unlabeled_f1", "–"),
            r.get("valid", "–"),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        "| student | gold training trees | span threshold | test F1 (paper) | precision "
        "| recall | EVALB unlabeled F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "span_threshold" in r:
            cells = [
                r["kind"],
                r["train_trees"],
                r["span_threshold"],
                r["f1"],
                r["precision"],
                r["recall"],
                r["evalb_unlabeled_f1"],
            ]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "| student | inputs relabelled | seconds | sentences / s |", "|---|---|---|---|"]
    for r in rows:
        if "relabel_inputs" in r:
            cells = [r["kind"], r["relabel_inputs"], r["relabel_s"], r["sentences_per_s"]]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _round(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="working directory (resumable)")
    parser.add_argument(
        "--table",
        type=Path,
        nargs="+",
        help="print the markdown tables of these --out directories' results.json, then exit",
    )
    parser.add_argument("--kinds", nargs="+", default=["chart"], choices=sorted(KINDS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[50, 200, 2000])
    parser.add_argument("--corpus", help="directory from `mckd data split` (its test.jsonl)")
    parser.add_argument("--test", type=int, default=500, help="test trees drawn without --corpus")
    parser.add_argument("--relabel", type=int, default=1000, help="inputs to relabel and time")
    parser.add_argument(
        "--thresholds",
        type=float,
        nargs="*",
        default=[-1.0, -2.0, -1e9],
        help="extra span thresholds to score the chart models with",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.table:
        rows = [r for d in args.table for r in json.loads((d / "results.json").read_text())]
        print(markdown_table(rows))
        return
    if args.out is None:
        parser.error("--out is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    corpus = load_corpus(args)
    rows: list[dict] = []
    test_golds = corpus[2]
    rb = [trees.right_branching(ex.source.split()) for ex in test_golds]
    rows.append(
        {"kind": "right-branching", "test_sentences": len(test_golds), **score(test_golds, rb)}
    )
    for kind in args.kinds:
        run_kind(kind, args, corpus, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
