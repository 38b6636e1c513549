"""What the teacher's prompts need to know about trees: demonstrations in the labeled PTB form or
the paper's unlabeled form, the phrase labels and POS tags a grammar may use, answer budgets, and
answers read back to the unlabeled target (optionally with flat constituents nested
right-branching). ConstituencyTask's prompt hooks call these.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

from nltk import Tree

from mckd.errors import ConfigError
from mckd.examples import Example
from mckd.tasks.constituency.grammar import PTB_PHRASE_LABELS, PTB_POS_TAGS
from mckd.tasks.constituency.trees import TreeSyntaxError, parse_bracketed, to_unlabeled

INSTRUCTION = (
    "Parse each input sentence into a constituency tree. Keep every word, in order, "
    "each in its own brackets."
)


class TreeLabels(NamedTuple):
    """Phrase labels and POS tags a tree grammar admits."""

    labels: list[str]
    tags: list[str]


def demo_output(example: Example, form: str) -> str:
    """The answer shown for a labeled example in the given form."""
    if form == "labeled":
        tree = example.meta.get("tree")
        if not tree:
            raise ConfigError(
                f"prompt form 'labeled' needs meta['tree'] on every labeled example; "
                f"example {example.id!r} has none (use form='unlabeled')"
            )
        return str(tree)
    if example.target is None:
        raise ConfigError(f"labeled example {example.id!r} has no target")
    return example.target


def label_sets(labeled: Sequence[Example], extra: Sequence[str] = ()) -> TreeLabels:
    """The PTB phrase labels and POS tags plus any seen in the labeled examples' trees (user
    treebanks may use others) and the `extra` phrase labels."""
    labels, tags = set(PTB_PHRASE_LABELS) | set(extra), set(PTB_POS_TAGS)
    for ex in labeled:
        if not ex.meta.get("tree"):
            continue
        tree = parse_bracketed(str(ex.meta["tree"]))
        for node in tree.subtrees():
            if all(isinstance(c, str) for c in node):
                tags.add(node.label())
            elif node.label():
                labels.add(node.label())
    return TreeLabels(sorted(labels), sorted(tags))


def answer_budget(source: str, form: str, count_tokens: Callable[[str], int]) -> int:
    """The words, their brackets (and labels in the labeled form), and some slack."""
    words = len(source.split())
    per_word = 8 if form == "labeled" else 6
    return count_tokens(source) + per_word * words + 16


def nest_right(tree: Tree) -> Tree:
    """Nest the children of every node with more than two children right-branching:
    (a b c d) -> (a (b (c d)))."""
    if not isinstance(tree, Tree) or all(isinstance(c, str) for c in tree):
        return tree
    kids = [nest_right(c) for c in tree]
    while len(kids) > 2:
        kids = [*kids[:-2], Tree("", kids[-2:])]
    return Tree(tree.label(), kids)


_LABEL_AFTER_OPEN = re.compile(r"\(\s*[^\s()]+(?=\s)")


def answer_to_target(text: str, *, form: str, nest_flat: bool) -> str:
    """The unlabeled target for an answer. Well-formed answers are parsed and rebuilt; others
    are returned as best-effort unlabeled text for the task's repair step."""
    text = text.strip().split("\n", 1)[0].strip()
    try:
        tree = parse_bracketed(text)
    except TreeSyntaxError:
        if form == "labeled":  # drop the label after each "(": "(NP (DT a)" -> "( ( a)"
            text = _LABEL_AFTER_OPEN.sub("(", text)
        return text
    unlabeled = to_unlabeled(tree)
    if nest_flat:
        unlabeled = to_unlabeled(nest_right(parse_bracketed(unlabeled)))
    return unlabeled
