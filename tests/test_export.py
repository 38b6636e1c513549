"""`mckd export` and `mckd.load` on finished runs made by the real pipeline (fake teacher, real
students on a tiny encoder): the directory stands alone, the card's numbers are results.json's,
the loaded model predicts what the run's student predicted."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import mckd
from mckd.errors import ConfigError, InputError, MckdError
from mckd.examples import read_examples
from mckd.report import metric_columns, ordered_methods
from mckd.ship.card import base_model
from mckd.ship.export import export_run
from mckd.ship.runfiles import seed_folder
from mckd.tasks import TASKS

sys.path.insert(0, str(Path(__file__).parent))
import ship_runs


@pytest.fixture(scope="module")
def slots_run(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: str) -> Path:
    return ship_runs.slots_run(tmp_path_factory, tiny_encoder)


@pytest.fixture(scope="module")
def slots_export(slots_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ship_runs.exported("slots-torch", slots_run, tmp_path_factory)


def results_of(run: Path) -> dict[str, Any]:
    return json.loads((run / "results.json").read_text())


def test_export_is_a_self_contained_model_of_the_best_student(
        slots_run: Path, slots_export: Path, tmp_path: Path) -> None:
    results = results_of(slots_run)
    trained = [m for m in results["methods"] if m != "teacher"]
    best = max(trained, key=lambda m: results["methods"][m]["test"]["f1"])
    manifest = json.loads((slots_export / "mckd_model.json").read_text())
    assert manifest["method"] == best and manifest["kind"] == "tagger"
    assert manifest["task"] == "slots" and manifest["test"] == results["methods"][best]["test"]
    labeled = read_examples(slots_run / "data" / "labeled.jsonl")
    assert manifest["labels"] == TASKS["slots"].label_set(labeled)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tagger_config.json",
                 "tags.json", "README.md"):
        assert (slots_export / name).exists(), name
    assert json.loads((slots_export / "tagger_config.json").read_text())["threads"] is None

    # moved away from the run (which is then gone), it still loads and predicts what the run's
    # student predicted on the test set
    moved = tmp_path / "elsewhere"
    shutil.copytree(slots_export, moved)
    run_copy = tmp_path / "run"
    shutil.copytree(slots_run, run_copy)
    shutil.rmtree(run_copy)
    model = mckd.load(str(moved), runtime="torch")
    preds = read_examples(slots_run / best / "test.jsonl")
    outputs = model.predict([ex.source for ex in preds])
    assert [o.output for o in outputs] == [ex.target for ex in preds]
    assert all(0.0 < o.confidence <= 1.0 for o in outputs)
    assert outputs[0].to_json() == {"output": outputs[0].output, "confidence": outputs[0].confidence}


def card_rows(card: str) -> dict[str, list[str]]:
    """The score table of a model card: row name -> cells."""
    table = card.split("## Test scores", 1)[1].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = re.sub(r"\*\*|\(this model\)|\(baseline\)", "", cells[0]).strip()
        rows[name] = cells[1:]
    return rows


def test_model_card_numbers_are_results_json(slots_run: Path, slots_export: Path) -> None:
    results = results_of(slots_run)
    card = (slots_export / "README.md").read_text()
    rows = card_rows(card)
    columns = metric_columns(results)
    header = card.split("## Test scores", 1)[1].split("\n\n")[1].splitlines()[0]
    labels = [c.strip() for c in header.strip("|").split("|")][1:]
    keys = [next(k for k in columns if columns[k] == label) for label in labels]
    assert keys[0] == "f1" and len(keys) >= 4
    entries = {**results["methods"], **results["baselines"]}
    assert list(rows) == ordered_methods(results["methods"]) + sorted(results["baselines"])
    for name, entry in entries.items():
        assert rows[name] == [f"{entry['test'][k]:.0f}" if k in ("valid", "sentences")
                              else f"{entry['test'][k]:.2f}" for k in keys], name
    assert "teacher" in rows  # the teacher's scores beside the students'
    shipped = json.loads((slots_export / "mckd_model.json").read_text())["method"]
    assert f"**{shipped}** (this model)" in card
    sizes = f"| {results['labeled']} | {results['unlabeled']} | {results['test']} |"
    assert sizes in card and results["teacher_model"] in card
    assert f"torch {results['environment']['packages']['torch']}" in card
    assert "Licence" in card and "see the base model's card" in card  # the tiny local encoder

    # the three lines of Python in the card run as written
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) == 3
    exec(compile(code.replace("print(", "_ = ("), "card", "exec"), {})


def test_cli_export_with_method_and_its_errors(slots_run: Path, tmp_path: Path) -> None:
    from mckd.cli import app

    runner = CliRunner()
    out = tmp_path / "sft-model"
    result = runner.invoke(app, ["export", str(slots_run), "--method", "sft", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported sft (tagger student, runtime torch)" in result.output
    assert json.loads((out / "mckd_model.json").read_text())["reason"] == "chosen with --method"
    # exporting again over an earlier export replaces it
    assert runner.invoke(app, ["export", str(slots_run), "--out", str(out)]).exit_code == 0

    with pytest.raises(ConfigError, match=r"'teacher': no trained student.*sft"):
        export_run(slots_run, tmp_path / "t", method="teacher")
    with pytest.raises(ConfigError, match="add --format onnx"):
        export_run(slots_run, tmp_path / "q", quantize="int8")
    with pytest.raises(ConfigError, match="--format 'tflite'"):
        export_run(slots_run, tmp_path / "q", fmt="tflite")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an mckd export"):
        export_run(slots_run, precious)
    assert (precious / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match=r"no results\.json"):
        export_run(tmp_path, tmp_path / "x")


def test_seq2seq_student_exports_for_torch_not_onnx(tmp_path_factory: pytest.TempPathFactory,
                                                    tmp_path: Path) -> None:
    run = ship_runs.seq2seq_run(tmp_path_factory)
    out = tmp_path / "t5"
    summary = export_run(run, out)
    assert summary.method == "sft" and summary.kind == "seq2seq"
    preds = read_examples(run / "sft" / "test.jsonl")
    model = mckd.load(out)
    assert [o.output for o in model.predict([ex.source for ex in preds])] == [ex.target for ex in preds]
    card = (out / "README.md").read_text()
    assert "no base model: the weights were trained from scratch" in card
    with pytest.raises(ConfigError, match="seq2seq student cannot be exported to ONNX"):
        export_run(run, tmp_path / "t5-onnx", fmt="onnx")


def test_load_takes_a_hub_repo_id(slots_export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    asked: list[tuple[str, str | None]] = []

    def download(repo_id: str, revision: str | None = None) -> str:
        asked.append((repo_id, revision))
        return str(slots_export)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    model = mckd.load("someone/slots-student", revision="v1", runtime="torch")
    assert asked == [("someone/slots-student", "v1")]
    assert model.predict(["play some jazz"])[0].output.split()[0] in model.manifest["labels"]
    with pytest.raises(InputError, match="no such model directory"):
        mckd.load("./not/here/at/all")


def test_predict_refuses_bad_inputs_with_one_line(slots_export: Path) -> None:
    model = mckd.load(slots_export, runtime="torch")
    assert model.predict([]) == []
    with pytest.raises(InputError, match="input 1 is empty"):
        model.predict(["play jazz", "   "])
    with pytest.raises(InputError, match="input 0 is int"):
        model.predict([3])  # type: ignore[list-item]
    with pytest.raises(InputError, match="not one string"):
        model.predict("play jazz")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not an mckd model directory"):
        mckd.load(slots_export.parent)
    with pytest.raises(InputError, match=r"no model\.onnx"):
        mckd.load(slots_export, runtime="onnx")
    with pytest.raises(MckdError, match="runtime 'tpu'"):
        mckd.load(slots_export, runtime="tpu")


def test_licences_and_seed_folders() -> None:
    assert base_model({"encoder": "all-MiniLM-L6-v2"}, {}) == (
        "sentence-transformers/all-MiniLM-L6-v2", "Apache-2.0")
    assert base_model({"kind": "seq2seq", "model": "minilm"}, {})[1] == "Apache-2.0"
    assert base_model({"model": "google/flan-t5-small"}, {"model_type": "t5"}) == (
        "google/flan-t5-small", "not named in its config (model type t5): see the base model's card")
    assert base_model({"model": "x/y"}, {"license": "mit"})[1] == "mit (as its config names it)"
    run = Path("runs/r")
    assert seed_folder(run, {"seeds": [0]}) == (run, None)
    assert seed_folder(run, {"seeds": [3, 4]}) == (run / "seed-3", 3)
    assert seed_folder(run, {"seeds": [3, 4]}, 4) == (run / "seed-4", 4)
    with pytest.raises(ConfigError, match="--seed 5: not a seed of this run"):
        seed_folder(run, {"seeds": [3, 4]}, 5)
