"""`mckd label` and the pipeline's teacher steps: a task's prompts and answer reading on the
labelling engine (engine.py), files in and files out; `--dry-run` estimates instead
(estimate.py). The engine's and the estimate's names import from here too."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from mckd import tasks
from mckd.config import TaskConfig
from mckd.errors import ConfigError
from mckd.examples import Example, read_examples
from mckd.tasks import ALIASES, DEFAULT_TASK
from mckd.tasks.base import Task
from mckd.teacher import backends
from mckd.teacher.backends.base import approx_tokens
from mckd.teacher.backends.llamacpp import cache_model_name
from mckd.teacher.cache import TeacherCache
from mckd.teacher.config import TeacherConfig
from mckd.teacher.engine import (
    LABELS,
    REJECTED,
    USAGE,
    BuildRequest,
    LabelResult,
    PostProcess,
    Pseudolabel,
    alabel_pool,
    few_shot_requests,
    label_pool,
    repair_outputs,
    samples_postprocess,
)
from mckd.teacher.estimate import Estimate, estimate_labelling
from mckd.teacher.ledger import LEDGER, read_ledger
from mckd.teacher.prompts import PromptBuilder

log = logging.getLogger(__name__)

__all__ = ["LABELS", "LEDGER", "REJECTED", "USAGE", "Estimate", "LabelResult", "Prompting", "Pseudolabel",
           "alabel_pool", "estimate_labelling", "estimate_task_labelling", "few_shot_requests",
           "label_files", "label_pool", "label_task", "model_id", "read_ledger", "repair_outputs",
           "samples_postprocess", "task_prompting", "usable_form"]


def label_task(config: str | Path | None, name: str | None, overrides: Any = None) -> tuple[str, list[str]]:
    """The task `mckd label` prompts for and its extra labels, given as for `mckd run`: the
    `task:` section of the YAML `config` (a name, or `{name, labels}`), `--task name`, and
    `--set task.labels=[...]` (`overrides`: the `task` part of the --set options). Default: the
    default task with no extra labels. Conflicting names or unknown keys are a ConfigError."""
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
    if task is None:
        return tasks.get_task("text")
    return tasks.get_task(task) if isinstance(task, str) else task


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
    task_obj = _load_task(task)
    pool = read_examples(pool_path)
    demos = read_examples(labeled_path, require_target=True) if labeled_path else []
    if cfg.k_demos and not demos:
        log.warning("no labeled examples given: prompts carry no demonstrations")
    cache = TeacherCache(cfg.cache_path) if cfg.cache else None
    if dry_run:
        return estimate_task_labelling(pool, demos, out_dir, cfg, task_obj, cache=cache,
                                       extra_labels=extra_labels)
    backend = backends.build_backend(cfg)
    try:
        prompting = task_prompting(task_obj, cfg, demos, pool, count_tokens=backend.count_tokens,
                                   context_size=backend.context_size, extra_labels=extra_labels)
        return label_pool(
            pool,
            backend,
            out_dir,
            build_request=prompting.build,
            postprocess=prompting.post,
            order=prompting.order,
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
    prompting = task_prompting(task, cfg, demos, pool, count_tokens=approx_tokens,
                               context_size=cfg.context_size, extra_labels=extra_labels)
    out_tokens = [approx_tokens(d.target or "") for d in demos]
    serial = cfg.backend in ("llamacpp", "transformers")
    return estimate_labelling(
        pool,
        out_dir,
        build_request=prompting.build,
        order=prompting.order,
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
) -> Prompting:
    """The request builder, the post-processor and the labelling order for any task: prompts
    from the task's hooks (context fitting, shared, random or nearest demonstrations, grouped
    inputs, the task's grammar), answers read by the task and several samples combined by its
    consensus. When the demonstrations
    cannot be shown in the configured form (parsing's labeled form needs meta['tree']), the
    task's next form that they allow is used, with a warning."""
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
    return Prompting(builder.build_request,
                     samples_postprocess(task, builder.read_answer, prompt_cfg.consensus),
                     builder.labelling_order(pool))


class Prompting(NamedTuple):
    """How a pool is labelled: each input's request, its answers read back, and the pool in
    the order to send it (group by group when similar inputs share demonstrations)."""

    build: BuildRequest
    post: PostProcess
    order: list[Example]


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
        return cache_model_name(cfg)
    return cfg.model or ("fake" if cfg.backend == "fake" else "")
