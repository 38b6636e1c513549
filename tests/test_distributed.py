"""Students on several processes (accelerate, DDP over gloo on CPU): each process's share of a
global batch and its loss weight; two processes each train their own share of every batch and
together follow the one-process loss curve."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mckd.examples import write_examples
from mckd.student import train_file
from mckd.student.distributed import Ranks
from mckd.student.finetune import Loop
from test_chart import examples as chart_examples
from test_student_train import examples as tree_examples
from trained_batches import Batch, read, record

# Two processes add float sums in another order than one: losses and weights agree to about
# 1e-7 (measured); the bound leaves room for other CPUs' kernels.
TOLERANCE = 1e-5


def test_shares_of_a_global_batch_are_disjoint_contiguous_and_cover_it() -> None:
    for n in range(0, 12):
        batch = list(range(100, 100 + n))
        for world in (1, 2, 3):
            shares = [Ranks(None, r, world).share(batch) for r in range(world)]
            assert [k for s in shares for k in s] == batch
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_scaled_share_losses_average_to_the_global_batch_mean() -> None:
    """What DDP computes (the mean over processes of each one's scaled mean loss) is the mean
    over the whole batch's units, whatever the units per item and the split."""
    rng = random.Random(0)
    for _ in range(50):
        world = rng.randint(2, 4)
        batch = list(range(rng.randint(1, 9)))
        units = {k: rng.randint(0, 5) for k in batch}
        losses = {k: [rng.random() for _ in range(units[k])] for k in batch}  # per unit
        everything = [x for k in batch for x in losses[k]]
        expected = sum(everything) / max(1, len(everything))
        parts = []
        for r in range(world):
            mine, scale = Loop(None, None, None, Ranks(None, r, world)).take(batch, units.__getitem__)
            mine_losses = [x for k in mine for x in losses[k]]
            mean = sum(mine_losses) / max(1, len(mine_losses))
            parts.append(mean * scale)
            assert mine, "an empty share still runs one item (at weight 0)"
        assert sum(parts) / world == pytest.approx(expected, abs=1e-12)


def test_one_process_takes_the_whole_batch_unscaled() -> None:
    assert Loop(None, None, None).take([3, 1, 2], lambda k: k) == ([3, 1, 2], None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(train: Path, out: Path, args: list[str], launcher: str = "torchrun") -> tuple[list[str], dict[str, str]]:
    """`mckd train` under `accelerate launch` with 2 processes, and its environment. Without GPUs `--multi_gpu`
    starts them through torchrun and the training asks accelerate for a CPU group (gloo);
    `--cpu` starts them through mpirun when given an MPI hostfile (one process without)."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate is not None
    batches = out.parent / f"{out.name}-batches"  # what each process trains on (trained_batches.py)
    batches.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": "", "MASTER_PORT": str(free_port()), "TRAINED_BATCHES": str(batches)}
    if launcher == "torchrun":
        how = ["--multi_gpu", "--main_process_port", env["MASTER_PORT"]]
    else:
        hostfile = out.parent / f"{out.name}-hosts"
        hostfile.write_text("localhost slots=2\n")
        how = ["--cpu", "--mpirun_hostfile", str(hostfile)]
        # Open MPI will not start processes as root unless told to (CI runs as root)
        env |= {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    cmd = [accelerate, "launch", *how, "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "trained_batches", "train", "--train", str(train), "--out", str(out), *args]
    return cmd, env


def launch_two(train: Path, out: Path, args: list[str], launcher: str = "torchrun") -> str:
    """Run `launch_command` to the end; its log."""
    cmd, env = launch_command(train, out, args, launcher)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training on 2 processes" in done.stderr
    return done.stderr


def assert_same_training(one: Path, two: Path, report: str) -> None:
    a, b = json.loads((one / report).read_text()), json.loads((two / report).read_text())
    assert a["steps"] == b["steps"]
    assert b["extra"]["epoch_losses"] == pytest.approx(a["extra"]["epoch_losses"], rel=TOLERANCE)
    assert a["extra"]["epoch_losses"][-1] < a["extra"]["epoch_losses"][0]  # it learned
    wa, wb = (load_file(str(d / "model" / "model.safetensors")) for d in (one, two))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=TOLERANCE, rtol=0), k
    assert not (two / "checkpoint").exists()


@pytest.fixture(scope="module")
def dropout_free_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random BERT without dropout: dropout masks depend on how a batch is split, so
    only a dropout-free model follows the same curve step for step."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from mckd.student.encoder import resolve_encoder

    path = tmp_path_factory.mktemp("bert-no-dropout")
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder("minilm"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def chart_args(encoder: str, epochs: int, *extra: str) -> list[str]:
    """A tiny chart student on `encoder`: 8 sentences in global batches of 3, 3 and 2."""
    return ["kind=chart", f"encoder={encoder}", "span_hidden=16", f"epochs={epochs}", "min_steps=0",
            "batch_size=3", "early_stopping=none", "lr_encoder=1e-3", "lr_head=3e-3", "device=cpu", *extra]


def t5_args(epochs: int, *extra: str) -> list[str]:
    """A tiny dropout-free T5 (`--model t5-tiny`) in global batches of 8."""
    return ["t5_shape.d_model=32", "t5_shape.d_ff=64", "t5_shape.num_layers=1", "t5_shape.num_heads=2",
            "dropout=0", f"train.epochs={epochs}", "train.batch_size=8", "train.fidelity_sample=0",
            "train.progress=false", "train.lr=3e-3", "train.device=cpu", *extra]


def cli_args(args: list[str], model: str | None = None) -> list[str]:
    """`train_file`'s model and overrides as `mckd train` options."""
    return [*(["--model", model] if model else []), *(x for a in args for x in ("--set", a))]


def assert_each_process_trained_its_share(one: list[Batch], ranks: list[list[Batch]], sentences: int) -> None:
    """Batch for batch, the processes trained disjoint parts that together are the batch one
    process trained. (Each process taking the whole batch unscaled would also follow the
    one-process curve: the gradients averaged would be equal.) A batch with fewer sentences
    than processes is the exception: a process with an empty share trains the batch's first
    sentence at weight 0, to join the gradient exchange."""
    assert len({json.dumps(s) for b in one for s in b}) == sentences  # token ids tell them apart
    assert [len(r) for r in ranks] == [len(one)] * len(ranks)
    for k, whole in enumerate(one):
        shares = [{json.dumps(s) for s in r[k]} for r in ranks]
        assert set().union(*shares) == {json.dumps(s) for s in whole}, k
        if len(whole) >= len(ranks):
            assert sum(map(len, shares)) == len(whole), k  # so no sentence in two shares
            assert all(len(s) in (len(whole) // len(ranks), -(-len(whole) // len(ranks))) for s in shares), k
        else:
            assert all(len(s) == 1 for s in shares), k


def train_one_and_two(data: Path, tmp_path: Path, args: list[str], report: str, model: str | None = None,
                      launcher: str = "torchrun") -> None:
    """Train in this process and in 2 launched ones; both must end the same, each of the two
    having trained its share of every batch."""
    one: list[Batch] = []
    with pytest.MonkeyPatch.context() as mp:
        record(mp.setattr, one.append)
        train_file(data, tmp_path / "one", overrides=args, **({"model": model} if model else {}))
    launch_two(data, tmp_path / "two", cli_args(args, model), launcher)
    assert_same_training(tmp_path / "one", tmp_path / "two", report)
    sentences = len(data.read_text().splitlines())
    assert_each_process_trained_its_share(one, read(tmp_path / "two-batches", 2), sentences)


@pytest.mark.slow
def test_two_processes_train_the_chart_student_like_one(dropout_free_encoder: str, tmp_path: Path) -> None:
    # 8 sentences in global batches of 3, 3 and 2: the processes take 1 + 2 and 1 + 1
    data = tmp_path / "train.jsonl"
    write_examples(data, chart_examples())
    train_one_and_two(data, tmp_path, chart_args(dropout_free_encoder, 3), "train_report.json")


@pytest.mark.slow
def test_two_processes_train_a_seq2seq_student_like_one(tmp_path: Path) -> None:
    # 21 pairs, global batch 8 as 2 micro-batches of 4 (grad_accum): the last step has 5 pairs
    data = tmp_path / "train.jsonl"
    write_examples(data, tree_examples(21))
    train_one_and_two(data, tmp_path, t5_args(2, "train.grad_accum=2"), "DONE", model="t5-tiny")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mpirun") is None, reason="no MPI launcher (Debian: openmpi-bin)")
def test_accelerate_cpu_launcher_with_an_mpi_hostfile_trains_like_one_process(
        dropout_free_encoder: str, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    write_examples(data, chart_examples())
    train_one_and_two(data, tmp_path, chart_args(dropout_free_encoder, 2), "train_report.json",
                      launcher="mpirun")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["chart", "seq2seq"])
def test_a_killed_two_process_training_resumes_to_the_one_process_weights(
        kind: str, dropout_free_encoder: str, tmp_path: Path) -> None:
    """SIGKILL of the launcher and both training processes once a checkpoint exists; the same
    launch again resumes from it (not from the start) and ends where one process ends."""
    import psutil

    data = tmp_path / "train.jsonl"
    if kind == "chart":
        write_examples(data, chart_examples())
        args, model = chart_args(dropout_free_encoder, 20, "checkpoint_every=4"), None
        checkpoint, report = "checkpoint/state.pt", "train_report.json"
    else:
        write_examples(data, tree_examples(21))
        args, model = t5_args(12, "train.save_every_steps=4"), "t5-tiny"
        checkpoint, report = "checkpoint/trainer_state.pt", "DONE"
    train_file(data, tmp_path / "one", overrides=args, **({"model": model} if model else {}))
    two = tmp_path / "two"
    cmd, env = launch_command(data, two, cli_args(args, model))
    launcher = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
    deadline = time.monotonic() + 300
    while not (two / checkpoint).exists():
        assert launcher.poll() is None, launcher.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    family = [launcher.pid, *(p.pid for p in psutil.Process(launcher.pid).children(recursive=True))]
    for pid in family:  # torchrun starts each training process in a session of its own
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    launcher.communicate()
    assert not (two / "DONE").exists(), "the training ended before the kill"
    log = launch_two(data, two, cli_args(args, model))
    assert "resuming" in log
    assert_same_training(tmp_path / "one", two, report)


@pytest.mark.slow
def test_two_processes_train_a_causal_student_like_one(tmp_path: Path) -> None:
    from test_student_model import save_tiny_llama

    pairs = tree_examples(21)
    llama = save_tiny_llama(tmp_path / "llama", [f"{ex.source} {ex.target}" for ex in pairs])
    data = tmp_path / "train.jsonl"
    write_examples(data, pairs)
    args = ["kind=causal", f"model={llama}", "train.epochs=2", "train.batch_size=8", "train.grad_accum=2",
            "train.fidelity_sample=0", "train.progress=false", "train.lr=3e-3", "train.device=cpu"]
    train_one_and_two(data, tmp_path, args, "DONE")
