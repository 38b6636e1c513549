"""The probe (k-fold: teacher vs the gold-trained student on held-out gold) and the stage-0
sources (teacher, sft, combine, auto), on the tiny treebank with the fake LLM and the fake
student of pipeline_fakes."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import mckd.student
import mckd.teacher.backends as backends
from mckd.cli import app
from mckd.config import config_from_dict
from mckd.distill.paired import paired_bootstrap, verdict
from mckd.distill.pipeline import run_pipeline
from mckd.distill.probe import make_folds, run_probe
from mckd.distill.stage0 import COMBINE_SFT_SHARE
from mckd.examples import Example, read_examples
from mckd.tasks import get_task
from mckd.tasks.constituency.trees import left_branching, parse_tree, right_branching, to_unlabeled
from mckd.teacher.backends.base import TeacherRequest
from mckd.teacher.backends.fake import FakeBackend, last_input

sys.path.insert(0, str(Path(__file__).parent))
import pipeline_fakes as pf


@pytest.fixture(autouse=True)
def fake_student(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mckd.student, "build_student", pf.fake_build_student)


class Teacher:
    """The fake LLM of every backend the run builds: answers by `answer(source)` (default: echo
    the input), and keeps every request."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.requests: list[TeacherRequest] = []
        self.answer: Any = None

        def respond(request: TeacherRequest) -> str:
            source = last_input(request)
            return source if self.answer is None else self.answer(source)

        def build(cfg: Any) -> FakeBackend:
            backend = FakeBackend(respond)
            backend.calls = self.requests
            return backend

        monkeypatch.setattr(backends, "build_backend", build)

    def inputs(self) -> list[str]:
        return [last_input(r) for r in self.requests]


@pytest.fixture
def teacher(monkeypatch: pytest.MonkeyPatch) -> Teacher:
    return Teacher(monkeypatch)


def demo_inputs(request: TeacherRequest) -> list[str]:
    """The inputs of the demonstrations a prompt shows (every `Input:` but the last)."""
    chunks = (request.prompt or "").split("Input: ")[1:-1]
    return [c.split("\nOutput:", 1)[0].strip() for c in chunks]


def config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    cfg = pf.tiny_config(tmp_path, **overrides)
    cfg["data"]["n_labeled"] = None  # all 8
    return cfg


def gold_trees(tmp_path: Path) -> dict[str, str]:
    """Every corpus sentence's gold tree in the labeled PTB form (the teacher's prompt form)."""
    out = {}
    for name in ("labeled", "unlabeled", "test"):
        for ex in read_examples(tmp_path / "corpus" / f"{name}.jsonl"):
            out[ex.source] = ex.meta["tree"]
    return out


@pytest.mark.parametrize("demos", ["shared", "random", "nearest"])
def test_no_fold_is_shown_its_own_examples(tmp_path: Path, teacher: Teacher, demos: str) -> None:
    """Each fold's prompts carry demonstrations from the other folds only; with k as large as
    the other folds, exactly all of them."""
    cfg = config(tmp_path)
    cfg["teacher"].update({"k_demos": 6, "prompt": {"demos": demos}})
    result = run_probe(config_from_dict(cfg))
    root = tmp_path / "run"
    labeled = read_examples(root / "data" / "labeled.jsonl")
    folds = [set(f) for f in json.loads((root / "probe" / "folds.json").read_text())]
    source_id = {ex.source: ex.id for ex in labeled}
    assert len(source_id) == len(labeled) == 8 and len(folds) == 5
    assert sorted(len(f) for f in folds) == [1, 1, 2, 2, 2] and set().union(*folds) == set(source_id.values())
    assert sorted(teacher.inputs()) == sorted(source_id)  # each labeled input once
    for request in teacher.requests:
        own = next(f for f in folds if source_id[last_input(request)] in f)
        shown = {source_id[s] for s in demo_inputs(request)}
        assert shown and not shown & own
        if len(own) == 2:  # 6 other examples: every one of them is shown
            assert shown == set(source_id.values()) - own
    # the result: both scores on the same 8 held-out examples, the difference, a verdict
    assert result["examples"] == 8 and result["folds"] == 5
    assert result["difference"]["value"] == pytest.approx(result["teacher"]["value"] - result["sft"]["value"])
    assert result["verdict"] in ("teacher", "none", "sft") and result["recommendation"]
    assert result["usage"]["calls"] == 8 and result["pool_estimate"]["inputs"] == 16
    # the students: each trained on the other folds only
    for i, fold in enumerate(folds):
        trained = {ex.id for ex in read_examples(root / "probe" / f"fold{i}" / "student" / "trained_on.jsonl")}
        assert trained == set(source_id.values()) - fold
    assert (root / "probe" / "DONE").exists()


def test_probe_resumes_and_run_reuses_it(tmp_path: Path, teacher: Teacher) -> None:
    cfg = config(tmp_path, methods=["sft", "mckd"], stages=[2], probe=True)
    first = run_probe(config_from_dict(cfg))
    calls = len(teacher.requests)
    again = run_probe(config_from_dict(cfg))
    assert again == first and len(teacher.requests) == calls  # step skipped
    summary = run_pipeline(config_from_dict(cfg))
    probe = next(o for o in summary.outcomes if o.name == "probe")
    assert probe.skipped
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["probe"]["verdict"] == first["verdict"]
    assert results["teacher"]["probe"]["calls"] == 8
    assert {f"probe_fold{i}" for i in range(5)} <= set(results["students"])
    assert "Probe" in (tmp_path / "run" / "report.md").read_text()


def test_probe_command_prints_scores_and_recommendation(tmp_path: Path, teacher: Teacher) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config(tmp_path)))
    out = CliRunner().invoke(app, ["probe", str(path), "--set", "probe_folds=4"])
    assert out.exit_code == 0, out.output
    assert "4-fold over 8 labeled examples" in out.output and "recommendation:" in out.output
    assert "teacher - student" in out.output


def test_stage0_sft_feeds_the_stages_with_the_sft_students_labels(tmp_path: Path, teacher: Teacher) -> None:
    run_pipeline(config_from_dict(config(tmp_path, stage0="sft")))
    root = tmp_path / "run"
    pool = read_examples(root / "data" / "unlabeled.jsonl")
    # the LLM labelled the test inputs only, never the pool
    assert set(teacher.inputs()) == {ex.source for ex in read_examples(root / "data" / "test.jsonl")}
    assert not (root / "teacher").exists()
    sft = {ex.id: ex.target for ex in read_examples(root / "sft" / "pool.jsonl")}
    stage0 = read_examples(root / "stage0" / "labels.jsonl")
    assert [ex.id for ex in stage0] == [ex.id for ex in pool]
    assert all(ex.target == sft[ex.id] and ex.meta["stage0_source"] == "sft" for ex in stage0)
    # the sft student saw none of the pool: its labels are its own predictions, not gold
    assert any(ex.target != to_unlabeled(parse_tree(ex.meta["tree"])) for ex in stage0)
    parts = [set(p) for p in json.loads((root / "partitions" / "partitions.json").read_text())]
    for k, part in enumerate(parts):
        trained = read_examples(root / f"stage1_part{k}" / "student" / "trained_on.jsonl")
        assert {ex.id for ex in trained} == {ex.id for ex in pool} - part
        assert all(ex.target == sft[ex.id] for ex in trained)
    vanilla = read_examples(root / "vanilla_kd" / "student" / "trained_on.jsonl")
    assert {ex.id: ex.target for ex in vanilla} == sft
    results = json.loads((root / "results.json").read_text())
    assert results["stage0"]["mode"] == "sft" and results["stage0"]["sources"] == {"sft": 16}
    assert results["pseudolabels"]["stage0"]["gold"] == results["pseudolabels"]["sft"]["gold"]
    assert "pool" not in results["teacher"]


def test_stage0_teacher_is_the_default_and_says_so(tmp_path: Path, teacher: Teacher) -> None:
    cfg = config(tmp_path, methods=["sft", "vanilla_kd"])
    cfg.pop("stage0", None)
    run_pipeline(config_from_dict(cfg))
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["stage0"]["mode"] == "teacher" and results["stage0"]["sources"] == {"teacher": 16}
    assert results["stage0"]["reason"].startswith("the default") and "probe" not in results
    run_pipeline(config_from_dict(config(tmp_path, methods=["sft", "vanilla_kd"], stage0="teacher")))
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["stage0"]["reason"] == "stage0 is set to it in the config"


def test_stage0_combine_records_every_labels_source(tmp_path: Path, teacher: Teacher) -> None:
    cfg = config(tmp_path, stage0="combine", methods=["sft", "vanilla_kd"])
    trees = gold_trees(tmp_path)
    # gold, right-branching (what the fake sft student answers for inputs it never saw: the two
    # agree) or left-branching, by the input's length
    answers = (lambda w: trees[" ".join(w)], right_branching, left_branching)
    teacher.answer = lambda s: answers[len(s.split()) % 3](s.split())
    run_pipeline(config_from_dict(cfg))
    root = tmp_path / "run"
    labels = read_examples(root / "stage0" / "labels.jsonl")
    teacher_labels = {ex.id: ex.target for ex in read_examples(root / "teacher" / "labels.jsonl")}
    sft = {ex.id: ex for ex in read_examples(root / "sft" / "pool.jsonl")}
    counts = Counter(ex.meta["stage0_source"] for ex in labels)
    results = json.loads((root / "results.json").read_text())
    assert results["stage0"]["sources"] == dict(counts) and results["stage0"]["mode"] == "combine"
    assert counts["agree"] and counts["sft"] and counts["agree"] + counts["sft"] + counts["teacher"] == 16
    for ex in labels:
        src = ex.meta["stage0_source"]
        assert ex.target == (sft[ex.id].target if src == "sft" else teacher_labels[ex.id])
        assert (src == "agree") == (teacher_labels[ex.id] == sft[ex.id].target)
    # of the disagreements, the sft student's most confident share went to it
    disagree = [ex for ex in labels if ex.meta["stage0_source"] != "agree"]
    went_sft = [sft[ex.id].meta["mean_logprob"] for ex in disagree if ex.meta["stage0_source"] == "sft"]
    others = [sft[ex.id].meta["mean_logprob"] for ex in disagree if ex.meta["stage0_source"] != "sft"]
    if results["probe"]["verdict"] != "sft":  # the rest went to the teacher
        assert others and min(went_sft) >= max(others)
        assert len(went_sft) == round(COMBINE_SFT_SHARE * len(disagree))
    else:
        assert not others
    assert results["pseudolabels"]["teacher"]["candidate"] and results["pseudolabels"]["stage0"]["stage"] == 0
    md = (root / "report.md").read_text()
    assert "Stage 0" in md and "combine" in md


def test_stage0_auto_follows_the_probe(tmp_path: Path, teacher: Teacher) -> None:
    """A teacher that answers gold is clearly better than the gold-trained student: auto takes
    its labels. A teacher that echoes the words (flat trees) is clearly worse: auto takes the
    sft student's, and the teacher labels no pool input."""
    cfg = config(tmp_path / "a", stage0="auto", methods=["sft", "mckd"], stages=[2])
    trees = gold_trees(tmp_path / "a")
    teacher.answer = lambda s: trees[s]
    run_pipeline(config_from_dict(cfg))
    results = json.loads((tmp_path / "a" / "run" / "results.json").read_text())
    assert results["probe"]["verdict"] == "teacher" and results["stage0"]["mode"] == "teacher"
    assert results["stage0"]["sources"] == {"teacher": 16} and "auto: the probe found" in results["stage0"]["reason"]
    assert results["teacher"]["pool"]["calls"] == 16

    teacher.requests.clear()
    teacher.answer = None
    run_pipeline(config_from_dict(config(tmp_path / "b", stage0="auto", methods=["sft", "mckd"], stages=[2])))
    root = tmp_path / "b" / "run"
    results = json.loads((root / "results.json").read_text())
    assert results["probe"]["verdict"] == "sft" and results["stage0"]["mode"] == "sft"
    assert results["stage0"]["sources"] == {"sft": 16}
    labelled = set(teacher.inputs())
    assert labelled == {ex.source for ex in read_examples(root / "data" / "labeled.jsonl")}  # probe only
    assert "skipped" in json.loads((root / "teacher" / "metrics.json").read_text())
    assert "pool" not in results["teacher"]


def test_stage0_needs_sft() -> None:
    from mckd.errors import ConfigError

    with pytest.raises(ConfigError, match="stage0 'sft' needs the sft method"):
        config_from_dict({"stage0": "sft", "methods": ["mckd"]})


def test_folds_are_disjoint_balanced_and_seeded() -> None:
    labeled = [Example(f"x{i}", f"w{i}", "t") for i in range(13)]
    folds = make_folds(labeled, 5, seed=3)
    assert sorted(len(f) for f in folds) == [2, 2, 3, 3, 3]
    assert sorted(ex.id for f in folds for ex in f) == sorted(ex.id for ex in labeled)
    assert [[e.id for e in f] for f in make_folds(labeled, 5, seed=3)] == [[e.id for e in f] for f in folds]
    assert [[e.id for e in f] for f in make_folds(labeled, 5, seed=4)] != [[e.id for e in f] for f in folds]


def test_paired_bootstrap_intervals_and_verdicts() -> None:
    """Corpus metric (conlleval: counts summed per resample) and per-sentence mean (the paper's
    parsing F1): the point values are the task's scores, the intervals hold them, a clearly
    better prediction set is called better; a task without per-sentence statistics is
    resampled by its one-sentence scores."""
    task = get_task("slots")
    gold = ["B-a I-a O", "O B-b", "B-a O O", "O O B-b"] * 5
    golds = [Example(str(i), " ".join(["w"] * len(g.split())), g) for i, g in enumerate(gold)]
    worse = ["O " * (len(g.split()) - 1) + "O" if i % 2 else g for i, g in enumerate(gold)]
    r = paired_bootstrap(task, golds, gold, worse, resamples=300)
    assert r["how"] == "counts" and r["a"]["value"] == 100.0
    assert r["b"]["value"] == pytest.approx(task.score(golds, worse)["f1"])
    assert r["b"]["low"] <= r["b"]["value"] <= r["b"]["high"] and verdict(r["diff"]) == "better"
    assert verdict({k: -v for k, v in r["diff"].items()}) == "worse"
    same = paired_bootstrap(task, golds, worse, worse, resamples=100)
    assert same["diff"] == {"value": 0.0, "low": 0.0, "high": 0.0} and verdict(same["diff"]) == "none"

    class NoStats:  # the slots task without per-sentence statistics
        metrics = task.metrics

        def score(self, g: Any, p: Any) -> dict[str, float]:
            return task.score(g, p)

    r = paired_bootstrap(NoStats(), golds, gold, worse, resamples=300)  # type: ignore[arg-type]
    assert r["how"] == "sentence mean" and r["b"]["value"] == pytest.approx(50.0)
    parsing = get_task("constituency")
    trees = ["(S (NP (DT the) (NN dog)) (VP (VBD saw) (NP (DT a) (NN cat))))"] * 6
    pgold = [Example(str(i), "the dog saw a cat", None, {"tree": t}) for i, t in enumerate(trees)]
    right = to_unlabeled(parse_tree(trees[0]))
    flat = "( ( the ) ( dog ) ( saw ) ( a ) ( cat ) )"
    r = paired_bootstrap(parsing, pgold, [right] * 6, [flat, right] * 3, resamples=200)
    assert r["how"] == "counts" and r["diff"]["value"] > 0 and r["diff"]["low"] >= 0
    assert r["diff"]["value"] == pytest.approx(parsing.score(pgold, [right] * 6)["f1"]
                                               - parsing.score(pgold, [flat, right] * 3)["f1"])


def test_dry_run_counts_the_probes_calls_and_no_pool_calls_for_sft(tmp_path: Path) -> None:
    from mckd.distill.dryrun import estimate_run

    steps = {s.step: s for s in estimate_run(config_from_dict(config(tmp_path, stage0="auto"))).steps}
    assert steps["probe"].teacher.calls == 8 and steps["teacher"].teacher.calls == 16
    assert list(steps).index("stage0") > list(steps).index("teacher")
    steps = {s.step: s for s in estimate_run(config_from_dict(config(tmp_path, stage0="sft"))).steps}
    assert "teacher" not in steps and "probe" not in steps and "stage0" in steps


@pytest.mark.parametrize(("verdict_", "mode"), [("teacher", "teacher"), ("none", "teacher"), ("sft", "sft")])
def test_auto_maps_the_probes_verdict(tmp_path: Path, verdict_: str, mode: str) -> None:
    from mckd.distill.context import RunContext
    from mckd.distill.rundir import RunDir, write_json
    from mckd.distill.stage0 import resolve, teacher_pool_skipped

    cfg = config_from_dict(config(tmp_path, stage0="auto"))
    interval = {"value": 1.0, "low": -1.0, "high": 3.0}
    write_json(tmp_path / "run" / "probe" / "metrics.json",
               {"verdict": verdict_, "difference": interval, "teacher": interval, "sft": interval,
                "examples": 8})
    ctx = RunContext(cfg, cfg.make_task(), RunDir(tmp_path / "run"))
    assert resolve(ctx)[0] == mode
    assert (teacher_pool_skipped(ctx) is not None) == (mode == "sft")
