"""The labelling run: pool -> cache -> backend -> repair -> append-only ledger -> pseudolabels.

Every input ends in the ledger (`ledger.jsonl` in the output directory) as a pseudolabel (raw
and repaired text; `valid` when usable as written, `repaired` when the task's repair had to
change it) or a rejection with a reason; the three are counted apart, rejections by reason,
never dropped silently. A run can be killed at any moment: each completion is in the cache as
soon as it arrives and each finished input is one ledger line, so a rerun skips what the
ledger holds, serves what the cache holds, and sends only the rest.

How a prompt is built and how an output is post-processed are parameters of `label_pool`
(`build_request`, `postprocess`). `mckd.teacher.label.label_files` (the CLI and the pipeline)
uses one path for every task: `PromptBuilder` with the task's prompt hooks, and
`samples_postprocess`, which reads each sample with the task's `read_answer` and combines
several with its `combine`. `few_shot_requests` and `repair_outputs` are minimal builders for
direct `label_pool` use. What a run would send, without sending it, is in estimate.py.

Only an `AnswerError` from the task (output it cannot read) becomes an `invalid_output`
rejection; any other exception is a bug and stops the run with its traceback in the log.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mckd.examples import Example, write_examples
from mckd.io import atomic_write
from mckd.tasks.base import AnswerError, Repaired, Task
from mckd.teacher.backends.base import (
    Backend,
    BackendError,
    Completion,
    TeacherRequest,
)
from mckd.teacher.cache import TeacherCache, request_key
from mckd.teacher.config import TeacherConfig
from mckd.teacher.ledger import COUNTS, LEDGER, LabelProgress, Ledger, Usage, outcome, read_ledger
from mckd.teacher.ray_runner import complete_on_ray

log = logging.getLogger(__name__)

LABELS = "pseudolabels.jsonl"
REJECTED = "rejected.jsonl"
USAGE = "usage.json"
DONE = "DONE"


@dataclass
class Pseudolabel:
    """What post-processing makes of an input's raw outputs. `target` None means no usable
    label (the input is rejected as invalid_output); `valid` False with a target means a
    repaired label (the repair changed it, or could not fully fix it: kept, flagged)."""

    target: str | None
    valid: bool
    problems: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


BuildRequest = Callable[[Example, int], TeacherRequest]
PostProcess = Callable[[Example, list[str]], Pseudolabel]


# ---------------------------------------------------------------- defaults


def few_shot_requests(demos: Sequence[Example], cfg: TeacherConfig) -> BuildRequest:
    """The paper's prompt with nothing task-specific: k demonstrations drawn at random per
    input, `Input: x` / `Output: y` pairs, then `Input: <x>` / `Output:`. The draw is seeded by
    (seed, input id), so a rerun rebuilds exactly the same request and finds it in the cache.
    Without `max_tokens` an answer may take 256 tokens."""
    labeled = [d for d in demos if d.target is not None]

    def build(example: Example, sample_index: int) -> TeacherRequest:
        rng = random.Random(f"{cfg.seed}:{example.id}")
        pool = [d for d in labeled if d.id != example.id]
        chosen = rng.sample(pool, min(cfg.k_demos, len(pool)))
        shots = "".join(f"Input: {d.source}\nOutput: {d.target}\n\n" for d in chosen)
        prompt = f"{shots}Input: {example.source}\nOutput:"
        common = dict(
            max_tokens=cfg.answer_tokens() or 256,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            stop=cfg.stop_strings(),
            seed=cfg.seed + sample_index if cfg.temperature > 0 else cfg.seed,
            sample_index=sample_index,
        )
        if cfg.prompt_style() == "chat":
            return TeacherRequest(messages=(("user", prompt),), **common)  # type: ignore[arg-type]
        return TeacherRequest(prompt=prompt, **common)  # type: ignore[arg-type]

    return build


def repair_outputs(task: Task | None, form: str | None = None) -> PostProcess:
    """Read each sample with `task.read_answer` in `form` (default: the task's first) and
    combine several by "mbr" consensus; with no task, the first sample's stripped text is the
    label and an empty answer is invalid output."""
    if task is not None:
        return samples_postprocess(task, lambda raw, ex: task.read_answer(
            raw, ex, form or task.prompt_forms[0], None), "mbr")

    def post(example: Example, raws: list[str]) -> Pseudolabel:
        text = raws[0].strip()
        return Pseudolabel(text or None, bool(text), [] if text else ["empty output"])

    return post


def samples_postprocess(task: Task, read: Callable[[str, Example], Repaired], how: str) -> PostProcess:
    """Each sample read back by `read` (the task's `read_answer`: an AnswerError makes that
    sample unusable, with its message as the problem); several samples are combined by the
    task's `combine` with the consensus `how`."""

    def read_one(raw: str, example: Example) -> Repaired:
        try:
            return read(raw, example)
        except AnswerError as e:
            return Repaired(None, [str(e)])

    def post(example: Example, raws: list[str]) -> Pseudolabel:
        reps = [read_one(raw, example) for raw in raws]
        if len(reps) == 1:
            rep, info = reps[0], {}
        else:
            rep, info = task.combine(example.source, reps, how)
        return Pseudolabel(rep.text, rep.valid, list(rep.problems),
                           {"consensus": info} if info else {})

    return post


@dataclass
class LabelResult:
    labels: list[Example]  # pseudolabelled inputs, pool order
    rejected: list[Example]  # target None, meta["teacher"]["reason"] says why
    usage: dict[str, Any]


# ---------------------------------------------------------------- the run


@dataclass
class _Job:
    example: Example
    requests: list[TeacherRequest]
    keys: list[str]
    error: BackendError | None = None  # the request could not be built (prompt too long)


class _Run:
    """State of one labelling pass: dedups identical requests in flight, stores completions."""

    def __init__(self, backend: Backend, cache: TeacherCache | None) -> None:
        self.backend = backend
        self.cache = cache
        self.inflight: dict[str, asyncio.Future[Completion]] = {}
        # answers made elsewhere (the Ray runner), already cached: served once as a call
        self.ready: dict[str, Completion | BackendError] = {}
        self.served: set[str] = set()

    def _from_ready(self, key: str, stats: Counter[str]) -> Completion:
        result = self.ready[key]
        first = key not in self.served
        self.served.add(key)
        if first:
            stats["calls"] += 1
        if isinstance(result, BackendError):
            stats["attempts"] += result.attempts if first else 0
            raise result
        if first:
            _count(result, stats)
        else:
            stats["cache_hits"] += 1
        return result

    async def fetch(self, req: TeacherRequest, key: str, stats: Counter[str]) -> Completion:
        if key in self.ready:
            return self._from_ready(key, stats)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                stats["cache_hits"] += 1
                return hit
        if key in self.inflight:  # the same request for another input: wait for its answer
            stats["cache_hits"] += 1
            return await asyncio.shield(self.inflight[key])
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self.inflight[key] = fut
        stats["calls"] += 1
        try:
            comp = await self.backend.acomplete(req)
        except BackendError as e:
            stats["attempts"] += e.attempts
            fut.set_exception(e)
            fut.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self.inflight.pop(key, None)
        _count(comp, stats)
        if self.cache is not None:
            self.cache.put(key, self.backend.model, req, comp)
        fut.set_result(comp)
        return comp

    async def label_one(self, job: _Job, post: PostProcess) -> dict[str, Any]:
        stats: Counter[str] = Counter()
        results: list[Any] = [job.error] if job.error else []
        if len(job.requests) == 1:  # the usual case: no task to schedule for one request
            try:
                results.append(await self.fetch(job.requests[0], job.keys[0], stats))
            except BackendError as e:
                results.append(e)
        else:
            fetches = (self.fetch(r, k, stats) for r, k in zip(job.requests, job.keys, strict=True))
            results += await asyncio.gather(*fetches, return_exceptions=True)
        for r in results:  # anything but a backend failure is a bug: let it surface
            if isinstance(r, BaseException) and not isinstance(r, BackendError):
                raise r
        raws = [r.text for r in results if isinstance(r, Completion)]
        errors = [r.reason for r in results if isinstance(r, BackendError)]
        rec: dict[str, Any] = {"id": job.example.id, "keys": job.keys}
        if job.requests and job.requests[0].demos:  # which demonstrations the prompt showed
            rec["demos"] = list(job.requests[0].demos)
        if job.requests and job.requests[0].group is not None:
            rec["group"] = job.requests[0].group
        if not raws:
            problem = str(results[0])
            rec.update(
                status="rejected",
                reason=errors[0],
                raw=[],
                target=None,
                valid=False,
                repaired=False,
                problems=[problem],
            )
        else:
            pl = _postprocess(post, job.example, raws)
            rec.update(raw=raws, target=pl.target, valid=pl.valid,
                       repaired=pl.target is not None and not pl.valid, problems=pl.problems,
                       meta=pl.meta)
            rec["status"] = "label" if pl.target is not None else "rejected"
            rec["reason"] = None if pl.target is not None else "invalid_output"
        if errors:
            rec["sample_errors"] = errors
        rec.update({k: stats[k] for k in COUNTS})
        rec["seconds"] = stats["ms"] / 1000
        return rec


def _count(comp: Completion, stats: Counter[str]) -> None:
    stats["attempts"] += int(comp.extra.get("attempts", 1))
    stats["prompt_tokens"] += comp.prompt_tokens
    stats["completion_tokens"] += comp.completion_tokens
    stats["cached_prompt_tokens"] += int(comp.extra.get("cached_tokens", 0))
    stats["ms"] += int(comp.seconds * 1000)


def _postprocess(post: PostProcess, example: Example, raws: list[str]) -> Pseudolabel:
    """Output the task cannot read is a rejection; any other failure is a bug in our code,
    which must stop the run rather than quietly empty the pool."""
    try:
        return post(example, raws)
    except AnswerError as e:
        return Pseudolabel(None, False, [str(e)])
    except Exception:
        log.exception("post-processing the answer for input %r failed", example.id)
        raise


def pending_jobs(
    pool: Sequence[Example],
    done: dict[str, dict[str, Any]],
    build: BuildRequest,
    samples: int,
    model: str,
    retry_rejected: bool,
    counts: Counter[str],
    on_skip: Callable[[], None] = lambda: None,
) -> Iterator[_Job]:
    """Inputs still to label with their requests, built as they are taken (the first call goes
    out at once, not after every prompt of a large pool is built). A ledger record counts only
    if it was made from the same requests (a changed prompt or model relabels, served by the
    cache where it can). `on_skip` is called for each input the ledger holds; `counts` gets
    `stale` (ledger records relabelled)."""
    for ex in pool:
        try:
            reqs = [build(ex, s) for s in range(samples)]
        except BackendError as e:  # e.g. the input alone overflows the context: no call to make
            yield _Job(ex, [], [], e)
            continue
        keys = [request_key(model, r) for r in reqs]
        rec = done.get(ex.id)
        if rec is not None:
            same = rec.get("keys") == keys
            failed = rec["status"] == "rejected" and rec["reason"] != "invalid_output"
            if same and not (retry_rejected and failed):
                on_skip()
                continue
            counts["stale"] += not same
        yield _Job(ex, reqs, keys)


async def alabel_pool(
    pool: Sequence[Example],
    backend: Backend,
    out_dir: str | Path,
    *,
    build_request: BuildRequest,
    postprocess: PostProcess,
    cache: TeacherCache | None,
    cfg: TeacherConfig,
    progress: bool = True,
    retry_rejected: bool = False,
    order: Sequence[Example] | None = None,
) -> LabelResult:
    """Label every input of `pool` (async version of `label_pool`), sending them in `order`
    (the pool itself, reordered; default: pool order). The output files keep pool order."""
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = [ex.id for ex in pool]
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise ValueError(f"pool has duplicate input id {dup!r}")
    done = read_ledger(out / LEDGER)
    counts: Counter[str] = Counter()
    bar = LabelProgress(total=len(pool), done=0, enabled=progress)
    if order is not None and sorted(ex.id for ex in order) != sorted(ids):
        raise ValueError("the labelling order must hold the pool's inputs, each once")
    jobs: Iterator[_Job] = pending_jobs(pool if order is None else order, done, build_request, cfg.samples, backend.model,
                                 retry_rejected, counts, on_skip=bar.skip)
    in_ledger = sum(ex.id in done for ex in pool)
    log.info("labelling %d inputs (%d in the ledger)", len(pool), in_ledger)
    run = _Run(backend, cache)
    if cfg.runner == "ray":
        todo = list(jobs)  # the cluster takes every request at once
        jobs = iter(todo)
        needed = [(k, r) for job in todo for k, r in zip(job.keys, job.requests, strict=True)]
        if needed:
            run.ready = await asyncio.to_thread(complete_on_ray, needed, cfg, backend.model, cache)
    ledger = Ledger(out / LEDGER)

    async def worker() -> None:
        # the workers share one iterator: building a job never awaits, so no two build at once
        for job in jobs:
            rec = await run.label_one(job, postprocess)
            ledger.append(rec)
            done[job.example.id] = rec
            bar.advance(rec["completion_tokens"] + rec["prompt_tokens"])

    # What exists now (the pool, the ledger read back, the prompts' parts) lives until the end:
    # keep the collector from walking it again and again while requests wait on the loop.
    gc.freeze()
    try:
        with bar:
            await asyncio.gather(
                *(worker() for _ in range(min(cfg.total_concurrency(), max(1, len(pool)))))
            )
    finally:
        gc.unfreeze()
        ledger.close()
        await backend.aclose()
    if counts["stale"]:
        log.warning("%d ledger records were made with other requests; relabelled them",
                    counts["stale"])
    return finish(pool, done, out, cfg, wall_seconds=time.perf_counter() - start)


def finish(
    pool: Sequence[Example],
    done: dict[str, dict[str, Any]],
    out: Path,
    cfg: TeacherConfig,
    *,
    wall_seconds: float,
) -> LabelResult:
    """Write pseudolabels, rejections and usage from the ledger records, then DONE last."""
    usage = Usage(wall_seconds=wall_seconds)
    labels, rejected = [], []
    for ex in pool:
        rec = done[ex.id]
        usage.add(rec)
        kind = outcome(rec)
        info = {
            "raw": rec["raw"][0] if len(rec["raw"]) == 1 else rec["raw"],
            "valid": kind == "valid",
            "repaired": kind == "repaired",
            "reason": rec["reason"],
        }
        if rec.get("problems"):
            info["problems"] = rec["problems"]
        info.update(rec.get("meta") or {})
        if rec["status"] == "label":
            labels.append(ex.with_target(rec["target"], teacher=info))
        else:
            rejected.append(ex.with_target(None, teacher=info))
    usage.cost = round(cfg.cost(usage.prompt_tokens, usage.completion_tokens,
                                usage.cached_prompt_tokens), 6)
    (out / DONE).unlink(missing_ok=True)
    write_examples(out / LABELS, labels)
    write_examples(out / REJECTED, rejected)
    report = usage.to_json()
    with atomic_write(out / USAGE) as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    with atomic_write(out / DONE) as f:
        f.write("done\n")
    log.info(
        "teacher: %d labels (%d valid, %d repaired), %d rejected %s; %d calls, %d cache hits, "
        "%d+%d tokens, cost %.4f, %.1fs",
        usage.labels,
        usage.valid,
        usage.repaired,
        report["rejected"],
        report["rejections"],
        usage.calls,
        usage.cache_hits,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cost,
        wall_seconds,
    )
    return LabelResult(labels, rejected, report)


def label_pool(pool: Sequence[Example], backend: Backend, out_dir: str | Path,
               **options: Any) -> LabelResult:
    """`alabel_pool` run to the end on an event loop of its own (same arguments): label every
    input of `pool`, resuming from `out_dir/ledger.jsonl`, and write pseudolabels.jsonl,
    rejected.jsonl, usage.json and DONE in `out_dir`."""
    return asyncio.run(alabel_pool(pool, backend, out_dir, **options))
