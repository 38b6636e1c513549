"""Trees as HTML for the report's per-sentence view: the unlabeled bracketing with one bracket
pair per constituent of two or more words, and the constituents that another tree of the same
sentence lacks marked (class `diff`), so bracket differences stand out."""

from __future__ import annotations

import html

from mckd.errors import MckdError


def tree_html(output: str | None, reference: str | None) -> str:
    """`output` (a tree in any bracketed form) as nested constituents; those whose span is not
    in `reference` get class `diff`. A missing output is a dash; one that does not read as a
    tree is shown as text, marked whole."""
    from mckd.tasks.constituency import trees  # nltk: loaded on first use

    if output is None:
        return '<span class="none">–</span>'
    try:
        tree = trees.parse_tree(output)
    except MckdError:
        return f'<span class="diff">{html.escape(output)}</span>'
    theirs = _spans(reference)
    words = trees.tree_words(tree)
    spans = {s for s in trees.unlabeled_spans(tree) if s[1] - s[0] >= 2}
    body = _inside(words, 0, len(words), spans, theirs)
    return _wrap(body, (0, len(words)), theirs) if (0, len(words)) in spans else body


def _spans(text: str | None) -> set[tuple[int, int]] | None:
    """Spans of two or more words of a tree; None when there is no tree to compare with."""
    from mckd.tasks.constituency import trees  # nltk: loaded on first use

    if text is None:
        return None
    try:
        tree = trees.parse_tree(text)
    except MckdError:
        return set()
    return {s for s in trees.unlabeled_spans(tree) if s[1] - s[0] >= 2}


def _inside(words: list[str], start: int, end: int, spans: set[tuple[int, int]],
            reference: set[tuple[int, int]] | None) -> str:
    """Words `start..end` with the constituents inside that span (not the span itself)."""
    parts, i = [], start
    while i < end:
        # the widest constituent that starts at word i and lies inside this one
        inner = max((j for (s, j) in spans if s == i and j <= end and (s, j) != (start, end)),
                    default=None)
        if inner is None:
            parts.append(html.escape(words[i]))
            i += 1
        else:
            parts.append(_wrap(_inside(words, i, inner, spans, reference), (i, inner), reference))
            i = inner
    return " ".join(parts)


def _wrap(body: str, span: tuple[int, int], reference: set[tuple[int, int]] | None) -> str:
    marked = reference is not None and span not in reference
    cls = "con diff" if marked else "con"
    return f'<span class="{cls}"><b class="br">(</b>{body}<b class="br">)</b></span>'
