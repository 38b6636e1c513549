"""The plain-text task: gold is meta["gold"] (or a gold file's target), predictions are read from
their target only, and a corpus read for a split keeps its gold in meta for the pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mckd.errors import InputError
from mckd.examples import Example, read_examples, write_examples
from mckd.split import SplitConfig, split_corpus
from mckd.tasks.text import TextTask

TASK = TextTask()


def test_gold_is_meta_gold_not_any_target() -> None:
    pseudolabel = Example("p", "a b", "a b")  # a teacher's answer is a target, not gold
    assert not TASK.has_gold(pseudolabel)
    assert TASK.has_gold(Example("p", "a b", "a b", {"gold": "b a"}))
    assert TASK.has_gold(Example("q", "a b", None, {"gold": "b a"}))


def test_score_reads_gold_from_meta_then_target() -> None:
    golds = [Example("1", "a b", None, {"gold": "b a"}),   # a pool example: gold only in meta
             Example("2", "c d", "c d"),                   # a test example: gold is its target
             Example("3", "e f", "e f", {"gold": "f e"})]  # meta's gold wins over a pseudolabel
    preds = ["b  a", "d c", "f e"]
    assert TASK.score(golds, preds) == {"exact_match": pytest.approx(200 / 3), "sentences": 3.0}
    with pytest.raises(ValueError, match="'x' has neither"):
        TASK.score([Example("x", "a", None)], ["a"])


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prediction_files_are_read_from_their_target_only(tmp_path: Path) -> None:
    gold = _jsonl(tmp_path / "gold.jsonl", [{"id": "1", "source": "a b", "target": "x y"},
                                            {"id": "2", "source": "c", "target": "z"},
                                            {"id": "3", "source": "d", "target": "w"}])
    # predictions keep the input's meta, gold included: only the target is the prediction
    pred = _jsonl(tmp_path / "pred.jsonl", [
        {"id": "1", "source": "a b", "target": "x  y", "meta": {"gold": "x y"}},
        {"id": "2", "source": "c", "target": "q", "meta": {"gold": "z"}},
        {"id": "3", "source": "d", "target": "r", "meta": {"gold": "w"}}])
    scores = TASK.evaluate_files(gold, pred, "exact", per_sentence=True)
    assert scores["exact_match"] == pytest.approx(100 / 3) and scores["sentences"] == 3
    assert [s["match"] for s in scores["per_sentence"]] == [True, False, False]


def test_gold_jsonl_may_hold_its_gold_in_meta_and_plain_lines_still_work(tmp_path: Path) -> None:
    gold = _jsonl(tmp_path / "pool.jsonl", [{"id": "1", "source": "a b", "target": None, "meta": {"gold": "b a"}},
                                            {"id": "2", "source": "c", "target": "c"}])
    plain = tmp_path / "pred.txt"
    plain.write_text("b a\nnot c\n")
    assert TASK.evaluate_files(gold, plain, "exact")["exact_match"] == 50.0
    (tmp_path / "gold.txt").write_text("b a\nc\n")
    assert TASK.evaluate_files(tmp_path / "gold.txt", plain, "exact")["exact_match"] == 50.0


@pytest.mark.parametrize("target", [None, "", "  "])
def test_a_prediction_without_target_is_one_line_naming_file_and_line(tmp_path: Path, target) -> None:
    gold = _jsonl(tmp_path / "gold.jsonl", [{"id": "1", "source": "a", "target": "a"},
                                            {"id": "2", "source": "b", "target": "b"}])
    pred = _jsonl(tmp_path / "pred.jsonl", [{"id": "1", "source": "a", "target": "a"},
                                            {"id": "2", "source": "b", "target": target, "meta": {"gold": "b"}}])
    with pytest.raises(InputError) as info:
        TASK.evaluate_files(gold, pred, "exact")
    assert str(info.value).startswith(f"{pred}:2: ") and "target" in str(info.value)
    assert "\n" not in str(info.value)


def test_gold_jsonl_without_any_gold_is_an_error(tmp_path: Path) -> None:
    gold = _jsonl(tmp_path / "gold.jsonl", [{"id": "1", "source": "a", "target": None}])
    pred = _jsonl(tmp_path / "pred.jsonl", [{"id": "1", "source": "a", "target": "a"}])
    with pytest.raises(InputError, match=r"gold.jsonl:1: "):
        TASK.evaluate_files(gold, pred, "exact")


def test_split_pool_keeps_the_gold_text_in_meta(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    write_examples(corpus, [Example(str(i), f"w{i} v{i}", f"answer {i}") for i in range(12)])
    split_corpus(TASK, corpus, tmp_path / "out", SplitConfig(n_labeled=2, n_test=3, seed=0))
    pool = read_examples(tmp_path / "out" / "unlabeled.jsonl")
    assert len(pool) == 7 and all(ex.target is None for ex in pool)
    assert all(TASK.has_gold(ex) and ex.meta["gold"] == "answer " + ex.source.split()[0][1:] for ex in pool)
