"""Several OpenAI-compatible endpoints as one teacher: real loopback servers, one misbehaving."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from fault_server import FaultServer, answer_for
from mckd.errors import ConfigError
from mckd.examples import Example
from mckd.teacher.backends.base import Completion, TeacherRequest
from mckd.teacher.backends.openai import OpenAIBackend
from mckd.teacher.cache import TeacherCache
from mckd.teacher.config import TeacherConfig, teacher_config_from
from mckd.teacher.label import LEDGER, few_shot_requests, label_pool, read_ledger, repair_outputs

pytestmark = pytest.mark.timeout(60)


def cfg_for(urls: list[str], **kw: object) -> TeacherConfig:
    base = dict(backend="openai", model="m", base_url=urls, concurrency=4, timeout_s=2.0,
                retries=1, backoff_s=0.01, backoff_max_s=0.05, k_demos=0)
    return TeacherConfig(**{**base, **kw})


def items(n: int) -> list[str]:
    return [f"item {i} alpha" for i in range(n)]


def complete_all(cfg: TeacherConfig, texts: list[str]) -> list[Completion]:
    backend = OpenAIBackend(cfg)

    async def go() -> list[Completion]:
        try:
            reqs = [TeacherRequest(prompt=f"Input: {t}\nOutput:", max_tokens=8) for t in texts]
            return await asyncio.gather(*(backend.acomplete(r) for r in reqs))
        finally:
            await backend.aclose()

    return asyncio.run(go())


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_requests_spread_over_endpoints_each_within_its_concurrency() -> None:
    with FaultServer(latency_s=0.3) as a, FaultServer(latency_s=0.3) as b:
        start = time.perf_counter()
        out = complete_all(cfg_for([a.url, b.url], concurrency=3), items(24))
        took = time.perf_counter() - start
    assert [c.text for c in out] == [answer_for(t) for t in items(24)]
    assert a.total_calls() + b.total_calls() == 24
    assert a.total_calls() >= 8 and b.total_calls() >= 8
    assert a.max_inflight <= 3 and b.max_inflight <= 3
    assert a.max_inflight + b.max_inflight > 3  # both in use at once, not one after the other
    assert took < 24 * 0.3 / 3  # one endpoint alone needs 2.4 s, both 1.2 s


@pytest.mark.parametrize("fault", ["500", "429", "hang", "drop"])
def test_a_failing_endpoint_is_retried_on_the_other(fault: str) -> None:
    # retries=1: a retry on the same failing endpoint would fail the request
    with (
        FaultServer(lambda item, n: fault, hang_s=3.0, retry_after="0") as bad,
        FaultServer() as good,
    ):
        start = time.perf_counter()
        out = complete_all(cfg_for([bad.url, good.url], timeout_s=0.5), items(20))
        took = time.perf_counter() - start
    assert [c.text for c in out] == [answer_for(t) for t in items(20)]
    assert all(c.extra["attempts"] <= 2 for c in out)
    assert bad.total_calls() >= 1 and good.total_answered() == 20
    assert took < 2.5  # bounded by one timeout, not by the hang


def test_an_unreachable_endpoint_is_retried_on_the_other() -> None:
    with FaultServer() as good:
        out = complete_all(cfg_for([closed_port_url(), good.url]), items(20))
    assert [c.text for c in out] == [answer_for(t) for t in items(20)]
    assert good.total_answered() == 20


def test_an_endpoint_that_fails_twice_in_a_row_is_paused() -> None:
    # backoff long enough that the paused endpoint cannot come back during the run
    with FaultServer(lambda item, n: "500") as bad, FaultServer(latency_s=0.02) as good:
        cfg = cfg_for([bad.url, good.url], concurrency=2, backoff_s=5.0, backoff_max_s=5.0)
        out = complete_all(cfg, items(40))
    assert len(out) == 40
    # the first requests reach the bad endpoint before it is known bad; then it gets none
    assert bad.total_calls() <= 2 + 2


def test_a_retry_after_pauses_that_endpoint() -> None:
    with (
        FaultServer(lambda item, n: "429", retry_after="10") as limited,
        FaultServer(latency_s=0.02) as good,
    ):
        start = time.perf_counter()
        out = complete_all(cfg_for([limited.url, good.url], concurrency=2), items(30))
        took = time.perf_counter() - start
    assert len(out) == 30 and took < 5  # nobody waited the 10 s: the retries went elsewhere
    assert limited.total_calls() <= 2


def test_every_endpoint_failing_still_fails_with_the_reason() -> None:
    from mckd.teacher.backends.base import BackendError

    with (
        FaultServer(lambda item, n: "500") as a,
        FaultServer(lambda item, n: "500") as b,
        pytest.raises(BackendError) as err,
    ):
        complete_all(cfg_for([a.url, b.url], retries=3), items(1))
    assert err.value.reason == "server_error" and err.value.attempts == 4
    assert a.total_calls() == b.total_calls() == 2  # alternating


def test_answers_are_shared_whatever_endpoint_served_them(tmp_path: Path) -> None:
    pool = [Example(f"u{i}", t) for i, t in enumerate(items(30))]
    cache = TeacherCache(tmp_path / "c.sqlite")

    def label(urls: list[str], out: str) -> dict:
        cfg = cfg_for(urls, cache_path=str(tmp_path / "c.sqlite"))
        res = label_pool(pool, OpenAIBackend(cfg), tmp_path / out,
                         build_request=few_shot_requests([], cfg),
                         postprocess=repair_outputs(None), cache=cache, cfg=cfg, progress=False)
        return res.usage

    with FaultServer() as a, FaultServer() as b, FaultServer() as c:
        first = label([a.url, b.url], "two")
        assert first["calls"] == 30 and a.total_calls() + b.total_calls() == 30
        again = label([c.url], "one")  # another server: every answer comes from the cache
        assert again["calls"] == 0 and again["cache_hits"] == 30 and c.total_calls() == 0
    two = read_ledger(tmp_path / "two" / LEDGER)
    one = read_ledger(tmp_path / "one" / LEDGER)
    assert {k: (r["keys"], r["target"]) for k, r in two.items()} == {
        k: (r["keys"], r["target"]) for k, r in one.items()
    }
    assert "127.0.0.1" not in (tmp_path / "c.sqlite").read_bytes().decode("latin-1")


def test_base_url_list_in_the_config() -> None:
    cfg = teacher_config_from({"backend": "openai", "base_url": ["http://a/v1/", "http://b/v1"],
                               "concurrency": 16})
    assert cfg.base_urls() == ["http://a/v1", "http://b/v1"]
    assert cfg.total_concurrency() == 32
    assert teacher_config_from(cfg.model_dump(mode="json")).base_urls() == cfg.base_urls()
    assert teacher_config_from({"backend": "openai"}).total_concurrency() == 8
    with pytest.raises(ConfigError, match="base_url"):
        teacher_config_from({"base_url": []})
    with pytest.raises(ConfigError, match="twice"):
        teacher_config_from({"base_url": ["http://a/v1", "http://a/v1"]})


def test_a_large_concurrency_is_kept_on_one_endpoint() -> None:
    """An endpoint's connector holds `concurrency` connections, and that many requests are in
    flight at once."""
    backend = OpenAIBackend(cfg_for(["http://unused/v1"], concurrency=20))

    async def limits() -> list[int]:
        pool = backend._session()
        try:
            return [ep.session.connector.limit for ep in pool.endpoints]
        finally:
            await pool.aclose()

    assert asyncio.run(limits()) == [20]
    with FaultServer(latency_s=0.2) as srv:
        out = complete_all(cfg_for([srv.url], concurrency=20), items(60))
        assert srv.max_inflight == 20
    assert [c.text for c in out] == [answer_for(t) for t in items(60)]
