"""Any OpenAI-compatible HTTP server (OpenAI, vLLM, llama.cpp server, Ollama, TGI), via httpx.

Completions or chat, one endpoint or several replicas (backends/endpoints.py), bounded
concurrency on each, a per-request timeout, and retries with exponential
backoff and full jitter that honour the server's Retry-After on 429 and 503. Errors come back
as BackendError with a reason slug; only transient ones are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import time
from typing import Any

import httpx

from mckd.teacher.backends.base import BackendError, Completion, TeacherRequest, approx_tokens
from mckd.teacher.backends.endpoints import Endpoint, EndpointPool, client_shards
from mckd.teacher.config import TeacherConfig

log = logging.getLogger(__name__)

# Phrases servers use when prompt + max_tokens do not fit (OpenAI, vLLM, llama.cpp, TGI).
_OVERFLOW_MARKS = (
    "context length",
    "context_length",
    "context size",
    "exceed_context",
    "maximum context",
    "too many tokens",
    "input validation error",
)


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


class OpenAIBackend:
    """One OpenAI-compatible server, or several replicas of it (`base_url` as a list). The httpx
    clients and the concurrency bounds belong to the event loop that first uses them; a call
    from another loop gets its own."""

    supports_grammar: bool

    def __init__(self, cfg: TeacherConfig) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.context_size = cfg.context_size
        self.supports_grammar = cfg.grammar_field != "none"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: EndpointPool | None = None

    # -- plumbing
    def _session(self) -> EndpointPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            headers = {"Content-Type": "application/json"}
            key = self.cfg.api_key()
            if key:
                headers["Authorization"] = f"Bearer {key}"
            n = self.cfg.concurrency
            shards, per_client = client_shards(n)
            limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
            # one TLS context for all clients: each builds its own otherwise (loading the CA
            # bundle, tens of ms each, with the event loop blocked)
            tls = httpx.create_ssl_context()

            def client(url: str) -> httpx.AsyncClient:
                return httpx.AsyncClient(base_url=url + "/", headers=headers, verify=tls,
                                         timeout=httpx.Timeout(self.cfg.timeout_s), limits=limits)

            endpoints = [
                Endpoint(url=url, clients=[client(url) for _ in range(shards)], capacity=n)
                for url in self.cfg.base_urls()
            ]
            self._pool = EndpointPool(
                endpoints, backoff_s=self.cfg.backoff_s, backoff_max_s=self.cfg.backoff_max_s
            )
            self._loop = loop
        return self._pool

    def body(self, request: TeacherRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for a request."""
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        if request.grammar is not None and self.supports_grammar:
            if self.cfg.grammar_field == "structured_outputs":
                body["structured_outputs"] = {"grammar": request.grammar}
            else:
                body[self.cfg.grammar_field] = request.grammar
        if request.messages is not None:
            body["messages"] = [{"role": r, "content": c} for r, c in request.messages]
            return "chat/completions", body
        body["prompt"] = request.prompt
        return "completions", body

    async def acomplete(self, request: TeacherRequest) -> Completion:
        pool = self._session()
        path, body = self.body(request)
        failed_on: set[str] = set()  # endpoints this request failed on: its retries go elsewhere
        attempt = 0
        while True:
            attempt += 1
            ep = await pool.acquire(failed_on)
            start = time.perf_counter()
            try:
                with ep.client() as client:
                    completion = await self._attempt(client, path, body)
            except BackendError as err:
                wait = getattr(err, "retry_after", None)
                pool.release(ep, failed=err.retryable, retry_after=wait)
                err.attempts = attempt
                if not err.retryable or attempt > self.cfg.retries:
                    raise
                failed_on.add(ep.url)
                if len(failed_on) == len(pool.endpoints):  # failed everywhere: avoid the latest
                    failed_on = {ep.url}
                # another endpoint that is up takes the retry at once; else back off
                delay = 0.0 if pool.another_up(failed_on) else self._backoff(attempt, wait)
                log.debug("attempt %d on %s failed (%s); retrying in %.2fs",
                          attempt, ep.url, err, delay)
            except BaseException:
                pool.release(ep, failed=None)  # cancelled: the slot is free, nothing learned
                raise
            else:
                pool.release(ep, failed=False)
                completion.seconds = time.perf_counter() - start
                completion.extra["attempts"] = attempt
                return completion
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after  # the server knows when it can take the request again
        ceiling = min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    async def _attempt(
        self, client: httpx.AsyncClient, path: str, body: dict[str, Any]
    ) -> Completion:
        try:
            # httpx's timeout bounds each read; the outer one bounds the whole exchange, so a
            # server that trickles bytes cannot hold a request forever.
            async with asyncio.timeout(self.cfg.timeout_s):
                resp = await client.post(path, json=body)
        except TimeoutError:
            raise BackendError(
                "timeout", f"no answer in {self.cfg.timeout_s}s", retryable=True
            ) from None
        except httpx.TimeoutException as e:
            raise BackendError(
                "timeout",
                f"no answer in {self.cfg.timeout_s}s ({type(e).__name__})",
                retryable=True,
            ) from None
        except (httpx.TransportError, OSError) as e:
            raise BackendError("connection", f"{type(e).__name__}: {e}", retryable=True) from None
        if resp.status_code != 200:
            raise self._http_error(resp)
        return self._parse(resp)

    def _http_error(self, resp: httpx.Response) -> BackendError:
        code, text = resp.status_code, resp.text[:300]
        wait = retry_after_seconds(resp.headers.get("retry-after"))
        if code == 429:
            err = BackendError("rate_limited", f"HTTP 429: {text}", retryable=True)
        elif code >= 500:
            err = BackendError("server_error", f"HTTP {code}: {text}", retryable=True)
        elif code in (400, 413, 422) and any(m in text.lower() for m in _OVERFLOW_MARKS):
            err = BackendError("context_overflow", f"HTTP {code}: {text}")
        else:
            err = BackendError("bad_request", f"HTTP {code}: {text}")
        if code in (429, 503):
            err.retry_after = wait  # type: ignore[attr-defined]
        return err

    def _parse(self, resp: httpx.Response) -> Completion:
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
            if not isinstance(text, str):
                raise TypeError(f"text is {type(text).__name__}")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as e:
            raise BackendError(
                "bad_response",
                f"unreadable response ({type(e).__name__}: {e}): {resp.text[:120]!r}",
                retryable=True,
            ) from None
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens")
        if cached is None:
            cached = (data.get("timings") or {}).get("cache_n")
        extra: dict[str, Any] = {}
        if cached is not None:
            extra["cached_tokens"] = int(cached)
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=str(choice.get("finish_reason") or "stop"),
            extra=extra,
        )

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool, self._loop = self._pool, None, None
            await pool.aclose()

    def close(self) -> None:
        """Drop the clients; connections of a loop that has ended close with their sockets."""
        self._pool, self._loop = None, None
