"""The training loop the students on a pretrained encoder share (span chart, tagger):
length-bucketed batches, AdamW with one learning rate for the encoder and one for the head,
linear warm-up and decay, resumable checkpoints, fidelity early stopping (METHOD.md).

`out_dir` holds `checkpoint/` while training (weights, optimizer, schedule, RNG and position,
written every `checkpoint_every` steps, so a killed run resumes on the same batch with the same
random state), then `model/`, `train_report.json` and a `DONE` marker. There is no extra
checkpoint at each epoch end: with few sentences an epoch is a few steps, and writing the
weights and optimizer state each time cost a quarter of the training time
(benchmarks/bench_checkpoints.py). Each student supplies its prepared data, one training step and its fidelity.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_model

from mckd.errors import InputError
from mckd.io import atomic_write
from mckd.student.base import TrainReport, fidelity_converged
from mckd.student.distributed import Ranks, current_ranks
from mckd.student.encoder import Encoded, EncoderStudent, fresh_dir, load_weights, replace_dir

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainData:
    """A training set encoded once: per sentence that fits the encoder its encoding, the label
    array its loss compares with, its target (what fidelity compares with) and its words; how
    many sentences were too long for the encoder; and a fingerprint of the data and settings
    (a checkpoint made from other ones is not resumed)."""

    encoded: list[Encoded]
    labels: list[np.ndarray]
    targets: list[Any]
    words: list[list[str]]
    skipped: int
    fingerprint: str


def encode_training(
    student: EncoderStudent,
    rows: Iterable[tuple[list[str], Any, Any]],
    labels: Callable[[list[str], Any], np.ndarray],
    fingerprint: Any,
) -> TrainData:
    """The training data from `rows` of (words, what the fingerprint keeps of the example,
    target), in order; `labels(words, target)` is the sentence's label array and `fingerprint`
    a hashlib object that already holds the settings. Sentences too long for the encoder are
    skipped (counted)."""
    encoded, label_arrays, targets, words = [], [], [], []
    n = 0
    for w, part, target in rows:
        n += 1
        fingerprint.update(json.dumps(part).encode())
        enc = student._encode(w)
        if enc is None:
            continue
        encoded.append(enc)
        label_arrays.append(labels(w, target))
        targets.append(target)
        words.append(w)
    return TrainData(encoded, label_arrays, targets, words, count_skipped(n, len(encoded)),
                     fingerprint.hexdigest())


Step = Callable[[Any, Any, list[int], "Loop"], float]  # (student, data, batch, loop) -> loss


@dataclasses.dataclass
class Loop:
    """What a step trains with: the model to call (wrapped by accelerate when several processes
    train), its optimizer and schedule, and this process's place among the processes."""

    model: Any
    opt: Any
    sched: Any
    ranks: Ranks = dataclasses.field(default_factory=Ranks)

    def take(self, batch: list[int], units: Callable[[int], int]) -> tuple[list[int], float | None]:
        """This process's items of a global batch and the factor for its mean loss (None:
        one process, the loss is used as it is). `units(k)` is what item k adds to the loss's
        mean (spans, words). A process whose share is empty runs one item at weight 0, so it
        still joins the gradient exchange."""
        if not self.ranks.distributed:
            return batch, None
        mine = self.ranks.share(batch)
        scale = self.ranks.scale(sum(map(units, mine)), sum(map(units, batch)))
        return (mine, scale) if mine else (batch[:1], 0.0)


@dataclasses.dataclass
class TrainState:
    """Where training stands; saved with every checkpoint."""

    epoch: int = 0  # the epoch in progress
    batch: int = 0  # batches of that epoch already done
    step: int = 0
    loss_sum: float = 0.0  # over the epoch in progress
    loss_count: int = 0
    epoch_losses: list[float] = dataclasses.field(default_factory=list)
    fidelity: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False


def finished_report(out_dir: Path) -> TrainReport | None:
    """The report of a training that already finished in `out_dir`, or None."""
    report_file = out_dir / "train_report.json"
    if (out_dir / "DONE").exists() and report_file.exists():
        return TrainReport(**json.loads(report_file.read_text()))
    return None


def run_training(
    student: EncoderStudent,
    data: TrainData,
    out_dir: Path,
    step: Step,
    fidelity: Callable[[], float],
) -> TrainReport:
    """Train `student` on `data` to the end (or early stop), resuming a checkpoint of the same
    training; then save the model and write the report and `DONE`. Under `accelerate launch`
    every process trains its share of each batch and only the main one writes."""
    cfg = student.cfg
    ranks = current_ranks()
    if ranks.distributed:
        student.device = ranks.accelerator.device
        student.model.to(student.device)
    student.model.train()
    opt = make_optimizer(student)
    per_epoch = math.ceil(len(data.encoded) / cfg.batch_size)
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / per_epoch))
    total = epochs * per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, linear_schedule(int(cfg.warmup_ratio * total), total)
    )
    ckpt = out_dir / "checkpoint"
    state = load_checkpoint(ckpt, student, opt, sched, data.fingerprint)
    if state is None:
        state = TrainState()
        torch.manual_seed(cfg.seed)  # dropout
    else:
        log.info(
            "resuming training at epoch %d, batch %d (step %d)",
            state.epoch + 1,
            state.batch,
            state.step,
        )
    model, opt = ranks.prepare(student.model, opt)
    loop = Loop(model, opt, sched, ranks)
    lengths = [len(ids) for ids, _ in data.encoded]
    while state.epoch < epochs and not state.stopped_early:
        started = clock = time.time()
        first = state.batch
        batches = bucketed_batches(lengths, cfg.batch_size, cfg.seed + state.epoch)
        for chunk in batches[state.batch :]:
            loss = step(student, data, chunk, loop)
            state.batch += 1
            state.step += 1
            state.loss_sum += loss
            state.loss_count += 1
            if state.step % 50 == 0:
                log_progress(state, total, (state.batch - first) / (time.time() - clock))
            if state.step % cfg.checkpoint_every == 0:
                state.seconds += time.time() - started
                started = time.time()
                if ranks.main:
                    save_checkpoint(ckpt, student, opt, sched, state, data.fingerprint)
        end_epoch(cfg, state, epochs, lambda: ranks.mean(fidelity()))
        student.model.train()
        state.seconds += time.time() - started
    report = finish(student, state, data, out_dir) if ranks.main else build_report(state, data)
    ranks.wait()  # the others return once the model and DONE are written
    return report


def make_optimizer(student: EncoderStudent) -> torch.optim.Optimizer:
    """AdamW with `lr_encoder` for the pretrained encoder and `lr_head` for the rest."""
    cfg, model = student.cfg, student.model
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    return torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": cfg.lr_encoder},
            {"params": head, "lr": cfg.lr_head},
        ],
        weight_decay=cfg.weight_decay,
        fused=student.device.type in ("cpu", "cuda"),  # one kernel per step: ~7x faster on CPU
    )


def clip_and_step(student: EncoderStudent, loss: torch.Tensor, loop: Loop, scale: float | None) -> float:
    """Backpropagate `loss` (times `scale`, from `Loop.take`), clip the gradient norm, take one
    optimizer and schedule step; returns the batch's loss (over every process's share)."""
    if scale is not None:
        loss = loss * scale
    loop.opt.zero_grad(set_to_none=True)
    loop.ranks.backward(loss)
    loop.ranks.clip(loop.model, student.cfg.grad_clip)
    loop.opt.step()
    loop.sched.step()
    return loop.ranks.mean(float(loss.item()))


def log_progress(state: TrainState, total: int, rate: float) -> None:
    log.info(
        "step %d/%d: loss %.4f, %.2f steps/s, about %.0f s left",
        state.step,
        total,
        state.loss_sum / max(1, state.loss_count),
        rate,
        (total - state.step) / max(rate, 1e-9),
    )


def end_epoch(cfg: Any, state: TrainState, epochs: int, fidelity: Callable[[], float]) -> None:
    state.epoch_losses.append(state.loss_sum / max(1, state.loss_count))
    message = f"epoch {state.epoch + 1}/{epochs}: loss {state.epoch_losses[-1]:.4f}"
    if cfg.early_stopping == "fidelity":
        state.fidelity.append(fidelity())
        message += f", fidelity {state.fidelity[-1]:.2f}"
        converged = fidelity_converged(
            state.fidelity, cfg.fidelity_patience, cfg.fidelity_tolerance, cfg.min_epochs
        )
        state.stopped_early = converged and state.epoch + 1 < epochs
    log.info(message)
    state.epoch += 1
    state.batch = 0
    state.loss_sum, state.loss_count = 0.0, 0


def build_report(state: TrainState, data: TrainData) -> TrainReport:
    return TrainReport(
        epochs=state.epoch,
        steps=state.step,
        seconds=round(state.seconds, 3),
        final_loss=state.epoch_losses[-1] if state.epoch_losses else None,
        fidelity=state.fidelity,
        stopped_early=state.stopped_early,
        extra={
            "epoch_losses": state.epoch_losses,
            "skipped_too_long": data.skipped,
            "sentences": len(data.encoded),
        },
    )


def finish(
    student: EncoderStudent, state: TrainState, data: TrainData, out_dir: Path
) -> TrainReport:
    report = build_report(state, data)
    student.save(out_dir / "model")
    with atomic_write(out_dir / "train_report.json") as f:
        json.dump(dataclasses.asdict(report), f, indent=2)
    with atomic_write(out_dir / "DONE") as f:
        f.write("done\n")
    shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
    log.info("trained %d epochs, %d steps in %.0f s", report.epochs, report.steps, report.seconds)
    return report


def count_skipped(n_sentences: int, n_encoded: int) -> int:
    """How many training sentences were too long for the encoder, with a warning when any
    were; none left to train on is an error."""
    skipped = n_sentences - n_encoded
    if skipped:
        log.warning("skipped %d training sentences too long for the encoder", skipped)
    if not n_encoded:
        raise InputError(None, None, "every training sentence is too long for the encoder")
    return skipped


def bucketed_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, sort pools of 50 batches by length (little padding), then shuffle the batches."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)).tolist()
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda k: lengths[k])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[k] for k in rng.permutation(len(batches))]


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def save_checkpoint(
    path: Path, student: EncoderStudent, opt: Any, sched: Any, state: TrainState, fingerprint: str
) -> None:
    tmp = fresh_dir(path)
    save_model(student.model, str(tmp / "model.safetensors"))
    extra = {
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "state": dataclasses.asdict(state),
        "fingerprint": fingerprint,
    }
    torch.save(extra, tmp / "state.pt")
    replace_dir(tmp, path)


def load_checkpoint(
    path: Path, student: EncoderStudent, opt: Any, sched: Any, fingerprint: str
) -> TrainState | None:
    """Restore a checkpoint of this same training (same data and config), if there is one."""
    if not (path / "state.pt").exists():
        old = path.with_name(f".{path.name}.old")  # killed between the two renames
        path = old if (old / "state.pt").exists() else path
    if not (path / "state.pt").exists():
        return None
    extra = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    if extra["fingerprint"] != fingerprint:
        log.warning("checkpoint in %s is for other data or settings; training from the start", path)
        return None
    load_weights(student.model, path, student.device)
    opt.load_state_dict(extra["optimizer"])
    sched.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["rng"])
    if extra["cuda_rng"]:
        torch.cuda.set_rng_state_all(extra["cuda_rng"])
    return TrainState(**extra["state"])
