"""The teacher scored on part of the test set (`data.teacher_test`), every other method on all
of it and on the teacher's part, with bootstrap intervals and paired comparisons in
results.json and the report. Fake teacher and fake student (tests/pipeline_fakes.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import mckd.student
from mckd.config import config_from_dict, load_config
from mckd.distill.dryrun import estimate_run
from mckd.distill.methods import make_data, teacher_subset
from mckd.distill.pipeline import run_pipeline
from mckd.errors import ConfigError, InputError, MckdError
from mckd.examples import read_examples
from mckd.tasks import get_task
from mckd.teacher.backends.fake import FakeBackend

sys.path.insert(0, str(Path(__file__).parent))
import pipeline_fakes as pf

N_TEST, N_TEACHER, N_POOL = 30, 10, 16
# What the contract (results.json of `mckd run`) names; the new keys come beside them.
CONTRACT = ("name", "task", "teacher_model", "student", "labeled", "unlabeled", "test", "partitions",
            "stages", "seeds", "metric_names", "metrics", "methods", "baselines", "pseudolabels",
            "teacher", "students", "step_seconds", "environment")


@pytest.fixture(autouse=True)
def fake_student(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mckd.student, "build_student", pf.fake_build_student)


@pytest.fixture
def teacher_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = FakeBackend.acomplete

    async def counted(self, request):  # type: ignore[no-untyped-def]
        calls.append(request.prompt or repr(request.messages))
        return await original(self, request)

    monkeypatch.setattr(FakeBackend, "acomplete", counted)
    return calls


def config(tmp_path: Path, teacher_test: Any = N_TEACHER, **overrides: Any) -> dict[str, Any]:
    cfg = pf.tiny_config(tmp_path, **overrides)
    pf.write_tiny_corpus(tmp_path / "corpus", n_test=N_TEST)  # a larger test set, same files
    cfg["data"]["teacher_test"] = teacher_test
    return cfg


def test_students_on_the_whole_test_set_and_on_the_teachers_part(
        tmp_path: Path, teacher_calls: list[str]) -> None:
    cfg = config_from_dict(config(tmp_path))
    # the dry run counts the teacher's test calls on its part only
    est = estimate_run(cfg)
    assert {s.step: s.teacher.calls for s in est.steps if s.teacher} == {"teacher_test": N_TEACHER,
                                                                         "teacher": N_POOL}
    assert est.data["test"] == N_TEST and est.data["teacher_test"] == N_TEACHER

    run_pipeline(cfg)
    root = tmp_path / "run"
    results = json.loads((root / "results.json").read_text())
    assert all(key in results for key in CONTRACT)
    assert results["test"] == N_TEST and results["teacher_test"] == N_TEACHER
    assert len(teacher_calls) == N_POOL + N_TEACHER
    assert results["teacher"]["test"]["inputs"] == N_TEACHER
    test = read_examples(root / "data" / "test.jsonl")
    assert [ex.id for ex in read_examples(root / "teacher_test" / "inputs.jsonl")] == [
        ex.id for ex in test[:N_TEACHER]]

    methods, task = results["methods"], get_task("constituency")
    assert methods["teacher"]["test"]["sentences"] == N_TEACHER
    for name in ("sft", "vanilla_kd", "kd_self_distill", "mckd_2stage", "mckd_3stage"):
        entry = methods[name]
        assert entry["test"]["sentences"] == N_TEST
        assert entry["teacher_subset"]["sentences"] == N_TEACHER
        # the subset's scores are the student's own predictions on those sentences, rescored
        preds = {ex.id: ex.target for ex in read_examples(root / name / "test.jsonl")}
        again = task.score(test[:N_TEACHER], [preds[ex.id] or "" for ex in test[:N_TEACHER]])
        assert entry["teacher_subset"]["f1"] == pytest.approx(again["f1"])
    for entry in [*methods.values(), *results["baselines"].values()]:
        for field, scores in (("test_ci", entry["test"]), ("teacher_subset_ci", entry["teacher_subset"])):
            for key in ("f1", "evalb_unlabeled_f1"):
                low, high = entry[field][key]
                assert low <= scores[key] + 1e-9 and scores[key] <= high + 1e-9
    for stage in ("teacher", "stage1", "stage2"):
        low, high = results["pseudolabels"][stage]["gold_ci"]["f1"]
        assert low <= results["pseudolabels"][stage]["gold"]["f1"] <= high

    evidence = results["evidence"]
    assert (evidence["resamples"], evidence["level"], evidence["metric"]) == (1000, 0.95, "f1")
    assert (evidence["test_sentences"], evidence["teacher_sentences"], evidence["pool_sentences"]) == (
        N_TEST, N_TEACHER, N_POOL)
    pairs = {(c["a"], c["b"]): c for c in evidence["comparisons"]}
    for final in ("mckd_2stage", "mckd_3stage"):
        for other in ("vanilla_kd", "kd_self_distill", "sft"):
            assert (pairs[(final, other)]["on"], pairs[(final, other)]["sentences"]) == ("test", N_TEST)
        assert (pairs[(final, "teacher")]["on"], pairs[(final, "teacher")]["sentences"]) == (
            "teacher_subset", N_TEACHER)
    assert ("mckd_3stage", "mckd_2stage") in pairs and ("vanilla_kd", "teacher") in pairs
    vs_teacher = pairs[("mckd_3stage", "teacher")]
    assert vs_teacher["difference"] == pytest.approx(
        methods["mckd_3stage"]["teacher_subset"]["f1"] - methods["teacher"]["test"]["f1"], abs=1e-3)
    for c in [*evidence["comparisons"], *evidence["pool_comparisons"]]:
        low, high = c["ci"]
        assert low <= c["difference"] + 1e-9 and c["difference"] <= high + 1e-9
        want = "better" if low > 0 else "worse" if high < 0 else "no difference shown"
        assert c["verdict"] == want and c["text"].endswith(want)
    stage1 = next(c for c in evidence["pool_comparisons"] if c["a"] == "stage1")
    assert stage1["b"] == "teacher_labels" and stage1["sentences"] == N_POOL

    md = (root / "report.md").read_text()
    assert f"| teacher (on {N_TEACHER} of {N_TEST}) |" in md and "## Comparisons" in md
    assert "95% interval of F1 (paper metric)" in md and "| MCKD-3 \u2212 vanilla KD | test set (30) |" in md
    assert (root / "plots" / "comparisons.png").read_bytes()[:4] == b"\x89PNG"

    # seeded: the same intervals again, from the same files
    again = run_pipeline(cfg).results
    assert again["evidence"]["comparisons"] == evidence["comparisons"]
    assert again["methods"]["sft"]["test_ci"] == methods["sft"]["test_ci"]


def test_changing_the_teachers_part_redoes_only_its_step(tmp_path: Path) -> None:
    run_pipeline(config_from_dict(config(tmp_path)))
    outcomes = run_pipeline(config_from_dict(config(tmp_path, teacher_test=5))).outcomes
    assert [o.name for o in outcomes if not o.skipped] == ["teacher_test"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["teacher_test"] == 5 and results["methods"]["sft"]["teacher_subset"]["sentences"] == 5


def test_bootstrap_settings_redo_no_step(tmp_path: Path) -> None:
    first = run_pipeline(config_from_dict(config(tmp_path))).results
    again = run_pipeline(config_from_dict(config(tmp_path, bootstrap={"resamples": 200, "seed": 5})))
    assert all(o.skipped for o in again.outcomes)
    assert again.results["evidence"]["resamples"] == 200 and again.results["evidence"]["seed"] == 5
    assert again.results["methods"]["sft"]["test"] == first["methods"]["sft"]["test"]
    assert again.results["methods"]["sft"]["test_ci"] != first["methods"]["sft"]["test_ci"]


def test_a_file_of_ids_names_the_teachers_part(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text('test-3\n{"id": "test-7", "source": "x"}\n\ntest-20\n')
    cfg = config_from_dict(config(tmp_path, teacher_test=str(ids)))
    run_pipeline(cfg)
    inputs = read_examples(tmp_path / "run" / "teacher_test" / "inputs.jsonl")
    assert [ex.id for ex in inputs] == ["test-3", "test-7", "test-20"]
    ids.write_text("test-3\nnope\n")
    with pytest.raises(InputError, match=r"ids.txt:2: 'nope' is not an id of the test set"):
        teacher_subset(cfg, read_examples(tmp_path / "run" / "data" / "test.jsonl"))


def test_several_seeds_average_each_side_per_resample(tmp_path: Path) -> None:
    results = run_pipeline(config_from_dict(config(tmp_path, seeds=2))).results
    evidence = results["evidence"]
    assert evidence["seeds"] == 2 and all(c["seeds"] == 2 for c in evidence["comparisons"])
    sft = results["methods"]["sft"]
    assert set(sft["teacher_subset_std"]) >= {"f1"} and len(sft["test_ci"]["f1"]) == 2
    for seed in (0, 1):  # each seed's own results carry its own intervals
        own = json.loads((tmp_path / "run" / f"seed-{seed}" / "results.json").read_text())
        assert own["evidence"]["seeds"] == 1


def test_teacher_part_larger_than_the_test_set_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="teacher_test = 60: more than the 50 test sentences"):
        load_config(None, ["data.teacher_test=60", "data.demo.n_test=50"])
    with pytest.raises(ConfigError, match="teacher_test = 0: must be >= 1"):
        load_config(None, ["data.teacher_test=0"])
    cfg = config_from_dict(config(tmp_path, teacher_test=N_TEST + 1))
    with pytest.raises(MckdError, match=f"teacher_test = {N_TEST + 1}: the test set has {N_TEST}"):
        estimate_run(cfg)
    with pytest.raises(ConfigError, match=f"teacher_test = {N_TEST + 1}: the test set has {N_TEST}"):
        run_pipeline(cfg)  # before any step
    assert not (tmp_path / "run" / "data").exists()
    ids = tmp_path / "ids.txt"
    ids.write_text("test-1\ntest-99\n")
    with pytest.raises(ConfigError, match=r"data.teacher_test: .*ids.txt:2: 'test-99' is not an id"):
        run_pipeline(config_from_dict(config(tmp_path, teacher_test=str(ids))))


@pytest.mark.parametrize(("name", "subset"), [("demo", 50), ("slots-demo", 40)])
def test_demo_teacher_sentences_are_the_smaller_test_set(name: str, subset: int) -> None:
    """The demos score students on 500 test sentences; the teacher's first ones are exactly the
    test set the demo had with n_test = its subset (so its requests and cache stay the same)."""
    cfg = load_config(name)
    assert cfg.data.demo.n_test >= 500 and cfg.data.teacher_test == subset
    small = load_config(name, [f"data.demo.n_test={subset}", "data.teacher_test=null"])
    labeled, pool, test = make_data(cfg, cfg.make_task())
    labeled0, pool0, test0 = make_data(small, small.make_task())
    assert (labeled, pool) == (labeled0, pool0)
    assert teacher_subset(cfg, test) == test[:subset] == test0
    assert len(test) == cfg.data.demo.n_test
    assert len({ex.source for ex in [*labeled, *pool, *test]}) == len(labeled) + len(pool) + len(test)
