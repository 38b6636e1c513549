"""Measure a local GGUF teacher on slot filling: valid answers and conlleval F1 with and without
the per-input tag grammar, in each prompt form.

Labels the first N test sentences of the built-in slot corpus, split and demonstrated as the
slots demo does (configs/slots-demo.yaml: its corpus sizes and seed, its teacher settings and
demonstrations), under four conditions {tags, interleaved} x {grammar, no grammar}, one
condition at a time, through the labelling run (`mckd.teacher.label`, the same path `mckd run`
takes). For each condition: answers valid as written, answers usable after repair, rejections
and repairs by reason, conlleval F1 of the pseudolabels (a rejected answer finds no chunk), and
seconds per sentence. Writes OUT.md (a markdown table) and OUT.json; each condition's ledger
and cache stay under OUT.d/, so a rerun resumes and repeats no finished request.

    python benchmarks/slot_teacher.py --model qwen2.5-coder-1.5b -n 100 --out benchmarks/slot_teacher_results
    python benchmarks/slot_teacher.py --model qwen2.5-coder-0.5b -n 3 --out /tmp/slot_teacher
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mckd.config import load_config
from mckd.examples import Example, read_examples, write_examples
from mckd.io import atomic_write
from mckd.tasks import TASKS
from mckd.teacher.label import label_files

TASK = TASKS["slots"]
CONDITIONS = [(form, grammar) for form in ("tags", "interleaved") for grammar in (True, False)]


def demo_data(n: int, config: str) -> tuple[list[Example], list[Example], Any]:
    """The demo's labeled examples, the first `n` of its test sentences, and its config."""
    cfg = load_config(config)
    d = cfg.data.demo
    corpus = TASK.builtin_corpus(d.n_labeled, d.n_unlabeled, d.n_test, seed=d.seed, max_words=d.max_len)
    return corpus.labeled, corpus.test[:n], cfg


def run_condition(labeled: list[Example], test: list[Example], cfg: Any, form: str, grammar: bool,
                  model: str, threads: int, folder: Path) -> dict[str, Any]:
    """Label the test inputs under one condition and score the answers."""
    folder.mkdir(parents=True, exist_ok=True)
    write_examples(folder / "labeled.jsonl", labeled)
    write_examples(folder / "inputs.jsonl", [Example(ex.id, ex.source, None, {}) for ex in test])
    teacher = cfg.teacher.model_copy(deep=True)
    teacher.model, teacher.n_threads = model, threads
    teacher.cache_path = str(folder / "cache.sqlite")
    teacher.prompt = teacher.prompt.model_copy(update={"form": form, "grammar": grammar})
    start = time.perf_counter()
    result = label_files(folder / "inputs.jsonl", folder / "labelling", teacher, task=TASK,
                         labeled_path=folder / "labeled.jsonl", extra_labels=cfg.task_labels(),
                         progress=False)
    seconds = time.perf_counter() - start
    ledger = [json.loads(line) for line in (folder / "labelling" / "ledger.jsonl").read_text().splitlines()]
    latest = {rec["id"]: rec for rec in ledger}  # a resumed run appends: the last record counts
    by_id = {ex.id: ex.target for ex in read_examples(folder / "labelling" / "pseudolabels.jsonl")}
    scores = TASK.score(test, [by_id.get(ex.id) or "" for ex in test])
    reasons: Counter[str] = Counter()
    for rec in latest.values():
        reasons.update(reason(p) for p in rec.get("problems") or [])
        if rec["status"] != "label":
            reasons[f"rejected: {rec['reason']}"] += 1
    usage = result.usage
    return {
        "form": form, "grammar": grammar, "sentences": len(test),
        "valid_as_written": sum(rec["status"] == "label" and not rec.get("problems")
                                for rec in latest.values()),
        "usable": usage["labels"], "rejected": usage["rejected"],
        "reasons": dict(reasons.most_common()),
        "f1": round(scores["f1"], 2), "precision": round(scores["precision"], 2),
        "recall": round(scores["recall"], 2), "accuracy": round(scores["accuracy"], 2),
        "seconds_per_sentence": round(seconds / max(1, len(test)), 2),
        "completion_tokens": usage["completion_tokens"],
    }


def reason(problem: str) -> str:
    """A repair problem without its count ("dropped 2 extra tags" -> "dropped N extra tags"),
    so that problems of one kind add up."""
    return re.sub(r"\d+", "N", problem).replace(" tag ", " tags ")


def table(rows: list[dict[str, Any]], model: str) -> str:
    out = [f"Teacher `{model}` on the first {rows[0]['sentences']} test sentences of the built-in "
           "slot corpus (slots-demo split and demonstrations); conlleval chunk F1.", "",
           "| form | grammar | valid as written | usable after repair | rejected | F1 | P | R | tag acc "
           "| s / sentence | rejections and repairs |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        reasons = "; ".join(f"{k} ({v})" for k, v in r["reasons"].items()) or "–"
        out.append(f"| {r['form']} | {'yes' if r['grammar'] else 'no'} | {r['valid_as_written']}/{r['sentences']} "
                   f"| {r['usable']}/{r['sentences']} | {r['rejected']} | {r['f1']:.1f} | {r['precision']:.1f} "
                   f"| {r['recall']:.1f} | {r['accuracy']:.1f} | {r['seconds_per_sentence']:.1f} | {reasons} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="A name from `mckd models list` or a .gguf path.")
    parser.add_argument("-n", type=int, default=100, help="Test sentences to label (the first n).")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp CPU threads.")
    parser.add_argument("--config", default="slots-demo", help="Run config giving the split and teacher.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/slot_teacher_results"),
                        help="Writes OUT.md, OUT.json and the labelling runs under OUT.d/.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    labeled, test, cfg = demo_data(args.n, args.config)
    rows = []
    for form, grammar in CONDITIONS:
        name = f"{form}-{'grammar' if grammar else 'nogrammar'}"
        rows.append(run_condition(labeled, test, cfg, form, grammar, args.model, args.threads,
                                  args.out.with_suffix(".d") / name))
        logging.info("%s: %s", name, rows[-1])
    command = (f"python benchmarks/slot_teacher.py --model {args.model} -n {args.n} "
               f"--threads {args.threads} --config {args.config} --out {args.out}")
    with atomic_write(args.out.with_suffix(".json")) as f:
        json.dump({"model": args.model, "command": command, "conditions": rows}, f, indent=1)
    with atomic_write(args.out.with_suffix(".md")) as f:
        f.write(table(rows, args.model) + f"\nCommand: `{command}`\n")
    print(table(rows, args.model))


if __name__ == "__main__":
    main()
