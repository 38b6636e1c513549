"""Training one student on several processes, through `accelerate` (DDP, or the FSDP or
DeepSpeed setup of an `accelerate config` file; nothing here reimplements them).

Run any training under `accelerate launch` (on CPU, with gloo: `accelerate launch --multi_gpu
--num_processes 2 -m mckd train ...`, or `--cpu --num_processes 2 --mpirun_hostfile FILE`
where an MPI is installed). Every process reads all the data and cuts the same
global batches in the same seeded order; each process then takes its contiguous share of each
global batch. A process's loss is its share's summed loss divided by the global batch's count
(tokens, spans, words) times the number of processes, so the gradients the processes average
are exactly the single-process gradient of the whole batch. Only the main process writes
checkpoints, models, reports and `DONE`.

With one process (no launcher, or `--num_processes 1`) none of this is used: training runs the
code path it always ran, to the same bits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch

from mckd.errors import MckdError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Ranks:
    """This process's place among the training processes; `accelerator` is None alone."""

    accelerator: Any = None
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def share(self, batch: list[int]) -> list[int]:
        """This process's contiguous share of a global batch (empty when the batch has fewer
        items than there are processes)."""
        n = len(batch)
        return batch[self.rank * n // self.world:(self.rank + 1) * n // self.world]

    def scale(self, local: int, total: int) -> float:
        """Factor that turns the mean loss over this share's `local` units into this process's
        part of the mean over the global batch's `total` units, once DDP averages gradients."""
        return local * self.world / max(1, total)

    def mean(self, value: float) -> float:
        """The mean of `value` over the processes (every process gets it)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.accelerator.device)
        return float(self.accelerator.reduce(t, reduction="mean").item())

    def wait(self) -> None:
        """Every process waits here for the others (e.g. until the main one has written)."""
        if self.distributed:
            self.accelerator.wait_for_everyone()

    def prepare(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[Any, Any]:
        """The model wrapped for the configured strategy (DDP, FSDP, DeepSpeed) and its
        optimizer; the learning-rate schedule stays ours (accelerate's wrapper would step it
        once per process)."""
        if not self.distributed:
            return model, opt
        return self.accelerator.prepare(model, opt)

    def backward(self, loss: torch.Tensor) -> None:
        if self.distributed:
            self.accelerator.backward(loss)
        else:
            loss.backward()

    def clip(self, model: torch.nn.Module, max_norm: float) -> None:
        if self.distributed:
            self.accelerator.clip_grad_norm_(model.parameters(), max_norm)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)

    @contextlib.contextmanager
    def no_sync(self, model: Any, skip: bool) -> Iterator[None]:
        """Skip the gradient exchange for this backward (all but the last micro-batch)."""
        if skip and self.distributed:
            with self.accelerator.no_sync(model):
                yield
        else:
            yield


# Where launchers put the number of processes: torchrun (and `accelerate launch --multi_gpu`),
# then MPI's launchers (`accelerate launch --cpu --mpirun_hostfile`: Intel MPI or MPICH, Open
# MPI, MVAPICH), the same order accelerate reads them in.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def launched_world() -> int:
    """How many training processes the launcher (`accelerate launch`, torchrun, mpirun) started."""
    for name in WORLD_SIZE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                raise MckdError(f"environment variable {name}={value!r} is not a number of processes") from None
    return 1


def current_ranks() -> Ranks:
    """The process group this process belongs to, set up by accelerate on first use."""
    if launched_world() <= 1:
        return Ranks()
    from accelerate import Accelerator, DistributedDataParallelKwargs  # only under a launcher

    # Without a GPU, accelerate forms a CPU group (gloo) only when asked for the CPU; otherwise
    # each process would think it trains alone. Pretrained encoders carry parts no loss uses
    # (BERT's pooler), which DDP must be told about.
    acc = Accelerator(cpu=not torch.cuda.is_available(),
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    if acc.num_processes != launched_world():
        raise MckdError(f"the launcher started {launched_world()} processes but accelerate joined "
                        f"{acc.num_processes} ({acc.distributed_type}); check the accelerate config")
    if acc.num_processes > 1 and acc.process_index == 0:
        log.info("training on %d processes (%s, %s)", acc.num_processes, acc.distributed_type, acc.device)
    return Ranks(acc, acc.process_index, acc.num_processes)
