"""The run directory: one folder per step, a `DONE` marker written last, resume after kill -9.

A step is a named unit of work (`teacher`, `stage1/part0`, `mckd_2stage`, ...) with the steps
it depends on and a key: the part of the configuration that decides its output. The key that a
step ran with is hashed together with its dependencies' hashes, so a change anywhere upstream
(or in the step's own settings) makes the step and everything after it stale.

Life of a step folder:
- `STARTED` (the hash) is written before the step's function runs. A folder left by an
  interrupted attempt with the same hash is kept, so the step can resume from its own
  checkpoints (students) or cache (teacher); one started with a different hash is wiped.
- `metrics.json` holds what the step returned; `DONE` (the hash and timing) is written last.
- A step whose `DONE` holds the current hash is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from mckd.distill.parallel import run_on_devices
from mckd.errors import ConfigError
from mckd.examples import Example, read_examples
from mckd.io import atomic_write

log = logging.getLogger(__name__)

DONE = "DONE"
STARTED = "STARTED"


@dataclass
class Step:
    """One node of the run's DAG. `run(folder)` writes the step's files and returns its metrics."""

    name: str
    deps: tuple[str, ...]
    key: dict[str, Any]
    run: Callable[[Path], dict[str, Any]]
    description: str = ""
    group: str | None = None  # consecutive steps of one group are independent of each other


@dataclass
class StepOutcome:
    name: str
    skipped: bool
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, obj: Any, *, sort_keys: bool = True) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=sort_keys, ensure_ascii=False)
        f.write("\n")


def step_hash(key: dict[str, Any], dep_hashes: list[str]) -> str:
    blob = json.dumps({"key": key, "deps": dep_hashes}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class RunDir:
    """A run directory and the steps that fill it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, step: str) -> Path:
        return self.root / step

    def is_done(self, step: str, hash_: str | None = None) -> bool:
        marker = self.folder(step) / DONE
        if not marker.exists():
            return False
        return hash_ is None or read_json(marker).get("hash") == hash_

    def metrics(self, step: str) -> dict[str, Any]:
        path = self.folder(step) / "metrics.json"
        return read_json(path) if path.exists() else {}

    def read(self, step: str, name: str) -> list[Example]:
        return read_examples(self.folder(step) / name)

    def invalidate(self, step: str) -> None:
        """Remove a step's DONE marker so the next run redoes it (its folder is wiped then)."""
        for marker in (DONE, STARTED):
            with contextlib.suppress(FileNotFoundError):
                (self.folder(step) / marker).unlink()

    def _prepare(self, step: str, hash_: str) -> Path:
        folder = self.folder(step)
        started = folder / STARTED
        if folder.exists() and not (started.exists() and read_json(started).get("hash") == hash_):
            # Left by a run with other settings: its checkpoints must not be resumed.
            log.info("step %s: clearing a folder left by different settings", step)
            _clear_folder(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(started, {"hash": hash_})
        return folder

    def execute(self, steps: list[Step], force: list[str] | None = None, *,
                devices: list[str] | None = None) -> list[StepOutcome]:
        """Run `steps` (in the given, dependency-respecting order), skipping finished ones.
        With `devices` (parallel.py), the unfinished steps of one group run at the same time,
        one per device."""
        by_name = {s.name: s for s in steps}
        for s in steps:
            missing = [d for d in s.deps if d not in by_name]
            if missing:
                raise ConfigError(f"step {s.name} depends on unknown steps {missing}")
        forced = expand_force(steps, force or [])
        hashes: dict[str, str] = {}
        outcomes: list[StepOutcome | None] = []
        waiting: list[tuple[int, Step]] = []  # a group's steps, to run together
        for i, s in enumerate(steps, start=1):
            if waiting and (s.group is None or s.group != waiting[0][1].group):
                self._run_group(waiting, hashes, outcomes, devices or [])
                waiting = []
            hashes[s.name] = step_hash(s.key, [hashes[d] for d in s.deps])
            if s.name not in forced and self.is_done(s.name, hashes[s.name]):
                log.info("step %d/%d %s: done already, skipped", i, len(steps), s.name)
                outcomes.append(StepOutcome(s.name, True, 0.0, self.metrics(s.name)))
                continue
            if s.name in forced:
                self.invalidate(s.name)
            log.info("step %d/%d %s: %s", i, len(steps), s.name, s.description or "running")
            if s.group is not None and devices:
                outcomes.append(None)
                waiting.append((len(outcomes) - 1, s))
            else:
                outcomes.append(self._run_one(s, hashes[s.name]))
        if waiting:
            self._run_group(waiting, hashes, outcomes, devices or [])
        return [o for o in outcomes if o is not None]

    def _run_group(self, waiting: list[tuple[int, Step]], hashes: dict[str, str],
                   outcomes: list[StepOutcome | None], devices: list[str]) -> None:
        if len(waiting) == 1:
            k, s = waiting[0]
            outcomes[k] = self._run_one(s, hashes[s.name])
            return
        log.info("running %s at the same time on devices %s", ", ".join(s.name for _, s in waiting),
                 ", ".join(devices[:len(waiting)]))
        jobs = [partial(self._run_one, s, hashes[s.name]) for _, s in waiting]
        for (k, _), outcome in zip(waiting, run_on_devices(jobs, devices), strict=True):
            outcomes[k] = outcome

    def _run_one(self, s: Step, hash_: str) -> StepOutcome:
        folder = self._prepare(s.name, hash_)
        start = time.perf_counter()
        with _step_log(folder / "log.txt"):
            metrics = s.run(folder)
        seconds = time.perf_counter() - start
        write_json(folder / "metrics.json", metrics)
        write_json(folder / DONE, {"hash": hash_, "seconds": round(seconds, 3),
                                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        log.info("step %s: done in %.1f s", s.name, seconds)
        return StepOutcome(s.name, False, seconds, metrics)


def expand_force(steps: list[Step], names: list[str]) -> set[str]:
    """Steps to redo: each named step and every step downstream of it. A name also covers the
    steps it prefixes up to an underscore: `stage1` is stage1 and stage1_part0..K-1, `mckd`
    every mckd_Nstage, `teacher` the pool and the test labelling."""
    forced: set[str] = set()
    for name in names:
        hit = {s.name for s in steps if s.name == name or s.name.startswith(name + "_")}
        if not hit:
            known = ", ".join(s.name for s in steps)
            raise ConfigError(f"--force {name}: no such step (steps: {known})")
        forced |= hit
    for s in steps:  # steps are in dependency order, so one pass reaches every descendant
        if any(d in forced for d in s.deps):
            forced.add(s.name)
    return forced


def _clear_folder(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@contextlib.contextmanager
def _step_log(path: Path) -> Iterator[None]:
    """Copy everything logged while a step runs into its folder's log.txt (appended on resume)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
