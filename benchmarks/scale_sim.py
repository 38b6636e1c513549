"""Scale simulation: our own parts (ledger, cache, retries, partitions, stage bookkeeping) at N
inputs, against a loopback OpenAI-compatible server that answers in a fixed latency with a
fixed number of requests in flight, and fails 1% of requests (500, 429 with Retry-After, or a
hang past the client's timeout, one third each, decided per request by a hash of the input and
the attempt number).

For each N, in fresh directories:

1. label: `label_files` (the path `mckd label` and the pipeline use: task prompts, cache,
   ledger, retries) labels N inputs in a child process. Throughput is compared with the
   server's ceiling (concurrency / latency requests per second); the child reports its peak RSS.
2. kill and resume: the same labelling into another directory and cache is killed with SIGKILL
   once half the inputs are in the ledger, then started again; reported: how long the resumed
   run took to write its first new ledger line and to finish, and how many requests the server
   answered twice (only requests in flight at the kill can be).
3. pipeline: `mckd run` (methods: mckd, 2 and 3 stages, 2 partitions) on the same inputs with a
   fast fake student (tests/pipeline_fakes.py) and the cache of step 1: the teacher step is
   served from the cache, then the partitions, four stage students and two finals move N
   examples through the run directory. Reported: wall time, peak RSS, teacher calls made.
4. ray (only with `--phases ... ray`, needs `mckd[ray]`): the same labelling with
   `teacher.runner: ray` on a local cluster of `--ray-workers` actors, each with an equal share
   of the concurrency (the same requests in flight in all), against a fresh server and cache.
   Reported: its throughput next to run 1's, and whether its ledger equals run 1's, input for
   input (the fault plan is a function of input and attempt, so both runs meet the same faults).

Every input must be accounted for (label or rejection) in both labelling runs; the script
fails otherwise.

    python benchmarks/scale_sim.py --inputs 2000
    python benchmarks/scale_sim.py --inputs 10000 100000 --json results.json
    python benchmarks/scale_sim.py --inputs 10000 --phases label ray   # Ray vs one process

`--bare-max M` sends at most M requests in the bare phase (its rate does not depend on N).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the loopback server and the fake student

from fault_server import FaultServer  # noqa: E402

N_LABELED, N_TEST = 50, 200
FAULTS = ("500", "429", "hang")


def fault_plan(fail_rate: float) -> Any:
    def plan(item: str, attempt: int) -> str | None:
        h = int.from_bytes(hashlib.sha256(f"{item}:{attempt}".encode()).digest()[:8], "big")
        if (h % 1_000_000) / 1_000_000 < fail_rate:
            return FAULTS[(h // 1_000_000) % len(FAULTS)]
        return None

    return plan


# --- the child processes -------------------------------------------------------------------------


def teacher_section(url: str, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    return {"backend": "openai", "model": "sim", "base_url": url, "api_key_env": None,
            "grammar_field": "none", "concurrency": args.concurrency, "timeout_s": args.timeout,
            "retries": 6, "backoff_s": 0.05, "backoff_max_s": 1.0, "k_demos": args.k_demos,
            "max_tokens": 32, "cache_path": str(cache)}


def run_config(work: Path, url: str, cache: Path, args: argparse.Namespace) -> dict[str, Any]:
    return {"name": "scale-sim", "task": "text",
            "data": {"source": "files", "labeled": str(work / "data" / "labeled.jsonl"),
                     "unlabeled": str(work / "data" / "unlabeled.jsonl"),
                     "test": str(work / "data" / "test.jsonl")},
            "student": {"kind": "seq2seq"},
            "teacher": teacher_section(url, cache, args), "methods": ["mckd"], "stages": [2, 3],
            "partitions": 2, "baselines": False, "run_dir": str(work / "run")}


def child_label(cfg_path: Path, out: Path, ray_workers: int = 0) -> None:
    """Label the run's pool as the pipeline's teacher step would (same files, same prompts);
    with `ray_workers`, on a local Ray cluster of that many actors sharing the concurrency."""
    from mckd.config import load_config
    from mckd.teacher.label import label_files

    cfg = load_config(cfg_path)
    teacher = cfg.teacher
    if ray_workers:
        teacher = teacher.model_copy(update={
            "runner": "ray", "workers": ray_workers,
            "concurrency": max(1, teacher.concurrency // ray_workers)})
    data = Path(cfg.data.unlabeled).parent
    start = time.perf_counter()
    res = label_files(data / "pool-run-order.jsonl", out, teacher,
                      labeled_path=data / "labeled-run-order.jsonl", task="text", progress=False)
    report(wall=time.perf_counter() - start, usage=res.usage)  # type: ignore[union-attr]


def child_pipeline(cfg_path: Path) -> None:
    import mckd.student
    import pipeline_fakes as pf
    from mckd.config import load_config
    from mckd.distill.pipeline import run_pipeline

    mckd.student.build_student = pf.fake_build_student  # type: ignore[assignment]
    cfg = load_config(cfg_path)
    start = time.perf_counter()
    summary = run_pipeline(cfg)
    usage = json.loads((summary.run_dir / "teacher" / "labelling" / "usage.json").read_text())
    report(wall=time.perf_counter() - start, usage=usage)


def child_bare(url: str, n: int, concurrency: int, timeout: float) -> None:
    """The baseline: the same number of requests from a bare aiohttp loop (the backend's HTTP
    client, one session with `concurrency` connections, as the backend's), with no prompts
    built, no cache, no ledger and no retries, to see what the server delivers on this
    machine."""
    import asyncio
    import contextlib

    import aiohttp

    async def go() -> int:
        queue = list(range(n))
        ok = 0
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"Content-Type": "application/json"},
        ) as session:

            async def worker() -> None:
                nonlocal ok
                while queue:
                    i = queue.pop()
                    body = {"model": "sim", "prompt": f"Input: bare {i}\nOutput:", "max_tokens": 32}
                    # a failure is simply not ok
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.post(url + "/completions",
                                                data=json.dumps(body).encode()) as resp:
                            json.loads(await resp.read())
                            ok += resp.status == 200  # after the await: no update is lost

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok

    start = time.perf_counter()
    ok = asyncio.run(go())
    report(wall=time.perf_counter() - start, ok=ok)


def report(**fields: Any) -> None:
    use = resource.getrusage(resource.RUSAGE_SELF)
    print("RESULT " + json.dumps({**fields, "peak_rss_mb": round(use.ru_maxrss / 1024, 1),  # KiB
                                  "cpu_s": round(use.ru_utime + use.ru_stime, 1)}), flush=True)


# --- the parent --------------------------------------------------------------------------------


def write_data(work: Path, n: int, args: argparse.Namespace) -> Path:
    """The run's files, then the labelled and pool files in the order the run's data step puts
    them (so that the labelling pass sends exactly the pipeline's requests)."""
    from mckd.config import config_from_dict
    from mckd.distill.methods import make_data
    from mckd.examples import Example, write_examples

    data = work / "data"

    def ex(prefix: str, i: int, gold: bool) -> Example:
        text = f"{prefix} {i} of the scale run"
        return Example(f"{prefix}{i}", text, text.upper() if gold else None)

    write_examples(data / "labeled.jsonl", [ex("demo", i, True) for i in range(N_LABELED)])
    write_examples(data / "unlabeled.jsonl", [ex("item", i, False) for i in range(n)])
    write_examples(data / "test.jsonl", [ex("test", i, True) for i in range(N_TEST)])
    cfg_path = work / "run.json"
    cfg_path.write_text(json.dumps(run_config(work, "http://unused/v1", work / "c.sqlite", args)))
    cfg = config_from_dict(json.loads(cfg_path.read_text()))
    labeled, pool, _ = make_data(cfg, cfg.make_task())
    write_examples(data / "labeled-run-order.jsonl", labeled)
    write_examples(data / "pool-run-order.jsonl", pool)
    return cfg_path


def spawn(*argv: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE,
                            text=True, env=env)


def result_of(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"child failed with exit code {proc.returncode}")
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def set_url(cfg_path: Path, url: str, cache: Path, args: argparse.Namespace) -> None:
    work = cfg_path.parent
    cfg_path.write_text(json.dumps(run_config(work, url, cache, args)))


def ledger_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def check_accounted(out: Path, n: int) -> dict[str, int]:
    ids: set[str] = set()
    for name in ("pseudolabels.jsonl", "rejected.jsonl"):
        for line in (out / name).read_text().splitlines():
            ids.add(json.loads(line)["id"])
    if ids != {f"item{i}" for i in range(n)}:
        raise SystemExit(f"{out}: {n - len(ids)} inputs not accounted for")
    usage = json.loads((out / "usage.json").read_text())
    return {"labels": usage["labels"], "rejected": usage["rejected"]}


def size_mb(*paths: Path) -> float:
    return round(sum(p.stat().st_size for p in paths if p.exists()) / 1e6, 2)


def simulate(n: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    work = root / f"n{n}"
    cfg_path = write_data(work, n, args)
    ceiling = args.concurrency / args.latency
    out: dict[str, Any] = {"inputs": n, "ceiling_rps": round(ceiling, 1)}
    phases = set(args.phases)

    # 0. what the server delivers to a bare client on this machine (no faults)
    if "bare" in phases:
        m = min(n, args.bare_max or n)
        with FaultServer(latency_s=args.latency) as srv:
            res = result_of(spawn("_bare", srv.url, str(m), str(args.concurrency),
                                  str(args.timeout)))
            out["bare"] = {"requests": m, "wall_s": round(res["wall"], 1), "ok": res["ok"],
                           "requests_per_s": round(res["ok"] / res["wall"], 1),
                           "of_ceiling": round(res["ok"] / res["wall"] / ceiling, 3)}
    if "label" in phases:
        label_and_pipeline(n, args, work, cfg_path, out, with_pipeline="pipeline" in phases)
    if "resume" in phases:
        resume(n, args, work, cfg_path, out)
    if "ray" in phases:
        on_ray(n, args, work, cfg_path, out)
    if not args.keep:
        shutil.rmtree(work)
    return out


def hang_ceiling(args: argparse.Namespace, calls: int, hangs: int) -> float:
    """The ceiling left once the injected hangs are paid: each holds its slot until the client's
    timeout instead of for the server's latency."""
    slot_s = args.latency + hangs / calls * (args.timeout - args.latency)
    return args.concurrency / slot_s


def label_and_pipeline(n: int, args: argparse.Namespace, work: Path, cfg_path: Path,
                       out: dict[str, Any], *, with_pipeline: bool) -> None:
    ceiling = args.concurrency / args.latency
    # 1. a clean labelling run
    with FaultServer(fault_plan(args.fail_rate), latency_s=args.latency,
                     hang_s=args.timeout + 1.0, retry_after="0.05") as srv:
        cache = work / "cache.sqlite"
        set_url(cfg_path, srv.url, cache, args)
        res = result_of(spawn("_label", str(cfg_path), str(work / "label")))
        lab = work / "label"
        calls = srv.total_calls()
        out["label"] = {
            "wall_s": round(res["wall"], 1),
            "inputs_per_s": round(n / res["wall"], 1),
            "requests_per_s": round(calls / res["wall"], 1),
            "of_ceiling": round(calls / res["wall"] / ceiling, 3),
            "of_ceiling_with_hangs": round(
                calls / res["wall"] / hang_ceiling(args, calls, srv.faults["hang"]), 3),
            "server_requests": calls, "faults": dict(srv.faults),
            "answered_twice": sum(c > 1 for c in srv.answered.values()),
            "peak_rss_mb": res["peak_rss_mb"], "cpu_ms_per_input": round(1000 * res["cpu_s"] / n, 2),
            "ledger_mb": size_mb(lab / "ledger.jsonl"),
            "cache_mb": size_mb(cache, Path(f"{cache}-wal")),
            **check_accounted(lab, n),
        }

        if not with_pipeline:
            return
        # 3. the pipeline on the same inputs, the teacher served by the cache of run 1
        res = result_of(spawn("_pipeline", str(cfg_path)))
        out["pipeline"] = {"wall_s": round(res["wall"], 1), "peak_rss_mb": res["peak_rss_mb"],
                           "teacher_calls": res["usage"]["calls"],
                           "teacher_cache_hits": res["usage"]["cache_hits"],
                           "server_requests_during": srv.total_calls() - calls}


def resume(n: int, args: argparse.Namespace, work: Path, cfg_path: Path,
           out: dict[str, Any]) -> None:
    # 2. killed at 50%, resumed
    with FaultServer(fault_plan(args.fail_rate), latency_s=args.latency,
                     hang_s=args.timeout + 1.0, retry_after="0.05") as srv:
        cache = work / "cache2.sqlite"
        set_url(cfg_path, srv.url, cache, args)
        lab = work / "label2"
        ledger = lab / "ledger.jsonl"
        first = spawn("_label", str(cfg_path), str(lab))
        while ledger_lines(ledger) < n // 2 and first.poll() is None:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
        at_kill = ledger_lines(ledger)
        start = time.perf_counter()
        second = spawn("_label", str(cfg_path), str(lab))
        while ledger_lines(ledger) <= at_kill and second.poll() is None:
            time.sleep(0.005)
        first_new = time.perf_counter() - start
        res = result_of(second)
        out["resume"] = {
            "ledger_at_kill": at_kill,
            "first_new_label_s": round(first_new, 2),
            "resumed_wall_s": round(time.perf_counter() - start, 1),
            "answered_twice": sum(c > 1 for c in srv.answered.values()),
            "peak_rss_mb": res["peak_rss_mb"],
            **check_accounted(lab, n),
        }


def comparable(out: Path) -> dict[str, tuple[Any, ...]]:
    """What a labelling run decided per input (not timings or attempt counts)."""
    from mckd.teacher.ledger import read_ledger

    return {k: (r["keys"], r["status"], r["reason"], r["raw"], r["target"], r["valid"])
            for k, r in read_ledger(out / "ledger.jsonl", truncate=False).items()}


def on_ray(n: int, args: argparse.Namespace, work: Path, cfg_path: Path,
           out: dict[str, Any]) -> None:
    # 4. the same labelling on a local Ray cluster, the concurrency shared by the actors
    ceiling = args.concurrency / args.latency
    with FaultServer(fault_plan(args.fail_rate), latency_s=args.latency,
                     hang_s=args.timeout + 1.0, retry_after="0.05") as srv:
        cache = work / "cache-ray.sqlite"
        set_url(cfg_path, srv.url, cache, args)
        lab = work / "label-ray"
        res = result_of(spawn("_label", str(cfg_path), str(lab), str(args.ray_workers)))
        calls = srv.total_calls()
        out["ray"] = {
            "workers": args.ray_workers, "wall_s": round(res["wall"], 1),
            "inputs_per_s": round(n / res["wall"], 1),
            "requests_per_s": round(calls / res["wall"], 1),
            "of_ceiling": round(calls / res["wall"] / ceiling, 3),
            "server_requests": calls,
            "answered_twice": sum(c > 1 for c in srv.answered.values()),
            "driver_peak_rss_mb": res["peak_rss_mb"],
            **check_accounted(lab, n),
        }
    if (work / "label").exists():
        out["ray"]["ledger_equals_single_process"] = comparable(lab) == comparable(work / "label")


def table(results: list[dict[str, Any]]) -> str:
    results = [r for r in results if {"bare", "label", "resume", "pipeline"} <= r.keys()]
    cols = ["inputs", "bare client req/s", "label s", "inputs/s", "req/s", "req/s of ceiling",
            "of ceiling less hangs", "inputs/s of bare", "CPU ms/input", "label RSS MB", "ledger MB", "cache MB",
            "answered twice", "resume: first label s", "resume s", "answered twice (kill)",
            "pipeline s", "pipeline RSS MB", "pipeline teacher calls"]
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        bare, lab, res, pipe = r["bare"], r["label"], r["resume"], r["pipeline"]
        cells = [f"{r['inputs']:,}", bare["requests_per_s"], lab["wall_s"], lab["inputs_per_s"],
                 f"{lab['requests_per_s']} ({r['ceiling_rps']})", f"{lab['of_ceiling']:.1%}",
                 f"{lab['of_ceiling_with_hangs']:.1%}",
                 f"{lab['inputs_per_s'] / bare['requests_per_s']:.1%}",
                 lab["cpu_ms_per_input"], lab["peak_rss_mb"], lab["ledger_mb"], lab["cache_mb"],
                 lab["answered_twice"], res["first_new_label_s"], res["resumed_wall_s"],
                 res["answered_twice"], pipe["wall_s"], pipe["peak_rss_mb"],
                 pipe["teacher_calls"]]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(rows)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_label":
        return child_label(Path(sys.argv[2]), Path(sys.argv[3]),
                           int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    if len(sys.argv) > 1 and sys.argv[1] == "_pipeline":
        return child_pipeline(Path(sys.argv[2]))
    if len(sys.argv) > 1 and sys.argv[1] == "_bare":
        return child_bare(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, nargs="+", default=[2000], help="pool sizes to run")
    ap.add_argument("--latency", type=float, default=0.3, help="server seconds per request")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    ap.add_argument("--fail-rate", type=float, default=0.01, help="share of requests failing")
    ap.add_argument("--timeout", type=float, default=2.0, help="client timeout; hangs last 1 s more")
    ap.add_argument("--k-demos", type=int, default=5, help="demonstrations per prompt")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    ap.add_argument("--phases", nargs="+", default=["bare", "label", "pipeline", "resume"],
                    choices=["bare", "label", "pipeline", "resume", "ray"],
                    help="what to run per size (pipeline needs label)")
    ap.add_argument("--bare-max", type=int, default=None,
                    help="at most this many requests in the bare phase")
    ap.add_argument("--ray-workers", type=int, default=2, help="actors of the ray phase")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mckd-scale-"))
    results = []
    for n in args.inputs:
        results.append(simulate(n, args, root))
        print(json.dumps(results[-1]), flush=True)
    print(table(results))
    for r in results:
        if "ray" in r:
            single = f" vs {r['label']['inputs_per_s']} in one process" if "label" in r else ""
            print(f"ray, {r['inputs']:,} inputs, {r['ray']['workers']} workers: "
                  f"{r['ray']['inputs_per_s']} inputs/s{single}; ledger equal: "
                  f"{r['ray'].get('ledger_equals_single_process', 'not compared')}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
