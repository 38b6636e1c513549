"""Penn Treebank bracketed trees: read, normalise, linearize, parse back, and repair.

Trees are `nltk.Tree`s. An unlabeled tree (the paper's `( ( The ) ( cat ) )` form) uses the
empty string as every label, so one word in its own brackets is a preterminal `Tree("", [w])`
and the same helpers (`tree_words`, `unlabeled_spans`, ...) work on both forms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from nltk import Tree

from mckd.errors import InputError
from mckd.io import read_text_lines

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
ROOT_LABELS = frozenset({"", "TOP", "ROOT"})
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_FUNCTION_TAG = re.compile(r"[-=]")
TREE_SUFFIXES = (".mrg", ".txt", ".tree", ".trees", ".ptb", ".gold", ".pred", ".tst")


class TreeSyntaxError(ValueError):
    """Malformed bracketing; `offset` is the 0-based character offset of the problem."""

    def __init__(self, problem: str, offset: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.offset = offset


def _located(text: str, offset: int | None, line: int | None) -> tuple[int | None, str]:
    """Line and ' at column C' suffix for an offset into (possibly multi-line) `text`."""
    if offset is None:
        return line, ""
    before = text[:offset]
    newlines = before.count("\n")
    column = offset - (before.rfind("\n") + 1) + 1
    return (line + newlines if line is not None else None), f" at column {column}"


def parse_bracketed(text: str) -> Tree:
    """Parse one bracketed tree; raise `TreeSyntaxError` (with an offset) when malformed.

    `(X w)` is label X over word w; `( w )` (one token, nothing else) is an unlabeled word
    bracket; `( (...) ...)` has the empty label (the .mrg outer wrapper, the unlabeled form).
    """
    stack: list[list] = []  # frames: [label | None, children, offset of "("]
    root: Tree | None = None
    for m in _TOKEN.finditer(text):
        tok, pos = m.group(), m.start()
        if root is not None:
            if tok == ")":
                raise TreeSyntaxError("unbalanced brackets: unexpected ')'", pos)
            raise TreeSyntaxError("text after the end of the tree (more than one tree?)", pos)
        if tok == "(":
            stack.append([None, [], pos])
        elif tok == ")":
            if not stack:
                raise TreeSyntaxError("unbalanced brackets: unexpected ')'", pos)
            label, children, start = stack.pop()
            if label is None and not children:
                raise TreeSyntaxError("empty brackets", start)
            if label is not None and not children:  # "( w )": a word in its own brackets
                node = Tree("", [label])
            else:
                node = Tree(label or "", children)
            if stack:
                stack[-1][1].append(node)
            else:
                root = node
        elif not stack:
            raise TreeSyntaxError(f"word {tok!r} outside any brackets", pos)
        else:
            frame = stack[-1]
            if frame[0] is None and not frame[1]:
                frame[0] = tok
            else:
                frame[1].append(tok)
    if stack:
        raise TreeSyntaxError(f"unbalanced brackets: {len(stack)} unclosed '('", stack[-1][2])
    if root is None:
        raise TreeSyntaxError("no bracketed tree found" if text.strip() else "empty tree")
    return root


def parse_tree(text: str, *, path: str | Path | None = None, line: int | None = None) -> Tree:
    """Parse any bracketed form (labeled PTB, .mrg wrapper, unlabeled); malformed -> InputError."""
    try:
        return parse_bracketed(text)
    except TreeSyntaxError as e:
        where, col = _located(text, e.offset, line)
        raise InputError(path, where, f"{e.problem}{col}") from None


def _tree_chunks(lines: list[str]) -> Iterator[tuple[int, str]]:
    """Group lines into whole trees by bracket depth: .mrg trees span lines, others are one
    per line. A new tree starting at column 0 while one is still open means the open one is
    unbalanced; report it where it started rather than swallowing the rest of the file."""
    depth, start, buf = 0, 0, []
    for lineno, text in enumerate(lines, start=1):
        if depth > 0 and text.startswith("("):
            yield start, "\n".join(buf)  # the parser reports the unclosed brackets
            depth, buf = 0, []
        if depth == 0:
            if not text.strip():
                continue
            start, buf = lineno, []
        buf.append(text)
        depth += text.count("(") - text.count(")")
        if depth <= 0:
            yield start, "\n".join(buf)
            depth, buf = 0, []
    if buf:
        yield start, "\n".join(buf)


def read_trees(path: str | Path) -> list[Tree]:
    """Read trees from a .mrg file (multi-line), a one-tree-per-line file, or a directory."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        mrg = [p for p in files if p.suffix == ".mrg"]
        files = mrg or [p for p in files if p.suffix in TREE_SUFFIXES]
        if not files:
            raise InputError(path, None, "no tree files (.mrg, .txt, ...) in directory")
        return [t for p in files for t in read_trees(p)]
    lines = read_text_lines(path)
    return [parse_tree(chunk, path=path, line=lineno) for lineno, chunk in _tree_chunks(lines)]


def strip_function_tags(label: str) -> str:
    """`NP-SBJ-1` -> `NP`, `PP-LOC=2` -> `PP`; labels that start with '-' (`-NONE-`, `-LRB-`)
    are kept whole."""
    if not label or label[0] == "-":
        return label
    return _FUNCTION_TAG.split(label, 1)[0] or label


def _normalize(node: Tree | str) -> Tree | str | None:
    if isinstance(node, str):
        return node
    if node.label() == "-NONE-":
        return None
    children = [c for c in (_normalize(c) for c in node) if c is not None]
    if not children:
        return None
    return Tree(strip_function_tags(node.label()), children)


def normalize_tree(tree: Tree, *, strip_top: bool = True) -> Tree:
    """Drop `-NONE-` traces and the constituents they leave empty, strip function tags and
    indices, and (by default) remove a TOP/ROOT/empty wrapper with a single phrase under it."""
    out = _normalize(tree)
    if not isinstance(out, Tree):
        raise ValueError("tree has no words after removing -NONE- traces")
    if strip_top:
        while (
            out.label() in ROOT_LABELS
            and len(out) == 1
            and isinstance(out[0], Tree)
            and not is_preterminal(out[0])
        ):
            out = out[0]
    return out


def is_preterminal(node: Tree | str) -> bool:
    return isinstance(node, Tree) and all(isinstance(c, str) for c in node)


def tree_words(tree: Tree) -> list[str]:
    return tree.leaves()


def tree_tags(tree: Tree) -> list[str]:
    """POS tag of every word (the preterminal label; '' in unlabeled trees)."""
    return [tag for _, tag in tree.pos()]


def _unlabeled(node: Tree | str, out: list[str]) -> None:
    while isinstance(node, Tree) and len(node) == 1 and isinstance(node[0], Tree):
        node = node[0]  # collapse unary chains
    if isinstance(node, str):
        out.append(f"( {node} )")
    elif len(node) == 1:  # preterminal over one word
        out.append(f"( {node[0]} )")
    else:
        out.append("(")
        for child in node:
            _unlabeled(child, out)
        out.append(")")


def to_unlabeled(tree: Tree) -> str:
    """The paper's target: `( ( ( The ) ( cat ) ) ( sat ) )`, no labels, unary chains collapsed,
    each word in its own brackets. A one-word sentence is `( ( word ) )`."""
    out: list[str] = []
    _unlabeled(tree, out)
    if len(out) == 1:
        return f"( {out[0]} )"
    return " ".join(out)


def _labeled(node: Tree | str, pos: bool, out: list[str], root: bool = False) -> None:
    if isinstance(node, str):
        out.append(node)
    elif not pos and not root and is_preterminal(node):
        out.append(" ".join(node))  # drop the POS bracket, keep the words
    else:
        out.append(f"({node.label()}")
        for child in node:
            out.append(" ")
            _labeled(child, pos, out)
        out.append(")")


def to_labeled(tree: Tree, *, pos: bool = True) -> str:
    """One-line PTB form: `(S (NP (DT The) (NN cat)) (VP (VBD sat)))`; with `pos=False` the
    preterminals are dropped: `(S (NP The cat) (VP sat))`."""
    out: list[str] = []
    _labeled(tree, pos, out, root=True)
    return "".join(out)


def unlabeled_spans(tree: Tree) -> set[tuple[int, int]]:
    """Word spans [i, j) of every constituent with more than one word, the whole sentence
    included (so unary chains and preterminals add nothing)."""
    spans: set[tuple[int, int]] = set()

    def walk(node: Tree | str, start: int) -> int:
        if isinstance(node, str):
            return start + 1
        end = start
        for child in node:
            end = walk(child, end)
        if end - start > 1:
            spans.add((start, end))
        return end

    walk(tree, 0)
    return spans


def tree_from_spans(words: list[str], spans: Iterable[tuple[int, int]]) -> Tree:
    """An unlabeled tree over `words` with the given [i, j) spans (spans that cross an earlier,
    wider one are ignored; the whole sentence is always a constituent)."""
    n = len(words)
    if n == 0:
        raise ValueError("cannot build a tree over no words")
    wanted = sorted(
        {(i, j) for i, j in spans if 0 <= i < j <= n and j - i > 1}, key=lambda s: (s[0], -s[1])
    )
    stack: list[tuple[int, list]] = [(n, [])]  # (end, children) of the open constituents
    pending = iter(wanted)
    nxt = next(pending, None)
    for k, word in enumerate(words):
        while nxt is not None and nxt[0] == k:
            if nxt[1] <= stack[-1][0] and nxt != (0, n):
                stack.append((nxt[1], []))
            nxt = next(pending, None)
        stack[-1][1].append(Tree("", [word]))
        while len(stack) > 1 and stack[-1][0] == k + 1:
            _, children = stack.pop()
            stack[-1][1].append(Tree("", children))
    return Tree("", stack[0][1])


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
