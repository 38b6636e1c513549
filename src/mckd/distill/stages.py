"""MCKD's steps: fixed partitions of the pool, cross-partition relabelling stages, final students.

With K partitions, stage i trains student k on every partition except k (with stage i-1's
labels; stage 0 = the teacher's, or those stage0.py chose) and lets it relabel partition k, which it never saw. K = 2 is
the paper's scheme: the student of A relabels B and the student of B relabels A. The final
student of an N-stage run trains on everything with stage N-1's labels, so the 2- and 3-stage
runs share stage 1, and the teacher labels the pool once.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from mckd.distill.context import RunContext
from mckd.distill.methods import distill_train_set, init_checkpoint
from mckd.distill.rundir import read_json, write_json
from mckd.distill.stage0 import first_labels_step
from mckd.examples import Example, write_examples

PARTITIONS = "partitions"


def stage_step(stage: int, cfg: Any) -> str:
    """The step whose labels.jsonl holds the pool's labels after `stage`; stage 0's is the
    teacher's, or the stage0 step's (stage0.first_labels_step)."""
    return first_labels_step(cfg) if stage == 0 else f"stage{stage}"


def part_step(stage: int, k: int) -> str:
    return f"stage{stage}_part{k}"


def final_step(stages: int) -> str:
    return f"mckd_{stages}stage"


def run_partitions(ctx: RunContext, folder: Path) -> dict[str, Any]:
    """Split the pool's ids at random into K disjoint parts of equal size (±1), fixed for all
    stages."""
    ids = [ex.id for ex in ctx.pool()]
    random.Random(ctx.cfg.seed).shuffle(ids)
    k = ctx.cfg.partitions
    parts = [sorted(ids[i::k]) for i in range(k)]
    write_json(folder / "partitions.json", parts)
    return {"sizes": [len(p) for p in parts]}


def read_partitions(ctx: RunContext) -> list[set[str]]:
    return [set(p) for p in read_json(ctx.rd.folder(PARTITIONS) / "partitions.json")]


def run_stage_part(ctx: RunContext, folder: Path, stage: int, k: int) -> dict[str, Any]:
    """Stage `stage`, student k: train on every partition but k, relabel partition k."""
    labels = ctx.rd.read(stage_step(stage - 1, ctx.cfg), "labels.jsonl")
    parts = read_partitions(ctx)
    held_out = [ex for ex in labels if ex.id in parts[k]]
    seen = [ex for ex in labels if ex.id not in parts[k]]
    train, preds = ctx.train_student(folder, distill_train_set(ctx, seen), {"relabels": held_out},
                                     init_from=init_checkpoint(ctx))
    return {"train": train, "relabeled": len(preds["relabels"])}


def run_stage_merge(ctx: RunContext, folder: Path, stage: int) -> dict[str, Any]:
    """Join the partitions' relabels into the pool's labels after this stage (pool order)."""
    relabels: dict[str, Example] = {}
    for k in range(ctx.cfg.partitions):
        for ex in ctx.rd.read(part_step(stage, k), "relabels.jsonl"):
            relabels[ex.id] = ex
    labels = [relabels[ex.id] for ex in ctx.pool()]
    write_examples(folder / "labels.jsonl", labels)
    previous = ctx.rd.read(stage_step(stage - 1, ctx.cfg), "labels.jsonl")
    changed = sum(a.target != b.target for a, b in zip(previous, labels, strict=True))
    return {"pseudolabels": ctx.pseudolabel_quality(labels), "changed": changed}


def run_final(ctx: RunContext, folder: Path, stages: int) -> dict[str, Any]:
    """The N-stage MCKD student: trained on the whole pool with stage N-1's labels."""
    labels = ctx.rd.read(stage_step(stages - 1, ctx.cfg), "labels.jsonl")
    test = ctx.test()
    train, preds = ctx.train_student(folder, distill_train_set(ctx, labels), {"test": test},
                                     init_from=init_checkpoint(ctx), save=True)
    return {"test": ctx.score(test, [ex.target for ex in preds["test"]]), "train": train}
