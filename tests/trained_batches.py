"""What each training process trains on, for test_distributed.py: the sentences (as their
token ids) of every batch that reaches a student's model with gradients on, recorded where the
batch is padded into tensors, so a process that trained on more than its share shows it.

In a test process, `record(monkeypatch.setattr, batches.append)`. Under `accelerate launch`,
this module runs `mckd` with the recording on, each process appending one JSON line per batch
to `rank-<rank>.jsonl` in the folder TRAINED_BATCHES names:

    accelerate launch ... -m trained_batches train --train ... --out ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

Batch = list[list[int]]  # one list of token ids per sentence


def record(setattr_: Callable[[Any, str, Any], None], sink: Callable[[Batch], None]) -> None:
    """Send each training batch of the encoder students (span chart, tagger) and of the seq2seq
    and causal students to `sink`; batches decoded for predictions (no gradients) are not."""
    from mckd.student import train
    from mckd.student.chart import ChartStudent
    from mckd.student.tagger import TaggerStudent

    for cls in (ChartStudent, TaggerStudent):
        setattr_(cls, "_collate", _recording_method(cls._collate, sink))
    pairs = train.collate

    def collate(items: list[train.Encoded], *args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled():
            sink([[*it.source, -1, *it.target] for it in items])
        return pairs(items, *args, **kwargs)

    setattr_(train, "collate", collate)


def _recording_method(collate: Callable[..., Any], sink: Callable[[Batch], None]) -> Callable[..., Any]:
    def recorded(self: Any, encoded: list[tuple[list[int], list[int]]]) -> Any:
        if torch.is_grad_enabled():
            sink([list(ids) for ids, _ in encoded])
        return collate(self, encoded)

    return recorded


def rank() -> int:
    """This process's rank as the launcher (torchrun, or an MPI's mpirun) names it."""
    for name in ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"):
        if os.environ.get(name):
            return int(os.environ[name])
    return 0


def read(folder: Path, world: int) -> list[list[Batch]]:
    """Each rank's batches, in the order it trained them."""
    return [[json.loads(line) for line in (folder / f"rank-{r}.jsonl").read_text().splitlines()]
            for r in range(world)]


if __name__ == "__main__":
    from mckd.cli import main

    log = Path(os.environ["TRAINED_BATCHES"]) / f"rank-{rank()}.jsonl"

    def append(batch: Batch) -> None:
        with open(log, "a") as f:
            f.write(json.dumps(batch) + "\n")

    record(setattr, append)
    main()
