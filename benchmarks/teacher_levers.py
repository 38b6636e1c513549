"""Measure the local teacher's pseudolabel quality under each prompting lever.

For every condition (a PromptConfig plus sampling settings) this labels the first N sentences
of a test split with a local GGUF model through the llama.cpp backend, then scores the
pseudolabels with the paper's metric next to right-branching on the same sentences. Raw
outputs are appended to OUT/<condition>.jsonl as they arrive, so a killed run resumes, and
post-processing variants (right-branching nesting on/off) are computed from the same outputs.

    python benchmarks/teacher_levers.py prepare --demo --data DIR   # the demo's own split
    python benchmarks/teacher_levers.py run --data DIR --condition labeled-single ...
    python benchmarks/teacher_levers.py report --data DIR > table.md

DIR holds labeled.jsonl and test.jsonl as written by `mckd data split` (or by `prepare`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from mckd.examples import Example, read_examples
from mckd.tasks import TASKS
from mckd.tasks.constituency.consensus import combine
from mckd.tasks.constituency.prompts import answer_to_target
from mckd.teacher.backends.base import BackendError
from mckd.teacher.prompts import PromptBuilder, PromptConfig

# name -> (prompt overrides, samples, temperature, what it tests)
CONDITIONS: dict[str, tuple[dict[str, Any], int, float, str]] = {
    "labeled-single": ({}, 1, 0.0, "labeled PTB form, single-root grammar, 10 shared demos"),
    "unlabeled-single": ({"form": "unlabeled"}, 1, 0.0, "paper's unlabeled form, single-root grammar"),
    "labeled-forest": ({"root": "forest"}, 1, 0.0, "labeled form, grammar without single root"),
    "labeled-nogrammar": ({"grammar": False}, 1, 0.0, "labeled form, no grammar"),
    "unlabeled-nogrammar": ({"form": "unlabeled", "grammar": False}, 1, 0.0, "unlabeled form, no grammar"),
    "labeled-single-k30": ({"k": 30}, 1, 0.0, "labeled + grammar, 30 shared demos"),
    "unlabeled-single-k30": ({"form": "unlabeled", "k": 30}, 1, 0.0,
                             "paper's unlabeled form, single-root grammar, 30 shared demos"),
    "labeled-single-nearest": ({"demos": "nearest"}, 1, 0.0, "labeled + grammar, 10 nearest demos"),
    "labeled-single-random": ({"demos": "random"}, 1, 0.0, "labeled + grammar, 10 random demos per input"),
    "labeled-single-chat": ({"style": "chat"}, 1, 0.0, "labeled + grammar, chat messages"),
    "labeled-single-s5": ({}, 5, 0.7, "labeled + grammar, 5 samples at T=0.7, consensus"),
    "labeled-single-k30-s5": ({"k": 30}, 5, 0.7,
                              "labeled + grammar, 30 shared demos, 5 samples at T=0.7, consensus"),
    "labeled-single-k30-nearest": ({"k": 30, "demos": "nearest"}, 1, 0.0,
                                   "labeled + grammar, 30 nearest demos"),
    "labeled-single-k30-nearest-s5": ({"k": 30, "demos": "nearest"}, 5, 0.7,
                                      "labeled + grammar, 30 nearest demos, 5 samples at T=0.7, "
                                      "consensus"),
}
BASE = {"form": "labeled", "k": 10, "demos": "shared", "grammar": True, "root": "single",
        "nest_flat": False}


def load(data: Path, n: int) -> tuple[list[Example], list[Example]]:
    labeled = read_examples(data / "labeled.jsonl", require_target=True)
    test = read_examples(data / "test.jsonl")[:n]
    return labeled, test


def run_condition(name: str, data: Path, out: Path, *, n: int, model: str, threads: int,
                  context: int | None = None, start: int = 0) -> None:
    from mckd.teacher.backends.llamacpp import LlamaCppBackend
    from mckd.teacher.config import TeacherConfig

    overrides, samples, temperature, _ = CONDITIONS[name]
    labeled, test = load(data, n)
    cfg = PromptConfig(**{**BASE, **overrides})
    context = context or (8192 if cfg.k > 10 else 4096)  # 30 labeled demos take ~3,100 tokens
    path = out / f"{name}.jsonl"
    done = {json.loads(line)["id"] for line in path.open()} if path.exists() else set()
    # several processes may label disjoint ranges of one condition; lines are appended whole
    todo = [ex for ex in test[start:] if ex.id not in done]
    if not todo:
        return
    backend = LlamaCppBackend(TeacherConfig(backend="llamacpp", model=model, context_size=context,
                                            n_threads=threads))
    # chars/2.5 over-counts a little for bracketed text: safer than under-counting
    builder = PromptBuilder(labeled, cfg, task=TASKS["constituency"],
                            count_tokens=lambda t: int(len(t) / 2.5) + 1,
                            context_size=context, pool=test, samples=samples,
                            temperature=temperature)
    load0 = os.getloadavg()[0]
    with path.open("a") as f:
        for ex in todo:
            rec: dict[str, Any] = {"id": ex.id, "source": ex.source, "raws": [], "seconds": 0.0,
                                   "prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0,
                                   "load": load0, "shrunk": 0}
            for s in range(samples):
                try:
                    req = builder.build_request(ex, s)
                    comp = asyncio.run(backend.acomplete(req))
                except BackendError as e:
                    rec["raws"].append("")
                    rec["error"] = str(e)
                    continue
                rec["raws"].append(comp.text)
                rec["seconds"] += comp.seconds
                rec["prompt_tokens"] += comp.prompt_tokens
                rec["completion_tokens"] += comp.completion_tokens
                rec["cached_tokens"] += int(comp.extra.get("cached_tokens", 0))
            rec["shrunk"] = builder.shrunk
            rec["load"] = os.getloadavg()[0]
            f.write(json.dumps(rec) + "\n")
            f.flush()
            print(f"{name} {ex.id} {rec['seconds']:.1f}s {rec['raws'][0][:100]}", flush=True)


def _f1(golds: list[Example], preds: list[str]) -> float:
    from mckd.tasks.constituency import paper_metric

    return paper_metric([g.meta["tree"] for g in golds], preds, [g.source for g in golds]).mean_f1


def prepare_demo(data: Path) -> None:
    """The built-in demo's own split (its data.demo settings): labeled.jsonl and test.jsonl are
    the demo's 50 gold trees and 50 test sentences."""
    from mckd.config import load_config
    from mckd.data import build_demo_corpus

    build_demo_corpus(data, load_config().data.demo)


def prepare(data: Path, *, seed: int, labeled: int, test: int) -> None:
    """A split of the built-in synthetic treebank: `labeled` demonstration trees, `test` trees."""
    from mckd.examples import write_examples
    from mckd.tasks.constituency.synth import synth_treebank
    from mckd.tasks.constituency.trees import to_labeled, to_unlabeled, tree_words

    trees = synth_treebank(labeled + test, seed)
    exs = [Example(f"s{i}", " ".join(tree_words(t)), to_unlabeled(t), {"tree": to_labeled(t)})
           for i, t in enumerate(trees)]
    write_examples(data / "labeled.jsonl", exs[:labeled])
    write_examples(data / "test.jsonl", exs[labeled:])


def _records(path: Path, by_id: dict[str, Example]) -> list[dict[str, Any]]:
    """The condition's records for the selected sentences, one per sentence, in test order."""
    if not path.exists():
        return []
    first: dict[str, dict[str, Any]] = {}
    for line in path.open():
        rec = json.loads(line)
        if rec["id"] in by_id:
            first.setdefault(rec["id"], rec)
    return [first[i] for i in by_id if i in first]


def report(data: Path, out: Path, n: int, *, common: bool = False) -> str:
    from mckd.tasks.constituency.trees import parse_bracketed, right_branching, unlabeled_spans

    _, test = load(data, n)
    by_id = {ex.id: ex for ex in test}
    rows = ["| condition | sentences | F1 (paper) | right-branching, same sentences | valid | "
            "spans / valid tree | calls / sentence | uncached prompt tokens / sentence | "
            "generated tokens / sentence | s / sentence (median) | s / sentence (mean) | load avg |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    runs = {name: _records(out / f"{name}.jsonl", by_id) for name in CONDITIONS}
    runs = {name: recs for name, recs in runs.items() if recs}
    if common and runs:  # compare conditions on the sentences every one of them has labelled
        shared = set.intersection(*({r["id"] for r in recs} for recs in runs.values()))
        runs = {name: [r for r in recs if r["id"] in shared] for name, recs in runs.items()}
    for name, recs in runs.items():
        overrides, samples, _, _ = CONDITIONS[name]
        cfg = PromptConfig(**{**BASE, **overrides})
        golds = [by_id[r["id"]] for r in recs]
        rb = _f1(golds, [right_branching(g.source.split()) for g in golds])
        for nest, suffix in [(False, ""), (True, " + nesting")]:
            preds, valid, spans = [], 0, 0
            for r, g in zip(recs, golds, strict=True):
                words = g.source.split()
                targets = [answer_to_target(t, form=cfg.form or "labeled", nest_flat=nest) for t in r["raws"]]
                target = combine(words, targets, "mbr")[0] if len(targets) > 1 else targets[0]
                ok = False
                try:
                    tree = parse_bracketed(target)
                    ok = tree.leaves() == words
                    if ok:
                        spans += len(unlabeled_spans(tree))
                except Exception:
                    pass
                valid += ok
                preds.append(target)  # the metric applies the paper's own repair
            f1 = _f1(golds, preds)
            secs = statistics.median(r["seconds"] for r in recs)
            mean_secs = statistics.mean(r["seconds"] for r in recs)  # with the first call's prefix
            fresh = sum(r["prompt_tokens"] - r["cached_tokens"] for r in recs) / len(recs)
            gen = sum(r["completion_tokens"] for r in recs) / len(recs)
            avg_load = sum(r["load"] for r in recs) / len(recs)
            rows.append(f"| {name}{suffix} | {len(recs)} | {f1:.1f} | {rb:.1f} | "
                        f"{valid}/{len(recs)} | {spans / max(valid, 1):.1f} | {samples} | "
                        f"{fresh:.0f} | {gen:.0f} | {secs:.1f} | {mean_secs:.1f} | {avg_load:.1f} |")
    legend = [f"- `{name}`: {CONDITIONS[name][3]}" for name in runs]
    return "\n".join([*rows, "", *legend])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["prepare", "run", "report"])
    ap.add_argument("--seed", type=int, default=0, help="prepare: treebank seed")
    ap.add_argument("--demo", action="store_true", help="prepare: the built-in demo's split")
    ap.add_argument("--data", type=Path, required=True, help="directory with labeled.jsonl, test.jsonl")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/.teacher_levers"))
    ap.add_argument("--condition", action="append", choices=sorted(CONDITIONS), default=[])
    ap.add_argument("-n", type=int, default=40, help="first N test sentences")
    ap.add_argument("--common", action="store_true", help="report: only sentences every condition has")
    ap.add_argument("--start", type=int, default=0, help="run: begin at this test sentence")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--context", type=int, default=None,
                    help="context size (default: 4096, or 8192 with more than 10 demonstrations)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.action == "prepare" and args.demo:
        prepare_demo(args.data)
    elif args.action == "prepare":
        prepare(args.data, seed=args.seed, labeled=50, test=args.n)
    elif args.action == "run":
        for name in args.condition or list(CONDITIONS):
            t = time.time()
            run_condition(name, args.data, args.out, n=args.n, model=args.model,
                          threads=args.threads, context=args.context, start=args.start)
            print(f"== {name} done in {time.time() - t:.0f}s", file=sys.stderr, flush=True)
    else:
        print(report(args.data, args.out, args.n, common=args.common))


if __name__ == "__main__":
    main()
