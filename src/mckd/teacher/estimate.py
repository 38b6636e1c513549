"""What a labelling run would send, without sending anything (`mckd label --dry-run`, `mckd run
--dry-run`): requests not in the ledger or the cache, their tokens, the prompt tokens a
server's prefix cache would serve, cost and time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mckd.examples import Example
from mckd.teacher.cache import TeacherCache
from mckd.teacher.config import TeacherConfig
from mckd.teacher.engine import BuildRequest, pending_jobs
from mckd.teacher.ledger import LEDGER, read_ledger


@dataclass
class Estimate:
    inputs: int
    in_ledger: int
    requests: int
    cached: int
    calls: int
    prompt_tokens: int
    # calls whose prompt starts as the previous call's did, and the tokens of those prefixes
    # (what a server that keeps the last prompt's cache, as llama.cpp does, would not reread)
    prefix_hits: int
    cached_prompt_tokens: int
    completion_tokens: int  # expected
    completion_tokens_max: int  # if every call ran to max_tokens
    cost: float
    cost_max: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _common_prefix(a: str, b: str) -> int:
    """How many leading characters `a` and `b` share (a binary search over slice compares,
    which run in C: prompts sharing thousands of characters cost microseconds)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def estimate_labelling(
    pool: Sequence[Example],
    out_dir: str | Path | None,
    *,
    build_request: BuildRequest,
    cache: TeacherCache | None,
    cfg: TeacherConfig,
    count_tokens: Callable[[str], int],
    model: str,
    expected_output_tokens: int | None = None,
    parallel: int = 1,
    order: Sequence[Example] | None = None,
) -> Estimate:
    """What a run would send, without sending anything: requests not in the ledger or cache, their
    prompt tokens, expected output tokens (`expected_output_tokens` per call, at most each
    request's max_tokens; default max_tokens), cost and time at the configured throughput with
    `parallel` request streams. Calls are taken in `order` (default: pool order), as the run
    sends them; each call's prompt prefix shared with the call before it counts as cached."""
    done = (
        read_ledger(Path(out_dir) / LEDGER, truncate=False)
        if out_dir is not None and Path(out_dir, LEDGER).exists()
        else {}
    )
    todo = list(pending_jobs(pool if order is None else order, done, build_request, cfg.samples, model, False, Counter()))
    requests = cached = calls = prompt_tokens = completion = completion_max = 0
    hits = cached_tokens = 0
    previous = ""
    seen: set[str] = set()
    for job in todo:
        for req, key in zip(job.requests, job.keys, strict=True):
            requests += 1
            if key in seen or (cache is not None and cache.contains(key)):
                cached += 1
                continue
            seen.add(key)
            calls += 1
            text = (
                req.prompt
                if req.prompt is not None
                else "\n".join(c for _, c in req.messages or ())
            )
            tokens = count_tokens(text)
            prompt_tokens += tokens
            shared = _common_prefix(previous, text)
            if shared:
                hits += 1
                cached_tokens += min(count_tokens(text[:shared]), tokens)
            previous = text
            completion += min(req.max_tokens, expected_output_tokens or req.max_tokens)
            completion_max += req.max_tokens
    seconds = (
        (prompt_tokens - cached_tokens) / cfg.est_prompt_tokens_per_s + completion / cfg.est_completion_tokens_per_s
    )
    return Estimate(
        inputs=len(pool),
        in_ledger=len(pool) - len(todo),
        requests=requests,
        cached=cached,
        calls=calls,
        prompt_tokens=prompt_tokens,
        prefix_hits=hits,
        cached_prompt_tokens=cached_tokens,
        completion_tokens=completion,
        completion_tokens_max=completion_max,
        cost=cfg.cost(prompt_tokens, completion, cached_tokens),
        cost_max=cfg.cost(prompt_tokens, completion_max, cached_tokens),
        seconds=seconds / max(1, parallel),
    )
