"""Training: the loss falls, checkpoints resume to identical weights, early stopping, bad input."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from mckd.errors import ConfigError, InputError
from mckd.examples import Example, read_examples
from mckd.student import CausalConfig, Seq2SeqConfig, build_student, parse_student_config
from mckd.student.base import TrainReport
from mckd.student.seq2seq import Seq2SeqStudent
from mckd.student.train import Encoded, collate, fidelity_converged, token_loss_sum, train
from mckd.tasks import TASKS
from mckd.tasks.constituency.trees import parse_tree, tree_words
from test_student_model import save_tiny_llama

SHAPE = {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 2}
VOCAB = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "big", "small"]


def right_branching(words: list[str]) -> str:
    if len(words) == 1:
        return f"( {words[0]} )"
    if len(words) == 2:
        return f"( ( {words[0]} ) ( {words[1]} ) )"
    return f"( ( {words[0]} ) {right_branching(words[1:])} )"


def examples(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        words = [rng.choice(VOCAB) for _ in range(rng.randint(2, 6))]
        out.append(Example(str(k), " ".join(words), right_branching(words)))
    return out


def config(**train: object) -> Seq2SeqConfig:
    base = {"epochs": 2, "batch_size": 8, "fidelity_sample": 0, "progress": False, "lr": 3e-3}
    return Seq2SeqConfig(model="t5-tiny", t5_shape=SHAPE, train={**base, **train})


def weights(student: Seq2SeqStudent) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in student.sm.model.state_dict().items()}


def test_two_steps_lower_the_loss_and_change_the_weights(tmp_path: Path) -> None:
    student = Seq2SeqStudent(config())
    data = examples(16)
    student.fit(data[:1], tmp_path / "init")  # builds model + tokenizer; one tiny step
    sm = student.sm
    enc = [Encoded(sm.tokenizer(ex.source)["input_ids"],
                   sm.tokenizer(ex.target, add_special_tokens=False)["input_ids"] + [sm.eos_id]) for ex in data]
    batch = collate(enc, sm, torch.device("cpu"))
    sm.model.eval()
    n = int((batch["labels"] != -100).sum())
    with torch.no_grad():
        before_loss = token_loss_sum(sm, batch)
    before = {k: v.clone() for k, v in sm.model.state_dict().items()}
    cfg = config(epochs=2, batch_size=16).train
    train(sm, enc, cfg, tmp_path / "two")
    sm.model.eval()
    with torch.no_grad():
        after_loss = token_loss_sum(sm, batch)
    assert after_loss / n < before_loss / n
    assert any(not torch.equal(before[k], v) for k, v in sm.model.state_dict().items())


class Killed(Exception):
    pass


def test_resumed_training_reaches_the_same_weights(tmp_path: Path) -> None:
    data = examples(40)
    cfg = config(epochs=2, batch_size=8, save_every_steps=3)  # 5 steps/epoch, dropout on
    whole = Seq2SeqStudent(cfg)
    whole.fit(data, tmp_path / "whole")

    def kill(step: int) -> None:
        if step == 7:  # checkpoint written at step 6, mid-epoch 2; steps 7 is lost
            raise Killed

    with pytest.raises(Killed):
        Seq2SeqStudent(cfg).fit(data, tmp_path / "resumed", on_step=kill)
    assert (tmp_path / "resumed" / "checkpoint" / "trainer_state.pt").exists()
    resumed = Seq2SeqStudent(cfg)
    seen: list[int] = []
    report = resumed.fit(data, tmp_path / "resumed", on_step=seen.append)
    assert report.steps == 10 and seen == [7, 8, 9, 10]  # resumed after step 6, not restarted
    a, b = weights(whole), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a finished run is not retrained
    again = Seq2SeqStudent(cfg).fit(data, tmp_path / "resumed")
    assert again.steps == 10 and not (tmp_path / "resumed" / "checkpoint").exists()


def test_fidelity_early_stopping(tmp_path: Path) -> None:
    assert not fidelity_converged([10.0, 10.05, 10.1], 3, 0.1)
    assert fidelity_converged([5.0, 10.0, 10.05, 10.1, 10.0], 3, 0.1)
    assert not fidelity_converged([10.0, 10.05, 10.3, 10.1], 3, 0.1)
    calls: list[int] = []

    def flat(targets: list[str], preds: list[str], sources: list[str]) -> float:
        calls.append(len(preds))
        assert len(targets) == len(sources) == 4
        return 50.0

    student = Seq2SeqStudent(config(epochs=10, fidelity_sample=4), fidelity=flat)
    report = student.fit(examples(16), tmp_path)
    assert report.epochs == 4 and report.stopped_early and report.fidelity == [50.0] * 4
    assert calls == [4] * 4


def test_fidelity_uses_the_tasks_metric(tmp_path: Path) -> None:
    from mckd.tasks.constituency import ConstituencyTask

    class Task(ConstituencyTask):
        def fidelity(self, targets: list[str], preds: list[str], sources: list[str]) -> float:
            return 100.0 * sum(tree_words(parse_tree(p)) == s.split() for p, s in zip(preds, sources, strict=True)) / len(preds)

    student = build_student(config(epochs=1, fidelity_sample=5), Task())
    report = student.fit(examples(16), tmp_path)
    # the default for a task with a decoding constraint: constrained, so always valid trees
    assert all("complete" in p.meta for p in student.predict(["a b c", "the cat sat"]))
    assert report.fidelity == [100.0]  # constrained decodes always have the input's words


def test_bad_training_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty"):
        Seq2SeqStudent(config()).fit([], tmp_path)
    with pytest.raises(InputError, match=r"no target.*'1'"):
        Seq2SeqStudent(config()).fit([Example("1", "a b")], tmp_path)
    empty = tmp_path / "train.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match=r"train\.jsonl: file is empty"):
        read_examples(empty, require_target=True)
    with pytest.raises(ValidationError, match="fp16"):
        Seq2SeqConfig(train={"precision": "fp16"})
    with pytest.raises(ConfigError, match=r"train\.batch_size.*0"):
        parse_student_config({"train": {"batch_size": 0}})


def test_over_long_targets_are_truncated_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = examples(12)
    long = sum(len(ex.target.split()) + 1 > 10 for ex in data)
    assert long > 0
    with caplog.at_level(logging.WARNING):
        report = Seq2SeqStudent(config(epochs=1, max_target_len=10)).fit(data, tmp_path)
    assert report.extra["truncated_targets"] == long
    assert f"{long} of 12 training targets are longer than 10 tokens" in caplog.text


def test_decoder_only_student_trains_and_writes_trees(tmp_path: Path) -> None:
    data = examples(24)
    model_dir = save_tiny_llama(tmp_path / "llama", [t for ex in data for t in (ex.source, ex.target)])
    cfg = CausalConfig(model=str(model_dir), train={"epochs": 2, "batch_size": 8, "fidelity_sample": 0,
                                                     "progress": False, "lr": 3e-3})
    student = build_student(cfg, TASKS["constituency"])  # the task gives the tree constraint
    report = student.fit(data, tmp_path / "run")
    assert report.steps == 6 and report.final_loss is not None
    preds = student.predict([ex.source for ex in data[:5]])
    assert len(preds) == 5 and all(p.mean_logprob is not None for p in preds)
    student.cfg.generate.constrained = True
    trees = student.predict([ex.source for ex in data[:5]])
    for ex, p in zip(data[:5], trees, strict=True):
        assert tree_words(parse_tree(p.text)) == ex.source.split()
    student.save(tmp_path / "saved")
    again = Seq2SeqStudent.load(tmp_path / "saved")
    assert [p.text for p in again.predict([data[0].source])] == [trees[0].text]


def test_bf16_autocast_step_on_cpu(tmp_path: Path) -> None:
    report = Seq2SeqStudent(config(epochs=1, precision="bf16")).fit(examples(8), tmp_path)
    assert report.final_loss is not None and report.final_loss == report.final_loss


def test_causal_loss_ignores_the_prompt() -> None:
    from mckd.student.model import StudentModel, train_tokenizer

    tok = train_tokenizer(["a b ( ) =>"], "word")
    sm = StudentModel(model=None, tokenizer=tok, kind="causal")  # type: ignore[arg-type]
    batch = collate([Encoded([3, 4, 5], [6, 1]), Encoded([3], [6, 6, 1])], sm, torch.device("cpu"))
    assert batch["labels"].tolist() == [[-100, -100, -100, 6, 1], [-100, 6, 6, 1, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]


@pytest.mark.slow
def test_gpu_benchmark_script_runs_on_cpu() -> None:
    import json
    import subprocess
    import sys

    root = Path(__file__).parent.parent
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_student.py"), "--tiny", "--device", "cpu"],
                         capture_output=True, text=True, check=True, timeout=600)
    res = json.loads(out.stdout)
    assert res["steps"] == 12 and res["tokens_per_s"] > 0 and res["precision"] == "fp32"


def test_cli_train_and_predict(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from mckd.cli import app
    from mckd.examples import write_examples

    write_examples(tmp_path / "train.jsonl", examples(12))
    sets = ["train.epochs=1", "train.batch_size=8", "train.fidelity_sample=0", "train.progress=false",
            "t5_shape={d_model: 32, d_ff: 64, num_layers: 1, num_heads: 2}"]
    args = ["train", "--train", str(tmp_path / "train.jsonl"), "--out", str(tmp_path / "run"), "--model", "t5-tiny"]
    result = CliRunner().invoke(app, [*args, *[x for s in sets for x in ("--set", s)]])
    assert result.exit_code == 0, result.output
    report = result.output[result.output.index('{"epochs"'):].splitlines()[0]  # after any progress bar
    assert json.loads(report)["steps"] == 2
    result = CliRunner().invoke(app, ["predict", "--model", str(tmp_path / "run"), "--input",
                                      str(tmp_path / "train.jsonl"), "--out", str(tmp_path / "pred.jsonl")])
    assert result.exit_code == 0, result.output
    preds = read_examples(tmp_path / "pred.jsonl")
    assert len(preds) == 12 and all(tree_words(parse_tree(p.target)) == p.source.split() for p in preds)
    assert all(p.meta["mean_logprob"] < 0 for p in preds)
    assert all(set(p.meta) == {"mean_logprob", "student"} for p in preds)  # flags kept apart


def test_early_stopping_waits_for_min_epochs_and_a_fidelity_above_zero(tmp_path: Path) -> None:
    assert not fidelity_converged([0.0] * 6, 3, 0.1)  # never matched a label: not converged
    assert not fidelity_converged([50.0] * 5, 3, 0.1, min_epochs=6)
    assert fidelity_converged([50.0] * 6, 3, 0.1, min_epochs=6)
    zero = Seq2SeqStudent(config(epochs=6, fidelity_sample=4), fidelity=lambda t, p, s: 0.0)
    report = zero.fit(examples(16), tmp_path / "zero")
    assert report.epochs == 6 and not report.stopped_early and report.fidelity == [0.0] * 6
    late = Seq2SeqStudent(config(epochs=10, fidelity_sample=4, min_epochs=6), fidelity=lambda t, p, s: 50.0)
    report = late.fit(examples(16), tmp_path / "late")
    assert report.epochs == 6 and report.stopped_early


def test_padding_to_a_multiple_keeps_the_loss() -> None:
    """Padding sources and targets further (masked, labels -100) changes neither the summed loss
    nor which tokens it counts; it only rounds widths up for the GPU's tensor cores."""
    data = examples(6)
    student = Seq2SeqStudent(config())
    pairs = student._pairs(data)
    from mckd.student.model import build_model

    student.sm = build_model("t5-tiny", "seq2seq", [x for p in pairs for x in p], t5_shape=SHAPE)
    encoded, _, _ = student._encode([s for s, _ in pairs], [t for _, t in pairs])
    student.sm.model.eval()
    plain = collate(encoded, student.sm, torch.device("cpu"))
    padded = collate(encoded, student.sm, torch.device("cpu"), pad_to_multiple=16)
    assert padded["input_ids"].shape[1] == 16 and padded["labels"].shape[1] % 16 == 0
    assert plain["labels"].shape[1] % 16 != 0  # the check would be empty otherwise
    assert (padded["labels"] != -100).sum() == (plain["labels"] != -100).sum()
    with torch.no_grad():
        a, b = token_loss_sum(student.sm, plain), token_loss_sum(student.sm, padded)
    assert torch.allclose(a, b, rtol=1e-5)


def test_report_counts_tokens_and_step_time(tmp_path: Path) -> None:
    report = Seq2SeqStudent(config(epochs=1, log_every_steps=1)).fit(examples(16), tmp_path)
    assert report.extra["tokens"] > 16 and report.extra["tokens_per_s"] > 0
    assert report.extra["seconds_per_step"] > 0


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(tmp_path: Path) -> None:
    data = examples(16)

    def run(name: str, **train: object) -> TrainReport:
        cfg = config(epochs=1, pad_to_multiple=16, **train).model_copy(update={"dropout": 0.0})  # compiled dropout draws other numbers
        return Seq2SeqStudent(cfg).fit(data, tmp_path / name)

    eager, compiled = run("eager"), run("compiled", compile=True)
    assert compiled.steps == eager.steps
    assert compiled.final_loss == pytest.approx(eager.final_loss, rel=1e-3)


@pytest.mark.slow
def test_gpu_mckd_script_runs_on_cpu(tmp_path: Path) -> None:
    """The 2-stage MCKD run of the GPU check, tiny and on CPU: `mckd run` in a child process
    against the loopback teacher; every student step reports its steps and tokens/s."""
    import json
    import subprocess
    import sys

    root = Path(__file__).parent.parent
    subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_mckd.py"), "--tiny", "--device", "cpu",
                    "--work", str(tmp_path / "work"), "--json", str(tmp_path / "out.json")],
                   capture_output=True, text=True, check=True, timeout=600)
    res = json.loads((tmp_path / "out.json").read_text())
    assert res["rc"] == 0 and res["teacher_usage"]["valid"] == res["pool"] == 24
    for step in ("stage1_part0", "stage1_part1", "mckd_2stage"):
        assert res["steps"][step]["steps"] > 0 and res["steps"][step]["tokens_per_s"] > 0
    assert res["test_score"]["sentences"] == res["test"] == 8
