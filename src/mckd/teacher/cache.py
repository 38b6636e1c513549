"""A content-addressed cache of teacher completions in one SQLite file shared by every run.

The key is the sha256 of the request as sorted JSON: model name, prompt or messages, decoding
parameters, grammar and sample index. Base URLs and API keys are not in the request, so they
never reach the key or the file. Output parsing and repair are not part of the key either:
changing the repair re-reads the same raw completions at no cost. Only successful completions
are stored; a failure is retried on the next run.

Several processes may share the file: WAL journaling lets readers run beside one writer, and a
busy timeout makes concurrent writers wait their turn instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from mckd.errors import ConfigError
from mckd.teacher.backends.base import Completion, TeacherRequest

log = logging.getLogger(__name__)

CACHE_FILE = "teacher.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    finish_reason TEXT NOT NULL,
    extra TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    """$MCKD_CACHE_DIR/teacher.sqlite, else $XDG_CACHE_HOME/mckd/..., else ~/.cache/mckd/..."""
    env = os.environ.get("MCKD_CACHE_DIR")
    if env:
        return Path(env).expanduser() / CACHE_FILE
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mckd" / CACHE_FILE


def request_data(model: str, request: TeacherRequest) -> dict[str, Any]:
    """What identifies a call: the model and the request's own fields, nothing about the server."""
    return {"model": model, **request.payload()}


def request_key(model: str, request: TeacherRequest) -> str:
    """sha256 hex of the request as sorted, compact JSON."""
    blob = json.dumps(request_data(model, request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class TeacherCache:
    """get/put completions by request key. One connection per thread; commits per put, so a
    completion is durable as soon as `put` returns (a killed run loses nothing it stored)."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn()
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"{self.path}: cannot open the teacher cache ({e})") from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL under WAL survives a killed process (the OS keeps the written pages);
            # only a power cut can lose the last commits, which costs calls, not correctness.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            self._local.conn = conn
        return conn

    def get(self, key: str) -> Completion | None:
        row = (
            self._conn()
            .execute(
                "SELECT text, prompt_tokens, completion_tokens, seconds, finish_reason, extra "
                "FROM completions WHERE key = ?",
                (key,),
            )
            .fetchone()
        )
        if row is None:
            return None
        text, pt, ct, sec, finish, extra = row
        return Completion(text, pt, ct, sec, finish, json.loads(extra))

    def contains(self, key: str) -> bool:
        sql = "SELECT 1 FROM completions WHERE key = ?"
        return self._conn().execute(sql, (key,)).fetchone() is not None

    def put(self, key: str, model: str, request: TeacherRequest, completion: Completion) -> None:
        """Store a successful completion; a second writer of the same key keeps the first."""
        blob = json.dumps(request_data(model, request), sort_keys=True, ensure_ascii=False)
        self._conn().execute(
            "INSERT OR IGNORE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                model,
                blob,
                completion.text,
                completion.prompt_tokens,
                completion.completion_tokens,
                completion.seconds,
                completion.finish_reason,
                json.dumps(completion.extra, sort_keys=True),
                time.time(),
            ),
        )

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
