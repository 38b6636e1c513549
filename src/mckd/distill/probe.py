"""The probe: is the teacher better than fine-tuning on the gold pairs, before the pool is paid for?

k-fold over the labeled pairs (seeded). For each fold the teacher labels the fold's inputs with
demonstrations drawn only from the other folds (each fold gets its own prompt builder over the
other folds' pairs, so neither random, shared nor nearest-neighbour demonstrations can show a
fold's own examples), and the run's student kind trains on the other folds and predicts the
fold. Both are then scored on the same held-out gold (every labeled pair once), with paired
bootstrap intervals and the interval of their difference, beside the teacher's usage and what
labelling the pool would cost at the probe's rate.

The teacher's calls go through the labelling engine like any other (cache, ledger, usage): a
fold's prompts carry other demonstrations than the run's, so their cache keys differ from the
pool's and nothing is wrongly reused. The step resumes: the teacher from its ledger and the
cache, each fold's student from its checkpoints, a finished fold from its DONE marker.
"""

from __future__ import annotations

import logging
import random
import sys
from functools import partial
from pathlib import Path
from typing import Any

from mckd.distill.context import DATA, RunContext
from mckd.distill.paired import paired_bootstrap, verdict
from mckd.distill.rundir import Step, read_json, write_json
from mckd.errors import ConfigError
from mckd.examples import Example, read_examples, write_examples
from mckd.tasks.base import primary_metric

log = logging.getLogger(__name__)

PROBE = "probe"
RESULT = "probe.json"

VERDICTS = {
    "teacher": "the teacher is clearly better than the gold-trained student: distilling its "
               "labels can pay (stage0: teacher)",
    "none": "no difference shown between the teacher and the gold-trained student: keep "
            "stage0: teacher (on both demos, where the probe showed none, the teacher's labels "
            "made the best final students), and expect MCKD's gain over sft to come from its "
            "stages; a stronger teacher or more demonstrations may add more",
    "sft": "the gold-trained student is clearly better than the teacher: use stage0: sft (or "
           "auto), or a stronger teacher or more demonstrations; distilling this teacher's labels "
           "as they are drags students towards it",
}


def probe_step(ctx: RunContext) -> Step:
    """The probe as a step of the run's DAG (after `data`)."""
    dump = ctx.cfg.model_dump(mode="json")
    key = {"teacher": dump["teacher"], "task": dump["task"], "student": dump["student"],
           "seed": ctx.cfg.seed, "folds": ctx.cfg.probe_folds}
    return Step(PROBE, (DATA,), key, partial(run_probe_step, ctx),
                f"{ctx.cfg.probe_folds}-fold probe: teacher vs gold-trained student on held-out gold")


def make_folds(labeled: list[Example], k: int, seed: int) -> list[list[Example]]:
    """k disjoint folds of equal size (±1), dealt out after a seeded shuffle; each keeps the
    labeled set's order."""
    if len(labeled) < k:
        raise ConfigError(f"probe_folds = {k}: only {len(labeled)} labeled examples")
    ids = [ex.id for ex in labeled]
    random.Random(seed).shuffle(ids)
    fold_of = {ex_id: i % k for i, ex_id in enumerate(ids)}
    return [[ex for ex in labeled if fold_of[ex.id] == i] for i in range(k)]


def others(folds: list[list[Example]], i: int) -> list[Example]:
    return [ex for j, fold in enumerate(folds) if j != i for ex in fold]


def run_probe_step(ctx: RunContext, folder: Path) -> dict[str, Any]:
    folds = make_folds(ctx.labeled(), ctx.cfg.probe_folds, ctx.cfg.seed)
    write_json(folder / "folds.json", [[ex.id for ex in fold] for fold in folds])
    teacher, usage = label_folds(ctx, folds, folder / "teacher")
    student, trainings = train_folds(ctx, folds, folder)
    golds = [ex for fold in folds for ex in fold]
    result = summarize(ctx, golds, [teacher.get(ex.id) for ex in golds],
                       [student[ex.id] for ex in golds], usage, len(ctx.pool()))
    result["per_fold"] = [
        {"fold": i, "size": len(fold),
         "teacher": ctx.score(fold, [teacher.get(ex.id) for ex in fold]),
         "sft": ctx.score(fold, [student[ex.id] for ex in fold])}
        for i, fold in enumerate(folds)]
    result["students"] = trainings
    write_json(folder / RESULT, result)
    for line in format_probe(result).splitlines():
        log.info("%s", line)
    return result


def label_folds(ctx: RunContext, folds: list[list[Example]], folder: Path) -> tuple[dict[str, str | None], dict[str, Any]]:
    """The teacher labels every fold with demonstrations from the other folds only: one
    labelling run (one backend, ledger and usage), one prompt builder per fold."""
    from mckd.teacher.backends import build_backend
    from mckd.teacher.cache import TeacherCache
    from mckd.teacher.label import label_pool, task_prompting

    cfg = ctx.cfg.teacher
    # The teacher sees the inputs only: gold stays out of its prompts.
    blind = [[Example(ex.id, ex.source, None, {}) for ex in fold] for fold in folds]
    inputs = [ex for fold in blind for ex in fold]
    write_examples(folder / "inputs.jsonl", inputs)
    fold_of = {ex.id: i for i, fold in enumerate(blind) for ex in fold}
    cache = TeacherCache(cfg.cache_path) if cfg.cache else None
    backend = build_backend(cfg)
    try:
        prompting = [task_prompting(ctx.task, cfg, others(folds, i), blind[i],
                                    count_tokens=backend.count_tokens,
                                    context_size=backend.context_size,
                                    extra_labels=ctx.cfg.task_labels())
                     for i in range(len(folds))]
        result = label_pool(
            inputs, backend, folder / "labelling",
            build_request=lambda ex, s: prompting[fold_of[ex.id]].build(ex, s),
            postprocess=lambda ex, raws: prompting[fold_of[ex.id]].post(ex, raws),
            order=[ex for p in prompting for ex in p.order],
            cache=cache, cfg=cfg, progress=sys.stderr.isatty())
    finally:
        backend.close()
    labels = {ex.id: ex.target for ex in result.labels}
    write_examples(folder / "labels.jsonl", [ex.with_target(labels.get(ex.id)) for ex in inputs])
    return labels, result.usage


def train_folds(ctx: RunContext, folds: list[list[Example]], folder: Path) -> tuple[dict[str, str | None], dict[str, Any]]:
    """Per fold, a student of the run's kind trained on the other folds' gold (like `sft`)
    predicts the fold. A finished fold is read back from its folder."""
    preds: dict[str, str | None] = {}
    trainings = {}
    for i, fold in enumerate(folds):
        sub = folder / f"fold{i}"
        if (sub / "DONE").exists():
            summary = read_json(sub / "train.json")
            heldout = read_examples(sub / "heldout.jsonl")
        else:
            summary, out = ctx.train_student(sub, others(folds, i), {"heldout": fold})
            heldout = out["heldout"]
            (sub / "DONE").write_text("done\n", encoding="utf-8")
        preds.update({ex.id: ex.target for ex in heldout})
        trainings[f"fold{i}"] = summary
    return preds, trainings


def summarize(ctx: RunContext, golds: list[Example], teacher: list[str | None],
              sft: list[str | None], usage: dict[str, Any], pool_size: int) -> dict[str, Any]:
    """Both scores with intervals, their paired difference (teacher - sft), the verdict and the
    one-line recommendation, the teacher's usage and the pool's cost at the probe's rate."""
    metric = primary_metric(ctx.task)
    boot = ctx.cfg.bootstrap
    cmp = paired_bootstrap(ctx.task, golds, teacher, sft, resamples=boot.resamples, level=boot.level,
                           seed=boot.seed)
    found = {"better": "teacher", "worse": "sft", "none": "none"}[verdict(cmp["diff"])]
    return {
        "folds": ctx.cfg.probe_folds, "examples": len(golds), "metric": metric.key,
        "metric_label": metric.label,
        "teacher": {**cmp["a"], "scores": ctx.score(golds, teacher)},
        "sft": {**cmp["b"], "scores": ctx.score(golds, sft)},
        "difference": cmp["diff"], "level": cmp["level"], "resamples": cmp["resamples"],
        "bootstrap": cmp["how"], "verdict": found, "recommendation": VERDICTS[found],
        "usage": usage, "pool_estimate": pool_estimate(usage, pool_size),
    }


def pool_estimate(usage: dict[str, Any], pool_size: int) -> dict[str, Any]:
    """What labelling `pool_size` inputs would take at the rate of the probe's own calls (none
    when every answer came from the cache)."""
    calls = usage.get("calls") or 0
    out: dict[str, Any] = {"inputs": pool_size}
    if calls:
        for k in ("seconds", "cost", "prompt_tokens", "completion_tokens"):
            if isinstance(usage.get(k), (int, float)):
                out[k] = usage[k] / calls * pool_size
    return out


def format_probe(r: dict[str, Any]) -> str:
    """The probe's result for a terminal or log: both scores, the difference, usage, verdict."""
    pct = round(100 * r["level"])

    def iv(d: dict[str, float], sign: bool = False) -> str:
        f = "+.1f" if sign else ".1f"
        return f"{d['value']:{f}} [{d['low']:{f}}, {d['high']:{f}}]"

    u, est = r["usage"], r["pool_estimate"]
    lines = [
        f"probe: {r['folds']}-fold over {r['examples']} labeled examples, {r['metric_label']} "
        f"on the same held-out gold, {pct}% intervals ({r['resamples']} paired resamples)",
        f"  teacher (demonstrations from the other folds): {iv(r['teacher'])}",
        f"  student trained on the other folds' gold:      {iv(r['sft'])}",
        f"  difference, teacher - student:                 {iv(r['difference'], sign=True)}",
        f"  teacher usage: {u.get('calls', 0)} calls, {u.get('cache_hits', 0)} cache hits, "
        f"{u.get('prompt_tokens', 0)}+{u.get('completion_tokens', 0)} tokens, "
        f"{u.get('seconds', 0.0):.0f} s, cost {u.get('cost', 0.0):.4f}",
    ]
    if "seconds" in est:
        lines.append(f"  the pool ({est['inputs']} inputs) at this rate: ~{est['seconds'] / 60:.0f} "
                     f"min of teacher, cost ~{est.get('cost', 0.0):.4f}")
    lines.append(f"  recommendation: {r['recommendation']}")
    return "\n".join(lines)


def estimate_probe(cfg: Any, task: Any, labeled: list[Example], folder: Path, cache: Any) -> Any:
    """`mckd run --dry-run`: the probe's teacher calls, tokens and time, fold by fold."""
    from dataclasses import fields

    from mckd.teacher.label import Estimate, estimate_task_labelling

    folds = make_folds(labeled, cfg.probe_folds, cfg.seed)
    parts = [estimate_task_labelling([Example(ex.id, ex.source) for ex in fold], others(folds, i),
                                     folder / "teacher" / "labelling", cfg.teacher, task,
                                     cache=cache, extra_labels=cfg.task_labels())
             for i, fold in enumerate(folds)]
    return Estimate(**{f.name: sum(getattr(e, f.name) for e in parts) for f in fields(Estimate)})


def run_probe(cfg: Any, *, run_dir: str | Path | None = None, force: bool = False) -> dict[str, Any]:
    """`mckd probe`: the data and probe steps of `cfg`'s run directory (shared with `mckd run`,
    which then skips them); returns the probe's result."""
    from mckd.distill.pipeline import _check_teacher, _exclusive, _save_config
    from mckd.distill.plan import data_step
    from mckd.distill.rundir import RunDir

    if run_dir is not None:
        cfg = cfg.model_copy(update={"run_dir": str(run_dir)})
    _check_teacher(cfg, needed=True)
    root = Path(cfg.run_dir)
    with _exclusive(root):
        _save_config(cfg, root)
        ctx = RunContext(cfg, cfg.make_task(), RunDir(root))
        ctx.rd.execute([data_step(ctx), probe_step(ctx)], [PROBE] if force else [])
    return read_json(root / PROBE / RESULT)
