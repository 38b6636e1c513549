"""Gold the run's label set cannot express: a slot type the labeled examples never show (and
task.labels does not add) can be predicted by no teacher answer and no student, so results.json
and the report give the share of gold chunks of such types and the recall and F1 it caps. The
hook is the task's (parsing has none); `mckd label` takes task.labels as `mckd run` does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import mckd.tasks.base as task_base
from mckd import cli
from mckd.config import config_from_dict
from mckd.distill.pipeline import run_pipeline
from mckd.examples import Example, read_examples, write_examples
from mckd.tasks import TASKS
from mckd.tasks.slots import SlotsTask
from mckd.tasks.slots.conlleval import score_tag_sequences
from mckd.teacher.backends.fake import FakeBackend, last_input

TASK = SlotsTask()


def _ex(source: str, tags: str | None, gold: str | None = None) -> Example:
    return Example(source, source, tags, {"gold": gold or tags})


def test_slot_gold_outside_the_label_set_caps_recall_and_f1() -> None:
    golds = [_ex("fly to new york", "O O B-city I-city"),
             _ex("boston to denver on monday", "B-city O B-city O B-day"),
             _ex("play jazz", "O B-genre"), _ex("pool input", None, gold="B-city O")]
    labels = TASK.label_set([_ex("to rome", "O B-city")])
    got = TASK.label_coverage(golds, labels)
    assert got == {"gold_chunks": 6, "outside_label_set": 2, "outside_share": pytest.approx(100 / 3),
                   "recall_ceiling": pytest.approx(200 / 3), "f1_ceiling": pytest.approx(80.0),
                   "label_types": 1, "types_outside": {"day": 1, "genre": 1}}
    every = TASK.label_set([_ex("to rome", "O B-city")], extra=["day", "B-genre"])
    assert TASK.label_coverage(golds, every)["f1_ceiling"] == 100.0
    assert TASK.label_coverage([_ex("a b", "O O")], labels) is None  # no gold chunk at all


def test_tasks_without_the_limit_say_nothing() -> None:
    tree = Example("t", "a b", "( ( a ) ( b ) )", {"tree": "(S (NN a) (NN b))"})
    constituency = TASKS["constituency"]
    assert constituency.label_coverage([tree], constituency.label_set([tree])) is None
    assert task_base.label_coverage(TASKS["text"], [Example("x", "a", "b")], []) is None  # no hook at all
    assert task_base.label_coverage(TASK, [_ex("to rome", "O B-city")], ["O", "B-day", "I-day"])["f1_ceiling"] == 0.0


@pytest.fixture
def echo_o(monkeypatch: pytest.MonkeyPatch) -> None:
    """A teacher answering all-O for every input."""
    import mckd.teacher.backends as backends

    monkeypatch.setattr(backends, "build_backend", lambda cfg: FakeBackend(
        lambda r: " ".join("O" for _ in last_input(r).split())))


def test_results_and_report_give_the_ceiling(tmp_path: Path, echo_o: None) -> None:
    sizes = {"n_labeled": 3, "n_unlabeled": 12, "n_test": 12, "seed": 2, "max_len": 12}
    cfg = config_from_dict({"name": "cov", "task": {"name": "slots", "labels": ["B-extra_type"]},
                            "data": {"source": "demo", "demo": sizes}, "methods": ["teacher"],
                            "teacher": {"backend": "fake", "model": "fake", "k_demos": 2,
                                        "cache_path": str(tmp_path / "cache.sqlite")},
                            "run_dir": str(tmp_path / "run")})
    run_pipeline(cfg)
    root = tmp_path / "run"
    results = json.loads((root / "results.json").read_text())
    labeled = read_examples(root / "data" / "labeled.jsonl")
    known = {t[2:] for ex in labeled for t in ex.target.split() if t != "O"} | {"extra_type"}
    for part, file in (("test", "test.jsonl"), ("pool", "unlabeled.jsonl")):
        tags = [ex.meta["gold"].split() for ex in read_examples(root / "data" / file)]
        per_type = score_tag_sequences(tags, tags)["per_type"]
        total = sum(v["gold"] for v in per_type.values())
        outside = sum(v["gold"] for k, v in per_type.items() if k not in known)
        got = results["label_coverage"][part]
        assert outside > 0 and (got["gold_chunks"], got["outside_label_set"]) == (total, outside)
        assert got["recall_ceiling"] == pytest.approx(100 * (total - outside) / total)
    test = results["label_coverage"]["test"]
    md = (root / "report.md").read_text()
    assert "Gold outside the run's label set" in md
    assert f"| test | {test['gold_chunks']} | {test['outside_label_set']} | {test['outside_share']:.1f} |" in md
    assert f"no method can exceed F1 {test['f1_ceiling']:.1f}" in md
    assert "Gold outside" in (root / "report.html").read_text()


def test_parsing_results_have_no_ceiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mckd.teacher.backends as backends

    monkeypatch.setattr(backends, "build_backend", lambda cfg: FakeBackend(
        lambda r: "( " + " ".join(f"( {w} )" for w in last_input(r).split()) + " )"))
    cfg = config_from_dict({"name": "p", "task": "constituency", "methods": ["teacher"],
                            "data": {"source": "demo", "demo": {"n_labeled": 3, "n_unlabeled": 4,
                                                                "n_test": 3, "max_len": 8}},
                            "teacher": {"backend": "fake", "model": "fake", "k_demos": 2,
                                        "cache_path": str(tmp_path / "cache.sqlite")},
                            "run_dir": str(tmp_path / "run")})
    run_pipeline(cfg)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "label_coverage" not in results
    assert "Gold outside" not in (tmp_path / "run" / "report.md").read_text()


# --------------------------------------------------------------------------- mckd label


def _label_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path,
               *args: str) -> tuple[int, list[Example], str]:
    import mckd.teacher.backends as backends

    answers = {"fly to rome": "O O B-city", "play some jazz": "O O B-genre"}
    monkeypatch.setattr(backends, "build_backend",
                        lambda cfg: FakeBackend(lambda r: answers[last_input(r)]))
    write_examples(tmp_path / "demos.jsonl", [_ex("fly to boston", "O O B-city")])
    write_examples(tmp_path / "pool.jsonl", [Example(f"u{i}", s) for i, s in enumerate(answers)])
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["mckd", "label", "--pool", str(tmp_path / "pool.jsonl"),
                                      "--labeled", str(tmp_path / "demos.jsonl"), "--out", str(out),
                                      "--backend", "fake", "--set", "k_demos=1", "--set", "cache=false",
                                      "--no-progress", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code or 0
    err = capsys.readouterr().err
    return code, read_examples(out / "pseudolabels.jsonl") if code == 0 else [], err


def test_label_takes_task_labels_from_set(tmp_path: Path, monkeypatch, capsys) -> None:
    code, labels, err = _label_cli(monkeypatch, capsys, tmp_path, "--task", "slots")
    assert code == 0, err
    assert [ex.target for ex in labels] == ["O O B-city", "O O O"]  # genre: not in the label set
    code, labels, err = _label_cli(monkeypatch, capsys, tmp_path / "b", "--task", "slots",
                                   "--set", "task.labels=[B-genre, I-genre]")
    assert code == 0, err
    assert [ex.target for ex in labels] == ["O O B-city", "O O B-genre"]


def test_label_takes_task_labels_from_a_run_config(tmp_path: Path, monkeypatch, capsys) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("task: {name: slots, labels: [genre]}\nteacher: {temperature: 0.0}\n")
    code, labels, err = _label_cli(monkeypatch, capsys, tmp_path, "--config", str(config))
    assert code == 0, err
    assert [ex.target for ex in labels] == ["O O B-city", "O O B-genre"]
    code, _, err = _label_cli(monkeypatch, capsys, tmp_path / "b", "--config", str(config),
                              "--task", "constituency")
    assert code == 2 and err.count("\n") == 1 and "task" in err and "slots" in err
    code, _, err = _label_cli(monkeypatch, capsys, tmp_path / "c", "--task", "slots",
                              "--set", "task.colour=blue")
    assert code == 2 and err.count("\n") == 1 and "task.colour" in err
