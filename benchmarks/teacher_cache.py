"""Teacher throughput when the prompt cache is used: nearest demonstrations per input (today),
and the same inputs grouped so that consecutive prompts share a prefix.

Conditions (`teacher.prompt` settings; k and everything else as the demo's config has them):

- `nearest`: each input's own k nearest demonstrations, closest last, inputs in pool order.
- `reorder`: the same demonstrations per input, but inputs labelled in groups of similar ones,
  each prompt's demonstrations ordered so that those its group uses most come first.
- `group`: one set of k demonstrations per group (nearest the group's centroid): every prompt
  of a group is the same up to the input.
- `mixed`: k - 2 demonstrations of the group, then the input's own 2 nearest.
- `shared`: one random demonstration set for every input (the parsing demo's setting).
- `nearest+reuse`, `reorder+reuse`: as `nearest` / `reorder`, with llama.cpp also reusing
  cached chunks of 16 or more tokens that lie past the shared prefix (`teacher.cache_reuse`).

For each condition and input set the labelling run (`mckd.teacher.label.label_files`, the path
`mckd run` takes) labels the inputs with an empty request cache of its own; reported are
sentences per minute (the labelling's wall time, model load excluded), the share of prompt
tokens the server served from its prompt cache, and the task's F1 of the answers, with the
paired-bootstrap difference to the first condition on the same sentences. Slots: the slots
demo's 40 teacher test sentences and its 100-sentence pool; parsing: the first N of the
parsing demo's teacher test sentences (`--corpus-test`: of the corpus's own test draw). Run one condition at a time on an otherwise idle machine; a finished condition is
read back from OUT.d/ on a rerun, so conditions can be run one per invocation.

    python benchmarks/teacher_cache.py --config slots-demo --conditions nearest,reorder,group,mixed \\
        --out /tmp/bench/slots
    python benchmarks/teacher_cache.py --config demo -n 20 --pool 0 \\
        --conditions shared,nearest,group --out /tmp/bench/parse
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from mckd.config import load_config
from mckd.distill.methods import teacher_subset
from mckd.distill.paired import paired_bootstrap
from mckd.examples import Example, read_examples, write_examples
from mckd.io import atomic_write
from mckd.tasks.base import primary_metric
from mckd.teacher.label import label_files

CONDITIONS: dict[str, dict[str, Any]] = {
    "nearest": {"demos": "nearest", "group_size": 0},
    "reorder": {"demos": "nearest", "per_input": None},
    "group": {"demos": "nearest", "per_input": 0},
    "mixed": {"demos": "nearest", "per_input": 2},
    "shared": {"demos": "shared", "group_size": 0},
    # llama.cpp also reuses cached chunks past the shared prefix, shifted into place
    "nearest+reuse": {"demos": "nearest", "group_size": 0, "cache_reuse": 16},
    "reorder+reuse": {"demos": "nearest", "per_input": None, "cache_reuse": 16},
}
TEACHER_SETTINGS = ("cache_reuse",)  # set on the teacher, the rest on teacher.prompt


def input_sets(config: str, n_test: int, n_pool: int, *, corpus_test: bool = False
               ) -> tuple[Any, list[Example], dict[str, list[Example]]]:
    """The config, its labeled examples and the input sets to label (gold kept for scoring):
    the first `n_test` of the demo's teacher test sentences (with `corpus_test`, of the
    corpus's own test draw instead) and the first `n_pool` of its pool."""
    cfg = load_config(config)
    task = cfg.make_task()
    d = cfg.data.demo
    teacher_test = cfg.data.teacher_test
    # as the run draws it (mckd.distill.methods.make_data): the teacher's subset first
    prefix = {"test_prefix": teacher_test} if isinstance(teacher_test, int) and not corpus_test else {}
    corpus = task.builtin_corpus(d.n_labeled, n_pool or d.n_unlabeled, d.n_test, seed=d.seed,
                                 max_words=d.max_len, **prefix)
    sets = {"test": teacher_subset(cfg, corpus.test)[:n_test]}
    if n_pool:
        sets["pool"] = corpus.pool[:n_pool]
    return cfg, corpus.labeled, sets


def run_condition(cfg: Any, labeled: list[Example], inputs: list[Example], name: str,
                  group_size: int, folder: Path) -> dict[str, Any]:
    """Label `inputs` under condition `name` in `folder` (read back when already done)."""
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    task = cfg.make_task()
    write_examples(folder / "labeled.jsonl", labeled)
    write_examples(folder / "inputs.jsonl", [Example(ex.id, ex.source, None, {}) for ex in inputs])
    teacher = cfg.teacher.model_copy(deep=True)
    teacher.cache_path = str(folder / "cache.sqlite")  # empty: every request goes to the model
    update = {"group_size": group_size, **CONDITIONS[name]}
    teacher = teacher.model_copy(update={k: v for k, v in update.items() if k in TEACHER_SETTINGS})
    teacher.prompt = teacher.prompt.model_copy(
        update={k: v for k, v in update.items() if k not in TEACHER_SETTINGS})
    result = label_files(folder / "inputs.jsonl", folder / "labelling", teacher, task=task,
                         labeled_path=folder / "labeled.jsonl", extra_labels=cfg.task_labels(),
                         progress=False)
    usage = result.usage
    by_id = {ex.id: ex.target for ex in read_examples(folder / "labelling" / "pseudolabels.jsonl")}
    preds = [by_id.get(ex.id) or "" for ex in inputs]
    metric = primary_metric(task).key
    out = {
        "condition": name, "settings": update,
        "sentences": len(inputs),
        "wall_seconds": round(usage["wall_seconds"], 1),
        "sentences_per_minute": round(60 * len(inputs) / usage["wall_seconds"], 2),
        "prompt_tokens": usage["prompt_tokens"],
        "cached_prompt_tokens": usage["cached_prompt_tokens"],
        "cached_share": round(usage["cached_prompt_tokens"] / max(1, usage["prompt_tokens"]), 3),
        "completion_tokens": usage["completion_tokens"],
        "rejected": usage["rejected"],
        "metric": metric,
        "score": round(task.score(inputs, preds)[metric], 2),
        "predictions": preds,
    }
    with atomic_write(done) as f:
        json.dump(out, f, indent=1)
    return out


def table(rows: dict[str, dict[str, dict[str, Any]]], sets: dict[str, list[Example]], cfg: Any,
          base: str) -> str:
    task = cfg.make_task()
    out = []
    for set_name, inputs in sets.items():
        first = rows[base][set_name]
        out += [f"**{set_name}** ({len(inputs)} sentences; {first['metric']}, difference to "
                f"`{base}` with its paired-bootstrap 95% interval)", "",
                "| condition | settings | sentences / min | speed-up | prompt tokens / sentence "
                "| served from cache | answer tokens / sentence | rejected | F1 | F1 difference |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for name, per_set in rows.items():
            r = per_set[set_name]
            n = r["sentences"]
            if name == base:
                diff = "–"
            else:
                d = paired_bootstrap(task, inputs, r["predictions"], first["predictions"])["diff"]
                diff = f"{d['value']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]"
            settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
            out.append(f"| {name} | {settings} | {r['sentences_per_minute']:.1f} "
                       f"| {r['sentences_per_minute'] / first['sentences_per_minute']:.2f}x "
                       f"| {r['prompt_tokens'] / n:.0f} | {100 * r['cached_share']:.0f}% "
                       f"| {r['completion_tokens'] / n:.0f} | {r['rejected']} | {r['score']:.1f} "
                       f"| {diff} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="slots-demo", help="Demo config: split and teacher.")
    parser.add_argument("--conditions", default="nearest,reorder,group,mixed",
                        help=f"Comma-separated, the first is the baseline ({', '.join(CONDITIONS)}).")
    parser.add_argument("--group-size", type=int, default=8, help="Inputs per group.")
    parser.add_argument("-n", type=int, default=40, help="Teacher test sentences (the first n).")
    parser.add_argument("--pool", type=int, default=100, help="Pool sentences (0: none).")
    parser.add_argument("--corpus-test", action="store_true",
                        help="The first n of the corpus's own test draw, not of the demo's "
                        "teacher test sentences.")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench/teacher_cache"),
                        help="Writes OUT.md and OUT.json; each labelling run under OUT.d/.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = args.conditions.split(",")
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        parser.error(f"unknown condition(s) {', '.join(unknown)}")
    cfg, labeled, sets = input_sets(args.config, args.n, args.pool, corpus_test=args.corpus_test)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names:
        rows[name] = {}
        for set_name, inputs in sets.items():
            folder = args.out.with_suffix(".d") / f"{name}-g{args.group_size}" / set_name
            rows[name][set_name] = run_condition(cfg, labeled, inputs, name, args.group_size, folder)
            r = rows[name][set_name]
            logging.info("%s %s: %.1f sentences/min, %.0f%% cached, F1 %.1f", name, set_name,
                         r["sentences_per_minute"], 100 * r["cached_share"], r["score"])
    command = (f"python benchmarks/teacher_cache.py --config {args.config} --conditions "
               f"{args.conditions} --group-size {args.group_size} -n {args.n} --pool {args.pool} "
               f"{'--corpus-test ' if args.corpus_test else ''}--out {args.out}")
    text = table(rows, sets, cfg, names[0])
    with atomic_write(args.out.with_suffix(".json")) as f:
        json.dump({"command": command, "conditions": rows}, f, indent=1)
    with atomic_write(args.out.with_suffix(".md")) as f:
        f.write(text + f"\nCommand: `{command}`\n")
    print(text)


if __name__ == "__main__":
    main()
