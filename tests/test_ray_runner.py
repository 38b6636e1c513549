"""`teacher.runner: ray`: the same ledger as the local runner, input for input, with every
request sent by the Ray actors and none by the driver (slow: starts a local Ray cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mckd.teacher.backends as backends
from fault_server import FaultServer, number_of
from mckd.examples import Example, write_examples
from mckd.teacher.backends.base import Backend, Completion, TeacherRequest
from mckd.teacher.config import TeacherConfig
from mckd.teacher.label import LEDGER, label_files, read_ledger

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", autouse=True)
def local_cluster() -> object:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def files(tmp_path: Path, n: int) -> tuple[Path, Path]:
    pool, demos = tmp_path / "pool.jsonl", tmp_path / "demos.jsonl"
    write_examples(pool, [Example(f"u{i}", f"item {i} alpha beta") for i in range(n)])
    write_examples(demos, [Example(f"d{i}", f"demo {i}", f"DEMO {i}") for i in range(6)])
    return pool, demos


def comparable(out: Path) -> dict[str, tuple]:
    return {k: (r["keys"], r["status"], r["reason"], r["raw"], r["target"], r["valid"])
            for k, r in read_ledger(out / LEDGER).items()}


def record_driver_requests(monkeypatch: pytest.MonkeyPatch) -> list[TeacherRequest]:
    """Every request sent by a backend built in this process, the driver. The labelling run
    falls back to its own backend for any answer the Ray runner does not return, so a Ray
    runner that answered nothing would still give the local ledger; this list tells them apart.
    Ray's actors build their backends in their own processes, which this patch does not reach."""
    sent: list[TeacherRequest] = []
    build = backends.build_backend

    def recording(cfg: TeacherConfig) -> Backend:
        backend = build(cfg)
        complete = backend.acomplete

        async def acomplete(request: TeacherRequest) -> Completion:
            sent.append(request)
            return await complete(request)

        backend.acomplete = acomplete  # type: ignore[method-assign]
        return backend

    monkeypatch.setattr(backends, "build_backend", recording)
    return sent


def label(tmp_path: Path, name: str, pool: Path, demos: Path, **kw: object) -> dict:
    cfg = TeacherConfig(**{"k_demos": 3, "cache_path": str(tmp_path / f"{name}.sqlite"), **kw})
    res = label_files(pool, tmp_path / name, cfg, labeled_path=demos, task="text", progress=False)
    return res.usage  # type: ignore[union-attr]


def test_ray_runner_ledger_equals_the_local_runner_with_the_fake_backend(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool, demos = files(tmp_path, 200)
    driver = record_driver_requests(monkeypatch)
    local = label(tmp_path, "local", pool, demos, backend="fake")
    assert len(driver) == 200  # the local runner: the driver's own backend answers
    on_ray = label(tmp_path, "ray", pool, demos, backend="fake", runner="ray", workers=2)
    # the Ray runner: not one request from the driver; with an empty cache at the start, every
    # answer in the ledger came back from the actors
    assert len(driver) == 200
    assert comparable(tmp_path / "ray") == comparable(tmp_path / "local")
    assert len(comparable(tmp_path / "ray")) == 200
    assert on_ray["calls"] == local["calls"] == 200 and on_ray["labels"] == 200
    # a rerun finds every input in the ledger: nothing is sent or appended again
    label(tmp_path, "ray", pool, demos, backend="fake", runner="ray", workers=2)
    assert len((tmp_path / "ray" / LEDGER).read_text().splitlines()) == 200
    assert len(driver) == 200


def test_ray_runner_with_faults_same_ledger_failures_not_cached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool, demos = files(tmp_path, 200)
    driver = record_driver_requests(monkeypatch)

    def plan(item: str, attempt: int) -> str | None:
        n = number_of(item)
        if n % 10 == 3:
            return "500"  # always: rejected as server_error
        if n % 10 == 7 and attempt == 1:
            return "429"  # once: retried to success
        return None

    http = dict(backend="openai", model="m", api_key_env=None, grammar_field="none",
                concurrency=8, timeout_s=5.0, retries=2, backoff_s=0.01, backoff_max_s=0.05)
    with FaultServer(plan) as a, FaultServer(plan) as b:
        label(tmp_path, "local", pool, demos, base_url=a.url, **http)
        # locally: one backend call per input, its retries inside it
        assert len(driver) == 200 < a.total_calls()
        usage = label(tmp_path, "ray", pool, demos, base_url=b.url, runner="ray", workers=2,
                      **http)
        # the server read as many requests for the Ray run, none of them from this process
        assert len(driver) == 200
        assert a.total_calls() == b.total_calls()
        assert max(b.answered.values()) == 1  # no request answered twice
    ray_ledger = comparable(tmp_path / "ray")
    assert ray_ledger == comparable(tmp_path / "local")
    rejected = [k for k, r in ray_ledger.items() if r[1] == "rejected"]
    assert len(rejected) == 20 and {ray_ledger[k][2] for k in rejected} == {"server_error"}
    assert usage["rejected"] == 20 and usage["labels"] == 180
    import sqlite3

    rows = sqlite3.connect(tmp_path / "ray.sqlite").execute("SELECT count(*) FROM completions")
    assert rows.fetchone()[0] == 180  # failures never cached
    assert json.loads((tmp_path / "ray" / "usage.json").read_text())["calls"] == 200


@pytest.mark.llm
@pytest.mark.timeout(1200)
def test_ray_actors_each_hold_an_in_process_gguf_model(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two actors each load the GGUF model through llama.cpp (one thread each) and label with
    the tree grammar: the same ledger as the local runner, every answer one tree over exactly
    the input words (as written, or repaired where the answer budget cut a tree short: the
    small model sometimes opens brackets until the budget ends)."""
    pytest.importorskip("xllamacpp")
    from mckd.tasks.constituency.synth import synth_treebank
    from mckd.tasks.constituency.trees import parse_bracketed, to_unlabeled, tree_words
    from mckd.teacher.models import ModelFetchError, model_path

    try:
        model_path("qwen2.5-coder-0.5b")
    except ModelFetchError:
        pytest.skip("run `mckd models fetch qwen2.5-coder-0.5b` first")
    demos, pool = tmp_path / "demos.jsonl", tmp_path / "pool.jsonl"
    trees = synth_treebank(12, 3, max_len=10)
    write_examples(demos, [Example(f"d{i}", " ".join(tree_words(t)), to_unlabeled(t)) for i, t in enumerate(trees[:4])])
    write_examples(pool, [Example(f"u{i}", " ".join(tree_words(t))) for i, t in enumerate(trees[4:])])
    llm = dict(backend="llamacpp", model="qwen2.5-coder-0.5b", n_threads=1, context_size=2048,
               concurrency=1, k_demos=4)

    def run(name: str, **kw: object) -> dict:
        cfg = TeacherConfig(**{"cache_path": str(tmp_path / f"{name}.sqlite"), **llm, **kw})
        return label_files(pool, tmp_path / name, cfg, labeled_path=demos, task="constituency",
                           progress=False).usage  # type: ignore[union-attr]

    driver = record_driver_requests(monkeypatch)
    local = run("local")
    assert len(driver) == 8
    on_ray = run("ray", runner="ray", workers=2)
    assert len(driver) == 8  # the actors' models answered, not one in this process
    assert comparable(tmp_path / "ray") == comparable(tmp_path / "local")
    assert on_ray["calls"] == local["calls"] == 8 and on_ray["labels"] == 8
    sources = {f"u{i}": " ".join(tree_words(t)) for i, t in enumerate(trees[4:])}
    for key, rec in read_ledger(tmp_path / "ray" / LEDGER).items():
        assert rec["status"] == "label", rec
        assert " ".join(tree_words(parse_bracketed(rec["target"]))) == sources[key]
