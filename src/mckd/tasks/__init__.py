"""Output formats: one module per task, each implementing the Task protocol (tasks/base.py).

`TASKS` maps a task name (as written in configs and on the command line) to its task object.
Nothing outside this package knows which task it runs: it asks the task object.
"""

from __future__ import annotations

from mckd.errors import ConfigError
from mckd.tasks.base import AnswerError, Corpus, Metric, Repaired, Task, primary_metric
from mckd.tasks.constituency import ConstituencyTask

TASKS: dict[str, Task] = {"constituency": ConstituencyTask()}
DEFAULT_TASK = "constituency"


def get_task(name: str) -> Task:
    """The task called `name`; a one-line ConfigError naming the known ones otherwise."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]


__all__ = ["DEFAULT_TASK", "TASKS", "AnswerError", "ConstituencyTask", "Corpus", "Metric",
           "Repaired", "Task", "get_task", "primary_metric"]
