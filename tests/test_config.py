"""Run config: YAML + overrides, one-line errors naming the key and value, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mckd.config import RunConfig, config_from_dict, demo_config_path, load_config
from mckd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, data: dict, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_defaults_compose_component_configs() -> None:
    cfg = RunConfig()
    assert cfg.teacher.backend == "llamacpp"  # the teacher's own default
    assert cfg.student.kind == "seq2seq"
    assert cfg.methods == ["teacher", "sft", "vanilla_kd", "kd_self_distill", "mckd"]
    assert cfg.stages == [2, 3] and cfg.partitions == 2 and not cfg.add_gold


def test_yaml_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, {"student": {"kind": "chart", "epochs": 4}, "stages": [3]})
    cfg = load_config(path, ["student.epochs=7", "teacher.k_demos=5", "stages=[2,4]",
                             "methods=[sft, mckd]", "name=my run"])
    assert cfg.student.kind == "chart" and cfg.student.epochs == 7
    assert cfg.teacher.k_demos == 5
    assert cfg.stages == [2, 4]
    assert cfg.methods == ["sft", "mckd"]
    assert cfg.name == "my run"


def test_student_kind_defaults_to_seq2seq_in_yaml(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {"student": {"train": {"epochs": 2}}}))
    assert cfg.student.kind == "seq2seq" and cfg.student.train.epochs == 2


@pytest.mark.parametrize(
    ("data", "overrides", "expected"),
    [
        ({"stagez": 3}, [], "unknown key 'stagez'"),
        ({}, ["teacher.temprature=0.5"], "unknown key 'teacher.temprature'"),
        ({}, ["student.kind=chart", "student.epochz=2"], "unknown key 'student.chart.epochz'"),
        ({}, ["stages=1"], "stages = 1: each stage count must be >= 2"),
        ({}, ["partitions=1"], "partitions = 1"),
        ({}, ["teacher.k_demos=-3"], "teacher.k_demos = -3"),
        ({}, ["methods=[teacher, magic]"], "methods.1 = 'magic'"),
        ({}, ["task=slots-of-doom"], "unknown task 'slots-of-doom'"),
        ({"data": {"source": "files"}}, [], "data.labeled is not set"),
        ({}, ["data.n_labeled=10"], "data.n_labeled is only for data.source 'files'"),
        ({}, ["data.demo.n_test=0"], "data.demo.n_test = 0"),
        ({}, ["init_from_sft=true", "methods=[mckd]"], "init_from_sft needs the sft method"),
        ({}, ["teacher.prompt.k=30"], "prompt.k is taken from the teacher's k_demos"),
    ],
)
def test_bad_configs_one_line(tmp_path: Path, data: dict, overrides: list[str], expected: str) -> None:
    msg = one_line_error(load_config, write(tmp_path, data), overrides)
    assert expected in msg
    assert msg.startswith(str(tmp_path))  # names the file


def test_bad_override_syntax_and_sections(tmp_path: Path) -> None:
    path = write(tmp_path, {})
    assert "expected KEY=VALUE" in one_line_error(load_config, path, ["student.epochs"])
    msg = one_line_error(load_config, path, ["name=x", "name.first=y"])
    assert "'name' is a value" in msg


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    assert "no such config file" in one_line_error(load_config, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [2, 3\nname: x\n")
    msg = one_line_error(load_config, bad)
    assert msg.startswith(f"{bad}:") and "invalid YAML" in msg
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    assert "expected a mapping" in one_line_error(load_config, tmp_path / "list.yaml")


def test_stage_count_scalar_and_sorted() -> None:
    assert config_from_dict({"stages": 3}).stages == [3]
    assert config_from_dict({"stages": [4, 2, 2]}).stages == [2, 4]


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {"student": {"kind": "chart"}, "seeds": 2}))
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


@pytest.mark.parametrize("name", ["demo.yaml", "ptb-paper.yaml", "slots-demo.yaml"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(REPO / "configs" / name)
    assert cfg.methods and cfg.stages


def test_demo_config_is_package_data_and_matches_repo_copy() -> None:
    assert demo_config_path().exists()
    assert demo_config_path().read_text() == (REPO / "configs" / "demo.yaml").read_text()
    cfg = load_config(None)
    assert cfg.data.source == "demo" and cfg.data.demo.n_labeled == 50
    assert cfg.teacher.backend == "llamacpp" and cfg.student.kind == "chart"
    assert cfg.stages == [2, 3]


def test_slots_demo_is_packaged_and_loads_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = demo_config_path("slots-demo")
    assert packaged.read_text() == (REPO / "configs" / "slots-demo.yaml").read_text()
    monkeypatch.chdir(tmp_path)  # `mckd run slots-demo` from anywhere
    cfg = load_config("slots-demo")
    assert cfg.task_name() == "slots" and cfg.student.kind == "tagger"
    assert cfg.data.source == "demo" and cfg.data.demo.n_labeled == 50
    assert (cfg.data.demo.n_unlabeled, cfg.data.demo.n_test, cfg.data.teacher_test) == (100, 500, 40)
    assert cfg.methods == ["teacher", "sft", "vanilla_kd", "kd_self_distill", "mckd"] and cfg.stages == [2, 3]
    assert cfg.baselines and cfg.add_gold and cfg.init_from_sft
    demo = load_config(None).teacher
    for key in ("backend", "model", "n_threads", "context_size", "temperature"):
        assert getattr(cfg.teacher, key) == getattr(demo, key), key
    # slot answers: word/tag pairs, shown with the labeled sentences nearest to each input
    assert (cfg.teacher.prompt.form, cfg.teacher.prompt.demos, cfg.teacher.k_demos) == ("interleaved", "nearest", 5)
    # a file of that name in the working directory wins; an unknown name is one line
    (tmp_path / "slots-demo").write_text("name: mine\n")
    assert load_config("slots-demo").name == "mine"
    with pytest.raises(ConfigError, match="no-such-demo: no such config file"):
        load_config("no-such-demo")


def test_saved_config_loads_again(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {}), ["teacher.k_demos=7", "teacher.prompt.form=unlabeled"])
    again = tmp_path / "again.yaml"
    again.write_text(cfg.to_yaml())
    assert load_config(again) == cfg


def test_task_as_a_name_or_a_section(tmp_path: Path) -> None:
    plain = config_from_dict({"task": "constituency"})
    assert plain.task == "constituency" and plain.model_dump()["task"] == "constituency"
    assert plain.task_name() == "constituency" and plain.task_labels() == []
    section = load_config(write(tmp_path, {"task": {"name": "constituency", "labels": ["XP"]}}))
    assert section.task_name() == "constituency" and section.task_labels() == ["XP"]
    assert config_from_dict(yaml.safe_load(section.to_yaml())) == section
    msg = one_line_error(load_config, write(tmp_path, {"task": {"name": "constituency", "label": 1}}))
    assert "unknown key 'task.label'" in msg


def test_loading_a_config_does_not_import_nltk() -> None:
    # nltk takes seconds to import; a run of a task without trees must not wait for it
    import subprocess
    import sys

    code = "import sys, mckd.config, mckd.data; assert 'nltk' not in sys.modules, 'nltk imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
