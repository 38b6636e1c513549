"""Compare finished runs that differ in stage0 (or partitions): pool label quality by stage and
test scores by method, each method with a paired-bootstrap interval of its difference to the
same run's sft and to a reference run's MCKD-3 (the teacher-stage-0 run).

    python benchmarks/stage0_compare.py --reference teacher \\
        teacher=/tmp/stage0/slots-teacher sft=/tmp/stage0/slots-sft combine=/tmp/stage0/slots-combine

Every run must share its data (same test set, same pool); the script checks the test ids.
Prints markdown tables (paste into benchmarks/stage0_results.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mckd.distill.paired import paired_bootstrap
from mckd.examples import Example, read_examples
from mckd.tasks import get_task

METHODS = {"teacher": "teacher_test/predictions.jsonl", "sft": "sft/test.jsonl",
           "vanilla_kd": "vanilla_kd/test.jsonl", "kd_self_distill": "kd_self_distill/test.jsonl",
           "mckd_2stage": "mckd_2stage/test.jsonl", "mckd_3stage": "mckd_3stage/test.jsonl"}
POOL_ROWS = ("teacher", "sft", "stage0", "stage1", "stage2")


def predictions(run: Path, test: list[Example]) -> dict[str, list[str | None]]:
    out = {}
    for method, rel in METHODS.items():
        path = run / rel
        if path.exists():
            by_id = {ex.id: ex.target for ex in read_examples(path)}
            out[method] = [by_id.get(ex.id) for ex in test]
    return out


def interval(d: dict[str, float]) -> str:
    return f"{d['value']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]"


def pool_cell(row: dict[str, Any] | None, key: str) -> str:
    """A stage's pool label score with its interval, when results.json has them."""
    if not row or "gold" not in row:
        return "–"
    ci = (row.get("gold_ci") or {}).get(key)
    return f"{row['gold'][key]:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")


def pool_table(runs: dict[str, Path], key: str) -> list[str]:
    lines = ["| run | " + " | ".join(POOL_ROWS) + " |", "|---|" + "---|" * len(POOL_ROWS)]
    for name, run in runs.items():
        labels = json.loads((run / "results.json").read_text())["pseudolabels"]
        if "stage0" not in labels and "teacher" in labels:  # stage0 teacher: the teacher's labels
            labels = {**labels, "stage0": labels["teacher"]}
        cells = [pool_cell(labels.get(r), key) for r in POOL_ROWS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def test_table(runs: dict[str, Path], reference: str, task: Any, resamples: int) -> list[str]:
    key = next(m.key for m in task.metrics if m.primary)
    first = next(iter(runs.values()))
    test = read_examples(first / "data" / "test.jsonl")
    ref = predictions(runs[reference], test).get("mckd_3stage")
    lines = ["| run | method | test | vs sft (same run) | vs MCKD-3, stage0 " + reference + " |",
             "|---|---|---|---|---|"]
    for name, run in runs.items():
        if [ex.id for ex in read_examples(run / "data" / "test.jsonl")] != [ex.id for ex in test]:
            raise SystemExit(f"{run}: another test set than {first}")
        preds = predictions(run, test)
        for method, pred in preds.items():
            if method == "teacher":  # scored on its own test inputs only (data.teacher_test)
                asked = {ex.id for ex in read_examples(run / "teacher_test" / "inputs.jsonl")}
                mine = [(g, p or "") for g, p in zip(test, pred, strict=True) if g.id in asked]
                score = task.score([g for g, _ in mine], [p for _, p in mine])[key]
                lines.append(f"| {name} | teacher (its {len(mine)} test inputs) | {score:.1f} | – | – |")
                continue
            score = task.score(test, [p or "" for p in pred])[key]
            vs_sft = vs_ref = "–"
            if method != "sft" and "sft" in preds:
                vs_sft = interval(paired_bootstrap(task, test, pred, preds["sft"], resamples=resamples)["diff"])
            if ref is not None and not (name == reference and method == "mckd_3stage") and method != "teacher":
                vs_ref = interval(paired_bootstrap(task, test, pred, ref, resamples=resamples)["diff"])
            lines.append(f"| {name} | {method} | {score:.1f} | {vs_sft} | {vs_ref} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    ap.add_argument("--reference", required=True, help="NAME of the teacher-stage-0 run")
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    runs = {name: Path(path) for name, _, path in (r.partition("=") for r in args.runs)}
    task = get_task(json.loads((next(iter(runs.values())) / "results.json").read_text())["task"])
    key = next(m.key for m in task.metrics if m.primary)
    print("\n".join(["Pool labels against gold, by stage:", "", *pool_table(runs, key), "",
                     "Test, paired bootstrap (95%) of each difference:", "",
                     *test_table(runs, args.reference, task, args.resamples)]))


if __name__ == "__main__":
    main()
