"""conlleval parity: every summary and per-sentence figure of conlleval.pl on the 300 pairs in
tests/data/conlleval (its output recorded in expected.json), and its chunk rules one by one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mckd.tasks.slots.conlleval import rounded, score_tag_sequences, split_tag

DATA = Path(__file__).parent / "data" / "conlleval"
KEYS = ("tokens", "gold_chunks", "found_chunks", "correct_chunks", "accuracy", "precision",
        "recall", "f1")


def _tags(name: str) -> list[list[str]]:
    return [line.split() for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def parity() -> tuple[list[list[str]], list[list[str]], dict]:
    expected = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))
    return _tags("gold.txt"), _tags("pred.txt"), expected


def test_summary_matches_conlleval(parity) -> None:
    gold, pred, expected = parity
    scores = rounded(score_tag_sequences(gold, pred))
    assert {k: scores[k] for k in KEYS} == expected["summary"]
    assert scores["sentences"] == len(gold) == 300


def test_every_sentence_matches_conlleval(parity) -> None:
    gold, pred, expected = parity
    assert len(expected["sentences"]) == len(gold)
    for i, (g, p, want) in enumerate(zip(gold, pred, expected["sentences"], strict=True)):
        got = rounded(score_tag_sequences([g], [p]))
        assert {k: got[k] for k in KEYS} == want, f"sentence {i + 1}: {g} / {p}"


def test_per_type_counts_add_up_to_the_totals(parity) -> None:
    gold, pred, _ = parity
    scores = score_tag_sequences(gold, pred)
    per_type = scores["per_type"]
    assert "music-item" in per_type and "fromloc.city_name" in per_type
    for key, total in (("gold", "gold_chunks"), ("found", "found_chunks"),
                       ("correct", "correct_chunks")):
        assert sum(t[key] for t in per_type.values()) == scores[total]


def _one(gold: str, pred: str) -> dict:
    return score_tag_sequences([gold.split()], [pred.split()])


def test_i_after_o_starts_a_chunk() -> None:
    s = _one("O I-x I-x", "O B-x I-x")
    assert (s["gold_chunks"], s["found_chunks"], s["correct_chunks"]) == (1, 1, 1)
    assert s["accuracy"] == pytest.approx(200 / 3)  # the tags differ, the chunks do not


def test_i_after_another_type_starts_a_chunk() -> None:
    s = _one("B-x I-x I-x", "B-x I-y I-x")
    assert (s["gold_chunks"], s["found_chunks"], s["correct_chunks"]) == (1, 3, 0)
    assert s["per_type"]["y"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 0,
                                  "found": 1, "correct": 0}


def test_b_after_b_of_the_same_type_is_two_chunks() -> None:
    s = _one("B-x B-x", "B-x I-x")
    assert (s["gold_chunks"], s["found_chunks"], s["correct_chunks"]) == (2, 1, 0)


def test_types_split_at_the_first_hyphen() -> None:
    assert split_tag("B-fromloc.city_name") == ("B", "fromloc.city_name")
    assert split_tag("I-music-item") == ("I", "music-item")
    assert split_tag("O") == ("O", "")
    s = _one("B-a-b I-a-b O", "B-a-b I-a-c O")
    assert (s["gold_chunks"], s["found_chunks"], s["correct_chunks"]) == (1, 2, 0)


def test_chunk_at_sentence_end_and_exact_match() -> None:
    s = score_tag_sequences([["O", "B-x"], ["B-y", "I-y"]], [["O", "B-x"], ["B-y", "O"]])
    assert (s["gold_chunks"], s["found_chunks"], s["correct_chunks"]) == (2, 2, 1)
    assert s["exact_match"] == 50.0
    assert s["precision"] == s["recall"] == s["f1"] == 50.0


def test_no_chunks_scores_zero_not_an_error() -> None:
    s = _one("O O", "O O")
    assert (s["precision"], s["recall"], s["f1"], s["accuracy"]) == (0.0, 0.0, 0.0, 100.0)


def test_intent_accuracy_only_when_given() -> None:
    assert "intent_accuracy" not in _one("O", "O")
    s = score_tag_sequences([["O"], ["O"]], [["O"], ["O"]], gold_intents=["a", "b"],
                            pred_intents=["a", "c"])
    assert s["intent_accuracy"] == 50.0


def test_contract_keys() -> None:
    s = _one("B-x", "B-x")
    assert set(s) == {"f1", "precision", "recall", "sentences", "tokens", "gold_chunks",
                      "found_chunks", "correct_chunks", "accuracy", "exact_match", "per_type"}


def test_mismatched_lengths_are_errors() -> None:
    with pytest.raises(ValueError, match="2 gold sentences but 1"):
        score_tag_sequences([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1"):
        score_tag_sequences([["O", "O"]], [["O"]])


def test_agrees_with_seqeval_conlleval_mode(parity) -> None:
    """seqeval's default mode reimplements conlleval's chunking; a second opinion."""
    metrics = pytest.importorskip("seqeval.metrics")
    gold, pred, _ = parity
    ours = score_tag_sequences(gold, pred)
    assert ours["f1"] == pytest.approx(100 * metrics.f1_score(gold, pred))
    assert ours["precision"] == pytest.approx(100 * metrics.precision_score(gold, pred))
