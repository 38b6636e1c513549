"""`mckd run`: check the config, run the steps that are not done, write results and report.

With `seeds` S > 1, seed s runs as a complete run directory `RUN_DIR/seed-<s>/` and the top
level holds the averaged results.json and its report. The teacher's settings do not depend on
the run seed, so later seeds find every teacher request in the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mckd.config import RunConfig
from mckd.distill.compare import add_evidence, gather_stats
from mckd.distill.context import RunContext
from mckd.distill.methods import load_data_files, teacher_subset
from mckd.distill.parallel import device_slots, visible_devices
from mckd.distill.plan import build_steps
from mckd.distill.results import aggregate_seeds, collect_results
from mckd.distill.rundir import RunDir, StepOutcome, expand_force, write_json
from mckd.errors import ConfigError, InputError, MckdError
from mckd.io import atomic_write
from mckd.report import write_report
from mckd.tasks.base import primary_metric
from mckd.teacher.backends.llamacpp import resolve_model_path

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_dir: Path
    results: dict[str, Any]
    report: Path
    outcomes: list[StepOutcome]


def run_pipeline(cfg: RunConfig, *, force: list[str] | None = None, run_dir: str | Path | None = None,
                 seeds: int | None = None) -> RunSummary:
    """Run (or resume) every step of `cfg`; `force` names steps to redo with all they feed."""
    updates: dict[str, Any] = {}
    if run_dir is not None:
        updates["run_dir"] = str(run_dir)
    if seeds is not None:
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: must be >= 1")
        updates["seeds"] = seeds
    cfg = cfg.model_copy(update=updates)
    root = Path(cfg.run_dir)
    preflight(cfg, force or [])
    with _exclusive(root):
        if cfg.seeds == 1:
            return _run_one(cfg, root, force or [])
        return _run_seeds(cfg, root, force or [])


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """One `mckd run` per run directory at a time. The lock dies with its process, so a run
    killed with -9 never leaves a stale lock behind."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MckdError(f"{root}: another mckd run is using this run directory") from None
        yield


def _run_seeds(cfg: RunConfig, root: Path, force: list[str]) -> RunSummary:
    summaries, contexts = [], []
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        sub = cfg.model_copy(update={"seed": seed, "seeds": 1, "run_dir": str(root / f"seed-{seed}")})
        log.info("seed %d of %d: %s", seed - cfg.seed + 1, cfg.seeds, sub.run_dir)
        summaries.append(_run_one(sub, root / f"seed-{seed}", force))
        contexts.append(RunContext(sub, sub.make_task(), RunDir(root / f"seed-{seed}")))
    results = aggregate_seeds([s.results for s in summaries])
    # Intervals of the seed-averaged scores and differences, on the same resamples per seed.
    runs = [gather_stats(c, s.results) for c, s in zip(contexts, summaries, strict=True)]
    results = add_evidence(results, runs, cfg.bootstrap, contexts[0].task)
    return _finish(cfg, root, results, [o for s in summaries for o in s.outcomes])


def _run_one(cfg: RunConfig, root: Path, force: list[str]) -> RunSummary:
    _save_config(cfg, root)
    ctx = RunContext(cfg, cfg.make_task(), RunDir(root))
    slots = device_slots(cfg.parallel_students, visible_devices(), cfg.partitions)
    outcomes = ctx.rd.execute(build_steps(ctx), force, devices=slots)
    return _finish(cfg, root, collect_results(ctx), outcomes)


def _finish(cfg: RunConfig, root: Path, results: dict[str, Any], outcomes: list[StepOutcome]) -> RunSummary:
    _save_config(cfg, root)
    write_json(root / "results.json", results, sort_keys=False)  # methods in run order
    paths = write_report(root)
    ran = sum(not o.skipped for o in outcomes)
    primary = primary_metric(cfg.make_task())
    subset = results.get("teacher_test")
    on = f" (on {subset})" if isinstance(subset, int) and subset < (results.get("test") or 0) else ""
    scores = [f"{name}{on if name == 'teacher' else ''} {m['test'][primary.key]:.1f}"
              + _interval(m.get("test_ci", {}).get(primary.key))
              for name, m in results["methods"].items() if primary.key in m["test"]]
    if scores:
        log.info("test %s: %s", primary.label, ", ".join(scores))
    for comparison in results.get("evidence", {}).get("comparisons", []):
        log.info("%s", comparison["text"])
    log.info("%d steps run, %d already done; report: %s", ran, len(outcomes) - ran, paths["html"])
    return RunSummary(root, results, paths["html"], outcomes)


def _interval(ci: list[float] | None) -> str:
    return f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else ""


def _save_config(cfg: RunConfig, root: Path) -> None:
    path = root / "config.yaml"
    text = cfg.to_yaml()
    if path.exists() and path.read_text(encoding="utf-8") != text:
        log.info("%s: settings changed since the last run; steps they affect will be redone", path)
    with atomic_write(path) as f:
        f.write(text)


# --- checks before any work ------------------------------------------------------------------------


def preflight(cfg: RunConfig, force: list[str]) -> None:
    """Everything that can be checked cheaply, so a bad run fails in a second, not an hour in."""
    _check_data(cfg)
    _check_teacher(cfg)
    if force:
        ctx = RunContext(cfg, cfg.make_task(), RunDir(Path(cfg.run_dir)))
        expand_force(build_steps(ctx), force)  # unknown step names fail here


def _check_data(cfg: RunConfig) -> None:
    d = cfg.data
    pool_size = d.demo.n_unlabeled
    if d.source == "files":
        try:
            labeled, pool, test = load_data_files(cfg)
        except InputError as e:
            raise ConfigError(f"data: {e}") from None
        for key, n, have, path in (("n_labeled", d.n_labeled, len(labeled), d.labeled),
                                   ("n_unlabeled", d.n_unlabeled, len(pool), d.unlabeled),
                                   ("n_test", d.n_test, len(test), d.test)):
            if n is not None and n > have:
                raise ConfigError(f"data.{key} = {n}: larger than the data ({path} has {have} examples)")
        pool_size = d.n_unlabeled or len(pool)
        try:
            teacher_subset(cfg, test[: d.n_test] if d.n_test else test)
        except InputError as e:
            raise ConfigError(f"data.teacher_test: {e}") from None
    elif isinstance(d.teacher_test, str) and not Path(d.teacher_test).is_file():
        raise ConfigError(f"data.teacher_test: {d.teacher_test}: no such file of test ids")
    if "mckd" in cfg.methods and pool_size < 2 * cfg.partitions:
        raise ConfigError(f"partitions = {cfg.partitions}: the pool has only {pool_size} inputs")


def _check_teacher(cfg: RunConfig, *, needed: bool = False) -> None:
    """That the teacher can be built, when the run (or `needed`: the probe) asks it anything."""
    if not needed and not cfg.probe and not any(
            m in cfg.methods for m in ("teacher", "vanilla_kd", "kd_self_distill", "mckd")):
        return
    if cfg.teacher.backend == "llamacpp":
        if importlib.util.find_spec("xllamacpp") is None:
            raise ConfigError("teacher.backend llamacpp needs xllamacpp: pip install 'mckd[local]'")

        try:
            resolve_model_path(cfg.teacher.model)
        except MckdError as e:
            raise ConfigError(str(e)) from None
