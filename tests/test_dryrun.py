"""`mckd run --dry-run`: each step's cost from the config alone, checked against a real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import mckd.student
from mckd.config import config_from_dict
from mckd.distill.dryrun import estimate_run, format_estimate
from mckd.distill.pipeline import run_pipeline
from mckd.teacher.backends.fake import FakeBackend

sys.path.insert(0, str(Path(__file__).parent))
import pipeline_fakes as pf


@pytest.fixture(autouse=True)
def fake_student(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mckd.student, "build_student", pf.fake_build_student)


def test_dry_run_matches_what_the_run_then_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = FakeBackend.acomplete

    async def counted(self, request):  # type: ignore[no-untyped-def]
        calls.append(request.prompt or "")
        return await original(self, request)

    monkeypatch.setattr(FakeBackend, "acomplete", counted)
    cfg = config_from_dict(pf.tiny_config(tmp_path, add_gold=True))
    est = estimate_run(cfg)
    # nothing written: no run directory, no teacher cache
    assert not (tmp_path / "run").exists() and not (tmp_path / "teacher-cache.sqlite").exists()
    steps = {s.step: s for s in est.steps}
    assert est.data == {"labeled": 8, "unlabeled": 16, "test": 8}
    assert steps["teacher"].teacher.calls == 16 and steps["teacher_test"].teacher.calls == 8
    assert steps["teacher"].teacher.prompt_tokens > 16 * 3 * 5  # three demonstrations each
    assert steps["sft"].train_examples == 8 and steps["sft"].epochs == 20
    assert steps["stage1_part0"].train_examples == 8 + 8 and steps["stage1_part0"].predictions == 8
    assert steps["kd_self_distill"].train_examples == 8 + 8  # keep half of 16, plus the gold
    tot = est.totals()
    assert tot["student_trainings"] == 9  # sft, vanilla, self-distill, 2x2 stage parts, 2 finals
    assert tot["teacher_calls"] == 24 and tot["cost"] == 0
    assert "teacher: 24 calls" in format_estimate(est, priced=False)
    # shared demonstrations: every prompt begins as the one before it, and the cache line says so
    assert 0 < tot["cached_prompt_tokens"] < tot["prompt_tokens"]
    assert f"prompt cache: ~{tot['cached_prompt_tokens']:,} prompt tokens" in format_estimate(est, priced=False)

    run_pipeline(cfg)
    assert len(calls) == tot["teacher_calls"]  # the prompts the run sent: as many as estimated
    root = tmp_path / "run"
    for name, s in steps.items():
        if s.train_examples:
            train = json.loads((root / name / "train.json").read_text())
            assert train["train_size"] <= s.train_examples
            made = [(root / name / f"{p}.jsonl").read_text().splitlines()
                    for p in train["predictions"]]
            assert sum(len(lines) for lines in made) == s.predictions
    # once done, the dry run has nothing left to pay for
    again = estimate_run(cfg)
    assert all(s.done for s in again.steps)
    assert again.totals()["student_trainings"] == 0
    assert again.totals()["teacher_calls"] == 0


def test_prices_give_money_and_the_cli_writes_nothing(tmp_path: Path) -> None:
    data = pf.tiny_config(tmp_path)
    data["teacher"].update(price_prompt_per_1m=2.0, price_completion_per_1m=6.0)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(data))
    est = estimate_run(config_from_dict(data))
    tot = est.totals()
    assert tot["cost"] == pytest.approx(
        round((tot["prompt_tokens"] * 2.0 + tot["completion_tokens"] * 6.0) / 1e6, 4))
    assert tot["cost"] > 0
    proc = subprocess.run([sys.executable, "-m", "mckd", "run", "run.yaml", "--dry-run"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "teacher cost: ~" in proc.stdout and "stage1_part1" in proc.stdout
    assert f"teacher: {tot['teacher_calls']} calls" in proc.stdout
    assert not (tmp_path / "run").exists() and not (tmp_path / "teacher-cache.sqlite").exists()
