"""Training of the span-chart student: binary cross-entropy over all spans of two or more
words, on the shared loop of the encoder students (finetune.py: length-bucketed batches,
resumable checkpoints, fidelity early stopping). A rerun of a finished training only reloads
the weights.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn import functional as F

from mckd.errors import InputError, MckdError
from mckd.examples import Example
from mckd.student.base import TrainReport
from mckd.student.cky import Span, candidate_spans
from mckd.student.encoder import load_weights
from mckd.student.finetune import (
    Loop,
    TrainData,
    clip_and_step,
    encode_training,
    finished_report,
    run_training,
)
from mckd.tasks.constituency import trees
from mckd.tasks.constituency.metric import span_f1

if TYPE_CHECKING:
    from mckd.student.chart import ChartStudent

log = logging.getLogger(__name__)


def train_chart(student: ChartStudent, train: list[Example], out_dir: Path) -> TrainReport:
    done = finished_report(out_dir)
    if done is not None:
        load_weights(student.model, out_dir / "model", student.device)
        log.info("training in %s already finished; loaded its weights", out_dir)
        return done
    data = prepare(student, train)
    return run_training(student, data, out_dir, train_step, lambda: fidelity(student, data))


def prepare(student: ChartStudent, train: list[Example]) -> TrainData:
    """Encode sources and target spans once; sentences too long for the encoder are skipped."""
    if not train:
        raise InputError(None, None, "no training examples for the chart student")

    def rows() -> Iterator[tuple[list[str], Any, set[Span]]]:
        for ex in train:
            spans = target_spans(ex)
            yield ex.source.split(), [ex.source, sorted(spans)], spans

    def labels(words: list[str], spans: set[Span]) -> np.ndarray:
        starts, ends = candidate_spans(len(words))
        return np.array([(i, j) in spans for i, j in zip(starts, ends, strict=True)], dtype=np.float32)

    return encode_training(student, rows(), labels,
                           hashlib.sha256(student.cfg.model_dump_json().encode()))


def train_step(student: ChartStudent, data: TrainData, chunk: list[int], loop: Loop) -> float:
    mine, scale = loop.take(chunk, lambda k: len(data.labels[k]))
    batch = student._collate([data.encoded[k] for k in mine])
    target = torch.from_numpy(np.concatenate([data.labels[k] for k in mine])).to(student.device)
    logits = loop.model(batch)
    # Mean over the batch's spans; a batch of one- and two-word sentences has at most one each.
    loss = F.binary_cross_entropy_with_logits(logits, target) if len(target) else logits.sum() * 0
    return clip_and_step(student, loss, loop, scale)


def fidelity(student: ChartStudent, data: TrainData) -> float:
    """Mean per-sentence span F1 of the student's own trees against its training labels."""
    spans, _ = student._predict_spans(data.words)
    student.model.train()
    return float(np.mean([span_f1(p or [], g) for p, g in zip(spans, data.targets, strict=True)]))


def target_spans(ex: Example) -> set[Span]:
    """Spans (length >= 2) of an example's target tree; its words must be the source's."""
    if ex.target is None:
        raise InputError(
            None, None, f"example {ex.id!r} has no target: a student trains on labeled examples"
        )
    try:
        tree = trees.parse_tree(ex.target)
    except MckdError as e:
        raise InputError(None, None, f"example {ex.id!r}: bad target tree: {e}") from None
    words = ex.source.split()
    if trees.tree_words(tree) != words:
        raise InputError(
            None, None, f"example {ex.id!r}: the target tree's words differ from the source"
        )
    return {s for s in trees.unlabeled_spans(tree) if s[1] - s[0] >= 2}
