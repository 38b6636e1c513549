"""The record of a labelling run: the append-only ledger, the usage it adds up to, and the
progress bar. One ledger line per finished input; a killed run leaves at most a torn last line,
which the next run cuts off before appending."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger(__name__)

LEDGER = "ledger.jsonl"


def read_ledger(path: Path, *, truncate: bool = True) -> dict[str, dict[str, Any]]:
    """The last record per input id. A torn last line (the run was killed mid-write) is ignored
    and, with `truncate`, cut off so that appending continues on a clean line."""
    records: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return records
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data) and truncate:
        log.warning("%s: dropping a torn last line (%d bytes)", path, len(data) - end)
        with open(path, "r+b") as f:
            f.truncate(end)
    for lineno, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            records[str(rec["id"])] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            log.warning("%s:%d: unreadable ledger line skipped", path, lineno)
    return records


class Ledger:
    """Append-only JSONL; one flushed line per finished input (a killed process loses no line it
    wrote: the data is in the OS's hands once `write` returns)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the whole run

    def append(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def outcome(rec: dict[str, Any]) -> str:
    """What came of a ledger record's input: "valid" (a label usable as the teacher wrote it),
    "repaired" (usable only after a repair) or "rejected". Records written before the two kinds of label were told
    apart marked a repaired label valid; its problems say otherwise."""
    if rec["status"] != "label":
        return "rejected"
    return "valid" if rec.get("valid") and not rec.get("problems") else "repaired"


# What each ledger record counts, summed by Usage.
COUNTS = (
    "calls",
    "attempts",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cached_prompt_tokens",
)


@dataclass
class Usage:
    """Teacher cost and what came of the inputs: `labels` = `valid` + `repaired` (see
    `outcome`), and the rejections by reason. `calls` are requests sent to the backend (not
    served by the cache); `attempts` include retries."""

    inputs: int = 0
    labels: int = 0
    valid: int = 0
    repaired: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    attempts: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    seconds: float = 0.0
    wall_seconds: float = 0.0
    cost: float = 0.0

    def add(self, rec: dict[str, Any]) -> None:
        self.inputs += 1
        kind = outcome(rec)
        if kind == "rejected":
            self.rejections[rec["reason"]] += 1
        else:
            self.labels += 1
            self.valid += kind == "valid"
            self.repaired += kind == "repaired"
        for k in COUNTS:
            setattr(self, k, getattr(self, k) + int(rec.get(k, 0)))
        self.seconds += float(rec.get("seconds", 0.0))

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "rejections"}
        out["rejected"] = sum(self.rejections.values())
        out["rejections"] = dict(sorted(self.rejections.items()))
        return out


class LabelProgress:
    """done/total, inputs/s, ETA and tokens/s on stderr (rich); silent when disabled. Rates
    count only this run's work, so a resumed run does not look faster than it is."""

    def __init__(self, total: int, done: int, *, enabled: bool) -> None:
        self.total, self.done, self.first, self.tokens = total, done, done, 0
        self._start = time.perf_counter()
        self._bar: Progress | None = None
        if enabled:
            self._bar = Progress(
                TextColumn("teacher"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.2f} inputs/s"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[tok_s]:.0f} tok/s"),
                console=Console(stderr=True),
            )
            self._task = self._bar.add_task(
                "teacher", total=total, completed=done, rate=0.0, tok_s=0.0
            )

    def __enter__(self) -> LabelProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def skip(self) -> None:
        """An input already done (in the ledger): counted, but not in this run's rates."""
        self.done += 1
        self.first += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)

    def advance(self, tokens: int) -> None:
        self.done += 1
        self.tokens += tokens
        if self._bar is not None:
            elapsed = max(1e-9, time.perf_counter() - self._start)
            rate = (self.done - self.first) / elapsed
            self._bar.update(
                self._task, completed=self.done, rate=rate, tok_s=self.tokens / elapsed
            )
