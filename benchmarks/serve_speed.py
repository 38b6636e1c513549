"""How fast a shipped student answers on CPU, next to its teacher: sentences per second and
per-sentence latency (p50/p99) of an exported tagger (slot filling) and chart (parsing) student
with torch, ONNX fp32 and ONNX int8, and through `mckd serve` under concurrent clients; beside
the local 1.5B teacher (llama.cpp, the demos' prompts and grammars) on a few of the same
sentences. Prints a markdown table and the command.

    python benchmarks/serve_speed.py                      # trains sft students on the demos' gold
    python benchmarks/serve_speed.py --slots-run runs/slots-demo --parse-run runs/demo
    python benchmarks/serve_speed.py --sentences 40 --latency-sentences 20 --epochs 1 \\
        --teacher-sentences 3 --requests 64           # a smoke run

Students: exported from the given run directories (`mckd export --format onnx --quantize
int8`, default method), or, without them, an sft student trained for `--epochs` on the demo
corpus's 50 gold sentences (a run with `methods: [sft]`, in `--work`). Sentences: the run's
test set, repeated up to `--sentences`. Throughput: all sentences in one `predict` call (the
student batches by length). Latency: one sentence per call. Serving: `--clients` concurrent
clients each sending one-sentence requests to `mckd serve` (ONNX fp32) until `--requests` are
answered. Everything runs on the first `--threads` CPU cores (process affinity and thread
counts). Teacher: needs `mckd models fetch qwen2.5-coder-1.5b`; its sentences/s is calls over
LLM seconds (model loading excluded), its latency each call's seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

RUNTIMES = ("torch", "onnx", "onnx-int8")
TASKS = {"slots": ("slots-demo", "tagger"), "parse": (None, "chart")}


def pin_cores(threads: int) -> None:
    """This process (and what it starts) on the first `threads` CPU cores."""
    cores = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cores)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def train_run(which: str, work: Path, epochs: int) -> Path:
    """A run of the demo config with sft only (no teacher): the student on the 50 gold pairs."""
    from mckd.config import load_config
    from mckd.distill.pipeline import run_pipeline

    config, kind = TASKS[which]
    overrides = ["methods=[sft]", "baselines=false", f"student.kind={kind}",
                 f"student.epochs={epochs}", "student.min_steps=0", "student.early_stopping=none",
                 f"run_dir={work / f'{which}-run'}"]
    run_pipeline(load_config(config, overrides))
    return work / f"{which}-run"


def export(run: Path, out: Path) -> Path:
    from mckd.ship.export import export_run

    if not (out / "model.int8.onnx").exists():
        export_run(run, out, fmt="onnx", quantize="int8")
    return out


def run_sentences(run: Path, n: int) -> list[str]:
    from mckd.examples import read_examples

    folder = run if (run / "data").exists() else next(run.glob("seed-*"))
    sources = [ex.source for ex in read_examples(folder / "data" / "test.jsonl")]
    return [sources[k % len(sources)] for k in range(n)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def bench_runtime(model_dir: Path, runtime: str, sentences: list[str], latency_n: int,
                  threads: int) -> dict[str, Any]:
    import mckd

    model = mckd.load(model_dir, runtime=runtime, threads=threads)
    model.predict(sentences[:8])  # warm-up: first-call allocations, lazy initialisation
    started = time.perf_counter()
    model.predict(sentences)
    throughput = len(sentences) / (time.perf_counter() - started)
    latencies = []
    for text in sentences[:latency_n]:
        t = time.perf_counter()
        model.predict([text])
        latencies.append(time.perf_counter() - t)
    return {"sentences": len(sentences), "per_s": throughput,
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def hammer(url: str, sentences: list[str], clients: int, requests: int) -> tuple[float, list[float]]:
    """`clients` concurrent clients sending one-sentence requests until `requests` are done;
    wall seconds and each request's latency."""
    import aiohttp

    latencies: list[float] = []
    todo = iter(range(requests))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def client() -> None:
            for k in todo:
                t = time.perf_counter()
                async with session.post(f"{url}/predict",
                                        json={"inputs": [sentences[k % len(sentences)]]}) as r:
                    r.raise_for_status()
                    await r.json()
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started, latencies


def bench_serve(model_dir: Path, sentences: list[str], args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mckd", "serve", str(model_dir), "--port", str(port),
           "--runtime", "onnx", "--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mckd serve exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mckd serve did not come up in 120 s") from None
                time.sleep(0.3)
        asyncio.run(hammer(url, sentences, args.clients, min(64, args.requests)))  # warm-up
        seconds, latencies = asyncio.run(hammer(url, sentences, args.clients, args.requests))
        health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=5).read())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"sentences": args.requests, "per_s": args.requests / seconds,
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99),
            "batches": health["batches"], "largest_batch": health["largest_batch"]}


def bench_teacher(which: str, run: Path, sentences: list[str], threads: int) -> dict[str, Any]:
    """The demo's teacher (config, prompts, grammar) on `sentences`, with an empty cache."""
    from mckd.config import load_config
    from mckd.examples import Example, write_examples
    from mckd.teacher.label import label_files

    config, _ = TASKS[which]
    cfg = load_config(config).teacher
    folder = run if (run / "data").exists() else next(run.glob("seed-*"))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = cfg.model_copy(update={"cache_path": str(Path(tmp) / "cache.sqlite"),
                                     "n_threads": threads})
        pool = Path(tmp) / "pool.jsonl"
        write_examples(pool, [Example(f"s{k}", s, None, {}) for k, s in enumerate(sentences)])
        result = label_files(pool, Path(tmp) / "out", cfg, labeled_path=folder / "data" / "labeled.jsonl",
                             task=load_config(config).make_task(), progress=False)
        records = [json.loads(line) for line in (Path(tmp) / "out" / "ledger.jsonl").read_text().splitlines()]
    latencies = [r["seconds"] for r in records if "seconds" in r]
    return {"sentences": len(sentences), "per_s": len(latencies) / sum(latencies),
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99),
            "model": f"{cfg.backend}:{cfg.model}", "valid": result.usage.get("valid")}


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| student | runtime | sentences | sentences/s | p50 ms | p99 ms | speed vs teacher |",
           "|---|---|---|---|---|---|---|"]
    teachers = {r["task"]: r["per_s"] for r in rows if r["runtime"].startswith("teacher")}
    for r in rows:
        ratio = r["per_s"] / teachers[r["task"]] if r["task"] in teachers else None
        out.append(f"| {r['task']} ({r['kind']}) | {r['runtime']} | {r['sentences']} | "
                   f"{r['per_s']:.3g} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                   f"{f'{ratio:.0f}x' if ratio else '–'} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slots-run", type=Path, help="a finished slot-filling run to export from")
    p.add_argument("--parse-run", type=Path, help="a finished parsing run (chart student)")
    p.add_argument("--work", type=Path, default=Path("runs/serve-speed"), help="runs and exports")
    p.add_argument("--epochs", type=int, default=5, help="sft epochs when training the students")
    p.add_argument("--sentences", type=int, default=500, help="sentences per throughput measure")
    p.add_argument("--latency-sentences", type=int, default=100, help="one-sentence calls timed")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients of mckd serve")
    p.add_argument("--requests", type=int, default=1000, help="requests sent to mckd serve")
    p.add_argument("--teacher-sentences", type=int, default=10, help="0: no teacher")
    p.add_argument("--threads", type=int, default=2, help="CPU cores and threads")
    p.add_argument("--only", choices=sorted(TASKS), help="one task only")
    args = p.parse_args()
    pin_cores(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for which in [args.only] if args.only else list(TASKS):
        kind = TASKS[which][1]
        run = getattr(args, f"{which}_run") or train_run(which, args.work, args.epochs)
        model_dir = export(run, args.work / f"{which}-model")
        sentences = run_sentences(run, args.sentences)
        for runtime in RUNTIMES:
            stats = bench_runtime(model_dir, runtime, sentences, args.latency_sentences, args.threads)
            rows.append({"task": which, "kind": kind, "runtime": runtime, **stats})
        stats = bench_serve(model_dir, sentences, args)
        rows.append({"task": which, "kind": kind, "runtime": f"mckd serve, {args.clients} clients "
                     f"(largest batch {stats['largest_batch']})", **stats})
        if args.teacher_sentences:
            stats = bench_teacher(which, run, sentences[:args.teacher_sentences], args.threads)
            rows.append({"task": which, "kind": "LLM", "runtime": f"teacher {stats['model']}", **stats})
    print(table(rows))
    print()
    from mckd.distill.results import cpu_name

    print(f"CPU: {cpu_name()}, {args.threads} cores; "
          f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")


if __name__ == "__main__":
    main()
