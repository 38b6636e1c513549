"""The teacher cache: content-addressed keys, durability, several writing processes."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from mckd.teacher.backends.base import Completion, TeacherRequest
from mckd.teacher.cache import TeacherCache, default_cache_path, request_key

REQ = TeacherRequest(
    prompt="Input: a\nOutput:", max_tokens=32, stop=("\n",), grammar='root ::= "x"'
)


def test_key_is_stable_and_covers_what_changes_the_answer() -> None:
    key = request_key("m", REQ)
    assert key == request_key(
        "m",
        TeacherRequest(
            prompt="Input: a\nOutput:", max_tokens=32, stop=("\n",), grammar='root ::= "x"'
        ),
    )
    assert len(key) == 64
    variants = [
        request_key("other-model", REQ),
        request_key("m", dataclasses.replace(REQ, prompt="Input: b\nOutput:")),
        request_key("m", dataclasses.replace(REQ, temperature=0.7)),
        request_key("m", dataclasses.replace(REQ, max_tokens=33)),
        request_key("m", dataclasses.replace(REQ, grammar=None)),
        request_key("m", dataclasses.replace(REQ, sample_index=1)),
        request_key("m", dataclasses.replace(REQ, stop=())),
        request_key(
            "m",
            TeacherRequest(
                messages=(("user", "Input: a\nOutput:"),),
                max_tokens=32,
                stop=("\n",),
                grammar='root ::= "x"',
            ),
        ),
    ]
    assert len({key, *variants}) == len(variants) + 1


def test_put_get_roundtrip_and_first_writer_wins(tmp_path: Path) -> None:
    cache = TeacherCache(tmp_path / "c.sqlite")
    key = request_key("m", REQ)
    assert cache.get(key) is None and not cache.contains(key)
    comp = Completion("( a )", 10, 3, 0.25, "stop", {"cached_tokens": 4})
    cache.put(key, "m", REQ, comp)
    cache.put(key, "m", REQ, Completion("other", 1, 1))
    assert cache.get(key) == comp
    assert len(cache) == 1
    # a second handle (another run) sees it
    assert TeacherCache(tmp_path / "c.sqlite").get(key) == comp


def test_default_path_honours_mckd_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCKD_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_path() == tmp_path / "x" / "teacher.sqlite"
    assert TeacherCache().path == tmp_path / "x" / "teacher.sqlite"
    monkeypatch.delenv("MCKD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "mckd" / "teacher.sqlite"


def _writer(path: str, worker: int, n: int) -> None:
    cache = TeacherCache(path)
    for i in range(n):
        # half the keys are shared by every worker, half are this worker's own
        name = f"shared {i}" if i % 2 == 0 else f"own {worker} {i}"
        req = TeacherRequest(prompt=name)
        cache.put(request_key("m", req), "m", req, Completion(f"answer {name}", 1, 1))
        assert cache.get(request_key("m", req)) is not None


def test_concurrent_writers_in_several_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    TeacherCache(path)  # create the schema once, as a first run would
    workers, n = 4, 200
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, n)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * workers
    cache = TeacherCache(path)
    assert len(cache) == n // 2 + workers * n // 2
    for w in range(workers):
        for i in range(n):
            name = f"shared {i}" if i % 2 == 0 else f"own {w} {i}"
            got = cache.get(request_key("m", TeacherRequest(prompt=name)))
            assert got is not None and got.text == f"answer {name}"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unopenable_path_is_a_one_line_error(tmp_path: Path) -> None:
    from mckd.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot open the teacher cache"):
        TeacherCache(blocker / "sub" / "c.sqlite")
