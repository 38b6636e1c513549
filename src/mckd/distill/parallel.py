"""A stage's partition students trained at the same time, one per visible GPU.

The K students of one MCKD stage are independent (each trains on other partitions and
relabels its own), so with several GPUs each can run in its own process, pinned to one device
by `CUDA_VISIBLE_DEVICES` before CUDA starts. Each process runs the whole step (STARTED,
training with its resumable checkpoints, predictions, DONE), so resuming after a kill works as
it does one step at a time. A student on several devices is a different thing: `mckd train`
under `accelerate launch` (student/distributed.py).
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

from mckd.errors import ConfigError

log = logging.getLogger(__name__)


def visible_devices() -> list[str]:
    """The GPUs this process may use, as `CUDA_VISIBLE_DEVICES` names them."""
    import torch  # seconds to import: loaded when the devices are first asked for

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None and listed.strip():
        return [d.strip() for d in listed.split(",") if d.strip()][:count]
    return [str(k) for k in range(count)]


def device_slots(setting: bool | None, devices: list[str], students: int) -> list[str]:
    """One device per student trained at once; [] means one student at a time. `setting`
    None (auto) is on where at least two GPUs are visible and off otherwise (CPU: off)."""
    if setting is False or students < 2:
        return []
    if len(devices) < 2:
        if setting:
            raise ConfigError(f"parallel_students: true needs at least 2 visible GPUs; "
                              f"{len(devices)} visible")
        return []
    return devices[:students]


def run_on_devices(jobs: list[Callable[[], Any]], slots: list[str]) -> list[Any]:
    """Run `jobs` (picklable callables) in fresh processes, at most one per slot at a time,
    each pinned to its slot's device; results in job order. The first failure is raised
    after the running jobs end (their checkpoints let a rerun resume them)."""
    results: list[Any] = [None] * len(jobs)
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked; each job a new process
    for start in range(0, len(jobs), len(slots)):
        wave = list(range(start, min(start + len(slots), len(jobs))))
        with concurrent.futures.ProcessPoolExecutor(len(wave), mp_context=ctx) as pool:
            futures = {k: pool.submit(_pinned, slots[k - start], jobs[k]) for k in wave}
            errors = [f.exception() for f in futures.values()]
        for k, f in futures.items():
            results[k] = f.result() if f.exception() is None else None
        failed = [e for e in errors if e is not None]
        if failed:
            raise failed[0]
    return results


def _pinned(device: str, job: Callable[[], Any]) -> Any:
    os.environ["CUDA_VISIBLE_DEVICES"] = device  # before anything in this process starts CUDA
    return job()
