from __future__ import annotations

import itertools
import json
import statistics

import pytest

from mckd.data import DemoCorpusConfig, build_demo_corpus, synth_treebank
from mckd.errors import ConfigError, InputError
from mckd.examples import read_examples
from mckd.tasks.constituency import ConstituencyTask
from mckd.tasks.constituency.brackets import WORD_TAGS
from mckd.tasks.constituency.lexicon import load_lexicon
from mckd.tasks.constituency.trees import (
    normalize_tree,
    parse_tree,
    to_labeled,
    to_unlabeled,
    tree_tags,
    tree_words,
    unlabeled_spans,
)

# The 36 word tags plus the punctuation and symbol tags: the full PTB tag set.
PTB_TAGS = WORD_TAGS | {"$", "#", ",", ".", ":", "``", "''", "-LRB-", "-RRB-"}
PHRASES = set(
    [
        "S",
        "SINV",
        "SBAR",
        "SQ",
        "NP",
        "VP",
        "PP",
        "ADJP",
        "ADVP",
        "QP",
        "WHNP",
        "WHADVP",
        "WHPP",
        "PRT",
        "PRN",
        "NX",
        "UCP",
        "CONJP",
        "FRAG",
    ]
)


@pytest.fixture(scope="module")
def trees():
    return synth_treebank(1000, seed=7)


def test_same_seed_same_trees_and_other_seed_other_trees():
    a = [to_labeled(t) for t in synth_treebank(40, seed=3)]
    assert a == [to_labeled(t) for t in synth_treebank(40, seed=3)]
    assert a != [to_labeled(t) for t in synth_treebank(40, seed=4)]
    # a smaller corpus is a prefix of a larger one: growing the pool keeps the first trees
    assert a[:25] == [to_labeled(t) for t in synth_treebank(25, seed=3)]


def test_vocabulary_is_large_and_used(trees):
    assert len(load_lexicon().words()) >= 2000
    used = {w.lower() for t in trees for w in tree_words(t)}
    assert len(used) >= 1500  # a thousand sentences draw on much of the vocabulary


def test_lengths_are_ptb_like(trees):
    lengths = [len(tree_words(t)) for t in trees]
    assert min(lengths) >= 5 and max(lengths) <= 40
    assert 18 <= statistics.mean(lengths) <= 24
    assert sum(10 <= n <= 35 for n in lengths) / len(lengths) >= 0.8
    assert len(set(lengths)) >= 30  # a spread, not a few fixed shapes


def test_max_len_is_respected():
    assert max(len(tree_words(t)) for t in synth_treebank(200, seed=1, max_len=12)) <= 12


def test_trees_look_like_normalized_ptb(trees):
    labels = {st.label() for t in trees for st in t.subtrees() if not isinstance(st[0], str)}
    assert labels <= PHRASES
    assert {"S", "NP", "VP", "PP", "SBAR", "ADJP", "ADVP", "QP", "WHNP"} <= labels
    assert {tag for t in trees for tag in tree_tags(t)} <= PTB_TAGS
    for t in trees[:200]:
        assert normalize_tree(t) == t  # nothing for normalization to remove
        assert t.label() in ("S", "SINV")
    nested_np = sum("(NP (NP " in to_labeled(t) for t in trees)
    assert nested_np > len(trees) / 3
    finals = [tree_words(t)[-1] for t in trees]
    assert finals.count(".") / len(finals) > 0.9


def test_round_trips_through_every_linearization(trees):
    for t in trees:
        assert parse_tree(to_labeled(t)) == t
        back = parse_tree(to_unlabeled(t))
        assert tree_words(back) == tree_words(t)
        assert unlabeled_spans(back) == unlabeled_spans(t)
        no_pos = parse_tree(to_labeled(t, pos=False))
        assert tree_words(no_pos) == tree_words(t)


def test_surface_is_written_english(trees):
    for t in trees:
        words = tree_words(t)
        first = words[1] if words[0] == "``" else words[0]
        assert first[0].isupper() or not first[0].isalpha()
        for w, nxt in itertools.pairwise(words):
            if w.lower() == "a":
                assert nxt[0].lower() not in "aio", " ".join(words)


def test_right_branching_is_a_real_baseline(trees):
    """On real PTB, right-branching scores ~49 with the paper's metric on sentences of at most
    25 words and left-branching ~18; the synthetic corpus should behave alike."""
    task = ConstituencyTask()
    golds = [task.example(str(i), t) for i, t in enumerate(trees[:400])]
    sources = [ex.source for ex in golds]
    right = task.score(golds, task.baseline(sources, "right"))["f1"]
    left = task.score(golds, task.baseline(sources, "left"))["f1"]
    assert 35 <= right <= 55
    assert 8 <= left <= 25
    assert right > left + 15


def test_demo_corpus_is_built_once(tmp_path):
    paths = build_demo_corpus(tmp_path, n_labeled=5, n_unlabeled=20, n_test=10, seed=2)
    sizes = {k: len(read_examples(p)) for k, p in paths.items()}
    assert sizes == {"labeled": 5, "unlabeled": 20, "test": 10}
    assert (tmp_path / "DONE").exists() and (tmp_path / "trees.txt").exists()
    assert all(ex.target for ex in read_examples(paths["labeled"]))
    stamp = paths["test"].stat().st_mtime_ns
    build_demo_corpus(tmp_path, n_labeled=5, n_unlabeled=20, n_test=10, seed=2)
    assert paths["test"].stat().st_mtime_ns == stamp  # same config: nothing rewritten
    build_demo_corpus(tmp_path, DemoCorpusConfig(n_labeled=5, n_unlabeled=20, n_test=12, seed=2))
    assert len(read_examples(paths["test"])) == 12
    assert json.loads((tmp_path / "DONE").read_text())["n_test"] == 12


def test_demo_corpus_rejects_bad_config(tmp_path):
    with pytest.raises(ConfigError, match="n_test"):
        build_demo_corpus(tmp_path, n_test=0)
    with pytest.raises(ConfigError, match="n_sentences"):
        build_demo_corpus(tmp_path, n_sentences=3)


def test_a_bad_lexicon_line_names_file_and_line(tmp_path, monkeypatch):
    import mckd.tasks.constituency.lexicon as lexicon

    (tmp_path / "lexicon").mkdir()
    (tmp_path / "lexicon" / "verbs.txt").write_text(
        "# comment\nbuy bought buys buying bought T\nsell sold sells selling sold T,X\n"
    )
    monkeypatch.setattr(lexicon.resources, "files", lambda _pkg: tmp_path)
    with pytest.raises(
        InputError, match=rf"{tmp_path}/lexicon/verbs.txt:3: unknown frame in 'T,X'"
    ):
        lexicon._read_verbs()
