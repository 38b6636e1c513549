"""The transformers teacher backend on a GPU: batched generation gives the same text as one
request at a time (tiny random Llama, fp32 and bf16), and throughput of batch sizes 1/8/32 on a
random 12-layer, 1024-wide Llama (random weights: only speed counts; 64 prompts of ~100 words,
64 new tokens each, greedy, bf16).

    python benchmarks/bench_hf_batching.py      # needs a CUDA device; also writes $OUT/gpu_check.json
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from mckd.teacher.backends.base import Completion, TeacherRequest, complete
from mckd.teacher.backends.hf import TransformersBackend
from mckd.teacher.config import TeacherConfig


def make_model(path: str, n_words: int, hidden: int, layers: int, heads: int, ctx: int) -> None:
    """A random Llama with a word-level tokenizer, saved like a hub checkpoint."""
    torch.manual_seed(0)
    words = ["[PAD]", "[UNK]", "[EOS]", "Input:", "Output:", "(", ")"] + [
        f"w{i}" for i in range(n_words)
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    fast.save_pretrained(path)
    cfg = LlamaConfig(
        vocab_size=len(words),
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=ctx,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=None,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)


def run_all(backend: TransformersBackend, requests: list[TeacherRequest]) -> list[Completion]:
    async def together() -> list[Completion]:
        return await asyncio.gather(*(backend.acomplete(r) for r in requests))

    return asyncio.run(together())


def check_batched_equals_single(out: dict) -> None:
    make_model("/tmp/tiny", 40, 32, 2, 4, 64)
    reqs = [
        TeacherRequest(prompt=f"Input: w{i} w{i + 1} {'w3 ' * i}Output:", max_tokens=6)
        for i in range(6)
    ]
    for dtype in ("float32", "bfloat16"):
        cfg = TeacherConfig(
            backend="transformers", model="/tmp/tiny", batch_size=4, device="cuda", dtype=dtype
        )
        backend = TransformersBackend(cfg)
        single = [complete(backend, r).text for r in reqs]
        batched = [c.text for c in run_all(backend, reqs)]
        out[f"tiny_{dtype}_batched_equals_single"] = batched == single


def throughput(out: dict) -> None:
    make_model("/tmp/mid", 32000, 1024, 12, 16, 512)
    words = lambda i: " ".join(f"w{(i * 37 + j * 11) % 32000}" for j in range(100))  # noqa: E731
    prompts = [
        TeacherRequest(prompt=f"Input: {words(i)} Output:", max_tokens=64) for i in range(64)
    ]
    for bs in (1, 8, 32):
        cfg = TeacherConfig(
            backend="transformers",
            model="/tmp/mid",
            batch_size=bs,
            device="cuda",
            dtype="bfloat16",
            context_size=512,
        )
        backend = TransformersBackend(cfg)
        run_all(backend, prompts[:bs])  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        res = run_all(backend, prompts)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        tokens = sum(c.completion_tokens for c in res)
        out[f"mid_bs{bs}"] = {
            "seconds": round(seconds, 3),
            "generated_tokens": tokens,
            "tok_per_s": round(tokens / seconds, 1),
        }
        del backend
        torch.cuda.empty_cache()


def main() -> None:
    out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    check_batched_equals_single(out)
    throughput(out)
    print(json.dumps(out, indent=1))
    Path(os.environ.get("OUT", "/tmp"), "gpu_check.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
