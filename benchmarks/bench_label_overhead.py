"""Overhead of the labelling run (cache + ledger + repair + progress) over calling the backend
directly in a loop on the same prompts.

Two arms, on the same requests and the same concurrency, alternated for several rounds in
one process so that machine load hits both alike:

- direct: workers take requests from a queue and `await backend.acomplete(request)`; nothing
  else (no cache, no ledger, no repair, no progress bar).
- pipeline: `label_pool` into a fresh output directory with a fresh SQLite cache (so every
  request is a real call), the ledger, the constituency task's repair of every answer, and
  the rich progress bar.

Backends:
- `http` (default): the loopback OpenAI-compatible test server (tests/fault_server.py) in a
  separate process, answering a right-branching tree after a fixed per-request latency.
- `llamacpp`: SmolLM2-135M in-process (calls serialized), a real model on the CPU.

    python benchmarks/bench_label_overhead.py --backend http --n 400 --latency 0.05 --rounds 3
    python benchmarks/bench_label_overhead.py --backend llamacpp --n 16 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from mckd.examples import Example
from mckd.tasks.constituency import ConstituencyTask
from mckd.teacher.backends import build_backend
from mckd.teacher.backends.base import Backend, TeacherRequest
from mckd.teacher.cache import TeacherCache
from mckd.teacher.config import TeacherConfig
from mckd.teacher.label import few_shot_requests, label_pool, repair_outputs

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "the",
    "old",
    "man",
    "saw",
    "a",
    "small",
    "dog",
    "near",
    "our",
    "house",
    "on",
    "the",
    "hill",
    "yesterday",
]


def make_pool(n: int) -> tuple[list[Example], list[Example]]:
    """Inputs of 6-12 words, and demonstrations with right-branching targets."""

    def sent(i: int) -> str:
        k = 6 + i % 7
        return " ".join(WORDS[(i + j) % len(WORDS)] for j in range(k)) + f" n{i}"

    task = ConstituencyTask()
    demos = [Example(f"d{i}", sent(i), task.baseline([sent(i)])[0]) for i in range(8)]
    return [Example(f"u{i}", sent(1000 + i)) for i in range(n)], demos


async def direct(backend: Backend, requests: list[TeacherRequest], concurrency: int) -> None:
    queue: asyncio.Queue[TeacherRequest] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)

    async def worker() -> None:
        while not queue.empty():
            await backend.acomplete(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await backend.aclose()


def pipeline(
    backend: Backend, pool: list[Example], demos: list[Example], cfg: TeacherConfig, out: Path
) -> dict:
    res = label_pool(
        pool,
        backend,
        out / "run",
        build_request=few_shot_requests(demos, cfg),
        postprocess=repair_outputs(ConstituencyTask()),
        cache=TeacherCache(out / "cache.sqlite"),
        cfg=cfg,
        progress=True,
    )
    return res.usage


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds of this process, and the result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "fault_server.py"),
            "--latency",
            str(latency),
            "--answer",
            "tree",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["http", "llamacpp"], default="http")
    ap.add_argument("--n", type=int, default=400, help="inputs per arm and round")
    ap.add_argument("--latency", type=float, default=0.05, help="http: server seconds per request")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="smollm2-135m", help="llamacpp: model name or .gguf path")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    server = None
    if args.backend == "http":
        server, url = start_server(args.latency)
        cfg = TeacherConfig(
            backend="openai",
            model="bench",
            base_url=url,
            concurrency=args.concurrency,
            k_demos=4,
            max_tokens=64,
            timeout_s=30,
        )
    else:
        cfg = TeacherConfig(
            backend="llamacpp",
            model=args.model,
            context_size=1024,
            n_threads=1,
            k_demos=2,
            max_tokens=48,
        )
    backend = build_backend(cfg)
    wall: dict[str, list[float]] = {"direct": [], "pipeline": []}
    cpu: dict[str, list[float]] = {"direct": [], "pipeline": []}
    usage: dict = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                # each round has its own inputs so that no engine-side prefix cache favours an arm
                pool, demos = make_pool(args.n * (2 * r + 2))
                a, b = pool[args.n * 2 * r : args.n * (2 * r + 1)], pool[args.n * (2 * r + 1) :]
                requests = [few_shot_requests(demos, cfg)(e, 0) for e in a]
                arms = {
                    "direct": lambda: asyncio.run(direct(backend, requests, cfg.concurrency)),  # noqa: B023
                    "pipeline": lambda: pipeline(backend, b, demos, cfg, Path(tmp, f"r{r}")),  # noqa: B023
                }
                order = ["direct", "pipeline"] if r % 2 == 0 else ["pipeline", "direct"]
                for arm in order:  # alternate which arm goes first
                    w, c, result = timed(arms[arm])
                    wall[arm].append(w)
                    cpu[arm].append(c)
                    if arm == "pipeline":
                        usage = result  # type: ignore[assignment]
                print(
                    f"round {r}: direct {wall['direct'][-1]:.3f}s (cpu {cpu['direct'][-1]:.3f}s)  "
                    f"pipeline {wall['pipeline'][-1]:.3f}s (cpu {cpu['pipeline'][-1]:.3f}s)",
                    file=sys.stderr,
                )
    finally:
        backend.close()
        if server is not None:
            server.terminate()
    med = {k: statistics.median(v) for k, v in wall.items()}
    cpu_extra_ms = statistics.median(
        1000 * (p - d) / args.n for p, d in zip(cpu["pipeline"], cpu["direct"], strict=True)
    )
    report = {
        "backend": args.backend,
        "n": args.n,
        "latency_s": args.latency if args.backend == "http" else None,
        "concurrency": cfg.concurrency if args.backend == "http" else 1,
        "rounds": args.rounds,
        "direct_wall_s": [round(t, 3) for t in wall["direct"]],
        "pipeline_wall_s": [round(t, 3) for t in wall["pipeline"]],
        "direct_cpu_s": [round(t, 3) for t in cpu["direct"]],
        "pipeline_cpu_s": [round(t, 3) for t in cpu["pipeline"]],
        "direct_median_s": round(med["direct"], 3),
        "pipeline_median_s": round(med["pipeline"], 3),
        "overhead_pct": round(100 * (med["pipeline"] / med["direct"] - 1), 2),
        "extra_cpu_ms_per_input": round(cpu_extra_ms, 2),
        "last_pipeline_usage": {
            k: usage.get(k)
            for k in ("calls", "labels", "valid", "rejected", "prompt_tokens", "completion_tokens")
        },
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
