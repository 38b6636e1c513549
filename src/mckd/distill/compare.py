"""The uncertainty of a run's scores: bootstrap intervals and paired comparisons (mckd.evidence
does the statistics; this module knows the run's methods and files).

From the finished steps' prediction files and the task's per-sentence statistics
(`Task.sentence_stats`) it adds to results.json:

- every method's and baseline's interval on the test set (`test_ci`), its scores on the
  teacher's test subset (`teacher_subset`, the teacher's fair neighbour) and their interval;
- every pool-label stage's interval against the pool's gold (`pseudolabels.*.gold_ci`);
- `evidence`: the paired differences that decide the method (each MCKD stage count against
  vanilla KD, KD + self-distillation, sft, the previous stage count, and the teacher on its
  subset; vanilla KD against the teacher), and each pool stage against the teacher's labels
  and the stage before, each with its interval and a verdict.

With several seeds (the same test sentences and pool in every seed) each score's interval is
that of the seed-averaged score, and a comparison averages each side over the seeds both have,
resample by resample.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mckd.distill.context import RunContext
from mckd.distill.methods import teacher_subset
from mckd.distill.paired import sentence_stats
from mckd.distill.stage0 import pool_labels_path
from mckd.evidence import (
    BootstrapConfig,
    Interval,
    Resamples,
    SentenceStats,
    describe_difference,
    paired_difference,
    score_interval,
    verdict,
)
from mckd.examples import Example, read_examples
from mckd.tasks.base import primary_metric

log = logging.getLogger(__name__)

LABELS = {"teacher": "teacher", "sft": "sft", "vanilla_kd": "vanilla KD",
          "kd_self_distill": "KD + self-distillation"}
BASELINES = ("vanilla_kd", "kd_self_distill", "sft")  # what each MCKD stage count must beat
# Keys this module writes into results.json entries (replaced whole on every collection).
_METHOD_KEYS = ("test_ci", "teacher_subset", "teacher_subset_std", "teacher_subset_ci")


def method_label(name: str) -> str:
    """`MCKD-3` for mckd_3stage, `vanilla KD` for vanilla_kd, a pool stage as `stage 2 labels`."""
    if name.startswith("mckd_") and name.endswith("stage"):
        return f"MCKD-{name.removeprefix('mckd_').removesuffix('stage')}"
    if name == "teacher_labels":
        return "teacher labels"
    if name.startswith("stage") and name[5:].isdigit():
        return f"stage {name[5:]} labels"
    return LABELS.get(name, name)


@dataclass
class MethodStats:
    """One method's (or baseline's) per-sentence statistics, by metric key."""

    test: dict[str, SentenceStats]  # on the sentences it is scored on (the teacher: its subset)
    subset: dict[str, SentenceStats]  # on the teacher's subset
    subset_scores: dict[str, float]  # every score on the teacher's subset


@dataclass
class RunStats:
    """Everything one run directory (one seed) contributes to the evidence."""

    test_sentences: int
    subset_sentences: int
    methods: dict[str, MethodStats] = field(default_factory=dict)
    pool: dict[str, dict[str, SentenceStats]] = field(default_factory=dict)  # by pseudolabel step
    pool_sentences: int = 0


def gather_stats(ctx: RunContext, results: dict[str, Any]) -> RunStats:
    """Per-sentence statistics of the methods, baselines and pool-label stages in `results`,
    from their prediction files. Sets whose files are missing are left out."""
    test = ctx.test()
    subset = teacher_subset(ctx.cfg, test)
    position = {ex.id: i for i, ex in enumerate(test)}
    rows = [position[ex.id] for ex in subset]
    out = RunStats(len(test), len(subset))
    files = {name: ctx.rd.folder(name) / "test.jsonl" for name in results.get("methods", {})}
    files["teacher"] = ctx.rd.folder("teacher_test") / "predictions.jsonl"
    files.update({name: ctx.rd.folder("baselines") / f"{name}.jsonl" for name in results.get("baselines", {})})
    for name in [*results.get("methods", {}), *results.get("baselines", {})]:
        preds = _targets(files[name])
        if preds is None:
            continue
        if name == "teacher":  # scored on its subset only
            on = [preds.get(ex.id) or "" for ex in subset]
            stats = sentence_stats(ctx.task, subset, on)
            out.methods[name] = MethodStats(stats, stats, ctx.score(subset, on))
            continue
        on = [preds.get(ex.id) or "" for ex in test]
        stats = sentence_stats(ctx.task, test, on)
        out.methods[name] = MethodStats(stats, {k: s.take(rows) for k, s in stats.items()},
                                        ctx.score(subset, [on[i] for i in rows]))
    golds = [Example(ex.id, ex.source, None, ex.meta) for ex in ctx.pool() if ctx.task.has_gold(ex)]
    out.pool_sentences = len(golds)
    for name, entry in results.get("pseudolabels", {}).items():
        if not isinstance(entry.get("stage"), int) or not golds:
            continue
        labels = _targets(pool_labels_path(ctx.rd, name, entry["stage"]))
        if labels is not None:
            out.pool[name] = sentence_stats(ctx.task, golds, [labels.get(ex.id) or "" for ex in golds])
    return out


def _targets(path: Path) -> dict[str, str | None] | None:
    if not path.exists():
        log.warning("%s is missing: no interval for it", path)
        return None
    return {ex.id: ex.target for ex in read_examples(path)}


# --- results.json ------------------------------------------------------------------------------


def add_evidence(results: dict[str, Any], runs: list[RunStats], cfg: BootstrapConfig,
                 task: Any) -> dict[str, Any]:
    """`results` with the intervals and comparisons of `runs` (one per seed) added."""
    start = time.perf_counter()
    primary = primary_metric(task).key
    first = runs[0]
    same = all((r.test_sentences, r.subset_sentences, r.pool_sentences)
               == (first.test_sentences, first.subset_sentences, first.pool_sentences) for r in runs)
    if not same:  # cannot happen with one data step; never pair different sentences
        log.warning("seeds were scored on different sentences: no intervals")
        return results
    draws = _Draws(cfg, first)
    results["teacher_test"] = first.subset_sentences
    for section in ("methods", "baselines"):
        for name, entry in results.get(section, {}).items():
            for key in _METHOD_KEYS:
                entry.pop(key, None)
            _add_method(entry, [r.methods[name] for r in runs if name in r.methods], draws, cfg.level,
                        teacher=name == "teacher")
    for name, entry in results.get("pseudolabels", {}).items():
        entry.pop("gold_ci", None)
        sets = [r.pool[name] for r in runs if name in r.pool]
        if sets and draws.pool is not None:
            entry["gold_ci"] = {k: score_interval([s[k] for s in sets], draws.pool, cfg.level).to_json()
                                for k in sets[0]}
    results["evidence"] = {
        "method": "paired percentile bootstrap over sentences",
        "resamples": cfg.resamples, "level": cfg.level, "seed": cfg.seed, "metric": primary,
        "test_sentences": first.test_sentences, "teacher_sentences": first.subset_sentences,
        "pool_sentences": first.pool_sentences, "seeds": len(runs),
        "comparisons": method_comparisons(results, runs, draws, cfg.level, primary),
        "pool_comparisons": pool_comparisons(results, runs, draws, cfg.level, primary),
    }
    # Logged, not stored: results.json stays the same from run to run.
    log.info("bootstrap: %d resamples, %d comparisons in %.2f s", cfg.resamples,
             len(results["evidence"]["comparisons"]) + len(results["evidence"]["pool_comparisons"]),
             time.perf_counter() - start)
    return results


class _Draws:
    """The run's resamples: of the test set (seed), of the teacher's subset (seed + 1) and of
    the pool's sentences with gold (seed + 2)."""

    def __init__(self, cfg: BootstrapConfig, run: RunStats) -> None:
        self.test = Resamples.draw(run.test_sentences, cfg.resamples, cfg.seed)
        self.subset = (self.test if run.subset_sentences == run.test_sentences
                       else Resamples.draw(run.subset_sentences, cfg.resamples, cfg.seed + 1))
        self.pool = (Resamples.draw(run.pool_sentences, cfg.resamples, cfg.seed + 2)
                     if run.pool_sentences else None)


def _add_method(entry: dict[str, Any], runs: list[MethodStats], draws: _Draws, level: float, *,
                teacher: bool) -> None:
    if not runs:
        return
    on_test = draws.subset if teacher else draws.test
    entry["test_ci"] = {k: score_interval([r.test[k] for r in runs], on_test, level).to_json()
                        for k in runs[0].test}
    scores = [r.subset_scores for r in runs]
    keys = [k for k in scores[0] if all(isinstance(s.get(k), (int, float)) for s in scores)]
    entry["teacher_subset"] = {k: statistics.fmean(s[k] for s in scores) for k in keys}
    if len(scores) > 1:
        entry["teacher_subset_std"] = {k: statistics.stdev(s[k] for s in scores) for k in keys}
    entry["teacher_subset_ci"] = {
        k: score_interval([r.subset[k] for r in runs], draws.subset, level).to_json() for k in runs[0].subset}


def _planned(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(A, B, where) for every comparison that decides the method, of the methods present."""
    methods = results.get("methods", {})
    finals = sorted((n for n in methods if n.startswith("mckd_")),
                    key=lambda n: int("".join(ch for ch in n if ch.isdigit()) or 0))
    out = [("vanilla_kd", "teacher", "teacher_subset")] if "vanilla_kd" in methods else []
    for i, final in enumerate(finals):
        out += [(final, b, "test") for b in BASELINES if b in methods]
        if i > 0:
            out.append((final, finals[i - 1], "test"))
        out.append((final, "teacher", "teacher_subset"))
    return [(a, b, on) for a, b, on in out if b in methods]


def method_comparisons(results: dict[str, Any], runs: list[RunStats], draws: _Draws, level: float,
                       metric: str) -> list[dict[str, Any]]:
    out = []
    for a, b, on in _planned(results):
        pairs = [(r.methods[a], r.methods[b]) for r in runs if a in r.methods and b in r.methods]
        pairs = [(x, y) for x, y in pairs if metric in x.subset and metric in y.subset]
        if not pairs:
            continue
        # The teacher's subset is the whole test set when the teacher labels all of it.
        subset = on == "teacher_subset" and draws.subset is not draws.test
        resamples = draws.subset if subset else draws.test
        side = "subset" if subset else "test"
        diff = paired_difference([getattr(x, side)[metric] for x, _ in pairs],
                                 [getattr(y, side)[metric] for _, y in pairs], resamples, level)
        out.append(_comparison(a, b, "teacher_subset" if subset else "test", resamples.sentences,
                               metric, diff, len(pairs)))
    return out


def pool_comparisons(results: dict[str, Any], runs: list[RunStats], draws: _Draws, level: float,
                     metric: str) -> list[dict[str, Any]]:
    """Each stage's pool labels against the teacher's (stage 0) and the stage before."""
    if draws.pool is None:
        return []
    by_stage = {e["stage"]: n for n, e in results.get("pseudolabels", {}).items()
                if isinstance(e.get("stage"), int) and not e.get("candidate")}
    out = []
    for stage in sorted(s for s in by_stage if s > 0):
        for before in sorted({0, stage - 1}, reverse=True):
            a, b = by_stage[stage], by_stage.get(before)
            pairs = [(r.pool[a][metric], r.pool[b][metric]) for r in runs
                     if b in r.pool and a in r.pool and metric in r.pool[a]]
            if not pairs:
                continue
            diff = paired_difference([x for x, _ in pairs], [y for _, y in pairs], draws.pool, level)
            out.append(_comparison(_pool_name(a, stage), _pool_name(b, before), "pool",
                                   draws.pool.sentences, metric, diff, len(pairs)))
    return out


def _pool_name(step: str, stage: int) -> str:
    return "teacher_labels" if step == "teacher" else step


def _comparison(a: str, b: str, on: str, sentences: int, metric: str, diff: Interval,
                seeds: int) -> dict[str, Any]:
    # The verdict and the text follow the numbers results.json shows.
    diff = Interval(*(round(x, 4) for x in (diff.value, diff.low, diff.high)))
    return {"a": a, "b": b, "label": f"{method_label(a)} \u2212 {method_label(b)}", "on": on,
            "sentences": sentences, "metric": metric,
            "difference": diff.value, "ci": diff.to_json(), "verdict": verdict(diff),
            "seeds": seeds, "text": describe_difference(method_label(a), method_label(b), diff)}
