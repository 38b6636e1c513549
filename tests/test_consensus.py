"""Consensus over sampled trees: span F1, minimum Bayes risk, majority spans."""

from __future__ import annotations

import random

import pytest

from mckd.examples import Example
from mckd.tasks.constituency.consensus import combine, majority_spans, mbr_index
from mckd.tasks.constituency.consensus import span_agreement as span_f1
from mckd.tasks.constituency.trees import (
    parse_bracketed,
    tree_from_spans,
    tree_words,
    unlabeled_spans,
)

WORDS = ["the", "old", "man", "saw", "a", "dog"]
A = "( ( ( the ) ( old ) ( man ) ) ( ( saw ) ( ( a ) ( dog ) ) ) )"
B = "( ( ( the ) ( ( old ) ( man ) ) ) ( ( saw ) ( ( a ) ( dog ) ) ) )"
C = "( ( the ) ( old ) ( ( man ) ( saw ) ) ( ( a ) ( dog ) ) )"


def spans(text: str) -> set[tuple[int, int]]:
    return unlabeled_spans(parse_bracketed(text))


def test_span_f1() -> None:
    assert span_f1(spans(A), spans(A)) == 1.0
    assert span_f1(set(), set()) == 1.0
    assert span_f1({(0, 2)}, {(1, 3)}) == 0.0
    a, b = spans(A), spans(B)  # A: 4 spans, B: 5 spans, 4 shared
    assert span_f1(a, b) == pytest.approx(2 * 4 / 4 * 4 / 5 / (1 + 4 / 5))


def test_mbr_picks_the_sample_the_others_agree_with() -> None:
    cands = [spans(C), spans(A), spans(B), spans(A)]
    assert mbr_index(cands) == 1  # A agrees with its copy and closely with B
    assert mbr_index([spans(C)]) == 0
    with pytest.raises(ValueError):
        mbr_index([])


def test_majority_spans_never_cross_and_form_a_tree() -> None:
    rng = random.Random(0)
    n = 9
    words = [f"w{i}" for i in range(n)]
    for _ in range(50):
        trees = []
        for _ in range(rng.choice([3, 4, 5])):
            cand = {(i, j) for i in range(n) for j in range(i + 2, n + 1) if rng.random() < 0.15}
            trees.append(unlabeled_spans(tree_from_spans(words, cand)))
        maj = majority_spans(trees)
        for i, j in maj:
            for k, m in maj:
                assert not (i < k < j < m), "majority spans crossed"
        rebuilt = unlabeled_spans(tree_from_spans(words, maj))
        assert rebuilt == maj | {(0, n)}


def test_combine_skips_invalid_samples() -> None:
    broken = "( ( the ) ( old ) ( man )"  # unbalanced
    wrong_words = A.replace("dog", "cat")
    target, info = combine(WORDS, [broken, wrong_words, C, B, A], "mbr")
    # mean F1: A vs (C, B) = (4/7 + 8/9) / 2 beats B vs (C, A) = (1/2 + 8/9) / 2 and C
    assert info == {"samples": 5, "usable": 3, "picked": 4}
    assert target == A
    voted, info = combine(WORDS, [A, B, C], "vote")
    assert tree_words(parse_bracketed(voted)) == WORDS
    assert spans(voted) == {(0, 6), (0, 3), (3, 6), (4, 6)}
    first, info = combine(WORDS, [broken, wrong_words], "mbr")
    assert first == broken and info["usable"] == 0
    with pytest.raises(ValueError, match="unknown consensus"):
        combine(WORDS, [A], "best")


def test_labelling_postprocess_uses_the_configured_consensus():
    from mckd.tasks import TASKS
    from mckd.teacher.label import samples_postprocess
    from mckd.teacher.prompts import PromptConfig

    words = ["a", "b", "c", "d"]
    ex = Example("x", " ".join(words))
    samples = [
        "( ( ( a ) ( b ) ) ( c ) ( d ) )",
        "( ( a ) ( b ) ( ( c ) ( d ) ) )",
        "( ( ( a ) ( b ) ( c ) ) ( d ) )",
    ]
    task = TASKS["constituency"]
    def read(raw: str, example: Example):
        return task.read_answer(raw, example, "unlabeled", PromptConfig())

    mbr = samples_postprocess(task, read, "mbr")(ex, samples)
    vote = samples_postprocess(task, read, "vote")(ex, samples)
    assert mbr.meta["consensus"]["picked"] in (0, 1, 2)
    assert "picked" not in vote.meta["consensus"]
    assert vote.valid and mbr.valid
