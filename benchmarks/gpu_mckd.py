"""A 2-stage MCKD run end to end through `mckd run`, with a t5-base-shaped student on the GPU.

    python benchmarks/gpu_mckd.py --work /tmp/gpu-mckd --json result.json           # GPU-sized
    python benchmarks/gpu_mckd.py --tiny --device cpu --work /tmp/smoke               # seconds, CPU

The run: the built-in synthetic treebank (--labeled gold trees, --pool unlabeled inputs, --test
test trees), methods [mckd], stages [2], 2 partitions; the student is the `t5-base` preset
(random init, word-level tokenizer trained on the run's data, nothing from a hub) trained by
`mckd.student.train` on --device. No LLM runs here: the teacher is the project's loopback
OpenAI-compatible server (tests/fault_server.py) answering every input with a right-branching
tree over its words, reached through the real `openai` backend, labelling path, cache and
ledger. The pseudolabels are therefore trivial; the run measures the student's side of the
pipeline (three trainings, relabelling the pool, decoding the test set) on real hardware.

The CLI runs in a child process (`python -m mckd run CONFIG`); afterwards the run directory
is read for each step's wall time and each student's steps, seconds per step and tokens/s.
Prints one JSON object (and writes it to --json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
STUDENT_STEPS = ("stage1_part0", "stage1_part1", "mckd_2stage")


def start_teacher() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fault_server.py"), "--answer", "tree"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def run_config(args: argparse.Namespace, url: str) -> dict[str, Any]:
    train: dict[str, Any] = {"epochs": args.epochs, "batch_size": args.batch, "fidelity_sample": 0,
                             "progress": False, "device": args.device, "pad_to_multiple": args.pad,
                             "log_every_steps": 50, "compile": args.compile, "save_every_steps": 10**6}
    student: dict[str, Any] = {"kind": "seq2seq", "model": "t5-base", "tokenizer": "word", "train": train,
                               "generate": {"batch_size": args.gen_batch}}
    if args.tiny:
        student["t5_shape"] = {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 2}
    return {
        "name": "gpu-mckd", "task": "constituency", "run_dir": str(args.work / "run"),
        "data": {"source": "demo", "demo": {"n_labeled": args.labeled, "n_unlabeled": args.pool,
                                            "n_test": args.test, "max_len": 20, "seed": 0}},
        "teacher": {"backend": "openai", "model": "loopback", "base_url": url, "api_key_env": None,
                    "grammar_field": "none", "concurrency": 16, "k_demos": 3, "max_tokens": 256,
                    "timeout_s": 30, "cache_path": str(args.work / "teacher-cache.sqlite")},
        "student": student, "methods": ["mckd"], "stages": [2], "partitions": 2,
        "baselines": False, "init_from_sft": False, "add_gold": True, "seed": 0,
    }


def read_step(run: Path, step: str) -> dict[str, Any]:
    folder = run / step
    out: dict[str, Any] = {}
    done = folder / "DONE"
    if done.exists():
        out["wall_s"] = json.loads(done.read_text()).get("seconds")
    train = folder / "train.json"
    if train.exists():
        t = json.loads(train.read_text())
        extra = t.get("extra") or {}
        out.update(train_size=t["train_size"], epochs=t["epochs"], steps=t["steps"], train_s=t["seconds"],
                   final_loss=t["final_loss"], tokens=extra.get("tokens"),
                   tokens_per_s=extra.get("tokens_per_s"), seconds_per_step=extra.get("seconds_per_step"))
    return out


def summarise(args: argparse.Namespace, wall: float, rc: int) -> dict[str, Any]:
    run = args.work / "run"
    steps = {s: read_step(run, s) for s in ("data", "teacher", "partitions", *STUDENT_STEPS, "stage1")}
    trained = [steps[s] for s in STUDENT_STEPS if steps[s].get("steps")]
    tokens = sum(s["tokens"] for s in trained)
    train_s = sum(s["train_s"] for s in trained)
    final = run / "mckd_2stage" / "metrics.json"
    usage = run / "teacher" / "labelling" / "usage.json"
    return {
        "rc": rc, "wall_s": wall, "device": args.device, "pool": args.pool, "test": args.test,
        "batch": args.batch, "epochs": args.epochs, "compile": args.compile,
        "steps": steps, "student_steps": sum(s["steps"] for s in trained),
        "student_train_s": train_s, "student_tokens_per_s": tokens / train_s if train_s else None,
        "test_score": json.loads(final.read_text()).get("test") if final.exists() else None,
        "teacher_usage": json.loads(usage.read_text()) if usage.exists() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="Folder for the config, run directory and cache.")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="A tiny T5 and a small pool: checks the script on CPU.")
    ap.add_argument("--labeled", type=int, default=50)
    ap.add_argument("--pool", type=int, default=3000)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--gen-batch", type=int, default=512)
    ap.add_argument("--pad", type=int, default=8)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--timeout", type=float, default=None, help="Stop the run after this many seconds.")
    args = ap.parse_args()
    if args.tiny:
        args.labeled, args.pool, args.test = min(args.labeled, 8), min(args.pool, 24), min(args.test, 8)
        args.epochs, args.batch, args.gen_batch = 1, min(args.batch, 8), min(args.gen_batch, 16)
    args.work.mkdir(parents=True, exist_ok=True)
    server, url = start_teacher()
    rc = -1
    try:
        cfg_path = args.work / "run.yaml"
        cfg_path.write_text(yaml.safe_dump(run_config(args, url), sort_keys=False))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        start = time.perf_counter()
        try:
            rc = subprocess.run([sys.executable, "-m", "mckd", "run", str(cfg_path)], env=env,
                                timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()
    out = summarise(args, wall, rc)
    text = json.dumps(out, indent=1)
    print(text, flush=True)
    if args.json is not None:
        args.json.write_text(text + "\n")
    if rc != 0:
        raise SystemExit(rc)


if __name__ == "__main__":
    main()
