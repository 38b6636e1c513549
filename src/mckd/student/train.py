"""A lean training loop for generating students.

Length-bucketed batches with dynamic padding, gradient accumulation, AdamW with a linear
schedule, bf16 autocast where the device supports it (fp32 otherwise, never fp16), seeded data
order and dropout, and checkpoints that resume mid-epoch to the same weights an uninterrupted
run reaches. After each epoch an optional fidelity callback (F1 of the student's decodes of a
fixed training sample against their own pseudolabels) drives early stopping.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from tqdm import tqdm

from mckd.student.base import TrainReport, fidelity_converged
from mckd.student.config import TrainConfig
from mckd.student.distributed import Ranks, current_ranks
from mckd.student.model import StudentModel

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint"


@dataclass
class Encoded:
    """One training pair as token ids (for decoder-only students: prompt and target)."""

    source: list[int]
    target: list[int]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 where asked for or (auto) where a CUDA device supports it; None means plain fp32."""
    if cfg.precision == "bf16":
        return torch.bfloat16
    if cfg.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def bucket_batches(lengths: list[int], batch: int, bucket: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort by length inside windows of `bucket` batches, cut batches, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch * bucket
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda k: lengths[k])
        batches.extend(chunk[i:i + batch] for i in range(0, len(chunk), batch))
    rng.shuffle(batches)
    return batches


def _width(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A copy from pageable memory makes the host wait for the device; from pinned memory,
    asynchronously, it does not (the pinned buffer is kept alive until the copy is done)."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _rows(seqs: list[list[int]], width: int, fill: int, offsets: list[int] | None = None) -> torch.Tensor:
    """Sequences padded with `fill` to `width` (each starting at its offset), as one tensor."""
    offsets = offsets or [0] * len(seqs)
    return torch.tensor([[fill] * o + s + [fill] * (width - o - len(s)) for s, o in zip(seqs, offsets, strict=True)],
                        dtype=torch.long)


def collate(items: list[Encoded], sm: StudentModel, device: torch.device,
            pad_to_multiple: int = 1) -> dict[str, torch.Tensor]:
    """Pad to the longest item of the batch (not to a global maximum), rounded up to a multiple
    of `pad_to_multiple` (fewer distinct shapes for a compiled model)."""
    pad = sm.pad_id
    if sm.kind == "causal":
        seqs = [it.source + it.target for it in items]
        width = _width(max(map(len, seqs)), pad_to_multiple)
        batch = {"input_ids": _rows(seqs, width, pad), "attention_mask": _rows([[1] * len(s) for s in seqs], width, 0),
                 "labels": _rows([it.target for it in items], width, -100, [len(it.source) for it in items])}
    else:
        src_w = _width(max(len(it.source) for it in items), pad_to_multiple)
        tgt_w = _width(max(len(it.target) for it in items), pad_to_multiple)
        batch = {"input_ids": _rows([it.source for it in items], src_w, pad),
                 "attention_mask": _rows([[1] * len(it.source) for it in items], src_w, 0),
                 "labels": _rows([it.target for it in items], tgt_w, -100)}
    return {k: _to_device(v, device) for k, v in batch.items()}


def token_loss_sum(sm: StudentModel, batch: dict[str, torch.Tensor],
                   model: torch.nn.Module | None = None) -> torch.Tensor:
    """Summed cross-entropy over target tokens (normalised per optimizer step by the caller).
    `model` is `sm.model` as wrapped for several processes, where it is."""
    labels = batch["labels"]
    model = sm.model if model is None else model  # a compiled module has no truth value
    if sm.kind == "causal":
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logits, labels = logits[:, :-1], labels[:, 1:]
    else:
        dec_in = sm.model.prepare_decoder_input_ids_from_labels(labels=labels)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       decoder_input_ids=dec_in).logits
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                             labels.reshape(-1), ignore_index=-100, reduction="sum")


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out_dir: Path, sm: StudentModel, opt: torch.optim.Optimizer,
                    sched: torch.optim.lr_scheduler.LRScheduler, state: dict[str, Any]) -> None:
    """Write model + trainer state into a fresh directory, then swap it in (never half-written)."""
    tmp, final, old = out_dir / f"{CHECKPOINT}.tmp", out_dir / CHECKPOINT, out_dir / f"{CHECKPOINT}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(sm.model, str(tmp / "model.safetensors"))
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": _rng_state(),
                **state}, tmp / "trainer_state.pt")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out_dir: Path, sm: StudentModel, opt: torch.optim.Optimizer,
                    sched: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any] | None:
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):  # .old survives a kill between the renames
        path = out_dir / name
        if (path / "trainer_state.pt").exists():
            load_model(sm.model, str(path / "model.safetensors"))
            state = torch.load(path / "trainer_state.pt", weights_only=True)
            opt.load_state_dict(state.pop("optimizer"))
            sched.load_state_dict(state.pop("scheduler"))
            _set_rng_state(state.pop("rng"))
            log.info("resuming from %s: epoch %d, step %d", path, state["epoch"] + 1, state["step"])
            return state
    return None


def make_optimizer(sm: StudentModel, cfg: TrainConfig, total_steps: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    # The fused CUDA kernel updates all parameters in a few launches (CPU keeps the default).
    fused = next(sm.model.parameters()).is_cuda
    opt = torch.optim.AdamW(sm.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=fused or None)

    def linear(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - cfg.warmup_steps))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, linear)


def loss_dtype(device: torch.device) -> torch.dtype:
    """Losses are kept in float64 (MPS has none: float32 there)."""
    return torch.float32 if device.type == "mps" else torch.float64


class LossTracker:
    """The running loss (an exponential moving average), and the sum and count of this epoch's
    step losses, kept on the device: reading a device value makes the host wait for it, so the
    values are read only for logs, checkpoints and at epoch ends. Float64, so the figures are
    the ones the same arithmetic on Python floats gives."""

    def __init__(self, state: dict[str, Any], device: torch.device) -> None:
        self.dtype = loss_dtype(device)
        self.device = device
        self.ema = None if state["loss"] is None else self._tensor(state["loss"])
        self.total = self._tensor(state["loss_sum"])
        self.count = int(state["loss_count"])

    def _tensor(self, value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=self.dtype, device=self.device)

    def add(self, loss: torch.Tensor) -> None:
        self.ema = loss.clone() if self.ema is None else 0.9 * self.ema + 0.1 * loss
        self.total += loss
        self.count += 1

    def write(self, state: dict[str, Any]) -> None:
        """Read the values back into the trainer state (one wait for the device)."""
        state["loss"] = None if self.ema is None else float(self.ema)
        state["loss_sum"], state["loss_count"] = float(self.total), self.count

    def end_epoch(self, state: dict[str, Any]) -> None:
        self.write(state)
        state["epoch_losses"].append(state["loss_sum"] / max(1, state["loss_count"]))
        state["loss_sum"], state["loss_count"] = 0.0, 0
        self.total, self.count = self._tensor(0.0), 0


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile with dynamic sizes from the start: length buckets give batches of many
    shapes, and one graph with symbolic sizes serves them all instead of one compile per shape
    (the matrix products are library calls either way, so symbolic sizes cost little)."""
    import torch._dynamo  # torch loads its compiler only when asked to compile

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(model, dynamic=True)  # type: ignore[return-value]


def train(sm: StudentModel, data: list[Encoded], cfg: TrainConfig, out_dir: Path, *,
          fidelity: Callable[[], float] | None = None,
          on_step: Callable[[int], None] | None = None) -> TrainReport:
    """Train `sm.model` in place; resumes from `out_dir/checkpoint` when one exists. Under
    `accelerate launch` each process trains its share of every batch (distributed.py) and only
    the main one writes checkpoints."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ranks = current_ranks()
    device = ranks.accelerator.device if ranks.distributed else resolve_device(cfg.device)
    sm.model.to(device)
    micro = max(1, cfg.batch_size // cfg.grad_accum)
    lengths = [len(d.source) + len(d.target) for d in data]
    micro_batches = math.ceil(len(data) / micro)
    steps_per_epoch = math.ceil(micro_batches / cfg.grad_accum)
    opt, sched = make_optimizer(sm, cfg, cfg.epochs * steps_per_epoch)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    state = load_checkpoint(out_dir, sm, opt, sched) or {
        "epoch": 0, "batch": 0, "step": 0, "fidelity": [], "loss": None, "seconds": 0.0, "stopped": False}
    state.setdefault("epoch_losses", [])  # checkpoints written before losses were kept per epoch
    state.setdefault("loss_sum", 0.0)
    state.setdefault("loss_count", 0)
    losses = LossTracker(state, device)
    model, opt = ranks.prepare(sm.model, opt)
    if cfg.compile:
        model = compile_model(model)
    dtype = autocast_dtype(cfg, device)
    bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=state["step"],
               disable=not cfg.progress or not ranks.main,
               unit="step", dynamic_ncols=True, leave=False)
    started = time.perf_counter() - state["seconds"]
    session_start, seen_tokens, first_step = time.perf_counter(), 0, state["step"]
    while state["epoch"] < cfg.epochs and not state["stopped"]:
        batches = bucket_batches(lengths, micro, cfg.bucket_size, random.Random(cfg.seed * 1_000_003 + state["epoch"]))
        sm.model.train()
        while state["batch"] < len(batches):
            group = batches[state["batch"]:state["batch"] + cfg.grad_accum]
            tokens, loss = _optimizer_step(sm, [[data[k] for k in b] for b in group], cfg, opt, device, dtype,
                                           Replica(model, ranks))
            sched.step()
            state["batch"] += len(group)
            state["step"] += 1
            losses.add(loss)
            bar.update(1)
            seen_tokens += tokens
            if state["step"] % cfg.log_every_steps == 0:
                losses.write(state)
                rate = seen_tokens / max(1e-9, time.perf_counter() - session_start)
                bar.set_postfix(loss=f"{state['loss']:.3f}", tok_s=f"{rate:.0f}", epoch=state["epoch"] + 1,
                                refresh=False)
                log.debug("step %d: loss %.4f, %.0f tokens/s", state["step"], state["loss"], rate)
            if state["step"] % cfg.save_every_steps == 0 and state["batch"] < len(batches) and ranks.main:
                losses.write(state)
                state["seconds"] = time.perf_counter() - started
                save_checkpoint(out_dir, sm, opt, sched, state)
            if on_step is not None:
                on_step(state["step"])
        state["epoch"] += 1
        state["batch"] = 0
        losses.end_epoch(state)
        if fidelity is not None:
            state["fidelity"].append(ranks.mean(float(fidelity())))
            log.info("epoch %d: loss %.4f, fidelity %.2f", state["epoch"], state["loss"], state["fidelity"][-1])
            state["stopped"] = fidelity_converged(state["fidelity"], cfg.fidelity_patience, cfg.fidelity_delta,
                                                  cfg.min_epochs)
        else:
            log.info("epoch %d: loss %.4f", state["epoch"], state["loss"])
        state["seconds"] = time.perf_counter() - started
        if ranks.main:
            save_checkpoint(out_dir, sm, opt, sched, state)
    bar.close()
    session = time.perf_counter() - session_start
    steps = state["step"] - first_step
    return TrainReport(epochs=state["epoch"], steps=state["step"], seconds=state["seconds"],
                       final_loss=state["loss"], fidelity=list(state["fidelity"]),
                       stopped_early=state["stopped"] and state["epoch"] < cfg.epochs,
                       extra={"epoch_losses": list(state["epoch_losses"]),
                              # this process's training only (a resumed run counts from the resume),
                              # wall time including fidelity decoding and checkpoints
                              "tokens": seen_tokens, "tokens_per_s": seen_tokens / max(1e-9, session),
                              "seconds_per_step": session / steps if steps else None})


@dataclass
class Replica:
    """The model to call (wrapped by accelerate when several processes train) and this
    process's place among them."""

    model: torch.nn.Module
    ranks: Ranks


def _optimizer_step(sm: StudentModel, group: list[list[Encoded]], cfg: TrainConfig,
                    opt: torch.optim.Optimizer, device: torch.device,
                    dtype: torch.dtype | None, replica: Replica) -> tuple[int, torch.Tensor]:
    """One optimizer step over `grad_accum` micro-batches; loss normalised by the target tokens
    of the whole (global) step. Token counts come from the host-side lists and the loss stays
    on the device (a 0-dim float64 tensor; LossTracker): each read of a device value makes the
    host wait for the GPU.
    With several processes each trains its share of every micro-batch, its summed loss scaled
    by the number of processes, so the averaged gradient is the one-process gradient."""
    ranks = replica.ranks
    n_target = sum(len(it.target) for items in group for it in items)
    tokens = n_target + sum(len(it.source) for items in group for it in items)
    total = torch.zeros((), device=device)
    for m, items in enumerate(group):
        weight = 1.0
        if ranks.distributed:
            mine = ranks.share(list(range(len(items))))
            # an empty share still joins the gradient exchange, with one item at weight 0
            weight = float(ranks.world) if mine else 0.0
            items = [items[k] for k in mine] if mine else items[:1]
        batch = collate(items, sm, device, cfg.pad_to_multiple)
        with ranks.no_sync(replica.model, skip=m < len(group) - 1):
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss_sum = token_loss_sum(sm, batch, replica.model)
            ranks.backward(loss_sum / n_target if not ranks.distributed else loss_sum * weight / n_target)
        total += loss_sum.detach() if weight else 0.0
    if cfg.max_grad_norm is not None:
        ranks.clip(replica.model, cfg.max_grad_norm)
    opt.step()
    opt.zero_grad(set_to_none=True)
    dtype64 = loss_dtype(device)
    if ranks.distributed:
        mean = ranks.mean(float(total) * ranks.world / max(1, n_target))
        return tokens, torch.tensor(mean, dtype=dtype64, device=device)
    return tokens, total.to(dtype64) / max(1, n_target)
