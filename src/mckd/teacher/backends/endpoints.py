"""Several replicas of one OpenAI-compatible server, used as one: which endpoint takes a request.

Each endpoint has its own connections and its own bound on requests in flight. A request
goes to the least loaded endpoint that is up (ties in turn), or, for a request of a group of
inputs that share a prompt prefix, to the group's own endpoint while it has a free slot, so the
server's prefix cache serves the group; an attempt that fails with a
transient error (timeout, 5xx, 429, dropped connection) marks that endpoint's failure, and its
retry goes to another endpoint where one is up. Two failures in a row, or a Retry-After, take an
endpoint out for a while (doubling up to `backoff_max_s` while it keeps failing); one success
brings it back. When every endpoint is down, requests still go to the one back soonest, so a
single endpoint behaves exactly as it would alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

log = logging.getLogger(__name__)

FAILURES_TO_DOWN = 2  # one failure in a busy stream is noise; two in a row is an endpoint in trouble


@dataclass
class Endpoint:
    url: str
    session: aiohttp.ClientSession  # its connector holds up to `capacity` connections
    capacity: int
    urls: dict[str, URL] = field(default_factory=dict)  # by API path, parsed once
    request_args: dict[str, Any] = field(default_factory=dict)  # e.g. the proxy, for every request
    inflight: int = 0
    failures: int = 0  # consecutive
    down_until: float = 0.0  # time.monotonic() before which no request is sent here
    answered: int = 0
    failed: int = 0

    def up(self, now: float) -> bool:
        return self.down_until <= now


class EndpointPool:
    """The endpoints of one event loop. `acquire` waits for a slot; `release` returns it with
    the attempt's outcome."""

    def __init__(self, endpoints: list[Endpoint], *, backoff_s: float, backoff_max_s: float) -> None:
        self.endpoints = endpoints
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._changed = asyncio.Event()
        self._turn = 0

    async def acquire(self, avoid: set[str], home: int | None = None) -> Endpoint:
        """A slot on an endpoint, preferring one that is up and not in `avoid` (the endpoints
        this request already failed on), and of those the `home` endpoint (the index of the
        one whose prefix cache holds the request's group) while it has a free slot."""
        while True:
            # no await between clear, pick and wait: a release in between is never missed
            self._changed.clear()
            now = time.monotonic()
            ep = self._pick(avoid, now, home)
            if ep is not None:
                ep.inflight += 1
                return ep
            wake = [e.down_until - now for e in self.endpoints if not e.up(now)]
            try:
                async with asyncio.timeout(min(wake) if wake else None):
                    await self._changed.wait()
            except TimeoutError:
                pass  # an endpoint's pause is over: pick again

    def _pick(self, avoid: set[str], now: float, home: int | None = None) -> Endpoint | None:
        up = [e for e in self.endpoints if e.up(now)]
        # an endpoint this request has not failed on, even if it means waiting for its slot
        wanted = [e for e in up if e.url not in avoid] or up
        if not wanted:  # all down: keep trying the one due back first (the caller backs off)
            wanted = [min(self.endpoints, key=lambda e: e.down_until)]
        choice = [e for e in wanted if e.inflight < e.capacity]
        if not choice:
            return None
        if home is not None and self.endpoints[home] in choice:
            return self.endpoints[home]
        n = len(self.endpoints)
        order = {id(e): (i - self._turn) % n for i, e in enumerate(self.endpoints)}
        self._turn += 1
        return min(choice, key=lambda e: (e.inflight / e.capacity, order[id(e)]))

    def release(self, ep: Endpoint, *, failed: bool | None, retry_after: float | None = None) -> None:
        """Give the slot back. `failed`: a transient failure that says something about the
        endpoint (not about the request); None: no outcome (the attempt was cancelled)."""
        ep.inflight -= 1
        if failed is None:
            pass
        elif not failed:
            ep.answered += 1
            ep.failures, ep.down_until = 0, 0.0
        else:
            ep.failed += 1
            ep.failures += 1
            pause = retry_after or 0.0
            if ep.failures >= FAILURES_TO_DOWN:
                steps = ep.failures - FAILURES_TO_DOWN
                pause = max(pause, min(self.backoff_max_s, self.backoff_s * 2**steps))
            if pause:
                was_up = ep.up(time.monotonic())
                ep.down_until = max(ep.down_until, time.monotonic() + pause)
                if was_up and len(self.endpoints) > 1:
                    log.info("endpoint %s: %d failures in a row, paused %.2fs",
                             ep.url, ep.failures, pause)
        self._changed.set()

    def another_up(self, avoid: set[str]) -> bool:
        """Whether an endpoint outside `avoid` is up now (a retry there needs no backoff)."""
        now = time.monotonic()
        return any(e.up(now) and e.url not in avoid for e in self.endpoints)

    async def aclose(self) -> None:
        for ep in self.endpoints:
            await ep.session.close()
        if len(self.endpoints) > 1:
            for ep in self.endpoints:
                log.info("endpoint %s: %d answers, %d failed attempts",
                         ep.url, ep.answered, ep.failed)
