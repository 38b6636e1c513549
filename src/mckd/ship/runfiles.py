"""The trained students of a run directory: where each method's student and test predictions
live, and which student ships (`mckd export`; the report's per-sentence view shows the same).

A method's step folder holds `model/` (the saved student) and `test.jsonl` (its predictions);
the teacher's test answers are in `teacher_test/predictions.jsonl`, the gold in
`data/test.jsonl`. A run of several seeds keeps each seed's folders in `seed-<s>/`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mckd.errors import ConfigError, InputError
from mckd.results_file import metric_columns, ordered_methods, primary_key

log = logging.getLogger(__name__)

MODEL = "model"
TEACHER_TEST = Path("teacher_test") / "predictions.jsonl"
GOLD_TEST = Path("data") / "test.jsonl"


def seed_folder(run_dir: Path, results: dict[str, Any], seed: int | None = None) -> tuple[Path, int | None]:
    """The folder holding the step folders: the run directory itself, or for a run of several
    seeds `seed-<seed>/` (the first seed unless `seed` is given), with the seed."""
    seeds = results.get("seeds") or []
    if len(seeds) <= 1:
        if seed is not None and seed not in seeds:
            raise ConfigError(f"--seed {seed}: this run has seed {seeds[0] if seeds else '?'} only")
        return run_dir, None
    chosen = seeds[0] if seed is None else seed
    if chosen not in seeds:
        raise ConfigError(f"--seed {seed}: not a seed of this run ({', '.join(map(str, seeds))})")
    return run_dir / f"seed-{chosen}", chosen


def trained_methods(folder: Path, results: dict[str, Any]) -> list[str]:
    """Methods of the run (report order) whose step folder holds a saved student."""
    methods = results.get("methods") or {}
    return [m for m in ordered_methods(methods) if (folder / m / MODEL).is_dir()]


def pick_method(folder: Path, results: dict[str, Any], method: str | None = None) -> tuple[str, str]:
    """The method whose student ships, and why: `method` when given, else the best primary test
    score among the trained students (the first in report order on a tie)."""
    available = trained_methods(folder, results)
    if not available:
        raise InputError(folder, None, "no method of this run has a trained student "
                                       "(a METHOD/model folder)")
    if method is not None:
        if method not in available:
            raise ConfigError(f"--method {method!r}: no trained student in {folder} "
                              f"(methods with one: {', '.join(available)})")
        return method, "chosen with --method"
    key = primary_key(results)
    label = metric_columns(results).get(key, key)
    scores = {m: results["methods"][m].get("test", {}).get(key) for m in available}
    ranked = [m for m in available if isinstance(scores[m], (int, float))]
    if not ranked:
        return available[-1], f"no test {label} recorded: the last trained method"
    best = max(ranked, key=lambda m: scores[m])
    others = ", ".join(f"{m} {scores[m]:.2f}" for m in ranked)
    return best, f"best test {label} among the trained students ({others})"
