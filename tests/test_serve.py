"""`mckd serve`: the batcher gathers concurrent requests, bad input is a 4xx with one line, and
a real server (uvicorn on a loopback port: in this process, and `mckd serve` as its own
process) answers /health and /predict with what the exported model predicts."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import mckd
from mckd.examples import read_examples
from mckd.ship.serve import Batcher, Limits, build_app, input_problem

sys.path.insert(0, str(Path(__file__).parent))
import ship_runs

WAIT_S = 60  # longest wait for a server to come up


@pytest.fixture(scope="module")
def slots_export(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: str) -> Path:
    run = ship_runs.slots_run(tmp_path_factory, tiny_encoder)
    return ship_runs.exported("slots-torch", run, tmp_path_factory)


def test_batcher_gathers_concurrent_requests_into_one_call() -> None:
    calls: list[list[str]] = []

    def predict(inputs: list[str]) -> list[str]:
        calls.append(list(inputs))
        return [text.upper() for text in inputs]

    async def main() -> list[list[str]]:
        batcher = Batcher(predict, Limits(max_batch=8, max_wait_ms=200))
        runner = asyncio.create_task(batcher.run())
        try:
            requests = [[f"r{k}a", f"r{k}b"] for k in range(6)]
            return await asyncio.gather(*(batcher.submit(r) for r in requests))
        finally:
            runner.cancel()
            batcher.close()

    answers = asyncio.run(main())
    assert answers == [[f"R{k}A", f"R{k}B"] for k in range(6)]  # each request gets its own
    assert [len(c) for c in calls] == [8, 4]  # 6 requests of 2 inputs, batches of up to 8


def test_bad_input_is_a_4xx_with_one_line() -> None:
    limits = Limits(max_inputs=3, max_chars=20)
    assert input_problem({"inputs": ["play jazz"]}, limits) is None
    cases = {
        json.dumps([1]): (422, "one key"),
        json.dumps({"inputs": "play jazz"}): (422, "not a string"),
        json.dumps({"inputs": []}): (422, "empty"),
        json.dumps({"inputs": ["a", 3]}): (422, "inputs[1] must be a string, not a number"),
        json.dumps({"inputs": ["a", " "]}): (422, "inputs[1] is empty"),
        json.dumps({"inputs": ["a"] * 4}): (413, "at most 3 per request"),
        json.dumps({"inputs": ["a" * 21]}): (413, "21 characters; at most 20"),
        json.dumps({"inputs": ["a"], "extra": 1}): (422, "one key"),
    }
    for body, (status, text) in cases.items():
        got = input_problem(json.loads(body), limits)
        assert got is not None and got[0] == status and text in got[1], body
        assert "\n" not in got[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None = None) -> dict[str, Any]:
    import urllib.request

    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up in {WAIT_S} s")


async def post_many(url: str, bodies: list[Any]) -> list[tuple[int, Any]]:
    """POST each body at once (raw text for a str, JSON otherwise); (status, JSON answer)."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(body: Any) -> tuple[int, Any]:
            data = body if isinstance(body, str) else json.dumps(body)
            async with session.post(f"{url}/predict", data=data,
                                    headers={"Content-Type": "application/json"}) as r:
                return r.status, await r.json()

        return await asyncio.gather(*(one(b) for b in bodies))


def check_server(url: str, model: Any, sources: list[str]) -> None:
    """The contract, against a running server."""
    health = wait_healthy(url)
    assert health["status"] == "ok" and health["task"] == "slots"
    bodies = [{"inputs": [s]} for s in sources] + [{"inputs": sources[:3]}]
    answers = asyncio.run(post_many(url, bodies))
    expected = [o.to_json() for o in model.predict(sources)]
    for (status, answer), body in zip(answers, bodies, strict=True):
        assert status == 200 and set(answer) == {"outputs"}
        want = [expected[sources.index(s)] for s in body["inputs"]]
        assert [o["output"] for o in answer["outputs"]] == [w["output"] for w in want]
        for o, w in zip(answer["outputs"], want, strict=True):
            assert set(o) == {"output", "confidence"} and isinstance(o["confidence"], float)
            assert o["confidence"] == pytest.approx(w["confidence"], abs=1e-5)
    stats = wait_healthy(url)
    assert stats["requests"] == len(bodies) and stats["largest_batch"] > 3  # batched together
    bad = asyncio.run(post_many(url, ["not json", {"inputs": []}, {"inputs": [""]},
                                      {"inputs": [1]}, {"inputs": ["a"] * 300}]))
    assert [status for status, _ in bad] == [400, 422, 422, 422, 413]
    assert all(isinstance(a["detail"], str) and "\n" not in a["detail"] for _, a in bad)


@pytest.fixture
def in_process_server(slots_export: Path) -> Iterator[tuple[str, Any]]:
    import uvicorn

    model = mckd.load(slots_export, runtime="torch")
    app = build_app(model, Limits(max_wait_ms=100))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", model
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_real_server_in_process(in_process_server: tuple[str, Any], slots_export: Path,
                                tmp_path_factory: pytest.TempPathFactory, tiny_encoder: str) -> None:
    url, model = in_process_server
    run = ship_runs.slots_run(tmp_path_factory, tiny_encoder)
    sources = [ex.source for ex in read_examples(run / "data" / "test.jsonl")]
    check_server(url, model, sources)


@pytest.mark.slow
def test_mckd_serve_process(slots_export: Path, tmp_path_factory: pytest.TempPathFactory,
                            tiny_encoder: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mckd", "serve", str(slots_export), "--port", str(port),
           "--runtime", "torch", "--max-wait-ms", "100", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_healthy(url, proc)
        run = ship_runs.slots_run(tmp_path_factory, tiny_encoder)
        sources = [ex.source for ex in read_examples(run / "data" / "test.jsonl")]
        check_server(url, mckd.load(slots_export, runtime="torch"), sources)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
