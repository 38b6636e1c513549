"""Students: the small models the teacher's pseudolabels are distilled into.

`StudentConfig` is one of the kinds' configs, picked by its `kind` field; `build_student` turns it
into an object with the `Student` protocol (student/base.py):

    seq2seq  encoder-decoder (T5, BART, FLAN-T5, MiniLM warm start, T5 presets from scratch)
    causal   decoder-only language model, loss on the target only
    chart    span-chart parser on a pretrained encoder (trees only; valid by construction)
    tagger   BIO word tagger on a pretrained encoder (slot filling; valid by construction)

A task lists the kinds that can learn it (`Task.student_kinds`); `build_student` refuses others.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from mckd.errors import ConfigError, InputError
from mckd.examples import read_examples, write_examples
from mckd.settings import merge, parse_overrides
from mckd.student.base import Prediction, Student, TrainReport
from mckd.student.config import (
    CausalConfig,
    ChartConfig,
    Seq2SeqConfig,
    TaggerConfig,
    config_error,
)
from mckd.tasks import DEFAULT_TASK, get_task

if TYPE_CHECKING:
    from mckd.tasks.base import Task

AnyStudentConfig = Seq2SeqConfig | CausalConfig | ChartConfig | TaggerConfig
StudentConfig = Annotated[AnyStudentConfig, Field(discriminator="kind")]

# Each kind's module and class. A kind's module imports torch and transformers (seconds), so it
# is imported when a student of that kind is built or reopened, never to read a config.
_KINDS = {
    "seq2seq": ("mckd.student.seq2seq", "Seq2SeqStudent"),
    "causal": ("mckd.student.seq2seq", "Seq2SeqStudent"),
    "chart": ("mckd.student.chart", "ChartStudent"),
    "tagger": ("mckd.student.tagger", "TaggerStudent"),
}
# Students on a pretrained encoder (`--model` names their encoder), and the file a saved one
# is recognised by; a saved seq2seq / causal student has student_config.json.
_ENCODER_KINDS = {"chart": "chart_config.json", "tagger": "tagger_config.json"}


def _student_class(kind: str) -> Any:
    module, name = _KINDS[kind]
    return getattr(importlib.import_module(module), name)


__all__ = ["CausalConfig", "ChartConfig", "Prediction", "Seq2SeqConfig", "Student", "StudentConfig",
           "TaggerConfig", "TrainReport", "build_student", "load_trained_student", "parse_student_config",
           "predict_file", "saved_student_kind", "train_file"]


def parse_student_config(raw: dict[str, Any]) -> AnyStudentConfig:
    """A config dict (from YAML or --set) -> the kind's config; default kind is seq2seq."""
    try:
        return TypeAdapter(StudentConfig).validate_python({"kind": "seq2seq", **raw})
    except ValidationError as e:
        raise config_error(e, "student config") from None


def build_student(cfg: AnyStudentConfig, task: Task | None = None) -> Student:
    """A fresh, untrained student of the config's kind, for a task that supports that kind."""
    if task is not None and cfg.kind not in task.student_kinds:
        raise ConfigError(f"student kind {cfg.kind!r} cannot learn the {task.name} task "
                          f"(it supports: {', '.join(task.student_kinds)})")
    return _student_class(cfg.kind)(cfg, task)


def _student_dir(path: Path) -> Path:
    """A saved student, or a training output directory holding one in `model/`."""
    markers = ["student_config.json", *_ENCODER_KINDS.values()]
    for cand in (path, path / "model"):
        if any((cand / m).exists() for m in markers):
            return cand
    raise InputError(path, None, f"not a trained student (no {' or '.join(markers)})")


def saved_student_kind(path: str | Path) -> str:
    """The kind of a saved student (`chart`, `tagger`, `seq2seq`, `causal`)."""
    path = _student_dir(Path(path))
    for kind, marker in _ENCODER_KINDS.items():
        if (path / marker).exists():
            return kind
    return str(json.loads((path / "student_config.json").read_text()).get("kind", "seq2seq"))


def load_trained_student(path: str | Path, task: Any = None, *, device: str | None = None) -> Student:
    """Reopen any saved student, whatever its kind (on `device` when given, else on the
    device its config names)."""
    path = _student_dir(Path(path))
    kind = next((k for k, marker in _ENCODER_KINDS.items() if (path / marker).exists()), "seq2seq")
    return _student_class(kind).load(path, task, device=device)


def train_file(train_path: str | Path, out_dir: str | Path, *, model: str | None = None,
               overrides: list[str] | None = None, task: str = DEFAULT_TASK) -> TrainReport:
    """`mckd train`: train a student on a labeled JSONL file; the model goes to `out_dir/model`.
    The student kind defaults to the task's first (parsing: seq2seq; slots: tagger)."""
    task_obj = get_task(task)
    raw = parse_overrides(overrides or [])
    raw.setdefault("kind", task_obj.student_kinds[0])
    if model is not None:
        raw["encoder" if raw.get("kind") in _ENCODER_KINDS else "model"] = model
    cfg = parse_student_config(raw)
    examples = read_examples(train_path, require_target=True)
    return build_student(cfg, task_obj).fit(examples, Path(out_dir))


def predict_file(model_dir: str | Path, input_path: str | Path, out_path: str | Path, *,
                 overrides: list[str] | None = None) -> int:
    """`mckd predict`: write each input example with the student's prediction as its target
    (and `meta.mean_logprob`, `meta.student`: the prediction's flags, as the pipeline writes
    them, so no flag can overwrite the example's own meta); returns the number written."""
    student = load_trained_student(model_dir)
    if overrides:
        cfg = student.cfg  # type: ignore[attr-defined]
        try:
            student.cfg = type(cfg).model_validate(merge(cfg.model_dump(), parse_overrides(overrides)))  # type: ignore[attr-defined]
        except ValidationError as e:
            raise config_error(e, "--set") from None
    examples = read_examples(input_path)
    preds = student.predict([ex.source for ex in examples])
    write_examples(out_path, [ex.with_target(p.text, mean_logprob=p.mean_logprob, student=p.meta)
                              for ex, p in zip(examples, preds, strict=True)])
    return len(examples)
