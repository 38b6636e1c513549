from __future__ import annotations

from pathlib import Path

import pytest
from nltk import Tree

from mckd.errors import InputError
from mckd.tasks.constituency.trees import (
    left_branching,
    normalize_tree,
    parse_tree,
    read_trees,
    repair,
    right_branching,
    scan_brackets,
    to_labeled,
    to_unlabeled,
    tree_from_spans,
    tree_tags,
    tree_words,
    unlabeled_from_spans,
    unlabeled_spans,
)

MRG = """( (S
    (NP-SBJ-1 (DT The) (NN cat) )
    (VP (VBD sat)
      (NP (-NONE- *T*-1) )
      (PP-LOC=2 (IN on)
        (NP (DT the) (NN mat) )))
    (. .) ))
( (S
    (NP-SBJ (PRP It) )
    (VP (VBD rained) )
    (. .) ))
"""

INLINE = [
    "(S (NP (DT The) (NN cat)) (VP (VBD sat)) (. .))",
    "(TOP (S (NP-SBJ (NNP John)) (VP (VBZ likes) (NP (-LRB- -LRB-) (NNS apples) (-RRB- -RRB-)))))",
    "(S (NP (PRP$ Its) (NN price)) (VP (VBD rose) (NP (CD 5) (NN %)) (PP-TMP (IN in) (NP (NNP May)))))",
    "(NP (NN x))",
]


def test_read_mrg_multiline_with_wrapper_traces_and_function_tags(tmp_path):
    path = tmp_path / "wsj_0001.mrg"
    path.write_text(MRG)
    trees = [normalize_tree(t) for t in read_trees(path)]
    assert len(trees) == 2
    assert to_labeled(trees[0]) == (
        "(S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (. .))"
    )
    assert tree_words(trees[0]) == ["The", "cat", "sat", "on", "the", "mat", "."]
    assert tree_tags(trees[1]) == ["PRP", "VBD", "."]
    assert to_unlabeled(trees[0]) == (
        "( ( ( The ) ( cat ) ) ( ( sat ) ( ( on ) ( ( the ) ( mat ) ) ) ) ( . ) )"
    )
    # a directory reads its .mrg files in order
    (tmp_path / "wsj_0002.mrg").write_text(MRG)
    assert len(read_trees(tmp_path)) == 4


@pytest.mark.parametrize("text", INLINE)
def test_round_trip_every_form(text):
    tree = normalize_tree(parse_tree(text))
    assert normalize_tree(parse_tree(to_labeled(tree))) == tree
    no_pos = to_labeled(tree, pos=False)
    assert to_labeled(parse_tree(no_pos)) == no_pos  # no POS layer left to drop
    assert tree_words(parse_tree(no_pos)) == tree_words(tree)
    unlabeled = to_unlabeled(tree)
    back = parse_tree(unlabeled)
    assert tree_words(back) == tree_words(tree)
    assert unlabeled_spans(back) == unlabeled_spans(tree)
    assert to_unlabeled(back) == unlabeled
    assert to_unlabeled(tree_from_spans(tree_words(tree), unlabeled_spans(tree))) == unlabeled


def test_labels_kept_and_stripped():
    tree = normalize_tree(
        parse_tree("(S (NP-SBJ-1 (-LRB- -LRB-) (NN a)) (PP-LOC=2 (IN b) (NN c)))")
    )
    assert to_labeled(tree) == "(S (NP (-LRB- -LRB-) (NN a)) (PP (IN b) (NN c)))"
    assert normalize_tree(parse_tree("(ROOT (S (NN a) (NN b)))")).label() == "S"
    assert normalize_tree(parse_tree("(ROOT (S (NN a) (NN b)))"), strip_top=False).label() == "ROOT"


def test_spans_and_baselines():
    tree = parse_tree("( ( ( The ) ( cat ) ) ( sat ) )")
    assert unlabeled_spans(tree) == {(0, 2), (0, 3)}
    words = ["a", "b", "c", "d"]
    assert right_branching(words) == "( ( a ) ( ( b ) ( ( c ) ( d ) ) ) )"
    assert left_branching(words) == "( ( ( ( a ) ( b ) ) ( c ) ) ( d ) )"
    assert unlabeled_spans(parse_tree(right_branching(words))) == {(0, 4), (1, 4), (2, 4)}
    assert right_branching(["a"]) == "( ( a ) )"
    assert unlabeled_spans(parse_tree(right_branching(["a"]))) == set()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("(S (NP (DT a) (NN b))", "f.txt:7: unbalanced brackets: 1 unclosed '('"),
        ("(S (NP a)))", "f.txt:7: unbalanced brackets: unexpected ')' at column 11"),
        ("(S (NP a) ( ))", "f.txt:7: empty brackets at column 11"),
        ("", "f.txt:7: empty tree"),
        ("(S a) (S b)", "f.txt:7: text after the end of the tree"),
    ],
)
def test_malformed_input_names_file_line_and_problem(text, problem):
    with pytest.raises(InputError) as e:
        parse_tree(text, path="f.txt", line=7)
    assert str(e.value).startswith(problem)


def test_unbalanced_tree_in_file_reported_at_its_line(tmp_path):
    path = tmp_path / "trees.txt"
    path.write_text("(S (NN a) (NN b))\n(S (NN a) (NN b)\n(S (NN c) (NN d))\n")
    with pytest.raises(InputError, match=r"trees.txt:2: unbalanced brackets: 1 unclosed"):
        read_trees(path)


# --- repair of generated trees -------------------------------------------------------------

WORDS = ["I", "do", "n't", "like", "the", "company", "'s", "a", "/", "b", "plan", "."]
GOOD = "( ( I ) ( ( do ) ( n't ) ( like ) ( ( the ) ( company ) ( 's ) ) ( ( a ) ( / ) ( b ) ( plan ) ) ) ( . ) )"


def test_repair_leaves_a_good_tree_alone():
    r = repair(GOOD, WORDS)
    assert (r.text, r.changed, r.yield_ok, r.problems) == (GOOD, False, True, [])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOOD[:-4], "appended 2 missing ')'"),
        (GOOD + " ) )", "dropped 2 extra ')'"),
        (GOOD.replace("( I )", "( ( ) I )"), "removed 1 empty brackets"),
    ],
)
def test_repair_balances_brackets(text, problem):
    r = repair(text, WORDS)
    assert r.changed and r.yield_ok and problem in r.problems
    assert tree_words(parse_tree(r.text)) == WORDS


def test_repair_joins_a_forest_under_one_root():
    forest = "( ( I ) ( ( do ) ( n't ) ( like ) ( ( the ) ( company ) ( 's ) ) ( ( a ) ( / ) ( b ) ( plan ) ) ) ) ( . )"
    r = repair(forest, WORDS)
    assert "joined 2 trees under one root" in r.problems and r.yield_ok
    assert unlabeled_spans(parse_tree(r.text)) >= {(0, 11), (0, 12)}


def test_repair_splits_merged_tokens_into_their_own_brackets():
    merged = "( ( I ) ( ( don't ) ( like ) ( ( the ) ( company's ) ) ( ( a/b ) ( plan ) ) ) ( . ) )"
    r = repair(merged, WORDS)
    assert r.yield_ok and "split 3 words to match the input" in r.problems
    spans = unlabeled_spans(parse_tree(r.text))
    assert {(1, 3), (5, 7), (7, 10)} <= spans  # each split token is one constituent


def test_repair_restores_case_and_joins_split_words():
    r = repair(GOOD.replace("( I )", "( i )").replace("( plan )", "( pl ) ( an )"), WORDS)
    assert r.yield_ok and tree_words(r.tree) == WORDS
    assert "changed case of 1 word to match the input" in r.problems
    assert "joined 1 word to match the input" in r.problems


def test_repair_dropped_and_extra_words():
    dropped = repair(GOOD.replace("( like ) ", ""), WORDS)
    assert dropped.yield_ok and "inserted 1 word to match the input" in dropped.problems
    extra = repair(GOOD.replace("( like )", "( really ) ( like )"), WORDS)
    assert extra.yield_ok and "dropped 1 word to match the input" in extra.problems


def test_repair_labeled_output_stays_labeled():
    text = "(S (NP (PRP I)) (VP (VBP don't) (VB like) (NP (DT the) (NN plan))) (. .)"
    r = repair(text, ["I", "do", "n't", "like", "the", "plan", "."])
    assert r.yield_ok and r.text.startswith("(S (NP (PRP I))")
    assert "appended 1 missing ')'" in r.problems


def test_repair_reports_what_it_cannot_fix():
    assert repair("", WORDS).text is None
    assert not repair("", WORDS).yield_ok
    flat = repair("I do n't like", WORDS)
    assert flat.yield_ok and "bracketed 4 words outside any brackets" in flat.problems


# --- round trip on the built-in generated treebank ----------------------------------------


def constituents(tree: Tree) -> list[tuple[int, int, str]]:
    """(start, end, label) of every non-preterminal node, in the order it closes."""
    out: list[tuple[int, int, str]] = []

    def walk(node: Tree, start: int) -> int:
        if isinstance(node[0], str) and len(node) == 1:
            return start + 1
        end = start
        for child in node:
            end = walk(child, end)
        out.append((start, end, node.label()))
        return end

    walk(tree, 0)
    return out


def test_round_trip_on_1000_generated_trees():
    from mckd.tasks.constituency.synth import synth_treebank

    trees = synth_treebank(1000, 0)
    assert len(trees) == 1000
    for tree in trees:
        words, tags = tree_words(tree), tree_tags(tree)
        assert normalize_tree(tree) == tree  # the generator writes normalized trees
        labeled = to_labeled(tree)
        assert parse_tree(labeled) == tree
        assert scan_brackets(labeled) == (words, tags, constituents(tree))
        no_pos = parse_tree(to_labeled(tree, pos=False))
        assert tree_words(no_pos) == words and unlabeled_spans(no_pos) == unlabeled_spans(tree)
        unlabeled = to_unlabeled(tree)
        back = parse_tree(unlabeled)
        assert tree_words(back) == words and unlabeled_spans(back) == unlabeled_spans(tree)
        assert to_unlabeled(back) == unlabeled
        assert to_unlabeled(tree_from_spans(words, unlabeled_spans(tree))) == unlabeled
        assert unlabeled_from_spans(words, unlabeled_spans(tree)) == unlabeled
        assert repair(unlabeled, words).changed is False


def test_fast_scanner_agrees_with_careful_scanner_on_damaged_text():
    """scan_brackets takes a fast path; the careful path (used for error offsets) must read
    every string, well-formed or not, the same way."""
    import json
    import random

    from mckd.tasks.constituency.brackets import TreeSyntaxError, _scan_checked, _scan_fast

    data = Path(__file__).parent / "data"
    lines = (data / "evalb" / "gold.txt").read_text().splitlines()[:100]
    pairs = (data / "paper_metric" / "pairs.jsonl").read_text().splitlines()[:100]
    lines += [json.loads(x)["prediction"] for x in pairs]
    lines += ["( ( w ) )", "(NN x)", "( (S (NP a b) (VP (V c))) )", "( ( The cat ) ( sat ) )"]
    lines += ["( w )", "w", "", "()", "(S (NP a) ( ))", "(S a) b", "(S a))", "((S (NP a b)))"]
    rng = random.Random(0)
    for text in list(lines):
        for _ in range(4):
            chars = list(text)
            k = rng.randrange(len(chars) + 1)
            if chars and rng.random() < 0.4:
                del chars[min(k, len(chars) - 1)]
            else:
                chars.insert(k, rng.choice("() x"))
            lines.append("".join(chars))

    def read(scan, text, labels):
        try:
            return scan(text, labels)
        except TreeSyntaxError:
            return "malformed"

    for text in lines:
        for labels in (True, False):
            assert read(_scan_fast, text, labels) == read(_scan_checked, text, labels), text
