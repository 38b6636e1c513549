"""Penn Treebank bracketed trees: read, normalise, linearize, parse back, and repair.

Trees are `nltk.Tree`s. An unlabeled tree (the paper's `( ( The ) ( cat ) )` form) uses the
empty string as every label, so one word in its own brackets is a preterminal `Tree("", [w])`
and the same helpers (`tree_words`, `unlabeled_spans`, ...) work on both forms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nltk import Tree

from mckd.errors import InputError
from mckd.io import read_text_lines
from mckd.tasks.constituency.brackets import (
    TOKEN,
    WORD_TAGS,
    Scan,
    TreeSyntaxError,
    left_branching,
    looks_labeled,
    right_branching,
    scan_brackets,
    unlabeled_from_spans,
)

__all__ = [
    "WORD_TAGS",
    "Repair",
    "Scan",
    "TreeSyntaxError",
    "is_preterminal",
    "left_branching",
    "looks_labeled",
    "normalize_tree",
    "parse_bracketed",
    "parse_tree",
    "read_trees",
    "repair",
    "right_branching",
    "scan_brackets",
    "strip_function_tags",
    "to_labeled",
    "to_unlabeled",
    "tree_from_spans",
    "tree_tags",
    "tree_words",
    "unlabeled_from_spans",
    "unlabeled_spans",
]

ROOT_LABELS = frozenset({"", "TOP", "ROOT"})
_FUNCTION_TAG = re.compile(r"[-=]")
TREE_SUFFIXES = (".mrg", ".txt", ".tree", ".trees", ".ptb", ".gold", ".pred", ".tst")


def _located(text: str, offset: int | None, line: int | None) -> tuple[int | None, str]:
    """Line and ' at column C' suffix for an offset into (possibly multi-line) `text`."""
    if offset is None:
        return line, ""
    before = text[:offset]
    newlines = before.count("\n")
    column = offset - (before.rfind("\n") + 1) + 1
    return (line + newlines if line is not None else None), f" at column {column}"


def parse_bracketed(text: str, *, labels: bool | None = None) -> Tree:
    """Parse one bracketed tree; raise `TreeSyntaxError` (with an offset) when malformed.

    `(X w)` is label X over word w; `( w )` (one token, nothing else) is an unlabeled word
    bracket; `( (...) ...)` has the empty label (the .mrg outer wrapper, the unlabeled form).
    With `labels=False` (the default when the text does not look labeled) every token is a
    word, so a damaged unlabeled `( The cat )` keeps both words.
    """
    if labels is None:
        labels = looks_labeled(text)
    stack: list[list] = []  # frames: [label | None, children, offset of "("]
    root: Tree | None = None
    for m in TOKEN.finditer(text):
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
            if label is not None and not children:  # "(w)": a word in its own brackets
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
            if labels and frame[0] is None and not frame[1]:
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


@dataclass
class Repair:
    """The outcome of repairing one generated tree. `text` is the repaired tree in the input's
    form (labeled or unlabeled), None when nothing could be salvaged; `changed` says whether
    any repair was needed; `yield_ok` whether the leaves now equal the input words."""

    text: str | None
    tree: Tree | None
    changed: bool
    yield_ok: bool
    problems: list[str] = field(default_factory=list)


def _forest(tokens: list[str], labels: bool, problems: list[str]) -> list[Tree | str]:
    """Read tokens into top-level items, dropping ')' that close nothing, closing what is left
    open and skipping empty brackets (each counted in `problems`)."""
    stack: list[list] = [[None, []]]  # the bottom frame collects the top-level items
    extra = empty = 0
    for tok in tokens:
        if tok == "(":
            stack.append([None, []])
        elif tok == ")":
            if len(stack) == 1:
                extra += 1
                continue
            label, children = stack.pop()
            if label is None and not children:
                empty += 1
                continue
            node = Tree("", [label]) if not children else Tree(label or "", children)
            stack[-1][1].append(node)
        else:
            frame = stack[-1]
            if labels and len(stack) > 1 and frame[0] is None and not frame[1]:
                frame[0] = tok
            else:
                frame[1].append(tok)
    missing = len(stack) - 1
    while len(stack) > 1:
        label, children = stack.pop()
        if label is None and not children:
            empty += 1
            continue
        stack[-1][1].append(Tree("", [label]) if not children else Tree(label or "", children))
    if missing:
        problems.append(f"appended {missing} missing ')'")
    if extra:
        problems.append(f"dropped {extra} extra ')'")
    if empty:
        problems.append(f"removed {empty} empty brackets")
    return stack[0][1]


def _norm(word: str) -> str:
    return word.lower()


def _align(leaves: list[str], words: list[str]) -> list[tuple[str, int, int, int, int]]:
    """Cheapest edit script turning `leaves` into `words`: steps (op, i0, i1, j0, j1) saying
    leaves[i0:i1] become words[j0:j1]. Merges of up to 4 tokens either way cost little, case
    changes less, substitutions, drops and insertions a full point each."""
    n, m, inf = len(leaves), len(words), float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    nl, nw = [_norm(x) for x in leaves], [_norm(x) for x in words]
    for i in range(n + 1):
        for j in range(m + 1):
            c = cost[i][j]
            if c == inf:
                continue
            steps: list[tuple[str, int, int, float]] = []
            if i < n and j < m:
                same = 0.0 if leaves[i] == words[j] else 0.1 if nl[i] == nw[j] else 1.0
                steps.append(("match" if same < 1 else "substitute", 1, 1, same))
                for k in range(2, 5):
                    if j + k <= m and nl[i] == "".join(nw[j : j + k]):
                        steps.append(("split", 1, k, 0.2))
                    if i + k <= n and "".join(nl[i : i + k]) == nw[j]:
                        steps.append(("join", k, 1, 0.2))
            if i < n:
                steps.append(("drop", 1, 0, 1.0))
            if j < m:
                steps.append(("insert", 0, 1, 1.0))
            for op, di, dj, w in steps:
                if c + w < cost[i + di][j + dj]:
                    cost[i + di][j + dj] = c + w
                    back[i + di][j + dj] = (op, i, j)
    script = []
    i, j = n, m
    while i or j:
        op, pi, pj = back[i][j]  # type: ignore[misc]
        script.append((op, pi, i, pj, j))
        i, j = pi, pj
    return script[::-1]


def _rebuild(
    node: Tree | str, plan: dict[int, list[str]], before: dict[int, list[str]], pos: list[int]
) -> list[Tree | str]:
    """Copy `node` with leaf k replaced by plan[k] (zero, one or several words) and the words
    before[k] inserted as siblings ahead of it; nodes left without words disappear."""
    if isinstance(node, str):
        k = pos[0]
        pos[0] += 1
        return list(plan.get(k, [node]))
    children: list[Tree | str] = []
    for child in node:
        if (isinstance(child, str) or is_preterminal(child)) and pos[0] in before:
            children.extend(Tree("", [w]) for w in before.pop(pos[0]))
        children.extend(_rebuild(child, plan, before, pos))
    if not children:
        return []
    if len(children) > 1 and any(isinstance(c, str) for c in children):
        tag = node.label() if is_preterminal(node) else ""
        children = [Tree(tag, [c]) if isinstance(c, str) else c for c in children]
    return [Tree(node.label(), children)]


def _realign(tree: Tree, words: list[str], problems: list[str]) -> Tree:
    leaves = tree.leaves()
    plan: dict[int, list[str]] = {}
    before: dict[int, list[str]] = {}  # words to insert before leaf k (k == n: at the end)
    counts: dict[str, int] = {}
    for op, i0, i1, j0, j1 in _align(leaves, words):
        if op == "match" and leaves[i0] == words[j0]:
            continue
        counts[op] = counts.get(op, 0) + 1
        if op == "insert":
            before.setdefault(i0, []).extend(words[j0:j1])
        else:
            plan[i0] = words[j0:j1]
            for k in range(i0 + 1, i1):
                plan[k] = []
    names = {
        "match": "changed case of",
        "split": "split",
        "join": "joined",
        "substitute": "replaced",
        "drop": "dropped",
        "insert": "inserted",
    }
    for op, k in counts.items():
        problems.append(f"{names[op]} {k} word{'s' if k > 1 else ''} to match the input")
    out = _rebuild(tree, plan, before, [0])
    root = out[0] if len(out) == 1 and isinstance(out[0], Tree) else Tree("", out)
    for extra in before.values():  # words missing after the last leaf
        root.extend(Tree("", [w]) for w in extra)
    return root


def repair(text: str, words: list[str]) -> Repair:
    """Repair a generated tree over `words`: balance brackets, join a forest under one root,
    and re-align the leaves to the words (merged or split tokens, case, dropped or extra
    words). Never raises; `problems` lists what was done."""
    problems: list[str] = []
    labels = looks_labeled(text)
    items = _forest(TOKEN.findall(text), labels, problems)
    if not items:
        return Repair(None, None, True, False, [*problems, "no words in the output"])
    if len(items) == 1 and isinstance(items[0], Tree):
        tree = items[0] if not is_preterminal(items[0]) else Tree("", items)
    else:
        trees = sum(isinstance(x, Tree) for x in items)
        if trees > 1:
            problems.append(f"joined {trees} trees under one root")
        if len(items) > trees:
            problems.append(f"bracketed {len(items) - trees} words outside any brackets")
        tree = Tree("", [x if isinstance(x, Tree) else Tree("", [x]) for x in items])
    if words and tree.leaves() != words:
        tree = _realign(tree, words, problems)
    yield_ok = tree.leaves() == words
    out = to_labeled(tree) if labels else to_unlabeled(tree)
    return Repair(out, tree, bool(problems), yield_ok, problems)
