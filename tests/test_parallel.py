"""Partition students at the same time: which devices a run uses, and that grouped steps run in
their own processes pinned to one device each (on CPU the device names are only labels)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from mckd.distill.parallel import device_slots, run_on_devices
from mckd.distill.rundir import DONE, RunDir, Step
from mckd.errors import ConfigError


def test_off_without_two_gpus_unless_asked_and_one_device_per_student() -> None:
    assert device_slots(None, [], 2) == []  # CPU: auto is off
    assert device_slots(None, ["0"], 2) == []
    assert device_slots(False, ["0", "1"], 2) == []
    assert device_slots(None, ["0", "1", "2", "3"], 2) == ["0", "1"]
    assert device_slots(True, ["2", "5"], 3) == ["2", "5"]  # 3 students in waves of 2
    assert device_slots(True, ["0", "1"], 1) == []
    with pytest.raises(ConfigError, match="parallel_students: true needs at least 2 visible GPUs; 0"):
        device_slots(True, [], 2)


def test_jobs_run_in_waves_each_pinned_to_its_device() -> None:
    jobs = [functools.partial(os.getenv, "CUDA_VISIBLE_DEVICES") for _ in range(3)]
    assert run_on_devices(jobs, ["a", "b"]) == ["a", "b", "a"]
    with pytest.raises(ValueError):
        run_on_devices([functools.partial(int, "x"), functools.partial(int, "1")], ["a", "b"])


def record(folder: Path) -> dict[str, Any]:
    """A step that notes the device it was given and its process."""
    (folder / "out.json").write_text(json.dumps({"device": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                                 "pid": os.getpid()}))
    return {"pid": os.getpid()}


def test_a_group_of_steps_runs_in_parallel_processes_and_finishes_like_one_at_a_time(tmp_path: Path) -> None:
    steps = [Step("first", (), {}, record),
             *(Step(f"part{k}", ("first",), {}, record, group="parts") for k in range(2)),
             Step("merge", ("part0", "part1"), {}, record)]
    rd = RunDir(tmp_path)
    outcomes = rd.execute(steps, devices=["d0", "d1"])
    assert [o.name for o in outcomes] == ["first", "part0", "part1", "merge"]
    seen = {s.name: json.loads((tmp_path / s.name / "out.json").read_text()) for s in steps}
    assert [seen[f"part{k}"]["device"] for k in range(2)] == ["d0", "d1"]
    assert len({seen[n]["pid"] for n in seen}) == 3  # each part in its own process
    assert seen["first"]["pid"] == seen["merge"]["pid"] == os.getpid()
    assert all((tmp_path / s.name / DONE).exists() for s in steps)
    again = rd.execute(steps, devices=["d0", "d1"])  # a rerun skips them all
    assert all(o.skipped for o in again)
