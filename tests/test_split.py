from __future__ import annotations

import json
import sys

import pytest

from mckd import cli
from mckd.data import SplitConfig, load_treebank, split_treebank, synth_treebank, write_trees
from mckd.errors import InputError
from mckd.examples import read_examples
from mckd.tasks.constituency.stats import format_stats, treebank_stats
from mckd.tasks.constituency.trees import parse_tree, to_labeled, to_unlabeled

# PTB-style .mrg trees as the LDC files write them: outer wrapper, function tags, traces,
# several lines per tree. Written for these tests.
MRG_A = """\
( (S
    (NP-SBJ-1 (DT The) (NN board) )
    (VP (VBD agreed)
      (S
        (NP-SBJ (-NONE- *-1) )
        (VP (TO to)
          (VP (VB sell)
            (NP (DT the) (NN unit) )
            (PP-CLR (IN for) (NP ($ $) (CD 20) (CD million) (-NONE- *U*) ))))))
    (. .) ))
( (S
    (NP-SBJ (PRP It) )
    (VP (VBD said)
      (SBAR (-NONE- 0)
        (S
          (NP-SBJ (NNS sales) )
          (VP (VBD rose) (NP-EXT (CD 5) (NN %) )))))
    (. .) ))
"""
MRG_B = """\
( (S
    (NP-SBJ (NNP Acme) (NNP Corp.) )
    (VP (VBZ makes) (NP (NNS tools) ))
    (. .) ))
"""


@pytest.fixture
def treebank(tmp_path):
    path = tmp_path / "trees.txt"
    write_trees(path, synth_treebank(120, seed=5))
    return path


def _read(out):
    return {name: read_examples(out / f"{name}.jsonl") for name in ("labeled", "unlabeled", "test")}


def test_split_sizes_disjoint_and_formats(treebank, tmp_path):
    out = tmp_path / "split"
    sizes = split_treebank(
        treebank, out, SplitConfig(n_labeled=10, n_test=30, n_unlabeled=40, seed=1)
    )
    assert sizes == {"labeled": 10, "unlabeled": 40, "test": 30}
    splits = _read(out)
    ids = [ex.id for exs in splits.values() for ex in exs]
    sources = [ex.source for exs in splits.values() for ex in exs]
    assert len(set(ids)) == len(ids) == 80 and len(set(sources)) == 80
    for name, exs in splits.items():
        for ex in exs:
            gold = parse_tree(ex.meta["tree"])
            assert ex.source == " ".join(gold.leaves())
            assert ex.target == (None if name == "unlabeled" else to_unlabeled(gold))
            assert ex.meta["origin"].startswith(str(treebank))
    info = json.loads((out / "split.json").read_text())
    assert info["sizes"] == sizes and info["config"]["seed"] == 1


def test_split_is_seeded_and_pool_defaults_to_the_rest(treebank, tmp_path):
    cfg = SplitConfig(n_labeled=10, n_test=30, seed=1)
    split_treebank(treebank, tmp_path / "a", cfg)
    split_treebank(treebank, tmp_path / "b", cfg)
    split_treebank(treebank, tmp_path / "c", cfg.model_copy(update={"seed": 2}))
    a, b, c = _read(tmp_path / "a"), _read(tmp_path / "b"), _read(tmp_path / "c")
    assert a == b
    assert {ex.id for ex in a["test"]} != {ex.id for ex in c["test"]}
    assert len(a["unlabeled"]) == 120 - 10 - 30


def test_mrg_directory_is_normalized(tmp_path):
    (tmp_path / "wsj" / "00").mkdir(parents=True)
    (tmp_path / "wsj" / "00" / "wsj_0001.mrg").write_text(MRG_A)
    (tmp_path / "wsj" / "00" / "wsj_0002.mrg").write_text(MRG_B)
    (tmp_path / "wsj" / "README").write_text("not trees")
    bank = load_treebank(tmp_path / "wsj")
    assert [" ".join(t.leaves()) for t in bank.trees] == [
        "The board agreed to sell the unit for $ 20 million .",
        "It said sales rose 5 % .",
        "Acme Corp. makes tools .",
    ]
    labels = {st.label() for t in bank.trees for st in t.subtrees()}
    assert "-NONE-" not in labels and "NP-SBJ" not in labels and "" not in labels
    assert bank.origins[2].endswith("wsj_0002.mrg#0")
    out = tmp_path / "out"
    split_treebank(tmp_path / "wsj", out, SplitConfig(n_labeled=1, n_test=1, seed=0))
    assert sum(len(v) for v in _read(out).values()) == 3


def test_separate_test_treebank(treebank, tmp_path):
    """The standard PTB setting: train from sections 02-21, test on all of section 23."""
    test_path = tmp_path / "sec23.txt"
    overlap = treebank.read_text().splitlines()[:3]  # three test sentences also in training
    write_trees(test_path, synth_treebank(20, seed=99))
    test_path.write_text(test_path.read_text() + "\n".join(overlap) + "\n")
    out = tmp_path / "std"
    sizes = split_treebank(treebank, out, SplitConfig(n_labeled=10, seed=0), test_trees=test_path)
    assert sizes == {"labeled": 10, "unlabeled": 120 - 3 - 10, "test": 23}
    splits = _read(out)
    assert all(ex.meta["origin"].startswith(str(test_path)) for ex in splits["test"])
    info = json.loads((out / "split.json").read_text())
    assert info["dropped"] == {"also in the test set": 3}
    cfg = SplitConfig(n_labeled=10, n_test=30)
    with pytest.raises(
        InputError, match=r"sec23.txt: asked for 30 test sentences, needs 30, but only 23"
    ):
        split_treebank(treebank, tmp_path / "x", cfg, test_trees=test_path)


def test_max_len_and_repeats_are_dropped_and_counted(tmp_path):
    path = tmp_path / "t.txt"
    lines = [
        "(S (NP (NNS Prices)) (VP (VBD rose)) (. .))",
        "(S (NP (NNS Prices)) (VP (VBD rose)) (. .))",
        "(S (NP (DT The) (JJ new) (NN plant)) (VP (VBD opened) (PP (IN in) (NP (NNP May)))) (. .))",
    ]
    path.write_text("\n".join(lines) + "\n")
    bank = load_treebank(path, max_len=5, drop_repeats=True)
    assert len(bank.trees) == 1
    assert bank.dropped == {"repeated sentence": 1, "longer than 5 tokens": 1}
    bank = load_treebank(path, max_len=5)  # a reader keeps repeats unless asked
    assert len(bank.trees) == 2 and bank.dropped == {"longer than 5 tokens": 1}


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (
            SplitConfig(n_labeled=50, n_test=100),
            "asked for 50 labeled + 100 test sentences, needs more than 150, but only 120",
        ),
        (SplitConfig(n_labeled=10, n_test=100, n_unlabeled=20), "needs 130, but only 120 usable"),
        (SplitConfig(n_labeled=20, n_test=100), "needs more than 120, but only 120"),
    ],
)
def test_sizes_too_big_is_one_line(treebank, tmp_path, cfg, message):
    with pytest.raises(InputError) as e:
        split_treebank(treebank, tmp_path / "out", cfg)
    assert str(treebank) in str(e.value) and message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_bad_inputs_are_one_line_errors(tmp_path):
    cfg = SplitConfig(n_labeled=1, n_test=1)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(InputError, match=r"empty.txt: file is empty"):
        split_treebank(empty, tmp_path / "o", cfg)
    with pytest.raises(InputError, match=r"missing.mrg: no such file or directory"):
        split_treebank(tmp_path / "missing.mrg", tmp_path / "o", cfg)
    bad = tmp_path / "bad.txt"
    bad.write_text("(S (NP (DT The) (NN cat)) (VP (VBD sat)) (. .))\n(S (NP (DT A) (NN dog)\n")
    with pytest.raises(InputError, match=r"bad.txt:2: "):
        split_treebank(bad, tmp_path / "o", cfg)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match=r"nothing: no tree files"):
        split_treebank(tmp_path / "nothing", tmp_path / "o", cfg)


def test_stats_of_a_small_treebank(tmp_path):
    (tmp_path / "a.mrg").write_text(MRG_A + MRG_B)
    stats = treebank_stats(load_treebank(tmp_path / "a.mrg").trees)
    assert stats["sentences"] == 3 and stats["tokens"] == 12 + 7 + 5
    assert stats["length"]["min"] == 5 and stats["length"]["max"] == 12
    assert set(stats["labels"]) == {"S", "NP", "VP", "PP", "SBAR"}
    # "Acme Corp. makes tools ." without punctuation: gold spans {0-4, 0-2, 2-4};
    # right-branching {0-4, 1-4, 2-4} matches 2 of 3
    assert 0 < stats["baselines"]["right_f1"] < 100
    assert "right-branching F1" in format_stats(stats)


def _mckd(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["mckd", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_cli_synth_and_split(tmp_path, monkeypatch, capsys):
    trees = tmp_path / "trees.txt"
    code, out, _ = _mckd(
        monkeypatch,
        capsys,
        "data",
        "synth-treebank",
        "--n",
        "60",
        "--seed",
        "1",
        "--out",
        str(trees),
    )
    assert code == 0 and len(trees.read_text().splitlines()) == 60
    args = [
        "data",
        "split",
        "--trees",
        str(trees),
        "--out",
        str(tmp_path / "s"),
        "--labeled",
        "5",
        "--test",
        "20",
    ]
    code, out, _ = _mckd(monkeypatch, capsys, *args)
    assert code == 0 and "5 labeled, 35 unlabeled, 20 test" in out
    code, _, err = _mckd(monkeypatch, capsys, *args[:-1], "200")
    assert code == 2 and err.count("\n") == 1 and "needs more than 205, but only 60" in err
    code, _, err = _mckd(monkeypatch, capsys, *args[:-1], "0")
    assert code == 2 and "n_test" in err
    code, out, _ = _mckd(monkeypatch, capsys, "data", "stats", "--trees", str(trees), "--json")
    assert code == 0 and json.loads(out)["sentences"] == 60


# --- a separate test corpus is kept whole ---------------------------------------------------------

TRAIN_LINES = [f"show flights from city{i} to town{i}" for i in range(12)]
# repeats of a test sentence, and test sentences also in the training corpus (lines 0 and 5)
TEST_LINES = ["list fares to boston", TRAIN_LINES[5], "list fares to boston", "what is fare code y",
              TRAIN_LINES[0], "list fares to boston", "what is fare code y", "show me ground transport"]


def _seq_folder(folder, lines):
    folder.mkdir(parents=True)
    (folder / "seq.in").write_text("".join(line + "\n" for line in lines))
    (folder / "seq.out").write_text("".join(" ".join("O" for _ in line.split()) + "\n" for line in lines))
    (folder / "label").write_text("".join("atis_flight\n" for _ in lines))
    return folder


@pytest.fixture
def slot_corpus(tmp_path):
    train = _seq_folder(tmp_path / "atis" / "train", [*TRAIN_LINES, TRAIN_LINES[3]])  # one repeat in train
    return train, _seq_folder(tmp_path / "atis" / "test", TEST_LINES)


def test_test_corpus_is_kept_whole_and_overlap_leaves_the_training_side(slot_corpus, tmp_path, caplog):
    from mckd.split import split_corpus
    from mckd.tasks import TASKS

    train, test = slot_corpus
    out = tmp_path / "out"
    with caplog.at_level("INFO", logger="mckd.split"):
        sizes = split_corpus(TASKS["slots"], train, out, SplitConfig(n_labeled=2, seed=0), test_path=test)
    splits = _read(out)
    assert [ex.source for ex in splits["test"]] == TEST_LINES  # every line, in order
    assert all(ex.target == ex.meta["gold"] for ex in splits["test"])
    training = [ex.source for name in ("labeled", "unlabeled") for ex in splits[name]]
    assert sorted(training) == sorted(set(TRAIN_LINES) - {TRAIN_LINES[0], TRAIN_LINES[5]})
    assert sizes == {"labeled": 2, "unlabeled": 8, "test": 8}
    info = json.loads((out / "split.json").read_text())
    assert info["dropped"] == {"repeated sentence": 1, "also in the test set": 2}
    assert info["test_dropped"] == {} and info["test_read"] == 8 and info["test_repeats_kept"] == 3
    said = caplog.text
    assert "all 8 test sentences kept" in said and "3 repeat an earlier test sentence" in said
    assert "2 also in the test set" in said and "1 repeated sentence" in said


def test_dedup_test_drops_repeats_of_a_test_sentence(slot_corpus, tmp_path):
    from mckd.split import split_corpus
    from mckd.tasks import TASKS

    train, test = slot_corpus
    out = tmp_path / "out"
    sizes = split_corpus(TASKS["slots"], train, out, SplitConfig(n_labeled=2, seed=0, dedup_test=True),
                         test_path=test)
    assert [ex.source for ex in _read(out)["test"]] == list(dict.fromkeys(TEST_LINES))  # first of each
    assert sizes == {"labeled": 2, "unlabeled": 8, "test": 5}
    info = json.loads((out / "split.json").read_text())
    assert info["test_dropped"] == {"repeated sentence": 3} and info["test_repeats_kept"] == 0


def test_test_treebank_repeats_are_kept(treebank, tmp_path, monkeypatch, capsys):
    """Both ways to split a treebank (the library call and the command, which reads through the
    task) keep every tree of the test treebank; only the training side loses the overlap."""
    train_lines = treebank.read_text().splitlines()
    fresh = [to_labeled(t, pos=True) for t in synth_treebank(6, seed=99)]
    test_lines = [fresh[0], train_lines[4], fresh[1], fresh[0], fresh[2], fresh[0], train_lines[7]]
    test_path = tmp_path / "sec23.txt"
    test_path.write_text("\n".join(test_lines) + "\n")
    want = [" ".join(parse_tree(line).leaves()) for line in test_lines]

    sizes = split_treebank(treebank, tmp_path / "a", SplitConfig(n_labeled=10, seed=0), test_trees=test_path)
    assert sizes == {"labeled": 10, "unlabeled": 120 - 2 - 10, "test": 7}
    assert [ex.source for ex in _read(tmp_path / "a")["test"]] == want
    code, out, _ = _mckd(monkeypatch, capsys, "data", "split", "--trees", str(treebank), "--test-trees",
                         str(test_path), "--labeled", "10", "--out", str(tmp_path / "b"))
    assert code == 0 and "10 labeled, 108 unlabeled, 7 test" in out
    for name in ("labeled.jsonl", "unlabeled.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    code, out, _ = _mckd(monkeypatch, capsys, "data", "split", "--trees", str(treebank), "--test-trees",
                         str(test_path), "--labeled", "10", "--out", str(tmp_path / "c"), "--dedup-test")
    assert code == 0 and "10 labeled, 108 unlabeled, 5 test" in out
    assert [ex.source for ex in _read(tmp_path / "c")["test"]] == list(dict.fromkeys(want))
