"""Chunk scoring exactly as conlleval.pl (the CoNLL-2000 script, 2004 version) scores it.

A tag is split at its FIRST hyphen into a chunk tag and a type (`B-fromloc.city_name` ->
`B`, `fromloc.city_name`; `I-a-b` -> `I`, `a-b`); a tag without a hyphen has the empty type.
A chunk starts at `B-x`, at `I-x` after `O`, and at any tag whose type differs from the
previous token's (so `I-x` after `O` or after `I-y` opens a chunk, and `B-x B-x` is two
chunks); it ends before such a start or before `O`. A chunk counts as correct when gold and
prediction start it at the same token with the same type and end it at the same token with
nothing differing in between. Every sentence ends as if followed by the script's boundary line.
The rarer tags the script knows (`E`, `[`, `]`, `.`) follow its rules too.

Precision, recall and F1 are percentages of chunks, 0 when undefined (no chunk found, none in
gold); accuracy is the percentage of tokens whose whole tag is right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# (previous chunk tag, chunk tag) pairs that open or close a chunk whatever the types.
_STARTS = {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}
_ENDS = {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}


@lru_cache(maxsize=4096)
def split_tag(tag: str) -> tuple[str, str]:
    """(chunk tag, type), split at the first hyphen like the script's `^([^-]*)-(.*)$`. The
    script tests the type for truth, so a type spelled "0" counts as empty (Perl's "0" is false)."""
    head, sep, kind = tag.partition("-")
    if not sep:
        return tag, ""
    return head, "" if kind == "0" else kind


def _starts(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    return (
        (prev, tag) in _STARTS
        or (tag != "O" and tag != "." and prev_type != kind)
        or tag in ("[", "]")
    )


def _ends(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    return (
        (prev, tag) in _ENDS
        or (prev != "O" and prev != "." and prev_type != kind)
        or prev in ("[", "]")
    )


@dataclass
class ChunkCounts:
    """The script's counters, added sentence by sentence (per type as well)."""

    sentences: int = 0
    tokens: int = 0
    correct_tags: int = 0
    exact: int = 0
    gold: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)

    def add(self, gold: Sequence[str], pred: Sequence[str] | None) -> None:
        """Count one sentence (equal lengths; the caller checks). A missing prediction (None)
        finds no chunk and gets no tag right."""
        self.sentences += 1
        self.tokens += len(gold)
        if pred is None:
            pred = ["O"] * len(gold)
        else:
            # the script compares split tags, which differ from the strings only for "B-0", "B-"
            right = sum(g == p or split_tag(g) == split_tag(p)
                        for g, p in zip(gold, pred, strict=True))
            self.correct_tags += right
            self.exact += right == len(gold)
        last_g, last_gt, last_p, last_pt = "O", "", "O", ""
        in_correct = False
        for g_tag, p_tag in zip(gold, pred, strict=True):
            g, gt = split_tag(g_tag)
            p, pt = split_tag(p_tag)
            in_correct = self._step(in_correct, last_g, g, last_gt, gt, last_p, p, last_pt, pt)
            last_g, last_gt, last_p, last_pt = g, gt, p, pt
        # the boundary line after the sentence: "O" with no type on both sides; no chunk
        # starts there, so nothing is left open for the next sentence
        self._step(in_correct, last_g, "O", last_gt, "", last_p, "O", last_pt, "")

    def _step(
        self, in_correct: bool, lg: str, g: str, lgt: str, gt: str, lp: str, p: str, lpt: str,
        pt: str,
    ) -> bool:
        """One line of the script's main loop; returns the new `inCorrect` state."""
        if in_correct:
            g_end, p_end = _ends(lg, g, lgt, gt), _ends(lp, p, lpt, pt)
            if g_end and p_end and lpt == lgt:
                in_correct = False
                self.correct[lgt] += 1
            elif g_end != p_end or pt != gt:
                in_correct = False
        g_start, p_start = _starts(lg, g, lgt, gt), _starts(lp, p, lpt, pt)
        if g_start and p_start and pt == gt:
            in_correct = True
        if g_start:
            self.gold[gt] += 1
        if p_start:
            self.found[pt] += 1
        return in_correct


def _prf(correct: int, found: int, gold: int) -> tuple[float, float, float]:
    precision = 100.0 * correct / found if found else 0.0
    recall = 100.0 * correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def summarize(counts: ChunkCounts) -> dict[str, Any]:
    """The figures of the contract (see `score_tag_sequences`) from the counters."""
    gold, found, correct = (sum(c.values()) for c in (counts.gold, counts.found, counts.correct))
    precision, recall, f1 = _prf(correct, found, gold)
    per_type = {}
    for kind in sorted(set(counts.gold) | set(counts.found)):
        p, r, f = _prf(counts.correct[kind], counts.found[kind], counts.gold[kind])
        per_type[kind] = {
            "precision": p,
            "recall": r,
            "f1": f,
            "gold": counts.gold[kind],
            "found": counts.found[kind],
            "correct": counts.correct[kind],
        }
    n = counts.sentences
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "sentences": n,
        "tokens": counts.tokens,
        "gold_chunks": gold,
        "found_chunks": found,
        "correct_chunks": correct,
        "accuracy": 100.0 * counts.correct_tags / counts.tokens if counts.tokens else 0.0,
        "exact_match": 100.0 * counts.exact / n if n else 0.0,
        "per_type": per_type,
    }


def score_tag_sequences(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str] | None],
    *,
    gold_intents: Sequence[str] | None = None,
    pred_intents: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score predicted tag sequences against gold ones, sentence by sentence, as conlleval.pl.

    Returns `f1`, `precision`, `recall` (chunk level, 0-100), `sentences`, `tokens`,
    `gold_chunks`, `found_chunks`, `correct_chunks`, `accuracy` (token tags, 0-100),
    `exact_match` (percentage of sentences with every tag right), `per_type` ({type:
    {precision, recall, f1, gold, found, correct}}) and, when both intent lists are given,
    `intent_accuracy` (0-100). Figures are unrounded (the script prints them with 2 decimals).
    A prediction of None (nothing usable) finds no chunk and gets no tag right.
    Raises ValueError when the lists or a sentence's tags do not pair up."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predictions")
    counts = ChunkCounts()
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if p is not None and len(g) != len(p):
            raise ValueError(f"sentence {i + 1}: {len(g)} gold tags but {len(p)} predicted")
        counts.add(g, p)
    out = summarize(counts)
    if gold_intents is not None and pred_intents is not None:
        if len(gold_intents) != len(gold) or len(pred_intents) != len(gold):
            raise ValueError(
                f"{len(gold_intents)} gold and {len(pred_intents)} predicted intents "
                f"for {len(gold)} sentences"
            )
        right = sum(a == b for a, b in zip(gold_intents, pred_intents, strict=True))
        out["intent_accuracy"] = 100.0 * right / len(gold) if gold else 0.0
    return out


def rounded(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores with every percentage as the script prints it (2 decimals)."""
    out: dict[str, Any] = {}
    for key, value in scores.items():
        if isinstance(value, dict):
            out[key] = rounded(value)
        elif isinstance(value, float):
            out[key] = float(f"{value:.2f}")
        else:
            out[key] = value
    return out
