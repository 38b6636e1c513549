"""Bracketed trees as plain strings and lists: scanning, and trees built from words alone.

Nothing here imports nltk (which takes seconds to import), so `mckd evaluate` and the metrics
start fast; `mckd.tasks.constituency.trees` re-exports all of it next to the `nltk.Tree` helpers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# The 36 PTB part-of-speech tags of words; every other tag (punctuation, -NONE-, $, #, -LRB-)
# marks a token the paper's metric removes before scoring.
WORD_TAGS = frozenset(
    [
        "CC",
        "CD",
        "DT",
        "EX",
        "FW",
        "IN",
        "JJ",
        "JJR",
        "JJS",
        "LS",
        "MD",
        "NN",
        "NNS",
        "NNP",
        "NNPS",
        "PDT",
        "POS",
        "PRP",
        "PRP$",
        "RB",
        "RBR",
        "RBS",
        "RP",
        "SYM",
        "TO",
        "UH",
        "VB",
        "VBD",
        "VBG",
        "VBN",
        "VBP",
        "VBZ",
        "WDT",
        "WP",
        "WP$",
        "WRB",
    ]
)
# One token of a bracketed tree: a bracket or a run of anything else but whitespace.
TOKEN = re.compile(r"\(|\)|[^\s()]+")
_LABELED = re.compile(r"\([^\s()]")


class TreeSyntaxError(ValueError):
    """Malformed bracketing; `offset` is the 0-based character offset of the problem."""

    def __init__(self, problem: str, offset: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.offset = offset


def looks_labeled(text: str) -> bool:
    """Labeled PTB writes a label right after '(' (`(NP`); the unlabeled form `( w )` never does."""
    return _LABELED.search(text) is not None


Scan = tuple[list[str], list[str], list[tuple[int, int, str]]]


def scan_brackets(text: str, *, labels: bool | None = None) -> Scan:
    """Words, POS tags and constituents `(start, end, label)` of one bracketed tree, without
    building an `nltk.Tree` (the metrics call this on every line). Follows `parse_bracketed`'s
    reading: a node with a single word is a preterminal (its label is the tag, '' for `( w )`);
    every other node is a constituent, listed in the order it closes. Malformed text raises
    `TreeSyntaxError` with the offset of the problem."""
    if labels is None:
        labels = looks_labeled(text)
    try:
        return _scan_fast(text, labels)
    except TreeSyntaxError as fast_error:
        _scan_checked(text, labels)  # the careful scan says where the problem is
        raise fast_error from None


def _scan_fast(text: str, labels: bool) -> Scan:
    """The common case at C speed where possible: split on brackets, then take a labeled
    preterminal `( TAG word )` or a word bracket `( w )` in one step."""
    toks = text.replace("(", " ( ").replace(")", " ) ").split()
    words: list[str] = []
    tags: list[str] = []
    spans: list[tuple[int, int, str]] = []
    stack: list[tuple[int, str]] = []  # open brackets: (first word, label)
    bare: dict[int, list[int]] = {}  # depth -> words directly inside that bracket (rare)
    i, n = 0, len(toks)
    try:
        while i < n:
            tok = toks[i]
            if tok == "(":
                nxt = toks[i + 1]
                if nxt == "(" or nxt == ")":
                    stack.append((len(words), ""))
                    i += 1
                    continue
                after = toks[i + 2]
                if after == ")":  # ( w )
                    words.append(nxt)
                    tags.append("")
                    i += 3
                elif labels and after != "(" and toks[i + 3] == ")":  # (TAG word)
                    words.append(after)
                    tags.append(nxt)
                    i += 4
                else:
                    stack.append((len(words), nxt if labels else ""))
                    i += 2 if labels else 1
                    continue
                if not stack and i < n:
                    raise TreeSyntaxError("text after the end of the tree")
            elif tok == ")":
                start, label = stack.pop()
                size = len(words) - start
                if size == 0:
                    raise TreeSyntaxError("empty brackets")
                mine = bare.pop(len(stack) + 1, None)
                if mine:
                    for j in mine:
                        tags[j] = label
                if size > 1 or not mine:
                    spans.append((start, len(words), label))
                if not stack and i + 1 < n:
                    raise TreeSyntaxError("text after the end of the tree")
                i += 1
            else:
                if not stack:
                    raise TreeSyntaxError("word outside any brackets")
                bare.setdefault(len(stack), []).append(len(words))
                words.append(tok)
                tags.append("")
                i += 1
    except IndexError:
        raise TreeSyntaxError("unbalanced brackets") from None
    if stack or not words:
        raise TreeSyntaxError("unbalanced brackets" if stack else "no bracketed tree found")
    return words, tags, spans


def _scan_checked(text: str, labels: bool) -> Scan:
    """Token by token, with the offset of any problem (the slow path, for error messages)."""
    words: list[str] = []
    tags: list[str] = []
    spans: list[tuple[int, int, str]] = []
    # frame: [label | None, first word index, children, bare-word indices, offset of "("]
    stack: list[list] = []
    done = False
    for m in TOKEN.finditer(text):
        tok = m.group()
        if done:
            if tok == ")":
                raise TreeSyntaxError("unbalanced brackets: unexpected ')'", m.start())
            raise TreeSyntaxError("text after the end of the tree (more than one tree?)", m.start())
        if tok == "(":
            stack.append([None, len(words), 0, [], m.start()])
        elif tok == ")":
            if not stack:
                raise TreeSyntaxError("unbalanced brackets: unexpected ')'", m.start())
            label, start, kids, bare, offset = stack.pop()
            if kids == 0:
                if label is None:
                    raise TreeSyntaxError("empty brackets", offset)
                words.append(label)  # "( w )"
                tags.append("")
            elif kids == 1 and bare:
                tags[bare[0]] = label or ""
            else:
                for i in bare:
                    tags[i] = label or ""
                spans.append((start, len(words), label or ""))
            if stack:
                stack[-1][2] += 1
            else:
                done = True
        elif not stack:
            raise TreeSyntaxError(f"word {tok!r} outside any brackets", m.start())
        else:
            frame = stack[-1]
            if labels and frame[0] is None and frame[2] == 0:
                frame[0] = tok
            else:
                frame[3].append(len(words))
                frame[2] += 1
                words.append(tok)
                tags.append("")
    if stack:
        raise TreeSyntaxError(f"unbalanced brackets: {len(stack)} unclosed '('", stack[-1][4])
    if not done:
        raise TreeSyntaxError("no bracketed tree found" if text.strip() else "empty tree")
    return words, tags, spans


def right_branching(words: list[str]) -> str:
    """`( ( w1 ) ( ( w2 ) ( w3 ) ) )` in the unlabeled form."""
    if not words:
        raise ValueError("cannot build a tree over no words")
    out = f"( {words[-1]} )"
    for w in reversed(words[:-1]):
        out = f"( ( {w} ) {out} )"
    return out if len(words) > 1 else f"( {out} )"


def left_branching(words: list[str]) -> str:
    """`( ( ( w1 ) ( w2 ) ) ( w3 ) )` in the unlabeled form."""
    if not words:
        raise ValueError("cannot build a tree over no words")
    out = f"( {words[0]} )"
    for w in words[1:]:
        out = f"( {out} ( {w} ) )"
    return out if len(words) > 1 else f"( {out} )"


def unlabeled_from_spans(words: list[str], spans: Iterable[tuple[int, int]]) -> str:
    """The paper's unlabeled form over `words` with the given nested [i, j) spans (spans of
    one word are ignored; the whole sentence is always a constituent)."""
    n = len(words)
    if n == 0:
        raise ValueError("cannot build a tree over no words")
    wanted = {(i, j) for i, j in spans if j - i > 1} | {(0, n)}
    opens: list[list[int]] = [[] for _ in range(n)]
    closes = [0] * n
    for i, j in wanted:
        opens[i].append(j)
        closes[j - 1] += 1
    out: list[str] = []
    for k, word in enumerate(words):
        out.extend("(" for _ in opens[k])
        out.append(f"( {word} )")
        out.extend(")" for _ in range(closes[k]))
    return " ".join(out) if n > 1 else f"( ( {words[0]} ) )"
