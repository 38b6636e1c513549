"""Generating students on the built-in treebank: a T5 trained from scratch decoded freely and with
tree constraints, and a MiniLM warm-started encoder-decoder, after training on 50, 200 and 2,000
gold trees; test F1 (paper metric) next to right-branching on the same sentences.

    OMP_NUM_THREADS=1 python benchmarks/seq2seq_kinds.py --out /tmp/s2s-kinds --variants scratch
    OMP_NUM_THREADS=1 python benchmarks/seq2seq_kinds.py --out /tmp/s2s-kinds --variants minilm

Training and test trees are the ones benchmarks/student_kinds.py uses (same seed); the test
set is the first --test of its test trees. Epochs are fixed and few (a shared 2-core machine,
one thread), no early stopping; each trained model is decoded both ways. Every training resumes
in --out. Rows go to OUT/results-<variant>.json; paste them into student_kinds_results.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from student_kinds import load_corpus, score

from mckd.examples import Example
from mckd.student.config import Seq2SeqConfig
from mckd.student.seq2seq import Seq2SeqStudent
from mckd.tasks import TASKS
from mckd.tasks.constituency import trees

log = logging.getLogger("seq2seq_kinds")
EPOCHS = {"scratch": {50: 30, 200: 10, 2000: 2}, "placeholder": {50: 30, 200: 10, 2000: 2},
          "minilm": {50: 5, 200: 2, 2000: 1}}


def student_config(variant: str, size: int) -> Seq2SeqConfig:
    train = {"epochs": EPOCHS[variant][size], "batch_size": 16 if size < 2000 else 32, "fidelity_sample": 0,
             "progress": False, "threads": 1, "device": "cpu", "save_every_steps": 50}
    if variant == "minilm":
        return Seq2SeqConfig(model="minilm", train={**train, "lr": 5e-5})
    fmt = "placeholder" if variant == "placeholder" else "text"
    return Seq2SeqConfig(model="t5-tiny", tokenizer="word", target_format=fmt, train=train)


def run(variant: str, size: int, train: list[Example], test: list[Example], out: Path) -> list[dict]:
    student = Seq2SeqStudent(student_config(variant, size), TASKS["constituency"])  # its tree constraint
    report = student.fit(train[:size], out / f"{variant}-{size}")
    rows = []
    for constrained in (False, True):
        student.cfg.generate.constrained = constrained
        started = time.perf_counter()
        preds = student.predict([ex.source for ex in test])
        seconds = time.perf_counter() - started
        texts = [p.text for p in preds]
        rows.append({
            "kind": f"seq2seq {variant}" + (" constrained" if constrained else ""),
            "train_trees": size, "epochs": report.epochs, "train_s": round(report.seconds, 1),
            "final_loss": round(report.final_loss or float("nan"), 3), "test_sentences": len(test),
            "test_predict_s": round(seconds, 1),
            "yield_ok": sum(trees_ok(t, ex.source) for t, ex in zip(texts, test, strict=True)),
            **score(test, texts),
        })
        log.info("%s", rows[-1])
    return rows


def trees_ok(text: str, source: str) -> bool:
    try:
        return trees.tree_words(trees.parse_tree(text)) == source.split()
    except Exception:  # any malformed output counts as not ok
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variants", nargs="+", default=["scratch", "minilm"], choices=sorted(EPOCHS))
    ap.add_argument("--sizes", nargs="+", type=int, default=[50, 200, 2000])
    ap.add_argument("--test", type=int, default=100, help="first N of student_kinds.py's test trees")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    corpus_args = argparse.Namespace(sizes=[50, 200, 2000], relabel=0, corpus=None, test=500, seed=args.seed)
    train, _, test = load_corpus(corpus_args)
    test = test[:args.test]
    rb = [trees.right_branching(ex.source.split()) for ex in test]
    rows = [{"kind": "right-branching", "test_sentences": len(test), **score(test, rb)}]
    for variant in args.variants:
        for size in args.sizes:
            rows.extend(run(variant, size, train, test, args.out))
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"results-{'-'.join(args.variants)}.json").write_text(json.dumps(rows, indent=1) + "\n")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
