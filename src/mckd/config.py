"""The run configuration: typed, loaded from YAML, overridden with `--set a.b=value`.

Each component owns its settings and their defaults (`TeacherConfig` in mckd.teacher.config,
`StudentConfig` in mckd.student, `DataConfig` here); `RunConfig` composes them with the
settings of the distillation itself (methods, stages, partitions, seeds). Unknown keys and bad
values are one-line `ConfigError`s that name the key and the value, raised before any work.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mckd import tasks
from mckd.errors import ConfigError
from mckd.evidence import BootstrapConfig
from mckd.settings import apply_overrides, read_yaml
from mckd.split import DemoCorpusConfig
from mckd.student import Seq2SeqConfig, StudentConfig
from mckd.tasks import DEFAULT_TASK
from mckd.tasks.base import Task
from mckd.teacher.config import TeacherConfig

METHODS = ("teacher", "sft", "vanilla_kd", "kd_self_distill", "mckd")
MethodName = Literal["teacher", "sft", "vanilla_kd", "kd_self_distill", "mckd"]


class DataConfig(BaseModel):
    """Where the labeled pairs, the unlabeled pool and the test set come from."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["demo", "files"] = Field(
        "demo",
        description="demo: the task's built-in generated corpus (parsing: a treebank; slots: "
        "assistant requests; sizes in `demo`); files: the three JSONL files below (written by "
        "`mckd data split`, or your own Example records).",
    )
    demo: DemoCorpusConfig = Field(
        default_factory=DemoCorpusConfig, description="demo: sizes and seed of the built-in corpus."
    )
    labeled: str | None = Field(None, description="files: JSONL of gold pairs (target set).")
    unlabeled: str | None = Field(
        None, description="files: JSONL of inputs; targets are ignored, gold kept in meta "
        "(parsing: meta.tree; slots: meta.gold) is used only to score pseudolabel quality."
    )
    test: str | None = Field(None, description="files: JSONL of gold test pairs.")
    n_labeled: int | None = Field(
        None, ge=1, description="files: gold pairs used, drawn with `seed` (all when null)."
    )
    n_unlabeled: int | None = Field(
        None, ge=2, description="files: unlabeled inputs used, drawn with `seed` (all when null)."
    )
    n_test: int | None = Field(None, ge=1, description="files: the first n test examples (all when null).")
    seed: int = Field(0, description="files: seed for drawing the labeled and unlabeled subsets.")
    teacher_test: int | str | None = Field(
        None, description="The test sentences the teacher (the costly method) is scored on: N "
        "= the first N of the test set (file order), or a file of test ids (one per line, or "
        "JSONL records with an `id`); null = all. Every other method is scored on the whole "
        "test set and on this subset. With data.source demo the first N test sentences are "
        "those a built-in corpus of n_test = N has, so raising n_test keeps them."
    )

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if isinstance(self.teacher_test, int):
            if self.teacher_test < 1:
                raise ValueError(f"teacher_test = {self.teacher_test}: must be >= 1")
            n_test = self.demo.n_test if self.source == "demo" else self.n_test
            if n_test is not None and self.teacher_test > n_test:
                raise ValueError(f"teacher_test = {self.teacher_test}: more than the "
                                 f"{n_test} test sentences")
        if self.source == "files":
            for key in ("labeled", "unlabeled", "test"):
                if getattr(self, key) is None:
                    raise ValueError(f"data.source is 'files' but data.{key} is not set")
        else:
            for key in ("labeled", "unlabeled", "test", "n_labeled", "n_unlabeled", "n_test"):
                if getattr(self, key) is not None:
                    hint = f"; the demo's size is data.demo.{key}" if key.startswith("n_") else ""
                    raise ValueError(f"data.{key} is only for data.source 'files'{hint}")
        return self

    def sizes(self) -> tuple[int | None, int | None, int | None]:
        """(labeled, unlabeled, test) as configured; None = all of a file."""
        if self.source == "demo":
            return self.demo.n_labeled, self.demo.n_unlabeled, self.demo.n_test
        return self.n_labeled, self.n_unlabeled, self.n_test


class TaskConfig(BaseModel):
    """A task with options: `task: {name: slots, labels: [B-x, I-x, ...]}`. A plain name
    (`task: constituency`) is the same with no options."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Task name (`mckd tasks list`: built-in or installed), or a "
                      "task class as 'package.module:TaskClass'.")
    labels: list[str] = Field(
        default_factory=list, description="Labels the teacher may use beyond those in the "
        "labeled examples (slots: BIO tags; parsing: phrase labels)."
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _known_task(v)


class RunConfig(BaseModel):
    """One distillation run: data, teacher, student, and which methods to compare."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("run", description="A name shown in the report.")
    task: str | TaskConfig = Field(
        DEFAULT_TASK, description="Task name (`mckd tasks list`, or 'package.module:TaskClass'), "
        "or a section with the "
        "name and the task's options (`{name: slots, labels: [...]}`)."
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Data sources and sizes.")
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, description="The LLM teacher.")
    student: StudentConfig = Field(
        default_factory=Seq2SeqConfig, description="Every student (same kind and settings); "
        "`kind` picks seq2seq, causal or chart (the default is the task's first student kind)."
    )
    methods: list[MethodName] = Field(
        default_factory=lambda: list(METHODS),
        description="Methods to run and compare: teacher, sft, vanilla_kd, kd_self_distill, mckd.",
    )
    stages: list[int] = Field(
        default_factory=lambda: [2, 3],
        description="MCKD stage counts to report (each >= 2); runs share their common stages.",
    )
    partitions: int = Field(2, ge=2, le=16, description="MCKD partitions K (2 = the paper).")
    seed: int = Field(0, description="Seed for partitions and students.")
    seeds: int = Field(1, ge=1, le=20, description="Repeat the run with seeds seed..seed+S-1.")
    add_gold: bool = Field(False, description="Add the gold pairs to every distilled student's "
                           "training data (the paper uses them only as demonstrations).")
    init_from_sft: bool = Field(False, description="Start every distilled student from the "
                                "gold-trained (sft) student instead of the pretrained model.")
    stage0: Literal["teacher", "sft", "combine", "auto"] = Field(
        "teacher", description="Where the pool's first labels (stage 0, which vanilla KD, KD + "
        "self-distillation and MCKD's stage 1 train on) come from: 'teacher' (the LLM, the "
        "paper); 'sft' (the student trained on the gold pairs labels the pool; the LLM labels "
        "no pool input); 'combine' (per input: the label both agree on, else the more "
        "confident source, docs/PIPELINE.md); 'auto' (the probe decides: 'sft' where the "
        "gold-trained student is clearly better than the teacher, else 'teacher'). 'combine' "
        "and 'auto' run the probe; every mode but 'teacher' needs the sft method. The default, "
        "'teacher', made the best final students on both demos (benchmarks/stage0_results.md).")
    probe: bool = Field(False, description="Run the probe first (`mckd probe`): k-fold over the "
                        "labeled pairs, the teacher against the gold-trained student on the same "
                        "held-out gold, before any pool input is labelled.")
    probe_folds: int = Field(5, ge=2, le=20, description="Folds of the probe's cross-validation.")
    self_distill_keep: float = Field(
        0.5, gt=0, le=1, description="kd_self_distill: fraction of the pool kept, by the vanilla "
        "student's mean token log-probability."
    )
    baselines: bool = Field(True, description="Score the task's trivial baselines (parsing: "
                            "right- and left-branching) on the test set.")
    run_dir: str = Field("runs/demo", description="Run directory (one folder per step).")
    bootstrap: BootstrapConfig = Field(
        default_factory=BootstrapConfig, description="Intervals of the scores and of the "
        "differences between methods: resamples of the test sentences, level, seed.")
    parallel_students: bool | None = Field(
        None, description="Train a stage's partition students at the same time, one per visible "
        "GPU. Unset: on where 2 or more GPUs are visible, off otherwise (CPU); true without 2 "
        "GPUs is an error.")

    @model_validator(mode="before")
    @classmethod
    def _default_kind(cls, data: Any) -> Any:
        """A student without `kind` (or no student section) gets the task's default kind."""
        if not isinstance(data, dict):
            return data
        student = data.get("student")
        if student is not None and not isinstance(student, dict):
            return data
        kind = _default_student_kind(data.get("task", DEFAULT_TASK))
        if kind is None:  # unknown task: its own validator says so
            return data
        return {**data, "student": {"kind": kind, **(student or {})}}

    @field_validator("stages", mode="before")
    @classmethod
    def _one_stage_count(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) else v

    @field_validator("stages")
    @classmethod
    def _check_stages(cls, v: list[int]) -> list[int]:
        for n in v:
            if n < 2:
                raise ValueError(f"each stage count must be >= 2 (1 pair stage + final), got {n}")
        return sorted(set(v))

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one method is needed")
        return [m for m in METHODS if m in v]  # canonical order, duplicates dropped

    @field_validator("task", mode="before")
    @classmethod
    def _task_section(cls, v: Any) -> Any:
        """A task section is checked here, so that its errors name its keys (not the union)."""
        if not isinstance(v, dict):
            return v
        unknown = sorted(set(v) - set(TaskConfig.model_fields))
        if unknown:
            raise ValueError(f"unknown key 'task.{unknown[0]}' (task options: "
                             f"{', '.join(TaskConfig.model_fields)})")
        try:
            return TaskConfig(**v)
        except ValidationError as e:
            err = e.errors()[0]
            raise ValueError(f"task.{'.'.join(map(str, err['loc']))}: "
                             f"{err['msg'].removeprefix('Value error, ')}") from None

    @field_validator("task")
    @classmethod
    def _check_task(cls, v: str | TaskConfig) -> str | TaskConfig:
        return _known_task(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        task = self.make_task()
        if self.student.kind not in task.student_kinds:
            raise ValueError(f"student kind {self.student.kind!r} cannot learn the {task.name} task "
                             f"(it supports: {', '.join(task.student_kinds)})")
        if "mckd" in self.methods and not self.stages:
            raise ValueError("method mckd needs at least one stage count in 'stages'")
        if self.init_from_sft and "sft" not in self.methods:
            raise ValueError("init_from_sft needs the sft method in 'methods'")
        if self.stage0 != "teacher" and "sft" not in self.methods:
            raise ValueError(f"stage0 {self.stage0!r} needs the sft method in 'methods' (the "
                             "gold-trained student labels the pool)")
        return self

    def task_name(self) -> str:
        return self.task if isinstance(self.task, str) else self.task.name

    def task_labels(self) -> list[str]:
        """The task section's extra labels (none for a plain task name)."""
        return [] if isinstance(self.task, str) else list(self.task.labels)

    def make_task(self) -> Task:
        return tasks.get_task(self.task_name())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _known_task(name: str) -> str:
    """`name` if it names a task; an unknown one is a ValueError (pydantic reports it)."""
    try:
        tasks.get_task(name)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    return name


def _default_student_kind(task: Any) -> str | None:
    name = task.get("name") if isinstance(task, dict) else task
    if isinstance(name, TaskConfig):
        name = name.name
    if not isinstance(name, str):
        return None
    try:
        return tasks.get_task(name).student_kinds[0]
    except ConfigError:  # unknown task: its own validator says so
        return None


def demo_config_path(name: str = "demo") -> Path:
    """A demo configuration shipped inside the package (`demo`: parsing; `slots-demo`)."""
    return Path(str(resources.files("mckd") / "configs" / f"{name}.yaml"))


def resolve_config_path(path: str | Path | None) -> Path:
    """The config file to read: the built-in demo for None, a packaged demo for its bare name
    (`mckd run slots-demo`) when no such file exists here, else the path as given."""
    if path is None:
        return demo_config_path()
    given = Path(path)
    if not given.exists() and given.suffix == "" and given.parent == Path("."):
        packaged = demo_config_path(given.name)
        if packaged.exists():
            return packaged
    return given


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config (the built-in demo when `path` is None; a packaged demo by its
    name, e.g. "slots-demo"), apply `a.b=value` overrides (values parsed as YAML), and
    validate. Every problem is one ConfigError line."""
    path = resolve_config_path(path)
    data = apply_overrides(read_yaml(path), overrides or [])
    return config_from_dict(data, source=str(path))


def config_from_dict(data: dict[str, Any], *, source: str = "config") -> RunConfig:
    try:
        return RunConfig(**data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_describe(e)}") from None


def _describe(e: ValidationError) -> str:
    """The first validation error as `key: problem (got value)`."""
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{where}' (got {err.get('input')!r})"
    msg = err["msg"].removeprefix("Value error, ")
    if isinstance(err.get("input"), dict):  # a check across several keys of one section
        return msg if where == "(top level)" else f"{where}: {msg}"
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{where} = {err.get('input')!r}: {msg}{more}"
