"""Parity of the pure-Python scorers with the C EVALB program and the paper's official code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mckd.examples import Example
from mckd.tasks import TASKS
from mckd.tasks.constituency import PaperGold, fixup_prediction, paper_metric, score_prediction
from mckd.tasks.constituency.evalb import COLLINS, ERROR, OK, SKIP, EvalbParams, evalb
from mckd.tasks.constituency.trees import TreeSyntaxError

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata"
PARAMS = {"labeled": COLLINS, "unlabeled": EvalbParams(labeled=False)}


def evalb_rows(root: Path, which: str) -> tuple[list[dict], dict, dict]:
    gold = (root / "evalb" / "gold.txt").read_text().splitlines()
    test = (root / "evalb" / "test.txt").read_text().splitlines()
    expected = json.loads((root / "evalb" / f"expected_{which}.json").read_text())
    result = evalb(gold, test, PARAMS[which])
    rows = [
        {
            "id": r.id,
            "len": r.length,
            "status": r.status,
            "recall": round(r.recall, 2),
            "precision": round(r.precision, 2),
            "matched": r.matched,
            "gold": r.gold,
            "test": r.test,
            "crossing": r.crossing,
            "words": r.words,
            "correct_tags": r.correct_tags,
            "tag_accuracy": round(r.tag_accuracy, 2),
        }
        for r in result.sentences
    ]
    summary = {
        block: {k: float(f"{v:.2f}") for k, v in totals.figures().items()}  # EVALB's %6.2f
        for block, totals in (("all", result.all), ("len<=40", result.short))
    }
    return rows, summary, expected


def check_evalb(root: Path, which: str) -> None:
    rows, summary, expected = evalb_rows(root, which)
    assert len(rows) == len(expected["sentences"]) == 300
    for got, want in zip(rows, expected["sentences"], strict=True):
        assert got == want
    assert summary == expected["summary"]


def check_paper(root: Path) -> None:
    pairs = [
        json.loads(x) for x in (root / "paper_metric" / "pairs.jsonl").read_text().splitlines()
    ]
    expected = json.loads((root / "paper_metric" / "expected.json").read_text())
    result = paper_metric(
        [p["gold"] for p in pairs], [p["prediction"] for p in pairs], [p["sentence"] for p in pairs]
    )
    assert len(result.sentences) == len(expected["per_sentence"]) == 300
    for i, (got, want) in enumerate(zip(result.sentences, expected["per_sentence"], strict=True)):
        assert (round(got.f1, 6), got.success) == (want["f1"], want["success"]), (i, pairs[i])
        assert round(got.precision, 6) == want["precision"]
        assert round(got.recall, 6) == want["recall"]
    assert round(result.mean_f1, 6) == expected["mean_f1"]
    assert result.failed == expected["failed"]


@pytest.mark.parametrize("which", ["labeled", "unlabeled"])
def test_evalb_parity_every_row_and_summary(which):
    check_evalb(DATA, which)


def test_paper_metric_parity_every_sentence():
    check_paper(DATA)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared test data not present")
@pytest.mark.parametrize("which", ["labeled", "unlabeled"])
def test_evalb_parity_against_shared_vectors(which):
    check_evalb(SHARED, which)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared test data not present")
def test_paper_metric_parity_against_shared_vectors():
    check_paper(SHARED)


def test_vectors_exercise_the_edge_cases():
    """The copied vectors hold error rows and repaired predictions, not only easy cases."""
    rows, _, _ = evalb_rows(DATA, "labeled")
    assert {r["status"] for r in rows} == {OK, ERROR}
    pairs = [
        json.loads(x) for x in (DATA / "paper_metric" / "pairs.jsonl").read_text().splitlines()
    ]
    kinds = {p["kind"] for p in pairs}
    assert {"extra_close", "drop_close", "merge", "apostrophe", "lower", "drop_word"} <= kinds


# --- EVALB behaviour the vectors do not reach ---------------------------------------------

GOLD = "(S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (. .))"


def test_evalb_crossing_brackets_counted_per_test_bracket():
    test = "(S (NP (DT The) (NN cat) (VBD sat)) (PP (IN on) (NP (DT the) (NN mat))) (. .))"
    row = evalb([GOLD], [test]).sentences[0]
    assert row.status == OK
    assert row.crossing == 1  # (The cat sat) crosses (sat on the mat)
    assert (row.matched, row.gold, row.test) == (3, 5, 4)


def test_evalb_equal_labels_and_function_tags():
    gold = "(S (NP-SBJ (PRP He)) (VP (VBD gave) (PRT (RP up))) (. .))"
    test = "(S (NP (PRP He)) (VP (VBD gave) (ADVP (RP up))) (. .))"
    row = evalb([gold], [test]).sentences[0]
    assert (row.matched, row.gold, row.test) == (4, 4, 4)  # one-word NP and PRT count too


def test_evalb_skip_and_unlabeled_prediction_form():
    result = evalb(
        [GOLD, GOLD],
        ["", "( ( ( The ) ( cat ) ) ( ( sat ) ( ( on ) ( ( the ) ( mat ) ) ) ) ( . ) )"],
        EvalbParams(labeled=False),
    )
    skip, ok = result.sentences
    assert skip.status == SKIP
    assert ok.status == OK and ok.matched == ok.gold == ok.test == 5
    assert result.borrowed_tags == 1


def test_evalb_malformed_test_tree():
    with pytest.raises(TreeSyntaxError):
        evalb([GOLD], ["(S (NP (DT The) (NN cat)"])
    row = evalb([GOLD], ["(S (NP (DT The) (NN cat)"], malformed_is_error=True).sentences[0]
    assert row.status == ERROR and "unclosed" in row.problem


# --- the paper's metric -------------------------------------------------------------------


def test_paper_fixup_steps():
    sentence = "I do n't like the company 's a / b plan"
    assert fixup_prediction(sentence, "( ( a ) ( b )") == "( ( a ) ( b ) )"
    assert fixup_prediction(sentence, "( ( a ) ( b ) ) ) )") == "( ( a ) ( b ) )"
    assert fixup_prediction(sentence, "( ( don't ) )") == "( ( ( do n't ) ) )"
    assert fixup_prediction(sentence, "( ( company's ) )") == "( ( ( company 's ) ) )"
    assert fixup_prediction(sentence, "( ( a/b ) )") == "( ( ( a ) ( / ) ( b ) ) )"


def test_paper_metric_rules():
    gold = PaperGold("(S (NP (DT The) (NN cat)) (VP (VBD sat)) (. .))")
    assert gold.spans == {(0, 2), (0, 3)}  # the period is gone, the whole sentence counts
    perfect = score_prediction(gold, "( ( ( The ) ( cat ) ) ( sat ) ( . ) )")
    assert perfect.f1 == 100.0 and perfect.success
    flat = score_prediction(gold, "( ( The ) ( cat ) ( sat ) ( . ) )")
    assert flat.success and flat.precision == 100.0 and flat.recall == 50.0
    # the final period may be missing: only positions of words count
    assert score_prediction(gold, "( ( ( The ) ( cat ) ) ( sat ) )").f1 == 100.0
    # a word too many, or too few, fails
    assert not score_prediction(gold, "( ( The ) ( cat ) ( sat ) ( . ) ( x ) )").success
    assert not score_prediction(gold, "( ( The ) ( cat ) )").success
    # a labeled prediction is turned into the unlabeled form first
    assert score_prediction(gold, "(S (NP (DT The) (NN cat)) (VP (VBD sat)) (. .))").f1 == 100.0


def test_task_score_and_fidelity():
    task = TASKS["constituency"]
    from mckd.tasks.constituency.trees import normalize_tree, parse_tree

    tree = normalize_tree(parse_tree(GOLD))
    ex = task.example("1", tree)
    assert ex.source == "The cat sat on the mat ."
    right = task.baseline([ex.source])[0]
    scores = task.score([ex, ex], [ex.target, right])
    assert scores["sentences"] == 2 and scores["valid"] == 2
    assert 50 < scores["f1"] < 100
    assert scores["evalb_unlabeled_f1"] > 0 and "evalb_f1" not in scores
    labeled = task.score([ex], [ex.meta["tree"]])
    assert labeled["f1"] == labeled["evalb_f1"] == labeled["evalb_unlabeled_f1"] == 100.0
    assert task.fidelity([ex.target], [ex.target], [ex.source]) == 100.0
    assert task.fidelity([ex.target], [right], [ex.source]) < 100.0
    untagged = Example("2", ex.source, ex.target)
    assert task.score([untagged], [ex.target])["f1"] == 100.0


def test_score_refuses_gold_with_and_without_pos_tags():
    """The paper's metric drops punctuation by the gold POS tags: a set where some gold trees
    have tags and some do not cannot be scored as one metric, so it is an error, not a switch of
    the whole set to counting punctuation."""
    from mckd.errors import InputError
    from mckd.tasks.constituency.trees import normalize_tree, parse_tree

    task = TASKS["constituency"]
    ex = task.example("1", normalize_tree(parse_tree(GOLD)))
    untagged = Example("2", ex.source, ex.target)
    with pytest.raises(InputError, match=r"1 of 3 gold examples .*meta\['tree'\] \(first: id '2'\)") as info:
        task.score([ex, untagged, ex], [ex.target] * 3)
    assert "\n" not in str(info.value)
    assert task.score([ex, ex], [ex.target] * 2)["f1"] == 100.0
    assert task.score([untagged, untagged], [ex.target] * 2)["f1"] == 100.0


def test_fidelity_skips_missing_and_broken_targets():
    task = TASKS["constituency"]
    target = "( ( ( The ) ( cat ) ) ( sat ) )"
    assert task.fidelity([target, "", "( ( The ) ("], [target] * 3, ["The cat sat"] * 3) == 100.0
    assert task.fidelity([], [], []) == 0.0
