"""The per-input tree grammars: gold trees are accepted, malformed ones rejected, and every
string the grammar can produce is one tree over exactly the input words.

The grammars are checked with a small GBNF matcher below (the subset grammar.py writes:
literals, rule references, alternatives and an optional `[ ]?`), and by sampling random
derivations from them."""

from __future__ import annotations

import functools
import random
import re
import sys

import pytest

from mckd.errors import ConfigError
from mckd.tasks.constituency.grammar import tree_grammar
from mckd.tasks.constituency.trees import parse_bracketed, to_labeled, to_unlabeled, tree_words
from mckd.teacher.gbnf import gbnf_literal

sys.setrecursionlimit(20000)

_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|(\[[^\]]*\]\??)|([A-Za-z][\w-]*)|(\|))')


def _unescape(lit: str) -> str:
    body, out, i = lit[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            nxt = body[i + 1]
            if nxt == "x":
                out.append(chr(int(body[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


class Gbnf:
    """Parse the GBNF subset and decide membership of whole strings."""

    def __init__(self, text: str) -> None:
        self.rules: dict[str, list[list[tuple[str, str]]]] = {}
        for line in text.strip().splitlines():
            name, body = line.split(" ::= ", 1)
            alts: list[list[tuple[str, str]]] = [[]]
            pos = 0
            while pos < len(body):
                m = _TOKEN.match(body, pos)
                assert m and m.end() > pos, f"cannot read {body[pos:]!r}"
                lit, cls, ref, bar = m.groups()
                if lit:
                    alts[-1].append(("lit", _unescape(lit)))
                elif cls:
                    alts[-1].append(("opt" if cls.endswith("?") else "cls", cls.rstrip("?")[1:-1]))
                elif ref:
                    alts[-1].append(("ref", ref))
                elif bar:
                    alts.append([])
                pos = m.end()
                while pos < len(body) and body[pos] == " ":
                    pos += 1
            assert name not in self.rules, f"rule {name} defined twice"
            self.rules[name] = alts
        for alts in self.rules.values():
            for alt in alts:
                for kind, val in alt:
                    assert kind != "ref" or val in self.rules, f"undefined rule {val}"

    def accepts(self, text: str) -> bool:
        @functools.cache
        def ends(rule: str, pos: int) -> frozenset[int]:
            out: set[int] = set()
            for alt in self.rules[rule]:
                out |= seq(tuple(alt), pos)
            return frozenset(out)

        def seq(items: tuple[tuple[str, str], ...], pos: int) -> set[int]:
            here = {pos}
            for kind, val in items:
                nxt: set[int] = set()
                for p in here:
                    if kind == "lit":
                        if text.startswith(val, p):
                            nxt.add(p + len(val))
                    elif kind in ("cls", "opt"):
                        if kind == "opt":
                            nxt.add(p)
                        if p < len(text) and re.fullmatch(f"[{val}]", text[p]):
                            nxt.add(p + 1)
                    else:
                        nxt |= ends(val, p)
                here = nxt
            return here

        return len(text) in ends("root", 0)

    def sample(self, rng: random.Random) -> str:
        out: list[str] = []

        def walk(rule: str) -> None:
            for kind, val in rng.choice(self.rules[rule]):
                if kind == "lit":
                    out.append(val)
                elif kind == "opt":
                    if rng.random() < 0.5:
                        out.append(" ")
                elif kind == "ref":
                    walk(val)

        walk("root")
        return "".join(out)


def _depth(text: str) -> int:
    """Most constituent brackets open at once (leaf brackets not counted)."""
    depth, best = 0, 0
    for tok in re.findall(r"\(|\)", text):
        depth += 1 if tok == "(" else -1
        best = max(best, depth)
    return best - 1


@pytest.fixture(scope="module")
def trees() -> list:
    from mckd.tasks.constituency.synth import synth_treebank

    return synth_treebank(25, 7)


@pytest.mark.parametrize("form", ["labeled", "unlabeled"])
def test_gold_trees_are_accepted(trees: list, form: str) -> None:
    accepted = 0
    for tree in trees:
        words = tree_words(tree)
        gold = to_labeled(tree) if form == "labeled" else to_unlabeled(tree)
        g = Gbnf(tree_grammar(words, form=form, max_depth=30))
        assert _depth(gold) <= 30
        assert g.accepts(gold), gold
        assert g.accepts(" " + gold)  # completion models write a space after "Output:"
        accepted += 1
    assert accepted == len(trees)


def test_malformed_outputs_are_rejected() -> None:
    words = ["The", "cat", "sat", "on", "the", "mat", "."]
    g = Gbnf(tree_grammar(words, form="labeled"))
    good = "(S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (. .))"
    assert g.accepts(good)
    bad = {
        "root closed before the last word": "(S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat))))) (. .)",
        "missing close": good[:-1],
        "extra close": good + ")",
        "word changed": good.replace("(NN cat)", "(NN dog)"),
        "word dropped": good.replace(" (DT the)", ""),
        "words merged": good.replace("(DT the) (NN mat)", "(NN the mat)"),
        "unknown label": good.replace("(PP", "(FOO"),
        "leaf without tag": good.replace("(DT The)", "The"),
        "double space": good.replace(" (VP", "  (VP"),
        "text after the tree": good + " (S (NN x))",
        "empty": "",
    }
    for why, text in bad.items():
        assert not g.accepts(text), why
    forest = Gbnf(tree_grammar(words, form="labeled", root="forest"))
    assert forest.accepts(bad["root closed before the last word"])
    assert not forest.accepts(bad["word changed"])


def test_unlabeled_single_root_and_bounds() -> None:
    words = ["a", "b", "c"]
    g = Gbnf(tree_grammar(words, form="unlabeled", max_depth=2))
    assert g.accepts("( ( a ) ( b ) ( c ) )")
    assert g.accepts("( ( ( a ) ( b ) ) ( c ) )")
    assert not g.accepts("( ( ( ( a ) ( b ) ) ( c ) ) )")  # depth 3 > 2
    assert not g.accepts("( ( a ) ( b ) ) ( ( c ) )")  # two roots
    assert not g.accepts("( a ) ( b ) ( c )")  # no root at all
    assert not g.accepts("( ( a ) ( c ) ( b ) )")  # order
    forest = Gbnf(tree_grammar(words, form="unlabeled", root="forest"))
    assert forest.accepts("( a ) ( b ) ( c )")
    assert forest.accepts("( ( a ) ( b ) ) ( c )")


@pytest.mark.parametrize("form", ["labeled", "unlabeled"])
def test_every_derivation_is_one_tree_over_the_input(form: str) -> None:
    rng = random.Random(3)
    words = ["I", "said", '"', "x\\y", "'s", "-LRB-", "ok"]  # quotes and backslashes escaped
    g = Gbnf(tree_grammar(words, form=form, max_depth=6))
    for _ in range(200):
        text = g.sample(rng).strip()
        tree = parse_bracketed(text)  # raises when not exactly one tree
        assert tree_words(tree) == words, text
        assert g.accepts(text)


def test_bad_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="empty sentence"):
        tree_grammar([])
    with pytest.raises(ConfigError, match="bracket"):
        tree_grammar(["a", "(b"])
    with pytest.raises(ConfigError, match="unknown form"):
        tree_grammar(["a"], form="dependency")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="label"):
        tree_grammar(["a"], labels=["N P"])


def test_literal_escaping() -> None:
    assert gbnf_literal('a"b\\c') == '"a\\"b\\\\c"'
    assert _unescape(gbnf_literal('q"\\\n')) == 'q"\\\n'


def test_one_word_sentence() -> None:
    g = Gbnf(tree_grammar(["Hi"], form="unlabeled"))
    assert g.accepts("( ( Hi ) )")
    assert not g.accepts("( Hi )")  # the root bracket is required
    gl = Gbnf(tree_grammar(["Hi"], form="labeled"))
    assert gl.accepts("(INTJ (UH Hi))")
