"""ONNX export of the encoder students: fp32 ONNX Runtime gives outputs identical to torch's
(chart and tagger, the tagger's CRF and mean-pooling variants too), int8 is measured beside it,
and the loader picks ONNX unless told to use torch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import mckd
from mckd.examples import Example, read_examples
from mckd.ship.onnxrt import OnnxModel, export_onnx, quantize_int8, use_onnx
from mckd.student.config import TaggerConfig
from mckd.student.tagger import TaggerStudent
from mckd.tasks import TASKS

sys.path.insert(0, str(Path(__file__).parent))
import ship_runs

MORE = ["play the album born to run by prince", "a", "book a table for two at the dim sum place "
        "in kansas city tonight please"]


@pytest.fixture(scope="module")
def chart_export(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: str) -> tuple[Path, Path]:
    run = ship_runs.chart_run(tmp_path_factory, tiny_encoder)
    return run, ship_runs.exported("chart-onnx", run, tmp_path_factory, fmt="onnx", quantize="int8")


@pytest.fixture(scope="module")
def slots_export(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: str) -> tuple[Path, Path]:
    run = ship_runs.slots_run(tmp_path_factory, tiny_encoder)
    return run, ship_runs.exported("slots-onnx", run, tmp_path_factory, fmt="onnx", quantize="int8")


@pytest.mark.parametrize("which", ["chart", "slots"])
def test_onnx_fp32_outputs_are_identical_to_torch(which: str, request: pytest.FixtureRequest) -> None:
    run, out = request.getfixturevalue(f"{which}_export")
    manifest = json.loads((out / "mckd_model.json").read_text())
    test = read_examples(run / "data" / "test.jsonl")
    checks = manifest["checks"]
    assert manifest["runtime"] == "onnx-int8"
    assert checks["sentences"] == len(test) and checks["onnx"]["identical_to_torch"] == len(test)
    assert checks["onnx"]["test"] == checks["torch"]["test"]
    assert isinstance(checks["onnx-int8"]["test"], float)  # measured, not assumed equal
    card = (out / "README.md").read_text()
    assert f"{len(test)} of {len(test)} outputs identical to torch's" in card

    sources = [ex.source for ex in test] + (MORE if which == "slots" else [])
    torch_out = mckd.load(out, runtime="torch").predict(sources)
    onnx_model = mckd.load(out, runtime="onnx", threads=1)
    assert onnx_model.runtime == "onnx" and isinstance(onnx_model.student.model, OnnxModel)
    onnx_out = onnx_model.predict(sources)
    assert [o.output for o in onnx_out] == [o.output for o in torch_out]
    assert len({o.output for o in torch_out}) > 1  # the student says different things
    for a, b in zip(onnx_out, torch_out, strict=True):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
    int8 = mckd.load(out, threads=1)  # auto: the runtime the export chose
    assert int8.runtime == "onnx-int8"
    task = TASKS[manifest["task"]]
    for src, o in zip(sources, int8.predict(sources), strict=True):  # valid, maybe not the same
        assert task.validate(Example("x", src, o.output)) is None


@pytest.mark.slow
@pytest.mark.parametrize("options", [{"crf": True}, {"pooling": "mean"}])
def test_tagger_variants_export_exactly(options: dict, tiny_encoder: str, tmp_path: Path,
                                        torch_threads: None) -> None:
    task = TASKS["slots"]
    corpus = task.builtin_corpus(40, 0, 12, seed=3, max_words=12)
    cfg = TaggerConfig(encoder=tiny_encoder, epochs=15, min_steps=0, batch_size=8,
                       early_stopping="none", lr_encoder=5e-3, lr_head=1e-2, device="cpu",
                       threads=1, **options)
    student = TaggerStudent(cfg, task)
    student.fit(corpus.labeled, tmp_path / "train")
    sources = [ex.source for ex in corpus.test] + MORE
    expected = student.predict(sources)
    export_onnx(student, tmp_path / "model.onnx")
    quantize_int8(tmp_path / "model.onnx", tmp_path / "model.int8.onnx")
    use_onnx(student, "tagger", tmp_path / "model.onnx", threads=1)
    got = student.predict(sources)
    assert [p.text for p in got] == [p.text for p in expected]
    assert len({p.text for p in expected}) > 3
    for a, b in zip(got, expected, strict=True):
        assert a.mean_logprob == pytest.approx(b.mean_logprob, abs=1e-4)
    use_onnx(student, "tagger", tmp_path / "model.int8.onnx", threads=1)
    assert all(len(p.text.split()) == len(s.split()) for p, s in zip(student.predict(sources), sources,
                                                                     strict=True))
