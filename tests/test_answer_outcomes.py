"""Every teacher answer ends as valid (usable as written), repaired (usable only after a repair)
or rejected (nothing usable), for every task; the ledger, usage.json and the report count the
three apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mckd.examples import Example, read_examples, write_examples
from mckd.report import write_report
from mckd.tasks.base import Repaired
from mckd.tasks.constituency import ConstituencyTask
from mckd.tasks.slots import SlotsTask
from mckd.teacher.backends.fake import FakeBackend, last_input
from mckd.teacher.config import TeacherConfig
from mckd.teacher.ledger import Usage
from mckd.teacher.prompts import HookOptions, PromptConfig

SLOTS = SlotsTask()
TREES = ConstituencyTask()
LABELS = ["O", "B-toloc.city_name", "I-toloc.city_name", "B-date", "I-date"]
FLIGHT = Example("e", "flights to boston tomorrow", None)


def test_words_that_are_not_tags_are_dropped_before_aligning() -> None:
    """Without a grammar a chat model may write a prefix: the tags after it keep their places."""
    rep = SLOTS.read_answer("Tags: O O B-toloc.city_name B-date", FLIGHT, "tags",
                            HookOptions(labels=LABELS))
    assert rep.text == "O O B-toloc.city_name B-date"
    assert rep.valid and rep.problems == [] and rep.outcome == "valid"


@pytest.mark.parametrize(("raw", "text", "problem"), [
    ("O O B-toloc.city_name", "O O B-toloc.city_name O", "added 1 missing tags as O"),
    ("O O B-toloc.city_name B-date O", "O O B-toloc.city_name B-date", "dropped 1 extra tags"),
    ("O O B-toloc.city_name B-dat", "O O B-toloc.city_name O", "replaced 1 unknown tag with O"),
    ("O O I-toloc.city_name B-date", "O O B-toloc.city_name B-date", "made 1 I- without B- into B-"),
])
def test_a_repaired_slot_answer_is_not_valid(raw: str, text: str, problem: str) -> None:
    rep = SLOTS.read_answer(raw, FLIGHT, "tags", HookOptions(labels=LABELS))
    assert rep.text == text and rep.problems == [problem]
    assert not rep.valid and rep.outcome == "repaired"


def test_outcomes_of_the_repaired_type() -> None:
    assert Repaired("a").outcome == "valid"
    assert Repaired("a", ["fixed"]).outcome == "repaired" and not Repaired("a", ["fixed"]).valid
    assert Repaired("a", [], complete=False).outcome == "repaired"
    assert Repaired(None, ["nothing"]).outcome == "rejected"


def test_consensus_keeps_the_repairs_of_what_it_chose() -> None:
    padded, whole = Repaired("O O B-x O", ["added 1 missing tags as O"]), Repaired("O O O O")
    chosen, info = SLOTS.combine("a b c d", [padded, padded, whole], "mbr")
    assert chosen.text == "O O B-x O" and chosen.outcome == "repaired" and info["chosen"] == 0
    chosen, _ = SLOTS.combine("a b c d", [whole, whole, padded], "mbr")
    assert chosen.outcome == "valid"
    voted, _ = SLOTS.combine("a b c d", [padded, whole, whole], "vote")
    assert voted.text == "O O O O" and voted.outcome == "repaired"  # built from a repaired sample
    voted, _ = SLOTS.combine("a b c d", [whole, whole], "vote")
    assert voted.outcome == "valid"


def test_a_tree_missing_a_word_is_repaired_not_valid() -> None:
    ex = Example("t", "The big cat sat .", None)
    rep = TREES.read_answer("( ( The ) ( cat ) ( sat ) ( . ) )", ex, "unlabeled", PromptConfig())
    assert rep.text == "( ( The ) ( big ) ( cat ) ( sat ) ( . ) )"
    assert rep.outcome == "repaired" and not rep.valid
    whole = TREES.read_answer("( ( The ) ( big ) ( cat ) ( sat ) ( . ) )", ex, "unlabeled", PromptConfig())
    assert whole.outcome == "valid"
    trees = [whole, rep, rep]
    picked, info = TREES.combine(ex.source, trees, "mbr")
    assert picked.outcome == ("valid" if info["picked"] == 0 else "repaired")


def _label(tmp_path: Path, task: str, demos: list[Example], answers: dict[str, str],
           monkeypatch: pytest.MonkeyPatch):
    import mckd.teacher.backends as backends
    from mckd.teacher.label import label_files

    monkeypatch.setattr(backends, "build_backend",
                        lambda c: FakeBackend(lambda r: answers[last_input(r)]))
    write_examples(tmp_path / "demos.jsonl", demos)
    write_examples(tmp_path / "pool.jsonl", [Example(f"u{i}", s) for i, s in enumerate(answers)])
    return label_files(tmp_path / "pool.jsonl", tmp_path / "out",
                       TeacherConfig(backend="fake", k_demos=1, cache=False), task=task,
                       labeled_path=tmp_path / "demos.jsonl", progress=False)


def test_the_ledger_and_usage_count_valid_repaired_and_rejected_slots(tmp_path: Path, monkeypatch) -> None:
    answers = {"fly to rome": "O O B-city", "fly to paris now": "Tags: O O B-city O O",
               "play some jazz": "I cannot help with that."}
    res = _label(tmp_path, "slots", [Example("d", "fly to boston", "O O B-city")], answers, monkeypatch)
    assert res.usage["valid"] == 1 and res.usage["repaired"] == 1 and res.usage["rejected"] == 1
    assert res.usage["labels"] == 2 and res.usage["inputs"] == 3
    ledger = [json.loads(line) for line in (tmp_path / "out" / "ledger.jsonl").read_text().splitlines()]
    assert [(r["valid"], r["repaired"]) for r in ledger] == [(True, False), (False, True), (False, False)]
    labels = read_examples(tmp_path / "out" / "pseudolabels.jsonl")
    assert [ex.meta["teacher"]["valid"] for ex in labels] == [True, False]
    assert [ex.meta["teacher"]["repaired"] for ex in labels] == [False, True]
    assert json.loads((tmp_path / "out" / "usage.json").read_text())["repaired"] == 1


def test_the_ledger_counts_repaired_trees(tmp_path: Path, monkeypatch) -> None:
    answers = {"The cat sat .": "( ( The ) ( cat ) ( sat ) ( . ) )",
               "A dog ran home .": "( ( A ) ( dog ) ) ( ( ran ) ( home ) ( . ) )"}
    res = _label(tmp_path, "constituency", [Example("d", "It rained .", "( ( It ) ( rained ) ( . ) )")],
                 answers, monkeypatch)
    assert (res.usage["valid"], res.usage["repaired"], res.usage["rejected"]) == (1, 1, 0)
    assert res.labels[1].meta["teacher"]["problems"] == ["joined 2 trees under one root"]


def test_usage_recounts_ledgers_written_before_repairs_were_told_apart() -> None:
    """Older ledgers marked a repaired answer valid; its problems say it was repaired."""
    usage = Usage()
    base = {"status": "label", "reason": None, "target": "O O"}
    usage.add({**base, "valid": True, "problems": ["added 1 missing tags as O"]})
    usage.add({**base, "valid": True, "problems": []})
    usage.add({"status": "rejected", "reason": "invalid_output", "valid": False, "problems": ["x"]})
    assert (usage.valid, usage.repaired, usage.to_json()["rejected"]) == (1, 1, 1)


def test_the_report_shows_the_three_counts(tmp_path: Path) -> None:
    usage = {"inputs": 10, "labels": 9, "valid": 6, "repaired": 3, "rejected": 1,
             "rejections": {"invalid_output": 1}}
    (tmp_path / "results.json").write_text(json.dumps({"name": "r", "methods": {},
                                                       "teacher": {"pool": usage}}))
    md = write_report(tmp_path)["md"].read_text()
    assert "| inputs of | inputs | valid | repaired | rejected |" in md
    assert "| pool | 10 | 6 | 3 | 1 |" in md
