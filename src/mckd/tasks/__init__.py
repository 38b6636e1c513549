"""Output formats: a package per built-in task (constituency/, slots/) and text.py, each
implementing the Task protocol (base.py). Nothing outside this package knows which task it
runs: it asks the task object.

A task is named three ways, all found by `get_task`:
- a built-in one by its name (`TASKS`: constituency, slots, text);
- an installed one by the name its package declares in the entry-point group `mckd.tasks`
  (`toy = "mckd_toy_task:ToyTask"` in its pyproject.toml);
- any task class by its import path, `package.module:TaskClass`.
`mckd tasks list` shows the built-in and installed ones (docs/TASKS.md: writing a task).
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

from mckd.errors import ConfigError
from mckd.tasks.base import AnswerError, Corpus, Metric, Repaired, Task, primary_metric
from mckd.tasks.constituency import ConstituencyTask
from mckd.tasks.slots import SlotsTask
from mckd.tasks.text import TextTask

TASKS: dict[str, Task] = {"constituency": ConstituencyTask(), "slots": SlotsTask(), "text": TextTask()}
DEFAULT_TASK = "constituency"
# Older names still accepted: `mckd label --task none` kept the raw text.
ALIASES = {"none": "text"}
ENTRY_POINTS = "mckd.tasks"

_loaded: dict[str, Task] = {}  # tasks from other packages, loaded once per process


def installed_tasks() -> dict[str, EntryPoint]:
    """The tasks installed packages declare (entry-point group `mckd.tasks`), by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}


def task_names() -> list[str]:
    """Names `get_task` knows without an import path: built-in, then installed."""
    return [*TASKS, *(name for name in installed_tasks() if name not in TASKS)]


def get_task(name: str) -> Task:
    """The task called `name` (built-in, installed, or `package.module:TaskClass`); a one-line
    ConfigError naming the known ones otherwise. An import error inside a task's own module
    is not an unknown task: it propagates as it is."""
    name = ALIASES.get(name, name)
    task = TASKS.get(name) or _loaded.get(name)
    if task is not None:
        return task
    if ":" in name:
        task = load_task(name)
    else:
        ep = installed_tasks().get(name)
        if ep is None:
            raise ConfigError(f"unknown task {name!r} (known: {', '.join(task_names())}; or "
                              "name a task class as 'package.module:TaskClass')")
        task = load_task(ep.value, entry_point=name)
    _loaded[name] = task
    _loaded.setdefault(task.name, task)  # a saved student names its task by `task.name`
    return task


def load_task(spec: str, *, entry_point: str | None = None) -> Task:
    """An instance of the task class `package.module:TaskClass`, checked against the protocol."""
    where = f"task {spec!r}" + (f" (entry point {entry_point!r})" if entry_point else "")
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{where}: expected 'package.module:TaskClass'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not (module_name == e.name or module_name.startswith(e.name + ".")):
            raise  # the module exists but one of its own imports is missing
        raise ConfigError(f"{where}: no module named {module_name!r}") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise ConfigError(f"{where}: module {module_name!r} has no {attr!r}")
    task = cls()
    if not isinstance(task, Task):
        wanted = {n for n in vars(Task) if not n.startswith("_")} | set(Task.__annotations__)
        missing = sorted(n for n in wanted if not hasattr(task, n))
        raise ConfigError(f"{where} does not implement the Task protocol (missing: "
                          f"{', '.join(missing)})")
    if entry_point is not None and task.name != entry_point:
        raise ConfigError(f"{where}: the task calls itself {task.name!r}; name its entry point "
                          "the same, as saved students and results record that name")
    return task


__all__ = ["ALIASES", "DEFAULT_TASK", "ENTRY_POINTS", "TASKS", "AnswerError", "ConstituencyTask",
           "Corpus", "Metric", "Repaired", "SlotsTask", "Task", "TextTask", "get_task",
           "installed_tasks", "load_task", "primary_metric", "task_names"]
