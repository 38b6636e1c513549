"""CKY decoding of span scores into the best tree, and the span sets a chart student trains on.

Spans are half-open word ranges `[i, j)`. A chart student scores every span of two or more
words with a log-odds; the best tree is the binary tree whose spans have the highest total
score (single words and the whole sentence are in every tree). Dropping the binary tree's
spans that the model itself rejects (log-odds <= 0) leaves a valid n-ary tree, because any
subset of a tree's spans still nests.
"""

from __future__ import annotations

import numpy as np

from mckd.tasks.constituency.metric import Span


def cky_best_spans(scores: np.ndarray, n: int) -> list[Span]:
    """Spans (length >= 2) of the highest-scoring binary tree over `n` words.

    `scores[i, j]` is the score of span `[i, j)` for `0 <= i < j <= n` (other cells are
    ignored). The inner loop is vectorised over all spans of one length, so the Python loop
    runs `n` times, not `n**3`.
    """
    if n < 2:
        return []
    best = np.zeros((n + 1, n + 1), dtype=np.float64)
    split = np.zeros((n + 1, n + 1), dtype=np.int64)
    for length in range(2, n + 1):
        starts = np.arange(n - length + 1)
        ends = starts + length
        mids = starts[:, None] + np.arange(1, length)[None, :]
        total = best[starts[:, None], mids] + best[mids, ends[:, None]]
        k = total.argmax(axis=1)
        rows = np.arange(len(starts))
        best[starts, ends] = scores[starts, ends] + total[rows, k]
        split[starts, ends] = mids[rows, k]
    spans: list[Span] = []
    stack = [(0, n)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        spans.append((i, j))
        k = int(split[i, j])
        stack.extend([(i, k), (k, j)])
    return spans


def decode_spans(scores: np.ndarray, n: int, threshold: float = 0.0) -> list[Span]:
    """The tree a chart student outputs: the CKY-best binary tree, minus the spans the model
    rejects (log-odds <= threshold); the whole sentence is always kept. Sorted by (start, -end)."""
    best = cky_best_spans(scores, n)
    kept = [(i, j) for i, j in best if scores[i, j] > threshold or (i, j) == (0, n)]
    return sorted(kept, key=lambda s: (s[0], -s[1]))


def candidate_spans(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end indices of every span of two or more words over `n` words."""
    starts, ends = np.triu_indices(n + 1, k=2)
    return starts, ends
