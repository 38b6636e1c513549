"""The run's steps as an explicit DAG, in an order that respects it.

    data ─┬─ baselines
          ├─ teacher_test                          (method `teacher`)
          ├─ sft ··························┐        (init_from_sft: every student starts here)
          ├─ teacher ─┬─ vanilla_kd ─ kd_self_distill
          │           └─ stage1_part0..K-1 ─ stage1 ─ mckd_2stage
          │                                     └─ stage2_part0..K-1 ─ stage2 ─ mckd_3stage ...
          └─ partitions ─┘

With `probe` (or stage0 combine / auto) a `probe` step follows `data`; with stage0 other than
teacher a `stage0` step (after sft, and the teacher and probe where used) holds the pool's first
labels, and vanilla KD and stage 1 read them instead of the teacher's (distill/stage0.py).

Each step's key is the part of the config that decides its output; the run directory hashes it
with the keys of the steps before it, so changing a setting redoes exactly what it affects.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path
from typing import Any

from mckd.distill import methods, stage0, stages
from mckd.distill.context import DATA, RunContext
from mckd.distill.probe import PROBE, probe_step
from mckd.distill.rundir import Step


def build_steps(ctx: RunContext) -> list[Step]:
    cfg = ctx.cfg
    dump = cfg.model_dump(mode="json")
    student_key = {"student": dump["student"], "seed": cfg.seed, "add_gold": cfg.add_gold,
                   "init_from_sft": cfg.init_from_sft}
    init = ("sft",) if cfg.init_from_sft else ()

    def step(name: str, deps: tuple[str, ...], key: dict[str, Any], fn: Any, what: str) -> Step:
        return Step(name, deps, key, partial(fn, ctx), what)

    steps = [data_step(ctx)]
    if stage0.needs_probe(cfg):
        steps.append(probe_step(ctx))
    if cfg.baselines and ctx.task.baselines():
        steps.append(step("baselines", (DATA,), {}, methods.run_baselines, "trivial baselines on test"))
    if "teacher" in cfg.methods:
        subset = {"teacher_test": cfg.data.teacher_test, "ids": _digest(cfg.data.teacher_test)}
        steps.append(step("teacher_test", (DATA,), {"teacher": dump["teacher"], "task": dump["task"],
                                                    **subset},
                          methods.run_teacher_test, "the LLM labels its test inputs"))
    if "sft" in cfg.methods:
        sft_key = {"student": dump["student"], "seed": cfg.seed}  # gold only: no add_gold, no init
        if stage0.needs_sft_pool(cfg):
            sft_key["labels_pool"] = True  # its pool labels are stage 0, or a candidate for it
        steps.append(step("sft", (DATA,), sft_key, methods.run_sft,
                          "student on the gold pairs"))
    first = stage0.first_labels_step(cfg)
    if stage0.needs_teacher_pool(cfg):
        after_probe = (PROBE,) if cfg.stage0 == "auto" else ()  # auto may skip the pool
        steps.append(step("teacher", (DATA, *after_probe), {"teacher": dump["teacher"], "task": dump["task"]},
                          methods.run_teacher_pool, "the LLM labels the unlabeled pool"))
    if stage0.uses_pool_labels(cfg) and first == stage0.STAGE0:
        sources = tuple(s.name for s in steps if s.name in ("teacher", "sft", "probe"))
        steps.append(step(stage0.STAGE0, sources, {"stage0": cfg.stage0}, stage0.run_stage0,
                          f"the pool's first labels ({cfg.stage0})"))
    if "vanilla_kd" in cfg.methods or "kd_self_distill" in cfg.methods:
        relabel = "kd_self_distill" in cfg.methods
        steps.append(step("vanilla_kd", (first, *init), student_key | {"relabel_pool": relabel},
                          methods.run_vanilla_kd, "student on all teacher labels"))
    if "kd_self_distill" in cfg.methods:
        steps.append(step("kd_self_distill", ("vanilla_kd", *init),
                          student_key | {"keep": cfg.self_distill_keep},
                          methods.run_kd_self_distill, "student on the most confident relabels"))
    if "mckd" in cfg.methods:
        steps += mckd_steps(ctx, student_key, init)
    return steps


def data_step(ctx: RunContext) -> Step:
    dump = ctx.cfg.model_dump(mode="json")
    data_key = dump["data"]
    if ctx.cfg.data.source == "files":  # the teacher's subset of given files changes no data
        data_key = {k: v for k, v in data_key.items() if k != "teacher_test"}
    return Step(DATA, (), {"data": data_key, "task": dump["task"]}, partial(methods.run_data, ctx),
                "copy or build the labeled, unlabeled and test sets")


def _digest(teacher_test: int | str | None) -> str | None:
    """The content of a file of teacher test ids (editing it redoes the teacher's test step)."""
    if not isinstance(teacher_test, str) or not Path(teacher_test).is_file():
        return None
    return hashlib.sha256(Path(teacher_test).read_bytes()).hexdigest()


def mckd_steps(ctx: RunContext, student_key: dict[str, Any], init: tuple[str, ...]) -> list[Step]:
    cfg = ctx.cfg
    k_parts = cfg.partitions
    out = [Step(stages.PARTITIONS, (DATA,), {"seed": cfg.seed, "partitions": k_parts},
                partial(stages.run_partitions, ctx), f"split the pool into {k_parts} parts")]
    for stage in range(1, max(cfg.stages)):
        previous = stages.stage_step(stage - 1, cfg)
        for k in range(k_parts):
            out.append(Step(stages.part_step(stage, k), (previous, stages.PARTITIONS, *init),
                            student_key, partial(stages.run_stage_part, ctx, stage=stage, k=k),
                            f"stage {stage}: train without partition {k}, relabel it",
                            group=f"stage{stage}_parts"))
        parts = tuple(stages.part_step(stage, k) for k in range(k_parts))
        out.append(Step(stages.stage_step(stage, cfg), (previous, *parts), {},
                        partial(stages.run_stage_merge, ctx, stage=stage),
                        f"stage {stage}: join the relabels"))
    for n in cfg.stages:
        out.append(Step(stages.final_step(n), (stages.stage_step(n - 1, cfg), *init), student_key,
                        partial(stages.run_final, ctx, stages=n),
                        f"{n}-stage MCKD: final student on all labels"))
    return out
