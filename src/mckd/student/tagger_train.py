"""Training of the tagging student: cross-entropy per word against the target tags, on the
shared loop of the encoder students (finetune.py: length-bucketed batches, resumable
checkpoints, fidelity early stopping). A rerun of a finished training only reloads it.
"""

from __future__ import annotations

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
from mckd.student.encoder import load_weights
from mckd.student.finetune import (
    Loop,
    TrainData,
    clip_and_step,
    encode_training,
    finished_report,
    run_training,
)
from mckd.tasks.slots.tags import as_valid, tag_problem, tag_set

if TYPE_CHECKING:
    from mckd.student.tagger import TaggerStudent

log = logging.getLogger(__name__)

IGNORE = -100  # label of padding positions: no loss


def train_tagger(student: TaggerStudent, train: list[Example], out_dir: Path) -> TrainReport:
    done = finished_report(out_dir)
    if done is not None:
        saved = out_dir / "model"
        student.set_tags(json.loads((saved / "tags.json").read_text()))
        load_weights(student.model, saved, student.device)
        log.info("training in %s already finished; loaded its weights", out_dir)
        return done
    data = prepare(student, train)
    return run_training(student, data, out_dir, train_step, lambda: fidelity(student, data))


def prepare(student: TaggerStudent, train: list[Example]) -> TrainData:
    """Check the targets, fix the tag set, encode everything once; sentences too long for the
    encoder are skipped."""
    if not train:
        raise InputError(None, None, "no training examples for the tagger student")
    # conlleval reads an I-x after O as a chunk start; training on the valid spelling of the
    # same chunks matches what decoding can output (and keeps CRF likelihoods finite).
    tag_lists = [as_valid(target_tags(ex)) for ex in train]
    student.set_tags(tag_set(tag_lists, existing=student.tags))
    index = {tag: k for k, tag in enumerate(student.tags)}
    digest = hashlib.sha256(student.cfg.model_dump_json().encode())
    digest.update(json.dumps(student.tags).encode())
    rows = ((w, [w, tags], " ".join(tags))
            for ex, tags in zip(train, tag_lists, strict=True) for w in [ex.source.split()])
    return encode_training(
        student, rows, lambda _, target: np.array([index[t] for t in target.split()], dtype=np.int64),
        digest)


def train_step(student: TaggerStudent, data: TrainData, chunk: list[int], loop: Loop) -> float:
    mine, scale = loop.take(chunk, lambda k: len(data.labels[k]))
    batch = student._collate([data.encoded[k] for k in mine])
    width = batch["word_mask"].size(1)
    target = torch.full((len(mine), width), IGNORE, dtype=torch.long)
    for row, k in enumerate(mine):
        target[row, : len(data.labels[k])] = torch.from_numpy(data.labels[k])
    target = target.to(student.device)
    logits = loop.model(batch)
    crf = student.model.crf
    if crf is None:
        # Mean over the batch's words, so long and short sentences weigh by their length.
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE)
    else:  # sequence likelihood, per word as above
        mask = batch["word_mask"]
        loss = crf.nll(logits.float(), target.clamp(min=0), mask) / mask.sum()
    return clip_and_step(student, loss, loop, scale)


def fidelity(student: TaggerStudent, data: TrainData) -> float:
    """Agreement (0-100) of the student's own tags with its training labels: the task's
    fidelity when a task is given, else token tag accuracy."""
    preds = [p.text for p in student.predict([" ".join(w) for w in data.words])]
    if student.task is not None:
        sources = [" ".join(w) for w in data.words]
        return float(student.task.fidelity(data.targets, preds, sources))
    return token_accuracy(data.targets, preds)


def token_accuracy(targets: list[str], preds: list[str]) -> float:
    """Share of words (0-100) whose predicted tag is the target's."""
    right = total = 0
    for target, pred in zip(targets, preds, strict=True):
        gold = target.split()
        right += sum(g == p for g, p in zip(gold, pred.split(), strict=True))
        total += len(gold)
    return 100.0 * right / max(1, total)


def target_tags(ex: Example) -> list[str]:
    """An example's target tags, one per source word; a bad target is an error naming it."""
    if ex.target is None:
        raise InputError(
            None, None, f"example {ex.id!r} has no target: a student trains on labeled examples"
        )
    tags, n_words = ex.target.split(), len(ex.source.split())
    if len(tags) != n_words:
        raise InputError(
            None, None, f"example {ex.id!r}: {len(tags)} tags for {n_words} words"
        )
    for tag in tags:
        problem = tag_problem(tag)
        if problem is not None:
            raise InputError(None, None, f"example {ex.id!r}: {problem}")
    return tags
