"""A GGUF model run in-process by llama.cpp (through `xllamacpp`), with GBNF grammars.

One in-process server, so calls are serialized; each runs in a worker thread so the event loop
(progress, cache writes) keeps going. Consecutive prompts that share a prefix (the same
demonstrations) reuse the engine's KV cache (`cache_prompt`); `cached_tokens` in the
completion says how many prompt tokens were served that way. With several slots, each slot
keeps its own prompt's cache, so the requests of one group of inputs (`TeacherRequest.group`)
all go to the same slot.

Speculative decoding (`TeacherConfig.speculative`) is llama.cpp's own: a draft model or n-gram
lookups propose tokens, the teacher evaluates them in one batch and its sampler, grammar
included, keeps the longest prefix it agrees with. Greedy answers therefore do not depend on
the drafter, and the cache key leaves it out; sampled answers may, and there it is in the key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from mckd.errors import ConfigError
from mckd.teacher import models
from mckd.teacher.backends.base import (
    BackendError,
    Completion,
    TeacherRequest,
    approx_tokens,
    group_slot,
)
from mckd.teacher.config import SpeculativeConfig, TeacherConfig

log = logging.getLogger(__name__)


def resolve_model_path(model: str, *, setting: str = "teacher.model") -> Path:
    """A path to a .gguf file, or the name of a model known to `mckd models` (fetched).
    `setting` names the option in the error."""
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if model in models.MODELS:
        return models.model_path(model)
    known = ", ".join(sorted(models.MODELS))
    raise ConfigError(f"{setting}: {model!r} is neither a .gguf file nor a known model ({known})")


def speculation_id(spec: SpeculativeConfig) -> str:
    """The drafter settings as one compact string; the draft model by file name only."""
    data = spec.model_dump(mode="json")
    data["type"] = spec.types()
    if spec.draft_model:
        data["draft_model"] = resolve_model_path(
            spec.draft_model, setting="teacher.speculative.draft_model"
        ).name
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def cache_model_name(cfg: TeacherConfig) -> str:
    """What stands for the model in cache keys: the .gguf file name, and under sampling
    (temperature > 0) with speculation on, the drafter settings too. A greedy answer is the
    teacher's argmax at every position whoever proposed the tokens (up to floating-point
    near-ties, which the thread count moves as well), so another drafter keeps the cache. A sampled answer is one draw, and which draw comes out is up to the verification
    scheme (llama.cpp also has a probabilistic acceptance that changes it), so there the
    drafter is part of the key."""
    name = resolve_model_path(cfg.model).name
    if cfg.cache_reuse:
        name += f"+cache_reuse{cfg.cache_reuse}"
    if cfg.speculative.enabled and cfg.temperature > 0:
        name += "+speculative" + speculation_id(cfg.speculative)
    return name


def _speculative_params(params: Any, cfg: TeacherConfig, xllamacpp: Any) -> None:
    """Fill llama.cpp's `CommonParams.speculative` from `cfg.speculative`."""
    spec, sp = cfg.speculative, params.speculative
    kinds = xllamacpp.common_speculative_type
    names = {"draft": "DRAFT_SIMPLE"}
    sp.types = [getattr(kinds, "COMMON_SPECULATIVE_TYPE_" + names.get(t, t.upper()))
                for t in spec.types()]
    sp.draft.n_max = spec.n_max  # the server caps every drafter's proposal with this
    sp.draft.n_min = min(spec.n_min, spec.n_max)
    sp.draft.p_min = spec.p_min
    if spec.draft_model:
        path = resolve_model_path(spec.draft_model, setting="teacher.speculative.draft_model")
        sp.draft.mparams.path = str(path)
        for cpu in (sp.draft.cpuparams, sp.draft.cpuparams_batch):
            cpu.n_threads = cfg.n_threads
    for ngram in (sp.ngram_simple, sp.ngram_map_k, sp.ngram_map_k4v):
        ngram.size_n, ngram.size_m = spec.ngram_n, spec.n_max
    sp.ngram_mod.n_match = spec.ngram_n
    sp.ngram_mod.n_max = spec.n_max
    sp.ngram_mod.n_min = max(1, min(spec.n_min, spec.n_max))


class LlamaCppBackend:
    """`cfg.model` is a .gguf path or a known model name; `cfg.context_size` and `cfg.n_threads`
    size the engine. Request timeouts do not apply: an in-process call cannot be abandoned.

    `slots` > 1 lets llama.cpp decode that many requests together (its parallel slots and
    continuous batching, each slot with `cfg.context_size` of one shared KV cache). Measured on
    a 2-core CPU it was slower than one slot (benchmarks/teacher_speed_results.md), so
    the pipeline uses one; it is kept for the benchmark and for GPU builds of llama.cpp."""

    supports_grammar = True

    def __init__(self, cfg: TeacherConfig, *, slots: int = 1) -> None:
        try:
            import xllamacpp
        except ImportError as e:
            raise ConfigError(
                "the llamacpp backend needs xllamacpp: pip install 'mckd[local]'"
            ) from e
        self.path = resolve_model_path(cfg.model)
        self.model = cache_model_name(cfg)  # names the file, not where it lives
        self.context_size = cfg.context_size
        self.speculative = cfg.speculative.types()
        # the key carries the drafter only when the run samples (see cache_model_name)
        self._sampling_keyed = cfg.temperature > 0
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = cfg.context_size * slots
        if slots > 1:
            params.n_parallel, params.kv_unified = slots, True
        params.cpuparams.n_threads = cfg.n_threads
        params.cpuparams_batch.n_threads = cfg.n_threads
        params.n_cache_reuse = cfg.cache_reuse
        params.verbosity = -1  # llama.cpp logs every slot event otherwise
        if self.speculative:
            _speculative_params(params, cfg, xllamacpp)
        start = time.perf_counter()
        try:
            self._server = xllamacpp.Server(params)
        except Exception as e:  # e.g. a draft model whose vocabulary does not match
            raise ConfigError(f"teacher: llama.cpp could not load {self.path.name} ({e})") from e
        log.info(
            "loaded %s in %.1fs (%d threads, context %d, speculative %s)",
            self.path,
            time.perf_counter() - start,
            cfg.n_threads,
            cfg.context_size,
            "+".join(self.speculative) or "off",
        )
        self.slots = slots
        self._lock = asyncio.Semaphore(slots)
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def body(self, request: TeacherRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": list(request.stop),
            "cache_prompt": True,
        }
        if self.slots > 1 and request.group is not None:
            body["id_slot"] = group_slot(request.group, self.slots)
        if request.seed is not None:
            body["seed"] = request.seed
        if request.grammar is not None:
            body["grammar"] = request.grammar
        if request.messages is not None:
            body["messages"] = [{"role": r, "content": c} for r, c in request.messages]
        else:
            body["prompt"] = request.prompt
        return body

    def _call(self, request: TeacherRequest) -> Completion:
        if self.speculative and request.temperature > 0 and not self._sampling_keyed:
            # the cache key names the drafter only for runs configured to sample, and llama.cpp
            # takes no per-request switch to turn speculation off for this one call
            raise BackendError(
                "bad_request",
                f"a sampled request (temperature {request.temperature}) to a teacher configured "
                "greedy with speculative decoding: set teacher.temperature to sample",
            )
        body = self.body(request)
        start = time.perf_counter()
        if request.messages is not None:
            data = self._server.handle_chat_completions(body)
        else:
            data = self._server.handle_completions(body)
        seconds = time.perf_counter() - start
        if not isinstance(data, dict):
            raise BackendError("bad_response", f"llama.cpp returned {type(data).__name__}")
        if "error" in data:
            err = (
                data["error"]
                if isinstance(data["error"], dict)
                else {"message": str(data["error"])}
            )
            kind, msg = str(err.get("type", "")), str(err.get("message", err))
            if "context" in kind or "context size" in msg:
                raise BackendError("context_overflow", msg)
            raise BackendError("bad_request", msg)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
        except (KeyError, IndexError, TypeError) as e:
            raise BackendError("bad_response", f"no text in llama.cpp answer ({e})") from None
        usage, timings = data.get("usage") or {}, data.get("timings") or {}
        return Completion(
            text=text or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=seconds,
            finish_reason=str(choice.get("finish_reason") or "stop"),
            extra={"cached_tokens": int(timings.get("cache_n", 0)), "timings": timings},
        )

    async def acomplete(self, request: TeacherRequest) -> Completion:
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:  # an asyncio.Semaphore belongs to one event loop
            self._lock, self._lock_loop = asyncio.Semaphore(self.slots), loop
        async with self._lock:
            return await asyncio.to_thread(self._call, request)

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)

    async def aclose(self) -> None:
        return None

    def close(self) -> None:
        self._server = None  # frees the model when the last reference goes
