"""A GGUF model run in-process by llama.cpp (through `xllamacpp`), with GBNF grammars.

One in-process server, so calls are serialized; each runs in a worker thread so the event loop
(progress, cache writes) keeps going. Consecutive prompts that share a prefix (the same
demonstrations) reuse the engine's KV cache; `cached_tokens` in the completion says how many
prompt tokens were served that way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from mckd.errors import ConfigError
from mckd.teacher.backends.base import BackendError, Completion, TeacherRequest, approx_tokens
from mckd.teacher.config import TeacherConfig

log = logging.getLogger(__name__)


def resolve_model_path(model: str) -> Path:
    """A path to a .gguf file, or the name of a model known to `mckd models` (fetched)."""
    path = Path(model).expanduser()
    if path.is_file():
        return path
    from mckd.teacher import models  # local: only needed for names

    if model in models.MODELS:
        return models.model_path(model)
    known = ", ".join(sorted(models.MODELS))
    raise ConfigError(
        f"teacher.model: {model!r} is neither a .gguf file nor a known model ({known})"
    )


class LlamaCppBackend:
    """`cfg.model` is a .gguf path or a known model name; `cfg.context_size` and `cfg.n_threads`
    size the engine. Request timeouts do not apply: an in-process call cannot be abandoned."""

    supports_grammar = True

    def __init__(self, cfg: TeacherConfig) -> None:
        try:
            import xllamacpp
        except ImportError as e:
            raise ConfigError(
                "the llamacpp backend needs xllamacpp: pip install 'mckd[local]'"
            ) from e
        self.path = resolve_model_path(cfg.model)
        self.model = self.path.name  # the cache key names the file, not where it lives
        self.context_size = cfg.context_size
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = cfg.context_size
        params.cpuparams.n_threads = cfg.n_threads
        params.cpuparams_batch.n_threads = cfg.n_threads
        params.verbosity = -1  # llama.cpp logs every slot event otherwise
        start = time.perf_counter()
        self._server = xllamacpp.Server(params)
        log.info(
            "loaded %s in %.1fs (%d threads, context %d)",
            self.path,
            time.perf_counter() - start,
            cfg.n_threads,
            cfg.context_size,
        )
        self._lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def body(self, request: TeacherRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": list(request.stop),
        }
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
        if self._lock_loop is not loop:  # an asyncio.Lock belongs to one event loop
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            return await asyncio.to_thread(self._call, request)

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)

    async def aclose(self) -> None:
        return None

    def close(self) -> None:
        self._server = None  # frees the model when the last reference goes
