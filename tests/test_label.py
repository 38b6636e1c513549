"""The labelling run: every input accounted for, failures never cached, resumable after kill -9."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from fault_server import FaultServer, answer_for, number_of
from mckd.examples import Example, read_examples, write_examples
from mckd.teacher.backends.base import TeacherRequest
from mckd.teacher.backends.fake import FakeBackend
from mckd.teacher.backends.openai import OpenAIBackend
from mckd.teacher.cache import TeacherCache
from mckd.teacher.config import TeacherConfig
from mckd.teacher.label import (
    LEDGER,
    Pseudolabel,
    estimate_labelling,
    few_shot_requests,
    label_pool,
    read_ledger,
    repair_outputs,
)

DEMOS = [Example(f"l{i}", f"demo {i} words", f"( demo {i} )") for i in range(6)]


def pool_of(n: int) -> list[Example]:
    return [Example(f"u{i}", f"item {i} alpha beta") for i in range(n)]


def run(pool, backend, out, cache, cfg, post=None, **kw):
    return label_pool(
        pool,
        backend,
        out,
        build_request=few_shot_requests(DEMOS, cfg),
        postprocess=post or repair_outputs(None),
        cache=cache,
        cfg=cfg,
        progress=False,
        **kw,
    )


# ---------------------------------------------------------------- with the fake backend


def test_labels_every_input_and_writes_outputs(tmp_path: Path) -> None:
    cfg = TeacherConfig(
        backend="fake", k_demos=2, price_prompt_per_1m=2.0, price_completion_per_1m=10.0
    )
    be, cache = FakeBackend(), TeacherCache(tmp_path / "c.sqlite")
    res = run(pool_of(12), be, tmp_path / "out", cache, cfg)
    assert [e.target for e in res.labels] == [f"item {i} alpha beta" for i in range(12)]
    assert res.labels[0].meta["teacher"] == {
        "raw": "item 0 alpha beta",
        "valid": True,
        "repaired": False,
        "reason": None,
    }
    u = res.usage
    assert (u["inputs"], u["labels"], u["rejected"], u["calls"], u["cache_hits"]) == (
        12,
        12,
        0,
        12,
        0,
    )
    assert u["cost"] == pytest.approx((u["prompt_tokens"] * 2 + u["completion_tokens"] * 10) / 1e6)
    for name in ("pseudolabels.jsonl", "rejected.jsonl", "usage.json", "DONE", LEDGER):
        assert (tmp_path / "out" / name).exists()
    assert read_examples(tmp_path / "out" / "pseudolabels.jsonl") == res.labels
    # each prompt has k demonstrations, the same ones on a rebuild, never the input itself
    prompt = be.calls[0].prompt
    assert prompt.count("Input:") == 3 and prompt.endswith("Input: item 0 alpha beta\nOutput:")
    assert few_shot_requests(DEMOS, cfg)(pool_of(1)[0], 0) == be.calls[0]


def test_rejections_are_counted_by_reason_and_never_cached(tmp_path: Path) -> None:
    reasons = {3: "timeout", 5: "context_overflow", 7: "server_error"}

    def fail(req: TeacherRequest, attempt: int) -> str | None:
        return reasons.get(number_of(req.prompt.rsplit("Input:", 1)[1]))

    cfg = TeacherConfig(backend="fake", k_demos=1)
    cache = TeacherCache(tmp_path / "c.sqlite")
    res = run(
        pool_of(10),
        FakeBackend(fail=fail, respond=lambda r: "" if "item 9" in r.prompt else "ok"),
        tmp_path / "o",
        cache,
        cfg,
    )
    assert res.usage["rejections"] == {
        "context_overflow": 1,
        "invalid_output": 1,
        "server_error": 1,
        "timeout": 1,
    }
    assert {e.id: e.meta["teacher"]["reason"] for e in res.rejected} == {
        "u3": "timeout",
        "u5": "context_overflow",
        "u7": "server_error",
        "u9": "invalid_output",
    }
    assert len(res.labels) == 6
    assert len(cache) == 7  # the empty answer was a successful call: cached; failures are not
    # a rerun does nothing; --retry-rejected retries only the backend failures
    be = FakeBackend()
    run(pool_of(10), be, tmp_path / "o", cache, cfg)
    assert be.calls == []
    res = run(pool_of(10), be, tmp_path / "o", cache, cfg, retry_rejected=True)
    assert sorted(r.prompt.rsplit("Input: ", 1)[1][:6] for r in be.calls) == [
        "item 3",
        "item 5",
        "item 7",
    ]
    assert res.usage["rejections"] == {"invalid_output": 1}


def test_a_request_that_cannot_be_built_is_rejected_without_a_call(tmp_path: Path) -> None:
    from mckd.teacher.backends.base import BackendError

    cfg = TeacherConfig(backend="fake", k_demos=1)
    plain = few_shot_requests(DEMOS, cfg)

    def build(ex: Example, i: int) -> TeacherRequest:
        if ex.id == "u2":
            raise BackendError("context_overflow", "input alone exceeds the context")
        return plain(ex, i)

    be = FakeBackend()
    res = label_pool(
        pool_of(4),
        be,
        tmp_path / "o",
        build_request=build,
        postprocess=repair_outputs(None),
        cache=None,
        cfg=cfg,
        progress=False,
    )
    assert len(be.calls) == 3
    assert [(e.id, e.meta["teacher"]["reason"]) for e in res.rejected] == [
        ("u2", "context_overflow")
    ]


def test_changing_the_repair_costs_no_calls(tmp_path: Path) -> None:
    cfg = TeacherConfig(backend="fake", k_demos=2)
    cache = TeacherCache(tmp_path / "c.sqlite")
    run(pool_of(8), FakeBackend(), tmp_path / "a", cache, cfg)
    be = FakeBackend()
    res = run(
        pool_of(8),
        be,
        tmp_path / "b",
        cache,
        cfg,
        post=lambda ex, raws: Pseudolabel(raws[0].upper(), True),
    )
    assert be.calls == []
    assert res.usage["cache_hits"] == 8 and res.usage["calls"] == 0
    assert res.labels[0].target == "ITEM 0 ALPHA BETA"


def test_samples_and_identical_requests_in_flight_are_called_once(tmp_path: Path) -> None:
    cfg = TeacherConfig(backend="fake", k_demos=0, samples=3, temperature=0.8)
    pool = [Example("a", "same words"), Example("b", "same words"), Example("c", "other")]
    be = FakeBackend(delay_s=0.05)
    seen: list[list[str]] = []

    def post(ex: Example, raws: list[str]) -> Pseudolabel:
        seen.append(raws)
        return Pseudolabel(raws[0], True)

    res = run(pool, be, tmp_path / "o", TeacherCache(tmp_path / "c.sqlite"), cfg, post=post)
    assert len(be.calls) == 6  # 2 distinct prompts x 3 samples; a and b share their requests
    assert sorted(r.sample_index for r in be.calls) == [0, 0, 1, 1, 2, 2]
    assert all(len(r) == 3 for r in seen)
    assert res.usage["calls"] == 6 and res.usage["cache_hits"] == 3


def test_torn_ledger_line_is_dropped_and_the_input_redone(tmp_path: Path) -> None:
    cfg = TeacherConfig(backend="fake", k_demos=1)
    cache = TeacherCache(tmp_path / "c.sqlite")
    run(pool_of(5), FakeBackend(), tmp_path / "o", cache, cfg)
    ledger = tmp_path / "o" / LEDGER
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(lines[:3]) + lines[3][:20])  # as if killed mid-write
    be = FakeBackend()
    res = run(pool_of(5), be, tmp_path / "o", cache, cfg)
    assert be.calls == []  # u3 and u4 are redone from the cache
    assert res.usage["inputs"] == 5 and len(read_ledger(ledger)) == 5
    assert all(json.loads(line) for line in ledger.read_text().splitlines())


def test_a_changed_prompt_relabels_instead_of_trusting_the_ledger(tmp_path: Path) -> None:
    cache = TeacherCache(tmp_path / "c.sqlite")
    run(pool_of(4), FakeBackend(), tmp_path / "o", cache, TeacherConfig(backend="fake", k_demos=1))
    be = FakeBackend()
    run(pool_of(4), be, tmp_path / "o", cache, TeacherConfig(backend="fake", k_demos=2))
    assert len(be.calls) == 4


def test_the_first_call_goes_out_before_the_pool_is_built(tmp_path: Path) -> None:
    cfg = TeacherConfig(backend="fake", k_demos=1, concurrency=2)
    build = few_shot_requests(DEMOS, cfg)
    built: list[str] = []
    seen_at_first_call: list[int] = []

    def counting_build(ex: Example, sample: int) -> TeacherRequest:
        built.append(ex.id)
        return build(ex, sample)

    class Recording(FakeBackend):
        async def acomplete(self, request: TeacherRequest):  # type: ignore[override]
            if not seen_at_first_call:
                seen_at_first_call.append(len(built))
            return await super().acomplete(request)

    res = label_pool(pool_of(50), Recording(), tmp_path / "o", build_request=counting_build,
                     postprocess=repair_outputs(None), cache=None, cfg=cfg, progress=False)
    assert res.usage["labels"] == 50 and len(built) == 50
    assert seen_at_first_call[0] <= 2  # one prompt per worker, not the 50 of the pool


def test_a_resumed_run_passes_over_what_the_ledger_holds(tmp_path: Path) -> None:
    cfg = TeacherConfig(backend="fake", k_demos=1, concurrency=3)
    cache = TeacherCache(tmp_path / "c.sqlite")
    run(pool_of(10)[::2], FakeBackend(), tmp_path / "o", cache, cfg)  # u0, u2, ..., u8
    be = FakeBackend()
    res = run(pool_of(10), be, tmp_path / "o", cache, cfg)
    assert sorted(r.prompt.rsplit("Input:", 1)[1] for r in be.calls) == sorted(  # type: ignore[union-attr]
        f" item {i} alpha beta\nOutput:" for i in range(1, 10, 2)
    )
    assert [e.id for e in res.labels] == [f"u{i}" for i in range(10)]
    assert len(read_ledger(tmp_path / "o" / LEDGER)) == 10


def test_dry_run_estimates_without_calling(tmp_path: Path) -> None:
    cfg = TeacherConfig(
        backend="fake",
        k_demos=2,
        max_tokens=50,
        price_prompt_per_1m=1.0,
        price_completion_per_1m=4.0,
        est_prompt_tokens_per_s=100,
        est_completion_tokens_per_s=10,
    )
    cache = TeacherCache(tmp_path / "c.sqlite")
    build = few_shot_requests(DEMOS, cfg)
    est = estimate_labelling(
        pool_of(10),
        tmp_path / "o",
        build_request=build,
        cache=cache,
        cfg=cfg,
        count_tokens=lambda t: len(t.split()),
        model="fake",
        expected_output_tokens=5,
    )
    assert (
        est.requests,
        est.calls,
        est.cached,
        est.completion_tokens,
        est.completion_tokens_max,
    ) == (10, 10, 0, 50, 500)
    assert est.prompt_tokens == sum(len(build(e, 0).prompt.split()) for e in pool_of(10))
    assert est.cost == pytest.approx((est.prompt_tokens * 1 + 50 * 4) / 1e6)
    # the prefix each prompt shares with the one before it is what a prompt cache serves
    prompts = [build(e, 0).prompt for e in pool_of(10)]
    shared = [a[: next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))]
              for a, b in itertools.pairwise(prompts)]
    assert est.prefix_hits == sum(bool(p) for p in shared)
    assert est.cached_prompt_tokens == sum(len(p.split()) for p in shared)
    assert est.seconds == pytest.approx((est.prompt_tokens - est.cached_prompt_tokens) / 100 + 50 / 10)
    run(pool_of(4), FakeBackend(), tmp_path / "o", cache, cfg)
    est = estimate_labelling(
        pool_of(10),
        tmp_path / "o",
        build_request=build,
        cache=cache,
        cfg=cfg,
        count_tokens=len,
        model="fake",
    )
    assert (est.in_ledger, est.calls) == (4, 6)
    est = estimate_labelling(
        pool_of(10),
        tmp_path / "fresh",
        build_request=build,
        cache=cache,
        cfg=cfg,
        count_tokens=len,
        model="fake",
    )
    assert (est.in_ledger, est.cached, est.calls) == (0, 4, 6)


# ---------------------------------------------------------------- against the fault-injection server

# item number mod 20 -> what the server does with attempt n of that item. A hang costs a
# timeout of wall time, so only 1 item in 100 hangs once (class 2) and 1 in 100 for good (9).
# The timeout is long enough that a loaded machine does not make slow answers time out.
PLAN = {
    0: lambda n: "500" if n == 1 else None,
    1: lambda n: "429" if n <= 2 else None,
    2: lambda n: "hang" if n == 1 else None,
    3: lambda n: "drop" if n == 1 else None,
    4: lambda n: "garbage" if n == 1 else None,
    5: lambda n: "500",
    6: lambda n: "garbage",
    7: lambda n: "overflow",
    8: lambda n: "empty",
    9: lambda n: "hang",
    10: lambda n: "503" if n == 1 else None,
}
REJECT = {
    5: "server_error",
    6: "bad_response",
    7: "context_overflow",
    8: "invalid_output",
    9: "timeout",
}
RETRIES = 2
CALLS = {
    0: 2,
    1: 3,
    2: 2,
    3: 2,
    4: 2,
    5: RETRIES + 1,
    6: RETRIES + 1,
    7: 1,
    8: 1,
    9: RETRIES + 1,
    10: 2,
}
FAILED = (5, 6, 7, 9)  # classes whose requests never succeed (8 succeeds with an empty text)


def fault_class(i: int) -> int | None:
    c = i % 20
    return None if c in (2, 9) and i % 100 != c else c


def plan(item: str, attempt: int) -> str | None:
    rule = PLAN.get(fault_class(number_of(item)))  # type: ignore[arg-type]
    return rule(attempt) if rule else None


def fault_cfg(url: str, cache: Path) -> TeacherConfig:
    return TeacherConfig(
        backend="openai",
        model="fault-model",
        base_url=url,
        k_demos=2,
        concurrency=16,
        timeout_s=3.0,
        retries=RETRIES,
        backoff_s=0.01,
        backoff_max_s=0.05,
        cache_path=str(cache),
    )


def check_accounting(pool: list[Example], out: Path) -> None:
    labels = {e.id: e for e in read_examples(out / "pseudolabels.jsonl")}
    rejected = (
        {e.id: e for e in read_examples(out / "rejected.jsonl")}
        if (out / "rejected.jsonl").stat().st_size
        else {}
    )
    assert set(labels) | set(rejected) == {e.id for e in pool} and not set(labels) & set(rejected)
    expected: Counter[str] = Counter()
    for ex in pool:
        cls = fault_class(number_of(ex.source))
        if cls in REJECT:
            expected[REJECT[cls]] += 1
            assert ex.id in rejected, (ex, labels.get(ex.id))
            assert rejected[ex.id].meta["teacher"]["reason"] == REJECT[cls], rejected[ex.id]
        else:
            assert ex.id in labels, (ex, rejected.get(ex.id))
            assert labels[ex.id].target == answer_for(ex.source).strip()
    usage = json.loads((out / "usage.json").read_text())
    assert usage["inputs"] == len(pool) and usage["labels"] + usage["rejected"] == len(pool)
    assert usage["rejections"] == dict(expected)


def test_fault_server_500_inputs_every_input_accounted_failures_not_cached(tmp_path: Path) -> None:
    pool = pool_of(500)
    with FaultServer(plan, hang_s=4.0) as srv:
        cfg = fault_cfg(srv.url, tmp_path / "c.sqlite")
        cache = TeacherCache(cfg.cache_path)
        res = run(pool, OpenAIBackend(cfg), tmp_path / "out", cache, cfg)
        check_accounting(pool, tmp_path / "out")
        expected_calls = sum(CALLS.get(fault_class(i), 1) for i in range(500))  # type: ignore[arg-type]
        assert srv.total_calls() == expected_calls
        assert res.usage["attempts"] == expected_calls and res.usage["calls"] == 500
        assert max(srv.answered.values()) == 1
        # failures were not cached: only the answered requests are
        succeeded = [e for e in pool if fault_class(number_of(e.source)) not in FAILED]
        assert len(cache) == srv.total_answered() == len(succeeded)
        rows = sqlite3.connect(cfg.cache_path).execute("SELECT text FROM completions").fetchall()
        assert sorted(t for (t,) in rows) == sorted(
            "" if number_of(e.source) % 20 == 8 else answer_for(e.source) for e in succeeded
        )
        # rerun in place: the ledger has everything, no call at all
        run(pool, OpenAIBackend(cfg), tmp_path / "out", cache, cfg)
        assert srv.total_calls() == expected_calls
        # a new run directory over the same cache: only the failed requests go out again
        before = srv.total_calls()
        res2 = run(pool, OpenAIBackend(cfg), tmp_path / "out2", cache, cfg)
        failed = [i for i in range(500) if fault_class(i) in FAILED]
        assert res2.usage["calls"] == len(failed) and res2.usage["cache_hits"] == len(succeeded)
        assert srv.total_calls() - before == sum(CALLS[fault_class(i)] for i in failed)  # type: ignore[index]


def test_kill_9_mid_run_then_rerun_calls_each_request_once(tmp_path: Path) -> None:
    pool = pool_of(500)
    write_examples(tmp_path / "pool.jsonl", pool)
    write_examples(tmp_path / "labeled.jsonl", DEMOS)
    out, cache_path = tmp_path / "out", tmp_path / "cache" / "teacher.sqlite"
    with FaultServer(plan, hang_s=4.0, latency_s=0.01) as srv:
        cfg = fault_cfg(srv.url, cache_path).model_dump()
        (tmp_path / "teacher.yaml").write_text(yaml.safe_dump({"teacher": cfg}))
        cmd = [
            sys.executable,
            "-m",
            "mckd",
            "label",
            "--pool",
            str(tmp_path / "pool.jsonl"),
            "--labeled",
            str(tmp_path / "labeled.jsonl"),
            "--task",
            "none",
            "--out",
            str(out),
            "--config",
            str(tmp_path / "teacher.yaml"),
            "--no-progress",
        ]
        env = {**os.environ, "MCKD_CACHE_DIR": str(tmp_path / "unused")}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while srv.total_answered() < 150:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.005)
        # Stop reading requests, wait until every answer delivered is in the cache, then kill:
        # at that moment nothing the server answered is unknown to the client.
        srv.pause()
        stable_since, last = time.monotonic(), -1
        while time.monotonic() - stable_since < 0.5:
            answered = len(srv.answered)
            rows = cache_rows(cache_path)
            if (answered, rows) != (last, rows) or rows != answered:
                stable_since, last = time.monotonic(), answered
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        done_before = len(read_ledger(out / LEDGER))
        assert 0 < done_before < 500 and not (out / "DONE").exists()
        srv.resume()
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        check_accounting(pool, out)
        # every request answered once over both runs; the answers are exactly the cache
        assert max(srv.answered.values()) == 1
        succeeded = [e for e in pool if fault_class(number_of(e.source)) not in FAILED]
        assert srv.total_answered() == len(srv.answered) == cache_rows(cache_path) == len(succeeded)
        usage = json.loads(rerun.stdout)
        assert usage["inputs"] == 500


def cache_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=10) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def test_cli_bad_config_is_one_line(tmp_path: Path) -> None:
    write_examples(tmp_path / "pool.jsonl", pool_of(2))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mckd",
            "label",
            "--pool",
            str(tmp_path / "pool.jsonl"),
            "--out",
            str(tmp_path / "o"),
            "--set",
            "concurency=3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "mckd: error: teacher config: concurency: Extra inputs are not permitted (got 3)"
    ]


def test_secrets_stay_out_of_cache_ledger_usage_logs_and_config_dumps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mckd.config import config_from_dict

    monkeypatch.setenv("SECRET_KEY_VAR", "sk-very-secret-value")
    caplog.set_level(logging.DEBUG)  # every logger, httpx's request lines included
    with FaultServer() as srv:
        cfg = fault_cfg(srv.url, tmp_path / "c.sqlite").model_copy(
            update={"api_key_env": "SECRET_KEY_VAR"}
        )
        run(pool_of(5), OpenAIBackend(cfg), tmp_path / "o", TeacherCache(cfg.cache_path), cfg)
        assert srv.requests[0][2] == "Bearer sk-very-secret-value"
    for f in [*tmp_path.glob("c.sqlite*"), *(tmp_path / "o").iterdir()]:
        data = f.read_bytes()
        assert b"sk-very-secret" not in data and srv.url.encode() not in data, f
    assert caplog.records and "sk-very-secret" not in caplog.text
    # the run's saved config names the variable, never its value
    run_cfg = config_from_dict({"teacher": cfg.model_dump(mode="json")})
    dumps = [cfg.model_dump_json(), run_cfg.to_yaml()]
    assert all("sk-very-secret" not in d and "SECRET_KEY_VAR" in d for d in dumps)


# ---------------------------------------------------------------- a real local LLM, end to end

TREES = [
    "(S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (. .))",
    "(S (NP (PRP She)) (VP (VBZ reads) (NP (NNS books))) (. .))",
    "(S (NP (DT A) (JJ small) (NN dog)) (VP (VBD barked)) (. .))",
    "(S (NP (NNP John)) (VP (VBD saw) (NP (DT the) (NN bird))) (. .))",
    "(S (NP (DT The) (NNS children)) (VP (VBD played) (ADVP (RB outside))) (. .))",
    "(S (NP (PRP We)) (VP (VBD ate) (NP (NN lunch)) (PP (IN at) (NP (NN noon)))) (. .))",
]


@pytest.mark.llm
def test_label_cli_with_smollm2_constituency(tmp_path: Path) -> None:
    from mckd.tasks.constituency import ConstituencyTask
    from mckd.tasks.constituency.trees import parse_tree

    smol = Path.home() / ".cache" / "mckd" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not smol.is_file():
        pytest.skip("run `mckd models fetch smollm2-135m`")
    task = ConstituencyTask()
    examples = [task.example(f"t{i}", parse_tree(t)) for i, t in enumerate(TREES)]
    write_examples(tmp_path / "labeled.jsonl", examples[:4])
    write_examples(
        tmp_path / "pool.jsonl",
        [task.example(e.id, parse_tree(TREES[int(e.id[1:])]), labeled=False) for e in examples[4:]],
    )
    cmd = [
        sys.executable,
        "-m",
        "mckd",
        "label",
        "--pool",
        str(tmp_path / "pool.jsonl"),
        "--labeled",
        str(tmp_path / "labeled.jsonl"),
        "--task",
        "constituency",
        "--out",
        str(tmp_path / "out"),
        "--backend",
        "llamacpp",
        "--model",
        str(smol),
        "--set",
        "k_demos=3",
        "--set",
        "context_size=2048",
        "--set",
        f"cache_path={tmp_path / 'c.sqlite'}",
        "--no-progress",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    usage = json.loads(first.stdout)
    assert usage["inputs"] == 2 and usage["calls"] == 2 and usage["completion_tokens"] > 0
    labels = read_examples(tmp_path / "out" / "pseudolabels.jsonl")
    # the grammar forces one tree over exactly the input words, so every output is usable
    assert [e.id for e in labels] == ["t4", "t5"]
    for e in labels:
        words = [w for w in e.target.replace("(", " ").replace(")", " ").split()]
        assert words == e.source.split() and e.meta["teacher"]["valid"]
    shutil.rmtree(tmp_path / "out")
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert json.loads(again.stdout)["cache_hits"] == 2 and json.loads(again.stdout)["calls"] == 0


def test_config_file_and_dotted_overrides(tmp_path: Path) -> None:
    from mckd.errors import ConfigError
    from mckd.teacher.config import load_teacher_config, parse_overrides

    (tmp_path / "t.yaml").write_text(
        "teacher:\n  backend: openai\n  k_demos: 5\n  prompt:\n    form: unlabeled\n"
    )
    cfg = load_teacher_config(
        tmp_path / "t.yaml", parse_overrides(["prompt.grammar=false", "concurrency=4"])
    )
    assert (cfg.backend, cfg.k_demos, cfg.concurrency, cfg.prompt.form, cfg.prompt.grammar) == (
        "openai",
        5,
        4,
        "unlabeled",
        False,
    )
    with pytest.raises(ConfigError, match="timeout_s"):
        load_teacher_config(None, {"timeout_s": -1})
    (tmp_path / "bad.yaml").write_text("teacher: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_teacher_config(tmp_path / "bad.yaml")
