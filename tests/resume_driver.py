"""Run the pipeline in a child process and SIGKILL it at a chosen point (test_resume.py).

    python resume_driver.py CONFIG.yaml CALL_LOG KILL_AT

KILL_AT is one of
    call:N            as the teacher is asked its (N+1)-th question of this process
    epoch:STEP:E      right after epoch E of the student in step STEP is checkpointed
    after:STEP        right after step STEP wrote its DONE marker
    none              run to the end
Every request the fake teacher answers is appended to CALL_LOG (one cache key per line)
before the answer is returned, so the test can check no request is ever answered twice; every
student epoch trained goes to epochs.log beside it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import mckd.student
import pipeline_fakes as pf
from mckd.config import load_config
from mckd.distill.pipeline import run_pipeline
from mckd.distill.rundir import RunDir
from mckd.teacher.backends.fake import FakeBackend
from mckd.teacher.cache import request_key


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(config: str, call_log: str, kill_at: str) -> None:
    kind, _, arg = kill_at.partition(":")
    mckd.student.build_student = pf.fake_build_student
    pf.EPOCH_LOG = Path(call_log).with_name("epochs.log")
    answered = 0
    original = FakeBackend.acomplete

    async def logged(self, request):  # type: ignore[no-untyped-def]
        nonlocal answered
        if kind == "call" and answered == int(arg):
            die()
        completion = await original(self, request)
        with open(call_log, "a") as f:
            f.write(request_key(self.model, request) + "\n")
        answered += 1
        return completion

    FakeBackend.acomplete = logged  # type: ignore[method-assign]
    if kind == "epoch":
        step, _, epoch = arg.rpartition(":")

        def on_epoch(out_dir: Path, e: int) -> None:
            if out_dir.parent.name == step and e == int(epoch):
                die()

        pf.on_epoch = on_epoch
    if kind == "after":
        run_one = RunDir._run_one

        def run_then_die(self, s, hash_):  # type: ignore[no-untyped-def]
            outcome = run_one(self, s, hash_)
            if s.name == arg:
                die()
            return outcome

        RunDir._run_one = run_then_die  # type: ignore[method-assign]
    run_pipeline(load_config(config))


if __name__ == "__main__":
    main(*sys.argv[1:])
