"""The record every step reads and writes: Example(id, source, target | None, meta), as JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mckd.errors import InputError
from mckd.io import atomic_write, read_text_lines


@dataclass(frozen=True)
class Example:
    """One input, its target if known (gold or pseudolabel), and free-form metadata.

    `source` is the space-joined tokens and `target` the task's linearized output; a task may
    keep gold it scores with in `meta` (parsing: the PTB tree with POS tags, under "tree").
    """

    id: str
    source: str
    target: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "source": self.source, "target": self.target}
        if self.meta:
            out["meta"] = self.meta
        return out

    def with_target(self, target: str | None, **meta: Any) -> Example:
        return Example(self.id, self.source, target, {**self.meta, **meta})


def example_from_json(obj: Any, *, path: str | Path | None = None, line: int | None = None) -> Example:
    if not isinstance(obj, dict):
        raise InputError(path, line, f"expected a JSON object, got {type(obj).__name__}")
    for key in ("id", "source"):
        if key not in obj:
            raise InputError(path, line, f"missing field '{key}'")
    ex_id, source, target = obj["id"], obj["source"], obj.get("target")
    if not isinstance(ex_id, (str, int)):
        raise InputError(path, line, f"field 'id' must be a string, got {ex_id!r}")
    if not isinstance(source, str) or not source.strip():
        raise InputError(path, line, f"field 'source' must be a non-empty string, got {source!r}")
    if target is not None and not isinstance(target, str):
        raise InputError(path, line, f"field 'target' must be a string or null, got {target!r}")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise InputError(path, line, f"field 'meta' must be an object, got {meta!r}")
    return Example(str(ex_id), source, target, meta)


def example_from_line(text: str, *, path: str | Path | None, line: int) -> Example:
    """One JSONL line as an example; bad JSON or a bad field is an error naming file and line."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, line, f"invalid JSON ({e.msg} at column {e.colno})") from None
    return example_from_json(obj, path=path, line=line)


def read_examples(path: str | Path, *, require_target: bool = False) -> list[Example]:
    """Read a JSONL file of examples. Any bad line raises `InputError` naming file and line."""
    return [ex for _, ex in numbered_examples(path, require_target=require_target)]


def numbered_examples(
    path: str | Path, *, require_target: bool = False
) -> Iterator[tuple[int, Example]]:
    """Each example of a JSONL file with its line number, for readers that check more and
    must name the line. Any bad line raises `InputError` naming file and line."""
    seen: dict[str, int] = {}
    for lineno, text in enumerate(read_text_lines(path), start=1):
        if not text.strip():
            continue
        ex = example_from_line(text, path=path, line=lineno)
        if require_target and ex.target is None:
            raise InputError(path, lineno, "missing field 'target' (this file must be labeled)")
        if ex.id in seen:
            raise InputError(path, lineno, f"duplicate id {ex.id!r} (first on line {seen[ex.id]})")
        seen[ex.id] = lineno
        yield lineno, ex


def write_examples(path: str | Path, examples: Iterable[Example]) -> None:
    """Write examples as JSONL atomically (temp file, then rename)."""
    with atomic_write(path) as f:
        for ex in examples:
            f.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
