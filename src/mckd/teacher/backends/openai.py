"""Any OpenAI-compatible HTTP server (OpenAI, vLLM, llama.cpp server, Ollama, TGI), via aiohttp.

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
import urllib.request
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from mckd.teacher.backends.base import (
    BackendError,
    Completion,
    TeacherRequest,
    approx_tokens,
    group_slot,
)
from mckd.teacher.backends.endpoints import Endpoint, EndpointPool
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


def env_proxy(url: str) -> dict[str, Any]:
    """The proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, as curl
    and the openai SDK read them), with its credentials, as arguments of a request. Read once
    per endpoint: aiohttp's `trust_env` reads the environment and ~/.netrc again on every
    request, in a thread, which costs more client CPU than the request itself."""
    target = URL(url)
    if target.host is None or urllib.request.proxy_bypass(target.host):
        return {}
    proxy = urllib.request.getproxies().get(target.scheme)
    if not proxy:
        return {}
    proxy_url = URL(proxy if "://" in proxy else f"http://{proxy}")
    out: dict[str, Any] = {"proxy": proxy_url.with_user(None)}
    auth = aiohttp.BasicAuth.from_url(proxy_url)
    if auth is not None:
        # to the proxy only: on the CONNECT of a TLS tunnel, or on the request itself when it
        # goes to the proxy in the clear (aiohttp sends `proxy_headers` only on a CONNECT)
        where = "proxy_headers" if target.scheme == "https" else "headers"
        out[where] = {"Proxy-Authorization": auth.encode()}
    return out


class OpenAIBackend:
    """One OpenAI-compatible server, or several replicas of it (`base_url` as a list). The HTTP
    sessions and the concurrency bounds belong to the event loop that first uses them; a call
    from another loop gets its own. aiohttp rather than httpx: a quarter of the client CPU per
    request (benchmarks/http_client_results.md), which decides throughput when one process
    keeps hundreds of requests in flight."""

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
            self.close()  # the sessions of a loop that has ended, if any
            headers = {"Content-Type": "application/json"}
            key = self.cfg.api_key()
            if key:
                headers["Authorization"] = f"Bearer {key}"
            n = self.cfg.concurrency
            # the connect and each read are bounded here; the whole exchange in _attempt
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self.cfg.timeout_s, sock_read=self.cfg.timeout_s
            )

            def session() -> aiohttp.ClientSession:
                return aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=n), headers=headers, timeout=timeout
                )

            endpoints = [
                Endpoint(url=url, session=session(), capacity=n,
                         urls={p: URL(f"{url}/{p}") for p in ("completions", "chat/completions")},
                         request_args=env_proxy(url))
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
        payload = json.dumps(body).encode()
        failed_on: set[str] = set()  # endpoints this request failed on: its retries go elsewhere
        # a group's requests share a prompt prefix: one endpoint's prefix cache serves them
        home = None if request.group is None else group_slot(request.group, len(pool.endpoints))
        attempt = 0
        while True:
            attempt += 1
            ep = await pool.acquire(failed_on, home)
            start = time.perf_counter()
            try:
                completion = await self._attempt(ep, path, payload)
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

    async def _attempt(self, ep: Endpoint, path: str, payload: bytes) -> Completion:
        try:
            # the session's timeouts bound the connect and each read; this one bounds the whole
            # exchange, so a server that trickles bytes cannot hold a request forever.
            async with (
                asyncio.timeout(self.cfg.timeout_s),
                ep.session.post(ep.urls[path], data=payload, **ep.request_args) as resp,
            ):
                status, headers, raw = resp.status, resp.headers, await resp.read()
        except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
            raise BackendError(
                "timeout", f"no answer in {self.cfg.timeout_s}s", retryable=True
            ) from None
        except (aiohttp.ClientError, OSError) as e:
            raise BackendError("connection", f"{type(e).__name__}: {e}", retryable=True) from None
        if status != 200:
            raise self._http_error(status, headers, raw)
        return self._parse(raw)

    def _http_error(
        self, code: int, headers: Mapping[str, str], raw: bytes
    ) -> BackendError:
        text = raw[:600].decode("utf-8", "replace")[:300]
        wait = retry_after_seconds(headers.get("Retry-After"))
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

    def _parse(self, raw: bytes) -> Completion:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
            if not isinstance(text, str):
                raise TypeError(f"text is {type(text).__name__}")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as e:
            raise BackendError(
                "bad_response",
                f"unreadable response ({type(e).__name__}: {e}): {raw[:120]!r}",
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
        """Forget the sessions. Every path that runs requests awaits `aclose` on its own loop
        first; this only drops what a loop that ended without it left behind."""
        if self._pool is not None:
            for ep in self._pool.endpoints:
                ep.session.detach()  # closed without touching a connector whose loop is gone
        self._pool, self._loop = None, None
