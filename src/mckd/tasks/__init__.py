"""Output formats: one module per task (linearize, parse back, repair, score).

`TASKS` maps a task name (as written in configs and on the command line) to its task object.
"""

from __future__ import annotations

from mckd.tasks.constituency import ConstituencyTask

TASKS = {"constituency": ConstituencyTask()}

__all__ = ["TASKS", "ConstituencyTask"]
