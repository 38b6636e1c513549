"""`teacher.runner: ray` under faults that kill processes (slow: starts a local Ray cluster).

Two guarantees, each shown against the loopback fault server with injected 500s and 429s:
a Ray worker killed with SIGKILL mid-run loses nothing, and a driver killed with SIGKILL
resumes without sending again any request whose answer had reached the cache. In both, every
request is sent by the Ray actors and none by the driver's own backend.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fault_server import FaultServer, item_of, number_of
from test_ray_runner import comparable, files, label, record_driver_requests

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SRC = Path(__file__).resolve().parents[1] / "src"
WORKER_TITLE = "MapWorker(MapBatches(_Caller))"  # the process title Ray gives our actors
CONCURRENCY, WORKERS = 4, 2
HTTP = dict(backend="openai", model="m", api_key_env=None, grammar_field="none",
            concurrency=CONCURRENCY, timeout_s=10.0, retries=2, backoff_s=0.01,
            backoff_max_s=0.05)


@pytest.fixture(scope="module", autouse=True)
def local_cluster() -> object:
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ctx
    ray.shutdown()


def plan(item: str, attempt: int) -> str | None:
    n = number_of(item)
    if n % 10 == 3:
        return "500"  # always: rejected as server_error, never cached
    if n % 10 == 7 and attempt == 1:
        return "429"  # once: retried to success
    return None


def ray_workers(busy: bool = False) -> list[int]:
    """PIDs of the teacher's Ray actors among this process's descendants (the local cluster's
    raylet is our child, its workers its children); other Ray clusters on the host are not.
    `busy`: only those answering a batch now (Ray titles the process `...submit` meanwhile)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                parents[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    ours, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - ours
        ours |= frontier
    out = []
    for pid in sorted(ours):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if WORKER_TITLE in title and (not busy or ".submit" in title):
            out.append(pid)
    return out


def wait_for(what: str, ok: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


def cached_items(cache: Path) -> set[str]:
    """The pool items whose answers the SQLite cache holds (read beside a live writer)."""
    if not cache.exists():
        return set()
    conn = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT request FROM completions").fetchall()
    except sqlite3.OperationalError:  # the table is not made yet
        return set()
    finally:
        conn.close()
    return {item_of(json.loads(r)["prompt"]) for (r,) in rows}


def test_a_killed_ray_worker_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL one actor's process while it answers a batch: Ray restarts the actor and retries
    its batches (Ray Data's defaults, max_restarts=-1 and max_task_retries=-1), so the run ends
    with every input in the ledger, the same ledger as the local runner, and the only requests
    answered twice are those of the one batch (`concurrency` requests) the dead actor had in
    flight."""
    pool, demos = files(tmp_path, 200)
    killed: dict[str, int] = {}

    def kill_one_worker(srv: FaultServer) -> None:
        busy: list[int] = []

        def found() -> bool:
            busy[:] = ray_workers(busy=True) if srv.total_answered() >= 40 else []
            return bool(busy)

        wait_for("40 answers and a worker answering a batch", found)
        pid = busy[0]
        killed.update(pid=pid, answered=srv.total_answered())
        os.kill(pid, signal.SIGKILL)

    driver = record_driver_requests(monkeypatch)
    with FaultServer(plan) as a, FaultServer(plan, latency_s=0.1) as b:
        label(tmp_path, "local", pool, demos, base_url=a.url, **HTTP)
        assert len(driver) == 200
        killer = threading.Thread(target=kill_one_worker, args=(b,), daemon=True)
        killer.start()
        usage = label(tmp_path, "ray", pool, demos, base_url=b.url, runner="ray",
                      workers=WORKERS, **HTTP)
        killer.join(timeout=5)
        twice = sum(c > 1 for c in b.answered.values())
        resent = b.total_calls() - a.total_calls()  # the same plan costs the same calls
    assert killed, "the run ended before a worker could be killed"
    assert len(driver) == 200, "the driver sent requests itself: the actors' answers were lost"
    assert resent > 0, "the kill interrupted no batch: proves nothing"
    assert killed["answered"] < 180, "the kill came after the last answer: proves nothing"
    assert killed["pid"] not in ray_workers()
    ray_ledger = comparable(tmp_path / "ray")
    assert len(ray_ledger) == 200 and ray_ledger == comparable(tmp_path / "local")
    assert usage["labels"] == 180 and usage["rejected"] == 20
    rows = sqlite3.connect(tmp_path / "ray.sqlite").execute("SELECT count(*) FROM completions")
    assert rows.fetchone()[0] == 180  # failures never cached
    assert twice <= CONCURRENCY, f"{twice} requests answered twice after one worker's death"


# `mckd label`, logging to the file DRIVER_LOG names a line `built` for each backend it builds
# and a line `sent` for each request one of them sends (before sending it). Ray's actors, in
# processes of their own, log nothing.
LOGGED_CLI = """
import os
import mckd.teacher.backends as backends
from mckd.cli import main

build = backends.build_backend

def note(line):
    with open(os.environ["DRIVER_LOG"], "a") as f:
        f.write(line + "\\n")

def logged(cfg):
    backend = build(cfg)
    complete = backend.acomplete
    note("built")

    async def acomplete(request):
        note("sent")
        return await complete(request)

    backend.acomplete = acomplete
    return backend

backends.build_backend = logged
main()
"""


def spawn_label(tmp_path: Path, cfg: dict[str, object], pool: Path, demos: Path,
                log: Path) -> subprocess.Popen[bytes]:
    cfg_path = tmp_path / "teacher.yaml"
    cfg_path.write_text(json.dumps(cfg))  # JSON is YAML
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "DRIVER_LOG": str(tmp_path / "driver-requests.log")}
    argv = [sys.executable, "-c", LOGGED_CLI, "label", "--pool", str(pool), "--out",
            str(tmp_path / "ray"), "--labeled", str(demos), "--task", "text", "--config",
            str(cfg_path), "--no-progress"]
    with open(log, "ab") as f:
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env)


def test_a_killed_driver_resumes_without_paying_for_a_cached_answer_twice(
    tmp_path: Path, local_cluster: object
) -> None:
    """SIGKILL the driver (`mckd label --set runner=ray` in a child process, joined to this
    module's cluster) once the cache holds 60 answers, then run it again to completion.

    Shown: every input ends in the ledger, equal to the local runner's; both drivers leave every
    request to the actors; no request whose answer
    had reached the cache before the kill is sent again; failures are never cached; the dead
    driver's actors are gone before the rerun (Ray ends a dead job's actors, so nothing leaks
    into later tests).

    Paid twice, and unavoidably so: an answer the server sent that the killed driver had not
    stored yet (no client can save it), and a request in flight at the kill that a dead
    driver's actor still completes. The driver stores each batch's answers the moment the batch
    comes back and each actor holds one batch at a time, so these are the batches in flight at
    the kill: at most `workers` x `concurrency` requests, which is asserted. (With Ray Data's
    default of two batches per actor, a queued batch was sent while the first one's answers
    were still on their way to the driver: 10-11 answered twice here, over the bound.)"""
    pool, demos = files(tmp_path, 200)
    cache, log = tmp_path / "ray.sqlite", tmp_path / "child.log"
    address = local_cluster.address_info["gcs_address"]  # type: ignore[attr-defined]
    with FaultServer(plan) as a, FaultServer(plan, latency_s=0.1) as b:
        label(tmp_path, "local", pool, demos, base_url=a.url, **HTTP)
        cfg = {**HTTP, "base_url": b.url, "k_demos": 3, "cache_path": str(cache),
               "runner": "ray", "workers": WORKERS, "ray_address": address}
        first = spawn_label(tmp_path, cfg, pool, demos, log)
        try:
            wait_for("60 cached answers",
                     lambda: len(cached_items(cache)) >= 60 or first.poll() is not None)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == -signal.SIGKILL, log.read_text()[-3000:]
        sent_at_kill = len(b.requests)
        answered_at_kill = b.total_answered()
        cached = cached_items(cache)
        assert 60 <= len(cached) < 180, f"{len(cached)} cached at the kill: proves nothing"
        wait_for("the dead driver's actors to end", lambda: not ray_workers(), timeout_s=60)

        second = spawn_label(tmp_path, cfg, pool, demos, log)
        try:
            assert second.wait(timeout=180) == 0, log.read_text()[-3000:]
        finally:
            if second.poll() is None:
                second.kill()
        resent = {item_of(body["prompt"]) for _, body, _ in b.requests[sent_at_kill:]} & cached
        twice = sum(c > 1 for c in b.answered.values())
    assert not resent, f"{len(resent)} cached answers were asked for again"
    # each driver built its backend (the log works) and sent nothing with it
    assert (tmp_path / "driver-requests.log").read_text().split() == ["built", "built"]
    in_flight = WORKERS * CONCURRENCY
    assert twice <= in_flight, (
        f"{twice} requests answered twice; {answered_at_kill} answered and {len(cached)} "
        f"cached at the kill")
    ray_ledger = comparable(tmp_path / "ray")
    assert len(ray_ledger) == 200 and ray_ledger == comparable(tmp_path / "local")
    rows = sqlite3.connect(cache).execute("SELECT count(*) FROM completions")
    assert rows.fetchone()[0] == 180  # failures never cached
