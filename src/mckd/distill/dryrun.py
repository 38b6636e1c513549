"""`mckd run --dry-run`: what each step of a run would cost, from the config and its data alone.

Nothing is called, trained or written: the data are read (or the built-in corpus generated) in
memory, the teacher's requests are built and counted against the run's ledgers and the shared
cache where they exist (`estimate_task_labelling`), and each student's training set is sized
from the pool, the partitions and the settings. Student sets are upper bounds: rejected
pseudolabels shrink them. Tokens are approximate (4 characters a token).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mckd.config import RunConfig
from mckd.distill import stages
from mckd.distill.context import RunContext
from mckd.distill.methods import make_data, teacher_subset
from mckd.distill.plan import build_steps
from mckd.distill.probe import PROBE, estimate_probe
from mckd.distill.rundir import RunDir, step_hash
from mckd.examples import Example
from mckd.teacher.backends.base import approx_tokens
from mckd.teacher.cache import TeacherCache, default_cache_path
from mckd.teacher.label import Estimate, estimate_task_labelling


@dataclass
class StepCost:
    step: str
    what: str
    done: bool  # finished with these settings already: a run skips it
    teacher: Estimate | None = None
    train_examples: int = 0
    epochs: int = 0
    train_tokens: int = 0  # source + target tokens over all epochs
    predictions: int = 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["teacher"] = self.teacher.to_json() if self.teacher else None
        return d


@dataclass
class RunEstimate:
    data: dict[str, int]
    steps: list[StepCost]

    def totals(self) -> dict[str, Any]:
        todo = [s for s in self.steps if not s.done]
        teach = [s.teacher for s in todo if s.teacher is not None]
        trained = [s for s in todo if s.train_examples]
        return {
            "teacher_calls": sum(t.calls for t in teach),
            "teacher_cached": sum(t.cached for t in teach),
            "prompt_tokens": sum(t.prompt_tokens for t in teach),
            "prompt_cache_hits": sum(t.prefix_hits for t in teach),
            "cached_prompt_tokens": sum(t.cached_prompt_tokens for t in teach),
            "completion_tokens": sum(t.completion_tokens for t in teach),
            "completion_tokens_max": sum(t.completion_tokens_max for t in teach),
            "cost": round(sum(t.cost for t in teach), 4),
            "cost_max": round(sum(t.cost_max for t in teach), 4),
            "teacher_seconds": round(sum(t.seconds for t in teach), 1),
            "student_trainings": len(trained),
            "student_example_epochs": sum(s.train_examples * s.epochs for s in trained),
            "student_train_tokens": sum(s.train_tokens for s in trained),
            "student_predictions": sum(s.predictions for s in todo),
        }

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data, "steps": [s.to_json() for s in self.steps],
                "totals": self.totals()}


def estimate_run(cfg: RunConfig) -> RunEstimate:
    """The cost of every step `mckd run` would take with `cfg`, marking those already done."""
    task = cfg.make_task()
    root = Path(cfg.run_dir)
    rd = RunDir(root)
    labeled, pool, test = make_data(cfg, task)
    cache_path = Path(cfg.teacher.cache_path).expanduser() if cfg.teacher.cache_path else default_cache_path()
    # an existing cache is consulted; a missing one is not created by a dry run
    cache = TeacherCache(cache_path) if cfg.teacher.cache and cache_path.exists() else None
    sizer = _Sizer(cfg, labeled, pool, test)
    hashes: dict[str, str] = {}
    out = []
    for s in build_steps(RunContext(cfg, task, rd)):
        hashes[s.name] = step_hash(s.key, [hashes[d] for d in s.deps])
        cost = StepCost(s.name, s.description, rd.is_done(s.name, hashes[s.name]))
        if s.name in ("teacher", "teacher_test"):
            inputs = pool if s.name == "teacher" else [Example(ex.id, ex.source)
                                                       for ex in teacher_subset(cfg, test)]
            cost.teacher = estimate_task_labelling(
                inputs, labeled, rd.folder(s.name) / "labelling", cfg.teacher, task,
                cache=cache, extra_labels=cfg.task_labels())
        elif s.name == PROBE:
            cost.teacher = estimate_probe(cfg, task, labeled, rd.folder(PROBE), cache)
        else:
            sizer.size(cost)
        out.append(cost)
    sizes = {"labeled": len(labeled), "unlabeled": len(pool), "test": len(test)}
    if "teacher" in cfg.methods and len(teacher_subset(cfg, test)) < len(test):
        sizes["teacher_test"] = len(teacher_subset(cfg, test))
    return RunEstimate(sizes, out)


class _Sizer:
    """Training and prediction sizes of the student steps (plan.py names them)."""

    def __init__(self, cfg: RunConfig, labeled: list[Example], pool: list[Example],
                 test: list[Example]) -> None:
        self.cfg, self.labeled, self.n_pool, self.n_test = cfg, labeled, len(pool), len(test)
        demo_targets = [approx_tokens(ex.target or "") for ex in labeled]
        self.target_tokens = sum(demo_targets) / len(demo_targets) if demo_targets else 0.0
        self.pool_source_tokens = sum(approx_tokens(ex.source) for ex in pool) / max(1, len(pool))
        gold = sum(approx_tokens(ex.source) + approx_tokens(ex.target or "") for ex in labeled)
        self.gold_tokens = gold

    def size(self, cost: StepCost) -> None:
        cfg, name, k = self.cfg, cost.step, self.cfg.partitions
        gold = len(self.labeled) if cfg.add_gold else 0
        if name == "sft":
            self._train(cost, 0, len(self.labeled), self.n_test)
        elif name == "vanilla_kd":
            relabel = self.n_pool if "kd_self_distill" in cfg.methods else 0
            self._train(cost, self.n_pool, gold, self.n_test + relabel)
        elif name == "kd_self_distill":
            self._train(cost, max(1, round(cfg.self_distill_keep * self.n_pool)), gold, self.n_test)
        elif name.startswith("stage") and "_part" in name:
            part = int(name.rsplit("_part", 1)[1])
            held = len(range(part, self.n_pool, k))  # run_partitions deals ids out in turn
            self._train(cost, self.n_pool - held, gold, held)
        elif name in {stages.final_step(n) for n in cfg.stages}:
            self._train(cost, self.n_pool, gold, self.n_test)

    def _train(self, cost: StepCost, pseudo: int, gold: int, predictions: int) -> None:
        cost.train_examples = pseudo + gold
        cost.epochs = self._epochs(cost.train_examples)
        per_pseudo = self.pool_source_tokens + self.target_tokens
        per_gold = self.gold_tokens / max(1, len(self.labeled))
        cost.train_tokens = round((pseudo * per_pseudo + gold * per_gold) * cost.epochs)
        cost.predictions = predictions

    def _epochs(self, n: int) -> int:
        """The most epochs a student trains on n examples (early stopping may end it sooner)."""
        student = self.cfg.student
        train = getattr(student, "train", None)
        if train is not None:
            return int(train.epochs)
        per_epoch = math.ceil(n / student.batch_size) or 1
        return max(student.epochs, math.ceil(student.min_steps / per_epoch))


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "0%"


def format_estimate(est: RunEstimate, *, priced: bool) -> str:
    """A table of steps and a totals line, for the terminal."""
    subset = est.data.get("teacher_test", est.data["test"])
    teacher = f" (the teacher's: {subset})" if subset != est.data["test"] else ""
    lines = [f"data: {est.data['labeled']} labeled, {est.data['unlabeled']} unlabeled, "
             f"{est.data['test']} test{teacher}", ""]
    lines.append(f"{'step':<20} {'teacher calls':>24} {'prompt tok':>12} {'answer tok':>11} "
                 f"{'train ex':>9} {'epochs':>6} {'train tok':>12} {'predict':>8}")
    for s in est.steps:
        t = s.teacher
        calls = ""
        if t is not None:
            calls = f"{t.calls:,}" + (f" (+{t.cached:,} cached)" if t.cached else "")
        cells = [s.step + (" (done)" if s.done else ""), calls,
                 f"{t.prompt_tokens:,}" if t else "", f"{t.completion_tokens:,}" if t else "",
                 f"{s.train_examples:,}" if s.train_examples else "",
                 str(s.epochs) if s.epochs else "",
                 f"{s.train_tokens:,}" if s.train_tokens else "",
                 f"{s.predictions:,}" if s.predictions else ""]
        lines.append(f"{cells[0]:<20} {cells[1]:>24} {cells[2]:>12} {cells[3]:>11} "
                     f"{cells[4]:>9} {cells[5]:>6} {cells[6]:>12} {cells[7]:>8}")
    tot = est.totals()
    lines += ["", f"teacher: {tot['teacher_calls']:,} calls ({tot['teacher_cached']:,} cached), "
              f"{tot['prompt_tokens']:,} prompt + ~{tot['completion_tokens']:,} answer tokens "
              f"(at most {tot['completion_tokens_max']:,}), ~{tot['teacher_seconds']:,.0f} s at "
              "the configured throughput",
              f"prompt cache: ~{tot['cached_prompt_tokens']:,} prompt tokens "
              f"({_share(tot['cached_prompt_tokens'], tot['prompt_tokens'])}) in "
              f"{tot['prompt_cache_hits']:,} calls that begin as the call before them did"]
    if priced:
        lines.append(f"teacher cost: ~{tot['cost']:,.2f} (at most {tot['cost_max']:,.2f}) at the "
                     "configured prices")
    lines.append(f"students: {tot['student_trainings']} trainings, "
                 f"{tot['student_example_epochs']:,} example-epochs at most "
                 f"(~{tot['student_train_tokens']:,} tokens), "
                 f"{tot['student_predictions']:,} predictions")
    return "\n".join(line.rstrip() for line in lines)
