"""A deterministic backend for unit tests: answers with a function of the request, and can be
told to fail in given ways. Never a default anywhere else."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from mckd.teacher.backends.base import BackendError, Completion, TeacherRequest, approx_tokens

RETRYABLE = {"timeout", "server_error", "rate_limited", "connection", "bad_response"}


def last_input(request: TeacherRequest) -> str:
    """The text after the last `Input:` in the prompt (or last message): the item being labelled."""
    text = request.prompt if request.prompt is not None else request.messages[-1][1]  # type: ignore[index]
    tail = text.rsplit("Input:", 1)[-1]
    return tail.split("\nOutput:", 1)[0].strip()


class FakeBackend:
    """`respond(request) -> text` makes the answer (default: echo the last input).
    `fail(request, attempt) -> reason | None` raises BackendError(reason) on that attempt
    (attempts count per distinct request from 1); `calls` lists every request received."""

    def __init__(
        self,
        respond: Callable[[TeacherRequest], str] | None = None,
        *,
        fail: Callable[[TeacherRequest, int], str | None] | None = None,
        model: str = "fake",
        delay_s: float = 0.0,
        context_size: int = 4096,
        supports_grammar: bool = True,
    ) -> None:
        self.respond = respond or last_input
        self.fail = fail
        self.model = model
        self.delay_s = delay_s
        self.context_size = context_size
        self.supports_grammar = supports_grammar
        self.calls: list[TeacherRequest] = []
        self._attempts: Counter[TeacherRequest] = Counter()

    async def acomplete(self, request: TeacherRequest) -> Completion:
        self.calls.append(request)
        self._attempts[request] += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        reason = self.fail(request, self._attempts[request]) if self.fail else None
        if reason is not None:
            raise BackendError(
                reason, "injected by the fake backend", retryable=reason in RETRYABLE
            )
        prompt = (
            request.prompt
            if request.prompt is not None
            else "\n".join(c for _, c in request.messages or ())
        )
        text = self.respond(request)
        return Completion(text, approx_tokens(prompt), approx_tokens(text), self.delay_s)

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)

    async def aclose(self) -> None:
        return None

    def close(self) -> None:
        return None
