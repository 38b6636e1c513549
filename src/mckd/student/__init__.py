"""Students: the small models the teacher's pseudolabels are distilled into.

`StudentConfig` is one of the kinds' configs, picked by its `kind` field; `build_student` turns it
into an object with the `Student` protocol (student/base.py):

    seq2seq  encoder-decoder (T5, BART, FLAN-T5, MiniLM warm start, T5 presets from scratch)
    causal   decoder-only language model, loss on the target only
    chart    span-chart parser on a pretrained encoder (trees only; valid by construction)
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from mckd.student.base import Prediction, Student, TrainReport
from mckd.student.chart import ChartConfig
from mckd.student.config import CausalConfig, Seq2SeqConfig, config_error

StudentConfig = Annotated[Seq2SeqConfig | CausalConfig | ChartConfig, Field(discriminator="kind")]

__all__ = ["CausalConfig", "ChartConfig", "Prediction", "Seq2SeqConfig", "Student", "StudentConfig",
           "TrainReport", "build_student", "parse_student_config"]


def parse_student_config(raw: dict[str, Any]) -> Seq2SeqConfig | CausalConfig | ChartConfig:
    """A config dict (from YAML or --set) -> the kind's config; default kind is seq2seq."""
    try:
        return TypeAdapter(StudentConfig).validate_python({"kind": "seq2seq", **raw})
    except ValidationError as e:
        raise config_error(e, "student config") from None


def build_student(cfg: Seq2SeqConfig | CausalConfig | ChartConfig, task: Any = None) -> Student:
    """A fresh, untrained student of the config's kind."""
    if cfg.kind == "chart":
        from mckd.student.chart import ChartStudent

        return ChartStudent(cfg, task)
    from mckd.student.seq2seq import Seq2SeqStudent

    return Seq2SeqStudent(cfg, task)
