"""Scoring tag files (`mckd evaluate --task slots`, `evaluate_tag_files`): conlleval.pl's
figures; every bad input is one line naming file:line.

A tag file holds one sentence of space-separated tags per line (the `seq.out` layout), or
Example JSONL, scored as written (as conlleval.pl scores them: no IOB1 conversion), with a
warning when the gold has IOB1 chunk starts and the prediction none. In JSONL the two files
are read differently, because a prediction file keeps its input's meta (`mckd predict`, the
run's student outputs and teacher labels all write `Example.with_target`), gold and intent
included:
- gold: the tags in meta["gold"], else `target`; the intent in meta["intent"];
- prediction: the tags in `target` only (a missing or empty one is an error naming the line);
  the intent in meta["predicted_intent"], which only a predictor that predicts intents writes
  (a copied meta["intent"] is the gold's, and is never read as a prediction).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mckd.errors import InputError
from mckd.examples import Example, example_from_line
from mckd.io import read_text_lines
from mckd.tasks.slots.conlleval import rounded, score_tag_sequences
from mckd.tasks.slots.readers import iob1_starts, trim
from mckd.tasks.slots.tags import TAG, gold_tags

log = logging.getLogger(__name__)

METRICS = ("conlleval",)
PREDICTED_INTENT = "predicted_intent"
"""The meta key of an intent a predictor predicted (meta["intent"] is the gold intent)."""


def _is_jsonl(path: Path, lines: list[str]) -> bool:
    first = next((ln for ln in lines if ln.strip()), "")
    return path.suffix == ".jsonl" or first.lstrip().startswith("{")


def read_tag_file(
    path: str | Path, *, prediction: bool = False
) -> tuple[list[list[str]], list[str | None], list[int]]:
    """Tag sequences, intents (None where not given) and line numbers of a gold tag file, or of
    a prediction file with `prediction` (see the module docstring for what each reads)."""
    path = Path(path)
    lines = read_text_lines(path)
    trim(lines)
    tags, intents, where = [], [], []
    jsonl = _is_jsonl(path, lines)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            if jsonl:
                continue
            raise InputError(path, lineno, "empty line (expected one sentence of tags per line)")
        if jsonl:
            seq, intent = _jsonl_tags(example_from_line(line, path=path, line=lineno), path,
                                      lineno, prediction)
        else:
            seq, intent = line.split(), None
        for i, tag in enumerate(seq, start=1):
            if not TAG.fullmatch(tag):
                raise InputError(path, lineno, f"tag {i} {tag!r} is not O, B-type or I-type")
        tags.append(seq)
        intents.append(intent)
        where.append(lineno)
    return tags, intents, where


def _jsonl_tags(ex: Example, path: Path, lineno: int, prediction: bool) -> tuple[list[str], str | None]:
    """The tags and intent of one JSONL line of a gold or prediction file."""
    if prediction:
        if not (ex.target or "").strip():
            raise InputError(path, lineno, "no predicted tags: 'target' is empty or null (a "
                                           "prediction's tags come from its target alone)")
        intent = ex.meta.get(PREDICTED_INTENT)
        return ex.target.split(), None if intent is None else str(intent)  # type: ignore[union-attr]
    seq = gold_tags(ex)
    if not seq:
        raise InputError(path, lineno, "no tags: needs meta['gold'] or 'target'")
    intent = ex.meta.get("intent")
    return seq, None if intent is None else str(intent)


def evaluate_tag_files(gold: str | Path, pred: str | Path, metric: str = "conlleval", *,
                       per_sentence: bool = False) -> dict[str, Any]:
    """`mckd evaluate --task slots`: conlleval's figures for a prediction file against a gold
    file, as the script prints them (2 decimals): exactly the keys of the contract, with
    `intent_accuracy` when the gold gives every sentence an intent and the prediction file
    every sentence a predicted one (meta["predicted_intent"]), and with `per_sentence`
    (the script's figures for each sentence alone) when asked. Any bad input is an InputError
    with file:line."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    g_tags, g_int, _ = read_tag_file(gold)
    p_tags, p_int, p_where = read_tag_file(pred, prediction=True)
    if len(g_tags) != len(p_tags):
        short, n = (pred, len(p_tags)) if len(p_tags) < len(g_tags) else (gold, len(g_tags))
        raise InputError(short, None, f"ends after {n} sentences, but {gold} has {len(g_tags)} "
                                      f"and {pred} has {len(p_tags)} (they must pair up)")
    for g, p, lineno in zip(g_tags, p_tags, p_where, strict=True):
        if len(g) != len(p):
            raise InputError(pred, lineno, f"{len(p)} tags, but the gold sentence has {len(g)}")
    _warn_iob1(gold, g_tags, p_tags)
    with_intents = all(i is not None for i in g_int + p_int)
    scores = rounded(score_tag_sequences(
        g_tags, p_tags,
        gold_intents=g_int if with_intents else None,  # type: ignore[arg-type]
        pred_intents=p_int if with_intents else None,  # type: ignore[arg-type]
    ))
    if per_sentence:
        scores["per_sentence"] = [_sentence_row(i, g, p) for i, (g, p) in
                                  enumerate(zip(g_tags, p_tags, strict=True), start=1)]
    return scores


def _warn_iob1(gold: str | Path, g_tags: list[list[str]], p_tags: list[list[str]]) -> None:
    """One warning line when the gold opens chunks with I-x (IOB1) and the prediction never
    does: the chunks may agree, but conlleval compares the tags as written, so token accuracy
    and exact match fall."""
    g_iob1 = sum(iob1_starts(t) for t in g_tags)
    if g_iob1 and not any(iob1_starts(t) for t in p_tags):
        log.warning("%s: %d of %d gold sentences start a chunk with I-x (IOB1) and the predictions "
                    "use B-x (IOB2): chunk F1 is unaffected, but accuracy and exact_match count "
                    "those tags as wrong, as conlleval.pl does (mckd data split converts gold "
                    "to IOB2)", gold, g_iob1, len(g_tags))


def _sentence_row(i: int, gold: list[str], pred: list[str]) -> dict[str, Any]:
    one = rounded(score_tag_sequences([gold], [pred]))
    return {"id": i, **{k: one[k] for k in SENTENCE_KEYS}}


SENTENCE_KEYS = ("tokens", "gold_chunks", "found_chunks", "correct_chunks", "accuracy",
                 "precision", "recall", "f1")
