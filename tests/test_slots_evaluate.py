"""Scoring slot files: predictions are read from what the predictor wrote (never from the gold
or the intent it copied along in `meta`), gold may come from meta["gold"], and IOB1 gold is
scored literally, with a warning when the prediction is IOB2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mckd import cli
from mckd.errors import InputError
from mckd.examples import Example, write_examples
from mckd.tasks.slots import SlotsTask

TASK = SlotsTask()
ROWS = [("fly to boston", "O O B-toloc.city_name", "atis_flight"),
        ("flights from denver on monday", "O O B-fromloc.city_name O B-depart_date.day_name",
         "atis_flight"),
        ("what is the fare", "O O O O", "atis_airfare")]


def gold_examples() -> list[Example]:
    """Test examples as `mckd data split` writes them: gold in target and meta, intent in meta."""
    return [Example(str(i), s, t, {"gold": t, "intent": it}) for i, (s, t, it) in enumerate(ROWS)]


def write_gold(path: Path) -> Path:
    write_examples(path, gold_examples())
    return path


def mckd(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["mckd", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("empty", ["", None])
def test_a_prediction_without_tags_is_an_error_not_the_gold(tmp_path: Path, empty: str | None) -> None:
    """Prediction files keep the input's meta (with_target): an empty or null target must not
    be scored as the gold copied along in meta["gold"]."""
    gold = write_gold(tmp_path / "gold.jsonl")
    pred = tmp_path / "pred.jsonl"
    write_examples(pred, [ex.with_target(empty) for ex in gold_examples()])
    with pytest.raises(InputError, match=r"pred\.jsonl:1: no predicted tags"):
        TASK.evaluate_files(gold, pred, "conlleval")


def test_the_cli_names_file_and_line_of_an_empty_prediction(tmp_path: Path, monkeypatch, capsys) -> None:
    gold = write_gold(tmp_path / "gold.jsonl")
    pred = tmp_path / "pred.jsonl"
    examples = gold_examples()
    write_examples(pred, [examples[0], examples[1].with_target(""), examples[2]])
    code, out, err = mckd(monkeypatch, capsys, "evaluate", "--task", "slots", "--gold", str(gold),
                          "--pred", str(pred), "--json")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "pred.jsonl:2: no predicted tags" in err


def test_intents_copied_along_in_meta_are_not_predictions(tmp_path: Path) -> None:
    """A student predicts tags only; the gold intent it carries in meta["intent"] gives no
    intent accuracy. Only meta["predicted_intent"], which a predictor writes, does."""
    gold = write_gold(tmp_path / "gold.jsonl")
    pred = tmp_path / "pred.jsonl"
    write_examples(pred, [ex.with_target("O O O" if i == 0 else ex.target)
                          for i, ex in enumerate(gold_examples())])
    scores = TASK.evaluate_files(gold, pred, "conlleval")
    assert "intent_accuracy" not in scores
    assert scores["exact_match"] == pytest.approx(66.67)
    guessed = ["atis_flight", "atis_airfare", "atis_airfare"]
    write_examples(pred, [ex.with_target(ex.target, predicted_intent=g)
                          for ex, g in zip(gold_examples(), guessed, strict=True)])
    assert TASK.evaluate_files(gold, pred, "conlleval")["intent_accuracy"] == pytest.approx(66.67)


def test_gold_files_may_keep_the_tags_in_meta(tmp_path: Path) -> None:
    """A pool file is a gold file too: target None or a pseudolabel, the gold in meta["gold"]."""
    gold = tmp_path / "pool.jsonl"
    write_examples(gold, [Example(ex.id, ex.source, None if i else "O O O", ex.meta)
                          for i, ex in enumerate(gold_examples())])
    pred = tmp_path / "pred.jsonl"
    write_examples(pred, [ex.with_target(ex.target) for ex in gold_examples()])
    scores = TASK.evaluate_files(gold, pred, "conlleval")
    assert scores["f1"] == 100.0 and scores["exact_match"] == 100.0
