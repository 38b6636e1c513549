"""Per-input combinations of the teacher's and the sft student's pool labels, scored against the
pool's gold: the measurement `stage0: combine` was chosen by (benchmarks/stage0_results.md).

    python benchmarks/stage0_combine.py RUN_DIR

RUN_DIR is a finished run with `stage0: combine` (or any run holding teacher/labels.jsonl,
sft/pool.jsonl and the pool's gold). Each variant: agreements kept, then the sft student's
label on the most confident share of the disagreements, then the fallback (teacher, sft, or
no label: "drop", left to stage 1). Printed: pool F1 over every input (a missing label scores
0), F1 over the labelled inputs only, how many inputs are labelled, and the paired-bootstrap
difference to the sft labels and to the teacher labels (over every input).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from mckd.distill.paired import paired_bootstrap
from mckd.distill.stage0 import combine
from mckd.examples import Example, read_examples
from mckd.tasks import get_task

VARIANTS = [("teacher only", 0.0, "teacher"), ("sft only", 1.0, "sft"),
            ("agree, else teacher", 0.0, "teacher"),
            *((f"agree, else sft on the {int(100 * s)}% most confident, else teacher", s, "teacher")
              for s in (0.25, 0.5, 0.75)),
            ("agree only (the rest left to stage 1)", 0.0, "drop"),
            ("agree, else sft on the 50% most confident, else none", 0.5, "drop")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    args = ap.parse_args()
    run = args.run_dir
    task_cfg = yaml.safe_load((run / "config.yaml").read_text())["task"]
    task = get_task(task_cfg if isinstance(task_cfg, str) else task_cfg["name"])
    key = next(m.key for m in task.metrics if m.primary)
    pool = read_examples(run / "data" / "unlabeled.jsonl")
    teacher = {ex.id: ex for ex in read_examples(run / "teacher" / "labels.jsonl")}
    sft = {ex.id: ex for ex in read_examples(run / "sft" / "pool.jsonl")}
    golds = [Example(ex.id, ex.source, None, ex.meta) for ex in pool]  # gold is in meta
    base = {"teacher": [teacher[ex.id].target for ex in pool], "sft": [sft[ex.id].target for ex in pool]}
    agree = sum(base["teacher"][i] == base["sft"][i] for i in range(len(pool)))
    print(f"{run}: {len(pool)} pool inputs, teacher and sft agree on {agree}\n")
    print("| variant | labelled | F1, all inputs | F1, labelled only | vs sft labels | vs teacher labels |")
    print("|---|---|---|---|---|---|")
    for name, share, fallback in VARIANTS:
        if name == "teacher only":
            labels = base["teacher"]
        elif name == "sft only":
            labels = base["sft"]
        else:
            labels = [ex.target for ex in combine(pool, teacher, sft, share, fallback)]
        kept = [i for i, t in enumerate(labels) if t is not None]
        f1_kept = task.score([golds[i] for i in kept], [labels[i] for i in kept])[key] if kept else 0.0
        cells = [name, str(len(kept))]
        vs = [paired_bootstrap(task, golds, labels, base[b])["diff"] for b in ("sft", "teacher")]
        cells += [f"{task.score(golds, [t or '' for t in labels])[key]:.1f}", f"{f1_kept:.1f}",
                  *(f"{d['value']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]" for d in vs)]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
