"""Consensus over several sampled teacher trees for one input.

Sampling n outputs costs n calls per input (n times the generation time; with a shared prompt
prefix the prompt is processed once). Two ways to combine them, both over unlabeled word spans:

- `mbr`: minimum Bayes risk: keep the sample with the highest mean span F1 against the other
  samples (the one the others agree with most). Always one of the teacher's own trees.
- `vote`: keep every span that more than half of the valid samples contain. Spans with a
  strict majority never cross (two crossing spans cannot both be in more than half of a set
  of trees), so they always form one tree.

Samples whose words do not match the input after repair are left out of the consensus; when
none is valid, the first sample goes on to the usual repair path. The method is chosen by
`PromptConfig.consensus` (teacher.prompt.consensus).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from mckd.tasks.constituency.metric import Span, span_f1
from mckd.tasks.constituency.trees import (
        TreeSyntaxError,
        parse_bracketed,
        to_unlabeled,
        tree_from_spans,
        tree_words,
        unlabeled_spans,
)


def span_agreement(a: set[Span], b: set[Span]) -> float:
    """How far two samples agree: their unlabeled span F1 (metric.py) as a fraction (0-1)."""
    return span_f1(a, b) / 100.0


def mbr_index(candidates: Sequence[set[Span]]) -> int:
    """Index of the candidate with the highest mean span F1 against the others (ties: first)."""
    if not candidates:
        raise ValueError("mbr_index needs at least one candidate")
    if len(candidates) == 1:
        return 0
    best, best_score = 0, -1.0
    for i, a in enumerate(candidates):
        score = sum(span_agreement(a, b) for j, b in enumerate(candidates) if j != i)
        if score > best_score + 1e-12:
            best, best_score = i, score
    return best


def majority_spans(candidates: Sequence[set[Span]]) -> set[Span]:
    """Spans in strictly more than half of the candidates (mutually non-crossing)."""
    counts = Counter(s for c in candidates for s in c)
    return {s for s, n in counts.items() if 2 * n > len(candidates)}


def combine(words: list[str], targets: Sequence[str], method: str = "mbr") -> tuple[str, dict]:
    """Consensus of several unlabeled targets for `words` -> (target, info).

    Targets that do not parse or whose words differ from `words` are ignored; `info` says how
    many were usable and, for mbr, which sample won."""
    usable: list[tuple[int, set[Span]]] = []
    for i, text in enumerate(targets):
        try:
            tree = parse_bracketed(text)
        except TreeSyntaxError:
            continue
        if tree_words(tree) == words:
            usable.append((i, unlabeled_spans(tree)))
    info: dict = {"samples": len(targets), "usable": len(usable)}
    if not usable:
        return targets[0], info
    if method == "mbr":
        pick = usable[mbr_index([s for _, s in usable])][0]
        info["picked"] = pick
        return targets[pick], info
    if method == "vote":
        spans = majority_spans([s for _, s in usable])
        return to_unlabeled(tree_from_spans(words, spans)), info
    raise ValueError(f"unknown consensus method {method!r} (expected 'mbr' or 'vote')")
