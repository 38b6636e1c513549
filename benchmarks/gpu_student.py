"""Training throughput of a t5-base-sized student on one GPU: tokens/s and model FLOPs utilisation.

    python benchmarks/gpu_student.py                          # CUDA, t5-base shape, bf16, ~100 steps
    python benchmarks/gpu_student.py --tiny --device cpu      # a seconds-long check of the script
    python benchmarks/gpu_student.py --variants eager-b32:batch=32,log=1 compiled-b256:batch=256,compile=1,pad=16 \
        --jsonl results.jsonl                                 # several settings in one process

A randomly initialised T5 of the t5-base shape (word-level tokenizer trained on the data) is
trained with `mckd.student.train.train` (the real loop: length-bucketed batches, bf16 autocast)
on trees from the built-in synthetic treebank. Each variant is a fresh model (seed 0) with its
own TrainConfig: `batch`, `compile` (0/1), `pad` (pad_to_multiple), `log` (log_every_steps:
how often the loss is read back from the GPU), `steps`, `warmup`. The first `warmup` steps
(and with compile=1 the compilation in them) are left out of the timing; the clock is read,
after a device synchronisation, only at the end of the warm-up and at the last step, so the
host may run ahead of the GPU in between as it would in a real run.

MFU = 6 * N * tokens / seconds / peak, N = parameter count, tokens = source + target tokens of
the timed steps without padding (counted exactly: the script repeats the loop's batch order);
`mfu_split` counts encoder parameters on source tokens and decoder + output layer on target
tokens. Prints one JSON object per variant (and appends it to --jsonl).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from mckd.student.config import TrainConfig
from mckd.student.model import build_t5, train_tokenizer
from mckd.student.train import Encoded, bucket_batches, train
from mckd.tasks.constituency.synth import synth_treebank
from mckd.tasks.constituency.trees import to_unlabeled, tree_words

PEAK_BF16_TFLOPS = {"H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}
VARIANT_KEYS = {"batch", "compile", "pad", "log", "steps", "warmup"}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k.replace(" ", "") in name.replace(" ", "")), None)


def parse_variant(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """`name:batch=128,compile=1,pad=16` -> settings; unset keys take the command line's."""
    name, _, rest = spec.partition(":")
    out: dict[str, Any] = {"name": name, "batch": args.batch, "compile": 0, "pad": 1, "log": 10,
                           "steps": args.steps, "warmup": args.warmup}
    for part in filter(None, rest.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in VARIANT_KEYS:
            raise SystemExit(f"variant {spec!r}: expected key=value with key in {sorted(VARIANT_KEYS)}, got {part!r}")
        out[key] = int(value)
    if args.tiny:
        out.update(steps=min(out["steps"], 12), warmup=min(out["warmup"], 2), batch=min(out["batch"], 8))
    if out["warmup"] >= out["steps"]:
        raise SystemExit(f"variant {spec!r}: warmup {out['warmup']} must be below steps {out['steps']}")
    return out


def step_tokens(data: list[Encoded], cfg: TrainConfig) -> list[tuple[int, int, int]]:
    """(source, target, padded source+target) tokens of each step, in the order train() takes
    them in its first epoch (same seeded bucketing, one micro-batch per step)."""
    lengths = [len(d.source) + len(d.target) for d in data]
    rng = random.Random(cfg.seed * 1_000_003)
    out = []
    for batch in bucket_batches(lengths, cfg.batch_size, cfg.bucket_size, rng):
        src = [len(data[k].source) for k in batch]
        tgt = [len(data[k].target) for k in batch]
        m = cfg.pad_to_multiple
        padded = len(batch) * (-(-max(src) // m) * m + -(-max(tgt) // m) * m)
        out.append((sum(src), sum(tgt), padded))
    return out


def encode(pairs: list[tuple[str, str]], tok: Any) -> list[Encoded]:
    """Token ids as Seq2SeqStudent makes them: the source as the tokenizer encodes it, the target and EOS."""
    sources = tok([s for s, _ in pairs])["input_ids"]
    targets = tok([t for _, t in pairs], add_special_tokens=False)["input_ids"]
    return [Encoded(list(s), [*t, tok.eos_token_id]) for s, t in zip(sources, targets, strict=True)]


def run_variant(v: dict[str, Any], encoded: list[Encoded], tok: Any, args: argparse.Namespace,
                device: torch.device) -> dict[str, Any]:
    shape = {"d_model": 64, "d_ff": 256, "num_layers": 2, "num_heads": 4} if args.tiny else {}
    sm = build_t5("t5-base", tok, seed=0, **shape)
    data = encoded[:v["steps"] * v["batch"]]  # every batch is full: no odd-sized last batch
    n_params = sum(p.numel() for p in sm.model.parameters())
    n_enc = sum(p.numel() for p in sm.model.encoder.parameters()) - sm.model.shared.weight.numel()
    n_dec = n_params - n_enc
    cfg = TrainConfig(epochs=1, batch_size=v["batch"], fidelity_sample=0, progress=False,
                      precision=args.precision, device=str(device), save_every_steps=10**6,
                      compile=bool(v["compile"]), pad_to_multiple=v["pad"], log_every_steps=v["log"])
    per_step = step_tokens(data, cfg)
    marks: dict[int, float] = {}

    def mark(step: int) -> None:
        if step in (v["warmup"], len(per_step)):  # only here: a sync every step would serialise host and GPU
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            marks[step] = time.perf_counter()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = train(sm, data, cfg, Path(tmp), on_step=mark)
    steps = report.steps
    timed = per_step[v["warmup"]:steps]
    seconds = marks[steps] - marks[v["warmup"]]
    src, tgt, padded = (sum(x[i] for x in timed) for i in range(3))
    tokens = src + tgt
    peak = peak_tflops(device, args.peak_tflops)
    achieved = 6 * n_params * tokens / seconds / 1e12
    split = 6 * (n_enc * src + n_dec * tgt) / seconds / 1e12
    out = {
        "variant": v["name"], "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": args.precision, "params": n_params, "batch": v["batch"], "compile": bool(v["compile"]),
        "pad_to_multiple": v["pad"], "log_every_steps": v["log"], "steps": steps, "timed_steps": len(timed),
        "warmup_s": marks[v["warmup"]] - start, "seconds": seconds, "seconds_per_step": seconds / len(timed),
        "tokens_per_s": tokens / seconds, "padded_tokens_per_s": padded / seconds,
        "examples_per_s": v["batch"] * len(timed) / seconds, "final_loss": report.final_loss,
        "achieved_tflops": achieved, "peak_tflops": peak, "mfu": achieved / peak if peak else None,
        "mfu_split": split / peak if peak else None,
        "matmul_ceiling_tflops": args.ceiling_tflops,
        "share_of_ceiling": achieved / args.ceiling_tflops if args.ceiling_tflops else None,
        "mean_source_tokens": src / (v["batch"] * len(timed)), "mean_target_tokens": tgt / (v["batch"] * len(timed)),
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }
    del sm, report
    if v["compile"]:
        torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="A tiny T5 and 12 steps: checks the script on CPU.")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--variants", nargs="*", default=None,
                    help="name:key=value,... (keys: batch, compile, pad, log, steps, warmup); default: one "
                    "variant from --batch/--steps/--warmup.")
    ap.add_argument("--jsonl", type=Path, default=None, help="Append each variant's JSON line here.")
    ap.add_argument("--precision", default=None, choices=["bf16", "fp32"],
                    help="Default: bf16 on CUDA, fp32 on CPU (CPU bf16 autocast is slow without AMX kernels).")
    ap.add_argument("--peak-tflops", type=float, default=None, help="Device peak (dense bf16) for MFU.")
    ap.add_argument("--ceiling-tflops", type=float, default=None,
                    help="A measured bf16 matrix-product ceiling of the device, reported next to MFU.")
    args = ap.parse_args()
    device = torch.device(args.device)
    args.precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    variants = [parse_variant(s, args) for s in (args.variants or ["default:"])]
    n_pairs = max(v["steps"] * v["batch"] for v in variants)
    pairs = [(" ".join(tree_words(t)), to_unlabeled(t)) for t in synth_treebank(n_pairs, 0)]
    tok = train_tokenizer([x for p in pairs for x in p], "word")
    encoded = encode(pairs, tok)
    for v in variants:
        out = run_variant(v, encoded, tok, args, device)
        line = json.dumps(out)
        print(line, flush=True)
        if args.jsonl is not None:
            with open(args.jsonl, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
