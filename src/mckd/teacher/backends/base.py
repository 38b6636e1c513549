"""The one small protocol every teacher backend speaks.

A backend turns a `TeacherRequest` into a `Completion` or raises `BackendError` with a reason
(the labelling run counts rejections by reason). Requests are plain data so that the cache
can key them; backend identity (model name) is part of the key, base URLs and API keys are not.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

from mckd.errors import MckdError

_ROUTING = frozenset({"group", "demos"})  # request fields that do not change the answer


@dataclass(frozen=True)
class TeacherRequest:
    """One LLM call. Exactly one of `prompt` (completion API) or `messages` (chat API) is set."""

    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content) pairs
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    grammar: str | None = None  # GBNF; backends without grammar support ignore it and say so
    seed: int | None = None
    sample_index: int = 0  # separates repeated sampled calls for the same prompt in the cache
    # Not part of the call's identity (left out of `payload`, so of the cache key): the group
    # of inputs whose prompts share a prefix (backends send a group to one slot or endpoint,
    # where the prefix is cached), and the ids of the demonstrations in the prompt (the ledger
    # records them).
    group: str | None = None
    demos: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("TeacherRequest needs exactly one of prompt or messages")

    def payload(self) -> dict[str, Any]:
        """The request as JSON-able data (what the cache hashes, with the model name added)."""
        # field by field: dataclasses.asdict deep-copies, which dominated key hashing
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _ROUTING}
        d["stop"] = list(self.stop)
        if self.messages is not None:
            d["messages"] = [list(m) for m in self.messages]
        return d


@dataclass
class Completion:
    """A successful call. `extra` carries backend details such as `cached_tokens` (prompt
    tokens served from the engine's prefix cache) and `attempts` (tries including retries)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str = "stop"
    extra: dict[str, Any] = field(default_factory=dict)


# The reasons a call can fail; the labelling run counts rejections by these slugs.
# invalid_output is not raised by backends: the run uses it when repair cannot save an output.
REASONS = (
    "timeout",  # no answer within the per-request timeout
    "server_error",  # 5xx
    "rate_limited",  # 429 (after honouring Retry-After for every retry)
    "connection",  # refused, reset or dropped connection
    "bad_response",  # unreadable body: not JSON, or no text where the protocol puts it
    "bad_request",  # 4xx other than context overflow and rate limits: retrying cannot help
    "context_overflow",  # prompt + max_tokens exceed the model's context window
    "invalid_output",  # the text came back but the task's repair could not make it valid
)


class BackendError(MckdError):
    """A failed call. `reason` is a short slug: timeout, server_error, rate_limited,
    connection, bad_response, context_overflow, ... `retryable` says whether a retry may help;
    `attempts` how many tries were made before giving up."""

    def __init__(
        self, reason: str, message: str, *, retryable: bool = False, attempts: int = 1
    ) -> None:
        self.reason = reason
        self.retryable = retryable
        self.attempts = attempts
        super().__init__(f"{reason}: {message}")


@runtime_checkable
class Backend(Protocol):
    """`model` names the model (part of the cache key); `context_size` bounds prompt+output tokens."""

    model: str
    context_size: int
    supports_grammar: bool

    async def acomplete(self, request: TeacherRequest) -> Completion: ...

    def count_tokens(self, text: str) -> int: ...

    def close(self) -> None: ...

    async def aclose(self) -> None:
        """Release what the current event loop holds (HTTP connections); safe to call twice."""
        ...


def group_slot(group: str, slots: int) -> int:
    """Which of `slots` slots (or endpoints) serves a group of inputs: the same on every run."""
    return int.from_bytes(hashlib.sha256(group.encode("utf-8")).digest()[:4], "big") % slots


def approx_tokens(text: str) -> int:
    """Rough token count (4 characters a token) where no tokenizer is at hand: estimates only."""
    return max(1, (len(text) + 3) // 4)


def complete(backend: Backend, request: TeacherRequest) -> Completion:
    """Synchronous convenience wrapper around `acomplete` (on a loop of its own, whose
    connections it closes)."""

    async def once() -> Completion:
        try:
            return await backend.acomplete(request)
        finally:
            await backend.aclose()

    return asyncio.run(once())
