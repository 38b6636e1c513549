"""A task from a package of its own (tests/toy_task, the example of docs/TASKS.md): installed
into a temporary folder, found through its `mckd.tasks` entry point, and run through the whole
`mckd run` pipeline with the fake teacher and a tiny seq2seq student under the task's decoding
constraint, without a line of mckd knowing it. The shared environment is left as it was: the
package goes to a folder that only the `mckd` subprocesses see (PYTHONPATH)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import mckd.tasks
from mckd.config import config_from_dict
from mckd.errors import ConfigError
from mckd.examples import read_examples
from mckd.tasks import get_task

TOY = Path(__file__).parent / "toy_task"
LABELS = {"sports", "weather", "music"}


@pytest.fixture(scope="module")
def toy_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a `mckd` process that sees the toy package as installed."""
    tmp = tmp_path_factory.mktemp("toy")
    source = shutil.copytree(TOY, tmp / "src")  # building writes build/ and *.egg-info beside it
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(tmp / "site"), str(source)],
                   check=True, capture_output=True, text=True)
    return {**os.environ, "PYTHONPATH": str(tmp / "site")}


def run_mckd(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mckd", *args], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_installed_task_is_listed(toy_env: dict[str, str]) -> None:
    rows = {row["name"]: row for row in json.loads(run_mckd(toy_env, "tasks", "list", "--json"))}
    assert rows["toy"]["origin"] == "installed" and rows["toy"]["class"] == "mckd_toy_task:ToyTask"
    assert rows["toy"]["package"] == "mckd-toy-task 0.1.0"
    assert {n for n, r in rows.items() if r["origin"] == "built-in"} == {"constituency", "slots", "text"}
    assert "toy" not in mckd.tasks.installed_tasks()  # this process never saw it


@pytest.mark.slow
def test_mckd_run_end_to_end_on_the_installed_task(toy_env: dict[str, str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = {
        "name": "toy", "task": "toy", "run_dir": str(run),
        "data": {"source": "demo", "demo": {"n_labeled": 6, "n_unlabeled": 12, "n_test": 8,
                                            "max_len": 12}},
        "teacher": {"backend": "fake", "model": "fake", "k_demos": 3,
                    "cache_path": str(tmp_path / "cache.sqlite")},
        "student": {"kind": "seq2seq", "model": "t5-tiny",
                    "t5_shape": {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 2},
                    "train": {"epochs": 2, "batch_size": 4, "fidelity_sample": 0,
                              "progress": False, "threads": 1}},
        "stages": [2],
    }
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(config))
    run_mckd(toy_env, "run", str(tmp_path / "toy.yaml"))

    results = json.loads((run / "results.json").read_text())
    assert results["task"] == "toy"
    methods = ["teacher", "sft", "vanilla_kd", "kd_self_distill", "mckd_2stage"]
    assert list(results["methods"]) == methods
    assert [m["key"] for m in results["metrics"]] == ["accuracy"]
    # the fake teacher echoes the sentence, which holds its label's word: the task reads it out
    assert results["methods"]["teacher"]["test"]["accuracy"] == 100.0
    assert results["pseudolabels"]["teacher"]["gold"]["accuracy"] == 100.0
    assert set(results["baselines"]) == {"always_sports"}
    # every student decoded under the task's constraint: one label, complete, for every input
    for method in methods[1:]:
        preds = read_examples(run / method / "test.jsonl")
        assert len(preds) == 8
        assert all(ex.target in LABELS and ex.meta["student"]["complete"] for ex in preds)
        assert 0.0 <= results["methods"][method]["test"]["accuracy"] <= 100.0
    assert "| method | accuracy |" in (run / "report.md").read_text()
    # the task's optional `mckd data stats` hook, on the run's own test file
    stats = json.loads(run_mckd(toy_env, "data", "stats", "--task", "toy", "--corpus",
                            str(run / "data" / "test.jsonl"), "--json"))
    assert stats["sentences"] == 8 and set(stats["labels"]) <= LABELS


@pytest.fixture
def toy_importable(monkeypatch: pytest.MonkeyPatch):
    """The toy package importable in this process by its module path (not installed)."""
    monkeypatch.syspath_prepend(str(TOY))
    monkeypatch.setattr(mckd.tasks, "_loaded", {})
    yield
    sys.modules.pop("mckd_toy_task", None)


def test_a_task_named_by_its_class_in_a_config(toy_importable: None, tmp_path: Path) -> None:
    cfg = config_from_dict({"task": {"name": "mckd_toy_task:ToyTask", "labels": ["art"]},
                            "run_dir": str(tmp_path / "run")})
    task = cfg.make_task()
    assert task.name == "toy" and cfg.student.kind == "seq2seq"  # the task's first student kind
    assert get_task("toy") is task  # found again by the name results and saved students record


def test_a_task_path_that_is_not_a_task_is_one_line(toy_importable: None) -> None:
    with pytest.raises(ConfigError, match=r"no module named 'no_such_package\.tasks'"):
        get_task("no_such_package.tasks:Task")
    with pytest.raises(ConfigError, match="has no 'Nope'"):
        get_task("mckd_toy_task:Nope")
    with pytest.raises(ConfigError, match=r"does not implement the Task protocol \(missing: .*baselines"):
        get_task("mckd_toy_task:Counter")  # a class, but not a task
    with pytest.raises(ConfigError, match=r"expected 'package\.module:TaskClass'"):
        get_task("mckd_toy_task:")
    with pytest.raises(ConfigError, match=r"unknown task 'toy'.*package\.module:TaskClass"):
        get_task("toy")  # not installed in this process, and not loaded by its path yet
