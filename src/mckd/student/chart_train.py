"""Training of the span-chart student: binary cross-entropy over all spans of two or more
words, on the shared loop of the encoder students (finetune.py: length-bucketed batches,
resumable checkpoints, fidelity early stopping). A rerun of a finished training only reloads
the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from mckd.errors import InputError
from mckd.examples import Example
from mckd.student.base import TrainReport
from mckd.student.chart import target_spans
from mckd.student.cky import candidate_spans
from mckd.student.encoder import load_weights
from mckd.student.finetune import Loop, clip_and_step, count_skipped, finished_report, run_training
from mckd.tasks.constituency.metric import span_f1

if TYPE_CHECKING:
    from mckd.student.chart import ChartStudent

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainData:
    encoded: list[tuple[list[int], list[int]]]
    labels: list[np.ndarray]  # 1.0 where a candidate span is in the target tree
    gold: list[set[tuple[int, int]]]
    words: list[list[str]]
    skipped: int
    fingerprint: str


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
    encoded, labels, gold, words = [], [], [], []
    digest = hashlib.sha256(student.cfg.model_dump_json().encode())
    for ex in train:
        spans = target_spans(ex)
        w = ex.source.split()
        enc = student._encode(w)
        digest.update(json.dumps([ex.source, sorted(spans)]).encode())
        if enc is None:
            continue
        starts, ends = candidate_spans(len(w))
        labels.append(
            np.array([(i, j) in spans for i, j in zip(starts, ends, strict=True)], dtype=np.float32)
        )
        encoded.append(enc)
        gold.append(spans)
        words.append(w)
    skipped = count_skipped(len(train), len(encoded))
    return TrainData(encoded, labels, gold, words, skipped, digest.hexdigest())


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
    return float(np.mean([span_f1(p or [], g) for p, g in zip(spans, data.gold, strict=True)]))
