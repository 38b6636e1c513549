"""A local Hugging Face causal LM as the teacher, with batched generation (for users with a GPU).

Requests that arrive together and share decoding settings are generated as one left-padded
batch of up to `batch_size`. Greedy when temperature is 0, sampling otherwise (seeded per
batch). GBNF grammars are not supported here: use the llama.cpp backend or a server for them.

A group's shared prompt prefix (`TeacherRequest.group`) is not kept between batches: the
inputs of a group arrive together and are read in one batched forward pass, which on a GPU
costs little beside decoding. Reusing a prefix's key/value cache across rows would need the
prefix once, copied per row, and suffixes of different lengths padded between prefix and
suffix with position ids to match, which `generate` does not support for a batch of
different continuations; for prefix caching across requests, serve the model with vLLM or
llama.cpp and use the OpenAI-compatible backend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mckd.errors import ConfigError
from mckd.teacher.backends.base import BackendError, Completion, TeacherRequest
from mckd.teacher.config import TeacherConfig

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    request: TeacherRequest
    future: asyncio.Future[Completion]


def _decoding(req: TeacherRequest) -> tuple[Any, ...]:
    """Requests with equal decoding settings can share a batch."""
    return (req.max_tokens, req.temperature, req.top_p, req.stop, req.seed)


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """Text up to the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class _StopOnText:
    """Stop a sequence once its generated text contains a stop string. (transformers' own
    `stop_strings` needs a tokenizer whose vocabulary it can map; this works with any.)"""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_len: int) -> None:
        self.tokenizer, self.stops, self.prompt_len = tokenizer, stops, prompt_len

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        texts = self.tokenizer.batch_decode(
            input_ids[:, self.prompt_len :], skip_special_tokens=True
        )
        hit = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(hit, dtype=torch.bool, device=input_ids.device)


class TransformersBackend:
    """`cfg.model` is a Hugging Face id or a local directory; `cfg.device`, `cfg.dtype` and
    `cfg.batch_size` size the engine."""

    supports_grammar = False

    def __init__(self, cfg: TeacherConfig) -> None:
        if not cfg.model:
            raise ConfigError(
                "teacher.model: the transformers backend needs a model id or directory"
            )
        self.torch = torch
        self.model = cfg.model
        self.batch_size = cfg.batch_size
        device = (
            cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        dtype = {
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }.get(cfg.dtype, torch.bfloat16 if device.startswith("cuda") else torch.float32)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.model)
            self.lm = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype).to(device).eval()
        except OSError as e:
            raise ConfigError(f"teacher.model: cannot load {cfg.model!r} ({e})") from None
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left so outputs line up
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        limit = getattr(self.lm.config, "max_position_embeddings", None) or cfg.context_size
        self.context_size = min(cfg.context_size, limit)
        self.device = device
        self._pending: list[_Pending] = []
        self._worker: asyncio.Task[None] | None = None
        self._warned_grammar = False

    def _prompt_text(self, req: TeacherRequest) -> str:
        if req.prompt is not None:
            return req.prompt
        messages = [{"role": r, "content": c} for r, c in req.messages or ()]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        return "\n".join(m["content"] for m in messages)

    async def acomplete(self, request: TeacherRequest) -> Completion:
        if request.grammar is not None and not self._warned_grammar:
            log.warning("the transformers backend ignores grammars; outputs are unconstrained")
            self._warned_grammar = True
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(request, fut))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        """Generate pending requests batch by batch until none are left."""
        await asyncio.sleep(0)  # let callers scheduled in the same tick join the first batch
        while self._pending:
            key = _decoding(self._pending[0].request)
            batch = [p for p in self._pending if _decoding(p.request) == key][: self.batch_size]
            self._pending = [p for p in self._pending if p not in batch]
            try:
                results = await asyncio.to_thread(self.generate, [p.request for p in batch])
            except Exception as e:  # a failed batch fails its requests, not the run
                err = (
                    e
                    if isinstance(e, BackendError)
                    else BackendError("server_error", f"{type(e).__name__}: {e}")
                )
                results = [err] * len(batch)
            for p, r in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_exception(r) if isinstance(
                        r, BaseException
                    ) else p.future.set_result(r)
            await asyncio.sleep(0)

    def generate(self, requests: list[TeacherRequest]) -> list[Completion | BackendError]:
        """One batch with shared decoding settings; over-long prompts fail alone."""
        torch, req0 = self.torch, requests[0]
        texts = [self._prompt_text(r) for r in requests]
        lengths = [len(self.tokenizer(t)["input_ids"]) for t in texts]
        out: list[Completion | BackendError] = [
            BackendError(
                "context_overflow",
                f"{n} prompt tokens + {r.max_tokens} > context {self.context_size}",
            )
            for n, r in zip(lengths, requests, strict=True)
        ]
        fits = [i for i, n in enumerate(lengths) if n + req0.max_tokens <= self.context_size]
        if not fits:
            return out
        enc = self.tokenizer([texts[i] for i in fits], return_tensors="pt", padding=True).to(
            self.device
        )
        kwargs: dict[str, Any] = {
            "max_new_tokens": req0.max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if req0.temperature > 0:
            kwargs.update(do_sample=True, temperature=req0.temperature, top_p=req0.top_p)
            if req0.seed is not None:
                torch.manual_seed(req0.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if req0.stop:
            kwargs["stopping_criteria"] = [
                _StopOnText(self.tokenizer, req0.stop, enc["input_ids"].shape[1])
            ]
        start = time.perf_counter()
        with torch.inference_mode():
            seqs = self.lm.generate(**enc, **kwargs)
        seconds = (time.perf_counter() - start) / len(fits)
        new = seqs[:, enc["input_ids"].shape[1] :]
        for row, i in enumerate(fits):
            ids = new[row].tolist()
            n_gen = next(
                (k + 1 for k, t in enumerate(ids) if t == self.tokenizer.eos_token_id), len(ids)
            )
            text = self.tokenizer.decode(ids[:n_gen], skip_special_tokens=True)
            text, stopped = cut_at_stop(text, req0.stop)
            finish = "stop" if stopped or n_gen < len(ids) else "length"
            out[i] = Completion(text, lengths[i], n_gen, seconds, finish, {"batch": len(fits)})
        return out

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])

    async def aclose(self) -> None:
        return None

    def close(self) -> None:
        self._pending = []
