"""Output formats: one module per task, each implementing the Task protocol (tasks/base.py).

`TASKS` maps a task name (as written in configs and on the command line) to its task object.
Nothing outside this package knows which task it runs: it asks the task object.
"""

from __future__ import annotations

from mckd.errors import ConfigError
from mckd.tasks.base import AnswerError, Corpus, Metric, Repaired, Task, primary_metric
from mckd.tasks.constituency import ConstituencyTask
from mckd.tasks.slots import SlotsTask
from mckd.tasks.text import TextTask

TASKS: dict[str, Task] = {"constituency": ConstituencyTask(), "slots": SlotsTask(), "text": TextTask()}
DEFAULT_TASK = "constituency"
# Older names still accepted: `mckd label --task none` kept the raw text.
ALIASES = {"none": "text"}


def get_task(name: str) -> Task:
    """The task called `name`; a one-line ConfigError naming the known ones otherwise."""
    task = TASKS.get(ALIASES.get(name, name))
    if task is None:
        raise ConfigError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return task


__all__ = ["ALIASES", "DEFAULT_TASK", "TASKS", "AnswerError", "ConstituencyTask", "Corpus", "Metric",
           "Repaired", "SlotsTask", "Task", "TextTask", "get_task", "primary_metric"]
