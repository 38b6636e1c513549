"""Error types. Every error a user can cause is one line that names the file, line and problem."""

from __future__ import annotations

from pathlib import Path


class MckdError(Exception):
    """Base class for errors the CLI reports as one line, without a traceback."""


class InputError(MckdError):
    """Bad input data: names the file and, where known, the 1-based line."""

    def __init__(self, path: str | Path | None, line: int | None, problem: str) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.problem = problem
        super().__init__(self.location() + problem)

    def location(self) -> str:
        if self.path is None:
            return ""
        if self.line is None:
            return f"{self.path}: "
        return f"{self.path}:{self.line}: "


class ConfigError(MckdError):
    """A bad configuration key or value, found before any work starts."""
