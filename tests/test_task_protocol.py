"""ConstituencyTask through the Task protocol: the hooks give what the tree-specific code they
wrap gives, so moving the pipeline onto the protocol changes no constituency result."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mckd.examples import Example, read_examples
from mckd.tasks import TASKS, Repaired, Task, primary_metric
from mckd.tasks.base import metrics_json
from mckd.tasks.constituency import evaluate_files
from mckd.tasks.constituency.corpus import build_demo_corpus
from mckd.tasks.constituency.trees import (
    left_branching,
    parse_bracketed,
    right_branching,
    to_unlabeled,
    tree_words,
)
from mckd.teacher.prompts import PromptConfig

TASK = TASKS["constituency"]
TREE = "(S (NP (DT The) (JJ big) (NN cat)) (VP (VBD sat)) (. .))"
EX = Example("a", "The big cat sat .", to_unlabeled(parse_bracketed(TREE)), {"tree": TREE})


def test_constituency_is_a_task_with_one_primary_metric() -> None:
    assert isinstance(TASK, Task)
    assert primary_metric(TASK).key == "f1"
    assert [m["key"] for m in metrics_json(TASK)] == ["f1", "evalb_f1", "evalb_unlabeled_f1", "valid"]
    assert TASK.student_kinds[0] == "seq2seq" and set(TASK.student_kinds) == {"seq2seq", "chart", "causal"}
    assert TASK.prompt_forms == ("labeled", "unlabeled") and TASK.copies_words
    assert TASK.has_gold(EX) and not TASK.has_gold(Example("b", "x y", "( ( x ) ( y ) )"))
    assert TASK.validate(EX) is None
    assert "differ" in TASK.validate(Example("c", "a b", "( ( a ) ( c ) )"))
    assert "not a tree" in TASK.validate(Example("c", "a b", "( ( a ) ( b )"))


def test_baselines_are_right_and_left_branching() -> None:
    sources = ["a b c", "The big cat sat ."]
    made = {name: make(sources) for name, make in TASK.baselines().items()}
    assert list(made) == ["right_branching", "left_branching"]
    assert made["right_branching"] == [right_branching(s.split()) for s in sources]
    assert made["left_branching"] == [left_branching(s.split()) for s in sources]


def test_read_answer_converts_repairs_and_flags() -> None:
    opts = PromptConfig(nest_flat=True)
    got = TASK.read_answer(" " + TREE + "\nmore", EX, "labeled", opts)
    assert got == Repaired("( ( ( The ) ( ( big ) ( cat ) ) ) ( ( sat ) ( . ) ) )", [], True)
    plain = TASK.read_answer(TREE, EX, "labeled", PromptConfig())
    assert plain.text == EX.target and plain.valid
    # a word missing: the repair puts it back and says so; the answer counts as repaired
    short = TASK.read_answer("( ( The ) ( cat ) ( sat ) ( . ) )", EX, "unlabeled", PromptConfig())
    assert short.text == "( ( The ) ( big ) ( cat ) ( sat ) ( . ) )" and short.outcome == "repaired"
    assert short.problems == ["inserted 1 word to match the input"]
    empty = TASK.read_answer("", EX, "unlabeled", PromptConfig())
    assert empty.text is None and not empty.valid


def test_combine_uses_the_consensus() -> None:
    words = "a b c d"
    samples = ["( ( ( a ) ( b ) ) ( c ) ( d ) )", "( ( a ) ( b ) ( ( c ) ( d ) ) )",
               "( ( ( a ) ( b ) ( c ) ) ( d ) )"]
    reps = [Repaired(s) for s in samples]
    mbr, info = TASK.combine(words, reps, "mbr")
    assert mbr.text in samples and info["picked"] in (0, 1, 2) and mbr.valid
    vote, info = TASK.combine(words, reps, "vote")
    assert tree_words(parse_bracketed(vote.text)) == words.split() and "picked" not in info
    none, info = TASK.combine(words, [Repaired(None, ["x"]), Repaired(None, ["y"])], "mbr")
    assert none.problems == ["x"] and info == {"samples": 2, "usable": 0}


def test_prompt_hooks() -> None:
    labels = TASK.label_set([EX], extra=["MYLABEL"])
    assert "MYLABEL" in labels.labels and "NN" in labels.tags
    grammar = TASK.grammar(EX.source, "labeled", labels, PromptConfig())
    assert grammar.startswith("root ::= [ ]? ") and '"MYLABEL"' in grammar
    assert TASK.grammar(EX.source, "unlabeled", labels, PromptConfig(style="chat")).startswith("root ::= \"( \"")
    assert TASK.demo_output(EX, "labeled") == TREE and TASK.demo_output(EX, "unlabeled") == EX.target
    assert TASK.answer_budget(EX.source, "labeled", len) == len(EX.source) + 8 * 5 + 16
    assert "constituency tree" in TASK.instruction("labeled")


def test_builtin_corpus_is_the_demo_corpus() -> None:
    corpus = TASK.builtin_corpus(5, 20, 10, seed=2)
    with tempfile.TemporaryDirectory() as d:
        paths = build_demo_corpus(d, n_labeled=5, n_unlabeled=20, n_test=10, seed=2)
        assert read_examples(paths["labeled"]) == corpus.labeled
        assert read_examples(paths["unlabeled"]) == corpus.pool
        assert read_examples(paths["test"]) == corpus.test


def test_read_corpus_and_evaluate_files(tmp_path: Path) -> None:
    other = "(S (NP (PRP She)) (VP (VBD sang)) (. .))"
    (tmp_path / "gold.txt").write_text(TREE + "\n" + other + "\n")
    (tmp_path / "pred.txt").write_text(EX.target + "\n" + right_branching(["She", "sang", "."]) + "\n")
    examples = TASK.read_corpus(tmp_path / "gold.txt")
    assert [e.source for e in examples] == [EX.source, "She sang ."] and examples[0].target == EX.target
    assert examples[0].meta["origin"].endswith("gold.txt#0")
    for metric in ("mckd", "evalb-unlabeled"):
        assert TASK.evaluate_files(tmp_path / "gold.txt", tmp_path / "pred.txt", metric) == evaluate_files(
            tmp_path / "gold.txt", tmp_path / "pred.txt", metric)


def test_split_through_the_task_reader_matches_the_treebank_split(tmp_path: Path) -> None:
    from mckd.data import SplitConfig, split_treebank, synth_treebank, write_trees
    from mckd.split import split_corpus

    trees = synth_treebank(80, 3)
    write_trees(tmp_path / "trees.txt", [*trees, trees[5]])  # one repeat
    cfg = SplitConfig(n_labeled=5, n_test=20, seed=1, max_len=25)
    split_treebank(tmp_path / "trees.txt", tmp_path / "a", cfg)
    split_corpus(TASK, tmp_path / "trees.txt", tmp_path / "b", cfg)
    for name in ("labeled.jsonl", "unlabeled.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
