"""Training throughput of a t5-base-sized student on one GPU: tokens/s and model FLOPs utilisation.

    python benchmarks/gpu_student.py                          # CUDA, t5-base shape, bf16, ~100 steps
    python benchmarks/gpu_student.py --tiny --device cpu      # a seconds-long check of the script

A randomly initialised T5 of the t5-base shape (word-level tokenizer trained on the data) is
trained with `mckd.student.train.train` (the real loop: length-bucketed batches, bf16 autocast)
on trees from the built-in synthetic treebank. The first --warmup steps are left out of the
timing. MFU = 6 * N * tokens / seconds / peak, N = parameter count, tokens = source + target
tokens (the usual approximation; `mfu_split` counts encoder parameters on source tokens and
decoder + output layer on target tokens). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from mckd.data.synth import synth_treebank
from mckd.student.config import TrainConfig
from mckd.student.model import build_t5, train_tokenizer
from mckd.student.train import Encoded, train
from mckd.tasks.trees import to_unlabeled, tree_words

PEAK_BF16_TFLOPS = {"H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k.replace(" ", "") in name.replace(" ", "")), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="A tiny T5 and 12 steps: checks the script on CPU.")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--precision", default=None, choices=["bf16", "fp32"],
                    help="Default: bf16 on CUDA, fp32 on CPU (CPU bf16 autocast is slow without AMX kernels).")
    ap.add_argument("--peak-tflops", type=float, default=None, help="Device peak (dense bf16) for MFU.")
    args = ap.parse_args()
    if args.tiny:
        args.steps, args.warmup, args.batch = min(args.steps, 12), min(args.warmup, 2), min(args.batch, 8)
    device = torch.device(args.device)
    args.precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    pairs = [(" ".join(tree_words(t)), to_unlabeled(t)) for t in synth_treebank(args.steps * args.batch, 0)]
    tok = train_tokenizer([x for p in pairs for x in p], "word")
    shape = {"d_model": 64, "d_ff": 256, "num_layers": 2, "num_heads": 4} if args.tiny else {}
    sm = build_t5("t5-base", tok, seed=0, **shape)
    data = [Encoded(tok(s)["input_ids"], tok(t, add_special_tokens=False)["input_ids"] + [sm.eos_id])
            for s, t in pairs]
    n_params = sum(p.numel() for p in sm.model.parameters())
    n_enc = sum(p.numel() for p in sm.model.encoder.parameters()) - sm.model.shared.weight.numel()
    n_dec = n_params - n_enc
    src_tokens = sum(len(d.source) for d in data)
    tgt_tokens = sum(len(d.target) for d in data)
    marks: dict[int, float] = {}

    def mark(step: int) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        marks[step] = time.perf_counter()

    cfg = TrainConfig(epochs=1, batch_size=args.batch, fidelity_sample=0, progress=False,
                      precision=args.precision, device=str(device), save_every_steps=10**6)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp:
        report = train(sm, data, cfg, Path(tmp), on_step=mark)
    steps = report.steps
    timed_steps = steps - args.warmup
    seconds = marks[steps] - marks[args.warmup]
    share = timed_steps / steps  # batches are shuffled: the timed steps carry this share of tokens
    tokens = (src_tokens + tgt_tokens) * share
    peak = peak_tflops(device, args.peak_tflops)
    flops = 6 * n_params * tokens
    flops_split = 6 * (n_enc * src_tokens + n_dec * tgt_tokens) * share
    out = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": args.precision, "params": n_params, "batch": args.batch, "steps": steps,
        "timed_steps": timed_steps, "seconds": seconds, "tokens_per_s": tokens / seconds,
        "examples_per_s": args.batch * timed_steps / seconds, "final_loss": report.final_loss,
        "achieved_tflops": flops / seconds / 1e12, "peak_tflops": peak,
        "mfu": flops / seconds / 1e12 / peak if peak else None,
        "mfu_split": flops_split / seconds / 1e12 / peak if peak else None,
        "mean_source_tokens": src_tokens / len(data), "mean_target_tokens": tgt_tokens / len(data),
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
