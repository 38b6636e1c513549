"""Decoding under the BIO constraints: `I-x` only right after `B-x` or `I-x`, never at the
start of a sentence. Viterbi over per-word scores then returns the best tag sequence that is
valid by construction. What a valid tag sequence is, and tag sets, are the slot task's
(mckd.tasks.slots).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bio_constraints(tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """`start_ok[t]`: tag t may open a sentence; `trans_ok[s, t]`: tag t may follow tag s."""
    inside = np.array([t.startswith("I-") for t in tags])
    start_ok = ~inside
    trans_ok = np.ones((len(tags), len(tags)), dtype=bool)
    for t, tag in enumerate(tags):
        if inside[t]:
            trans_ok[:, t] = [s in (f"B-{tag[2:]}", tag) for s in tags]
    return start_ok, trans_ok


def viterbi(
    scores: np.ndarray,
    lengths: Sequence[int],
    start_ok: np.ndarray,
    trans_ok: np.ndarray,
    transitions: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> list[list[int]]:
    """The highest-scoring allowed tag path for each sentence of a padded batch.

    `scores` is (batch, words, tags), e.g. per-word log-probabilities, so a path's score is
    their sum (plus `start[first tag]` and `transitions[prev, next]` for each step when given,
    as a CRF has them); `lengths` gives each sentence's word count (at least 1). Sentences of
    one batch are decoded together: a finished sentence carries its scores along unchanged (an
    identity back-pointer), so the loop runs once per position, not per sentence.

    Without transition scores, a tag may follow either any tag (`O`, `B-x`) or a few (`I-x`:
    `B-x` and `I-x`), so each step takes one maximum over all tags plus a maximum over each
    restricted tag's predecessors: linear in the tag count, not quadratic (121 ATIS tags)."""
    if transitions is not None:
        return _dense_viterbi(scores, lengths, start_ok, trans_ok, transitions, start)
    batch, width, n_tags = scores.shape
    free = trans_ok.all(axis=0)  # tags any tag may precede
    restricted = np.flatnonzero(~free)
    preds = [np.flatnonzero(trans_ok[:, t]) for t in restricted]
    fan = max((len(p) for p in preds), default=1)
    if any(len(p) == 0 for p in preds):
        raise ValueError("a tag no tag may precede")
    # Each restricted tag's predecessors, padded by repeating the first (same maximum).
    pred_idx = np.array([np.pad(p, (0, fan - len(p)), mode="edge") for p in preds], dtype=np.int64)
    lengths_arr = np.asarray(lengths)
    rows = np.arange(batch)
    best = np.where(start_ok, scores[:, 0], -np.inf)  # (batch, tags)
    back = np.zeros((batch, width, n_tags), dtype=np.int64)
    keep = np.arange(n_tags)
    for i in range(1, width):
        prev = np.empty((batch, n_tags), dtype=np.int64)
        top = best.argmax(axis=1)
        prev[:] = top[:, None]
        step = np.repeat(best[rows, top][:, None], n_tags, axis=1)
        if len(restricted):
            cand = best[:, pred_idx]  # (batch, restricted, fan)
            pick = cand.argmax(axis=2)
            prev[:, restricted] = pred_idx[np.arange(len(restricted)), pick]
            step[:, restricted] = np.take_along_axis(cand, pick[..., None], axis=2)[..., 0]
        step += scores[:, i]
        active = (i < lengths_arr)[:, None]
        best = np.where(active, step, best)
        back[:, i] = np.where(active, prev, keep)
    return _backtrack(best, back, lengths)


def _dense_viterbi(
    scores: np.ndarray,
    lengths: Sequence[int],
    start_ok: np.ndarray,
    trans_ok: np.ndarray,
    transitions: np.ndarray,
    start: np.ndarray | None,
) -> list[list[int]]:
    """Viterbi with a score for every allowed transition: a (batch, tags, tags) step."""
    batch, width, n_tags = scores.shape
    allowed = np.where(trans_ok, transitions, -np.inf)
    first = scores[:, 0] + (0.0 if start is None else start)
    best = np.where(start_ok, first, -np.inf)
    back = np.zeros((batch, width, n_tags), dtype=np.int64)
    lengths_arr = np.asarray(lengths)
    for i in range(1, width):
        cand = best[:, :, None] + allowed[None]  # previous tag x next tag
        prev = cand.argmax(axis=1)
        step = np.take_along_axis(cand, prev[:, None, :], axis=1)[:, 0] + scores[:, i]
        active = (i < lengths_arr)[:, None]
        best = np.where(active, step, best)
        back[:, i] = np.where(active, prev, np.arange(n_tags))
    return _backtrack(best, back, lengths)


def _backtrack(best: np.ndarray, back: np.ndarray, lengths: Sequence[int]) -> list[list[int]]:
    batch, width, _ = back.shape
    paths = np.zeros((batch, width), dtype=np.int64)
    paths[:, width - 1] = best.argmax(axis=1)
    for i in range(width - 1, 0, -1):
        paths[:, i - 1] = back[np.arange(batch), i, paths[:, i]]
    return [paths[b, :n].tolist() for b, n in enumerate(lengths)]
