"""The labelling run: pool -> cache -> backend -> repair -> append-only ledger -> pseudolabels.

Every input ends in the ledger (`ledger.jsonl` in the output directory) as a pseudolabel (raw
and repaired text; `valid` when usable as written, `repaired` when the task's repair had to
change it) or a rejection with a reason; the three are counted apart, rejections by reason,
never dropped silently. A run can be killed at any moment: each completion is in the cache as
soon as it arrives and each finished input is one ledger line, so a rerun skips what the
ledger holds, serves what the cache holds, and sends only the rest.

How a prompt is built and how an output is post-processed are parameters of `label_pool`
(`build_request`, `postprocess`). `label_files` (the CLI and the pipeline) uses one path for
every task: `PromptBuilder` with the task's prompt hooks, and `samples_postprocess`, which reads
each sample with the task's `read_answer` and combines several with its `combine`.
`few_shot_requests` and `repair_outputs` are minimal builders for direct `label_pool` use.

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

from mckd.errors import ConfigError
from mckd.examples import Example, write_examples
from mckd.io import atomic_write
from mckd.tasks.base import AnswerError, Repaired, Task
from mckd.teacher.backends.base import (
    Backend,
    BackendError,
    Completion,
    TeacherRequest,
    approx_tokens,
)
from mckd.teacher.cache import TeacherCache, request_key
from mckd.teacher.config import TeacherConfig
from mckd.teacher.ledger import COUNTS, LEDGER, LabelProgress, Ledger, Usage, outcome, read_ledger

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


def _jobs(
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
) -> LabelResult:
    """Label every input of `pool` (async version of `label_pool`)."""
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
    jobs: Iterator[_Job] = _jobs(pool, done, build_request, cfg.samples, backend.model,
                                 retry_rejected, counts, on_skip=bar.skip)
    in_ledger = sum(ex.id in done for ex in pool)
    log.info("labelling %d inputs (%d in the ledger)", len(pool), in_ledger)
    run = _Run(backend, cache)
    if cfg.runner == "ray":
        from mckd.teacher.ray_runner import complete_on_ray

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
    usage.cost = round(cfg.cost(usage.prompt_tokens, usage.completion_tokens), 6)
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


def label_pool(
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
) -> LabelResult:
    """Label every input of `pool`, resuming from `out_dir/ledger.jsonl`. Writes
    pseudolabels.jsonl, rejected.jsonl, usage.json and DONE in `out_dir`."""
    return asyncio.run(
        alabel_pool(
            pool,
            backend,
            out_dir,
            build_request=build_request,
            postprocess=postprocess,
            cache=cache,
            cfg=cfg,
            progress=progress,
            retry_rejected=retry_rejected,
        )
    )


# ---------------------------------------------------------------- dry run


@dataclass
class Estimate:
    inputs: int
    in_ledger: int
    requests: int
    cached: int
    calls: int
    prompt_tokens: int
    completion_tokens: int  # expected
    completion_tokens_max: int  # if every call ran to max_tokens
    cost: float
    cost_max: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


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
) -> Estimate:
    """What a run would send, without sending anything: requests not in the ledger or cache, their
    prompt tokens, expected output tokens (`expected_output_tokens` per call, at most each
    request's max_tokens; default max_tokens), cost and time at the configured throughput with
    `parallel` request streams."""
    done = (
        read_ledger(Path(out_dir) / LEDGER, truncate=False)
        if out_dir is not None and Path(out_dir, LEDGER).exists()
        else {}
    )
    todo = list(_jobs(pool, done, build_request, cfg.samples, model, False, Counter()))
    requests = cached = calls = prompt_tokens = completion = completion_max = 0
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
            prompt_tokens += count_tokens(text)
            completion += min(req.max_tokens, expected_output_tokens or req.max_tokens)
            completion_max += req.max_tokens
    seconds = (
        prompt_tokens / cfg.est_prompt_tokens_per_s + completion / cfg.est_completion_tokens_per_s
    )
    return Estimate(
        inputs=len(pool),
        in_ledger=len(pool) - len(todo),
        requests=requests,
        cached=cached,
        calls=calls,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion,
        completion_tokens_max=completion_max,
        cost=cfg.cost(prompt_tokens, completion),
        cost_max=cfg.cost(prompt_tokens, completion_max),
        seconds=seconds / max(1, parallel),
    )


# ---------------------------------------------------------------- files in, files out


def label_task(config: str | Path | None, name: str | None, overrides: Any = None) -> tuple[str, list[str]]:
    """The task `mckd label` prompts for and its extra labels, given as for `mckd run`: the
    `task:` section of the YAML `config` (a name, or `{name, labels}`), `--task name`, and
    `--set task.labels=[...]` (`overrides`: the `task` part of the --set options). Default: the
    default task with no extra labels. Conflicting names or unknown keys are a ConfigError."""
    from pydantic import ValidationError

    from mckd.config import TaskConfig
    from mckd.tasks import ALIASES, DEFAULT_TASK

    spec: dict[str, Any] = {}
    section = _config_task_section(config)
    if section is not None:
        spec = dict(section) if isinstance(section, dict) else {"name": section}
    if "name" in spec:
        spec["name"] = ALIASES.get(str(spec["name"]), spec["name"])
    names = [(name, "--task")]
    if isinstance(overrides, dict):
        names.append((overrides.get("name"), "--set task.name"))
    elif overrides is not None:
        names.append((overrides, "--set task"))
    for given, where in names:
        if given is None:
            continue
        given = ALIASES.get(str(given), str(given))
        if "name" in spec and spec["name"] != given:
            raise ConfigError(f"{where} {given!r} differs from the task {spec['name']!r} of "
                              f"{config or 'the other options'}")
        spec["name"] = given
    if isinstance(overrides, dict):
        spec.update({k: v for k, v in overrides.items() if k != "name"})
    spec.setdefault("name", DEFAULT_TASK)
    if isinstance(spec.get("labels"), str):  # --set task.labels=genre
        spec["labels"] = [spec["labels"]]
    try:
        task = TaskConfig(**spec)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"]))
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"unknown key 'task.{where}' (task options: "
                              f"{', '.join(TaskConfig.model_fields)})") from None
        raise ConfigError(f"task.{where}: {err['msg'].removeprefix('Value error, ')}") from None
    return task.name, list(task.labels)


def _config_task_section(config: str | Path | None) -> Any:
    """The `task` entry of a YAML config, None without one (an unreadable file is left to the
    teacher config's reader, which names the problem). A file with a task section is a run
    config, whose teacher settings are under `teacher:`."""
    import yaml

    if config is None or not Path(config).is_file():
        return None
    try:
        data = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or "task" not in data:
        return None
    if "teacher" not in data:
        raise ConfigError(f"{config}: it names a task, so its teacher settings belong under "
                          "'teacher:' (as in a run config)")
    return data["task"]


def _load_task(task: Task | str | None) -> Task:
    from mckd.tasks import get_task

    if task is None:
        return get_task("text")
    return get_task(task) if isinstance(task, str) else task


def label_files(
    pool_path: str | Path,
    out_dir: str | Path,
    cfg: TeacherConfig,
    *,
    labeled_path: str | Path | None = None,
    task: Task | str | None = "text",
    extra_labels: Sequence[str] = (),
    dry_run: bool = False,
    progress: bool = True,
    retry_rejected: bool = False,
) -> LabelResult | Estimate:
    """`mckd label`: read the pool (and demonstrations), prompt with the task's hooks, read the
    answers back with the task's `read_answer` (combining samples with its `combine`), and label
    into `out_dir`; or, with `dry_run`, only estimate. `task` is a task object or name (None:
    plain text)."""
    from mckd.examples import read_examples
    from mckd.teacher.backends import build_backend

    task_obj = _load_task(task)
    pool = read_examples(pool_path)
    demos = read_examples(labeled_path, require_target=True) if labeled_path else []
    if cfg.k_demos and not demos:
        log.warning("no labeled examples given: prompts carry no demonstrations")
    cache = TeacherCache(cfg.cache_path) if cfg.cache else None
    if dry_run:
        return estimate_task_labelling(pool, demos, out_dir, cfg, task_obj, cache=cache,
                                       extra_labels=extra_labels)
    backend = build_backend(cfg)
    try:
        build, post = task_prompting(task_obj, cfg, demos, pool, count_tokens=backend.count_tokens,
                                     context_size=backend.context_size, extra_labels=extra_labels)
        return label_pool(
            pool,
            backend,
            out_dir,
            build_request=build,
            postprocess=post,
            cache=cache,
            cfg=cfg,
            progress=progress,
            retry_rejected=retry_rejected,
        )
    finally:
        backend.close()


def estimate_task_labelling(
    pool: Sequence[Example],
    demos: Sequence[Example],
    out_dir: str | Path | None,
    cfg: TeacherConfig,
    task: Task,
    *,
    cache: TeacherCache | None,
    extra_labels: Sequence[str] = (),
) -> Estimate:
    """`estimate_labelling` with the task's prompts (tokens approximated, 4 characters each),
    answers expected as long as the demonstrations' and the configured request streams."""
    build, _ = task_prompting(task, cfg, demos, pool, count_tokens=approx_tokens,
                              context_size=cfg.context_size, extra_labels=extra_labels)
    out_tokens = [approx_tokens(d.target or "") for d in demos]
    serial = cfg.backend in ("llamacpp", "transformers")
    return estimate_labelling(
        pool,
        out_dir,
        build_request=build,
        cache=cache,
        cfg=cfg,
        count_tokens=approx_tokens,
        model=model_id(cfg),
        expected_output_tokens=(sum(out_tokens) // len(out_tokens) + 1) if out_tokens else None,
        parallel=1 if serial else cfg.total_concurrency(),
    )


def task_prompting(
    task: Task,
    cfg: TeacherConfig,
    demos: Sequence[Example],
    pool: Sequence[Example],
    *,
    count_tokens: Callable[[str], int],
    context_size: int,
    extra_labels: Sequence[str] = (),
) -> tuple[BuildRequest, PostProcess]:
    """The request builder and post-processor for any task: prompts from the task's hooks
    (context fitting, shared, random or nearest demonstrations, the task's grammar), answers
    read by the task and several samples combined by its consensus. When the demonstrations
    cannot be shown in the configured form (parsing's labeled form needs meta['tree']), the
    task's next form that they allow is used, with a warning."""
    from mckd.teacher.prompts import PromptBuilder

    base = cfg.prompt
    form = base.form or task.prompt_forms[0]
    if cfg.k_demos:
        form = usable_form(task, form, demos)
    update = {"form": form, "k": cfg.k_demos, "seed": cfg.seed, "style": cfg.prompt_style(),
              "max_tokens": cfg.answer_tokens()}
    prompt_cfg = base.model_copy(update=update)
    builder = PromptBuilder(
        demos,
        prompt_cfg,
        task=task,
        count_tokens=count_tokens,
        context_size=context_size,
        pool=pool,
        samples=cfg.samples,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        stop=cfg.stop,
        extra_labels=extra_labels,
    )
    return builder.build_request, samples_postprocess(task, builder.read_answer, prompt_cfg.consensus)


def usable_form(task: Task, form: str, demos: Sequence[Example]) -> str:
    """`form` if every demonstration can be shown in it, else the task's first form that can."""
    forms = [form, *(f for f in task.prompt_forms if f != form)]
    for i, candidate in enumerate(forms):
        try:
            for d in demos:
                task.demo_output(d, candidate)
        except ConfigError as e:
            if i == len(forms) - 1:
                raise
            log.warning("%s: prompting with the %r form", e, forms[i + 1])
            continue
        return candidate
    return form


def model_id(cfg: TeacherConfig) -> str:
    """The model name a backend built from `cfg` puts in cache keys, without building it."""
    if cfg.backend == "llamacpp":
        from mckd.teacher.backends.llamacpp import cache_model_name

        return cache_model_name(cfg)
    return cfg.model or ("fake" if cfg.backend == "fake" else "")
