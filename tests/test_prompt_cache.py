"""Inputs grouped for the teacher's prompt cache: what each input's prompt holds, the order the
pool is sent in, what the ledger records, resume, routing and cached-token prices."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from mckd.examples import Example, read_examples
from mckd.tasks import get_task
from mckd.teacher import prompts
from mckd.teacher.backends.base import Completion, TeacherRequest, group_slot
from mckd.teacher.backends.endpoints import Endpoint, EndpointPool
from mckd.teacher.backends.fake import FakeBackend
from mckd.teacher.cache import TeacherCache, request_key
from mckd.teacher.config import TeacherConfig
from mckd.teacher.engine import Pseudolabel, label_pool
from mckd.teacher.estimate import estimate_labelling
from mckd.teacher.ledger import LEDGER, read_ledger
from mckd.teacher.prompts import PromptBuilder, PromptConfig

TEXT = get_task("text")
TOPICS = {
    "flight": "book a flight from boston to denver on monday morning",
    "music": "play some jazz music by miles davis in the kitchen",
    "weather": "what is the weather forecast for rain in paris tomorrow",
}


def sentence(topic: str, i: int) -> str:
    words = TOPICS[topic].split()
    return " ".join([*words[: 6 + i % 4], f"w{i}"])


LABELED = [Example(f"l-{t}-{i}", sentence(t, i + 20), sentence(t, i + 20).upper())
           for t in TOPICS for i in range(4)]
# the topics interleaved, so that pool order mixes them
POOL = [Example(f"u{n:02d}", text) for n, text in
        enumerate(sentence(t, i) for i in range(4) for t in TOPICS)]


class BagOfWords(prompts.NearestDemos):
    """The nearest-neighbour retrieval with hashed bag-of-words vectors for the encoder."""

    def _load(self) -> None:
        import torch

        self._torch = torch

    def encode(self, texts: Any, batch_size: int = 64) -> Any:
        torch = self._torch
        out = torch.zeros(len(texts), 64)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        return torch.nn.functional.normalize(out, dim=-1)


@pytest.fixture(autouse=True)
def bag_of_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompts, "NearestDemos", BagOfWords)


def builder(pool: list[Example] = POOL, **cfg: Any) -> PromptBuilder:
    config = PromptConfig(**{"k": 3, "demos": "nearest", "encoder": "bag-of-words", **cfg})
    return PromptBuilder(LABELED, config, task=TEXT, count_tokens=lambda t: len(t.split()),
                         context_size=100_000, pool=pool)


def before_input(request: TeacherRequest) -> str:
    assert request.prompt is not None
    return request.prompt.rsplit("Input:", 1)[0]


def topic_of(example: Example) -> str:
    return next(t for t, text in TOPICS.items() if example.source.startswith(text.split()[0]))


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_group_demonstrations_make_one_prefix_per_group() -> None:
    b = builder(group_size=4, per_input=0)
    order = b.labelling_order(POOL)
    assert sorted(ex.id for ex in order) == sorted(ex.id for ex in POOL)
    requests = [b.build_request(ex) for ex in order]
    groups = [r.group for r in requests]
    # each group is sent in one run of consecutive inputs, and holds inputs of one topic
    runs = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    assert len(runs) == len(set(groups)) == 3
    for g in set(groups):
        members = [ex for ex, r in zip(order, requests, strict=True) if r.group == g]
        assert len(members) == 4 and len({topic_of(ex) for ex in members}) == 1
        prefixes = {before_input(r) for r in requests if r.group == g}
        assert len(prefixes) == 1  # every prompt of the group is the same up to the input
        shown = next(r for r in requests if r.group == g).demos
        assert {topic_of(d) for d in LABELED if d.id in shown} == {topic_of(members[0])}
    # the cache key still holds the whole prompt: the input makes each one differ
    assert len({request_key("m", r) for r in requests}) == len(POOL)


def test_reordering_keeps_each_inputs_own_demonstrations() -> None:
    alone, grouped = builder(group_size=0), builder(group_size=4)
    for ex in POOL:
        assert sorted(alone.build_request(ex).demos) == sorted(grouped.build_request(ex).demos)
    assert alone.labelling_order(POOL) == POOL  # no grouping: pool order
    assert alone.build_request(POOL[0]).group is None

    def shared(b: PromptBuilder) -> int:
        texts = [b.build_request(ex).prompt or "" for ex in b.labelling_order(POOL)]
        return sum(common_prefix(x, y) for x, y in itertools.pairwise(texts))

    assert shared(grouped) > shared(alone)


def test_mixed_demonstrations_end_with_the_inputs_own_nearest() -> None:
    b = builder(group_size=4, per_input=1)
    order = b.labelling_order(POOL)
    by_group: dict[str, list[tuple[str, ...]]] = {}
    for ex in order:
        r = b.build_request(ex)
        assert len(r.demos) == 3
        by_group.setdefault(r.group or "", []).append(r.demos)
        assert r.demos[-1] == alone_nearest(ex, exclude=r.demos[:2])
    for demos in by_group.values():
        assert len({d[:2] for d in demos}) == 1  # the group's two come first, the same for all


def alone_nearest(ex: Example, exclude: tuple[str, ...]) -> str:
    ranked = builder(group_size=0).nearest.ranked(ex.source)  # type: ignore[union-attr]
    return next(LABELED[i].id for i in ranked
                if LABELED[i].id not in exclude and LABELED[i].source != ex.source)


def test_an_input_never_sees_itself_and_the_plan_is_deterministic() -> None:
    pool = [*POOL, Example("dup", LABELED[0].source)]
    plan = [(ex.id, builder(pool, group_size=4, per_input=0).build_request(ex))
            for ex in pool]
    again = builder(pool, group_size=4, per_input=0)
    for ex_id, req in plan:
        ex = next(e for e in pool if e.id == ex_id)
        assert again.build_request(ex) == req
        assert all(d.source != ex.source for d in LABELED if d.id in req.demos)


def test_the_run_sends_group_by_group_and_the_ledger_names_the_demonstrations(tmp_path: Path) -> None:
    b = builder(group_size=4, per_input=0)
    order = b.labelling_order(POOL)
    backend = FakeBackend()
    res = label_pool(POOL, backend, tmp_path / "o", build_request=b.build_request,
                     postprocess=lambda ex, raws: Pseudolabel(raws[0], True), cache=None, cfg=TeacherConfig(backend="fake", concurrency=1),
                     progress=False, order=order)
    assert [r.prompt for r in backend.calls] == [b.build_request(ex).prompt for ex in order]
    # output files keep pool order
    assert [ex.id for ex in read_examples(tmp_path / "o" / "pseudolabels.jsonl")] == [ex.id for ex in POOL]
    assert [ex.id for ex in res.labels] == [ex.id for ex in POOL]
    records = [json.loads(line) for line in (tmp_path / "o" / LEDGER).read_text().splitlines()]
    assert [r["id"] for r in records] == [ex.id for ex in order]
    for rec, ex in zip(records, order, strict=True):
        req = b.build_request(ex)
        assert rec["demos"] == list(req.demos) and len(rec["demos"]) == 3
        assert rec["group"] == req.group


class Killed(BaseException):
    """Stands for the process dying mid-call."""


def test_a_run_killed_mid_group_resumes_without_asking_twice(tmp_path: Path) -> None:
    def post(ex: Example, raws: list[str]) -> Pseudolabel:
        return Pseudolabel(raws[0], True)

    cfg = TeacherConfig(backend="fake", concurrency=1)
    cache = TeacherCache(tmp_path / "c.sqlite")
    asked: list[str] = []

    class Dies(FakeBackend):
        async def acomplete(self, request: TeacherRequest) -> Completion:
            if len(asked) == 6:  # the second group of four is half done
                raise Killed
            asked.append(request_key(self.model, request))
            return await super().acomplete(request)

    first = builder(group_size=4, per_input=0)
    with pytest.raises(Killed):
        label_pool(POOL, Dies(), tmp_path / "o", build_request=first.build_request, postprocess=post,
                   cache=cache, cfg=cfg, progress=False, order=first.labelling_order(POOL))
    assert len(read_ledger(tmp_path / "o" / LEDGER)) == 6
    # a new process: the plan is rebuilt from scratch, and the ledger and cache are honoured
    again = builder(group_size=4, per_input=0)
    backend = FakeBackend()
    res = label_pool(POOL, backend, tmp_path / "o", build_request=again.build_request,
                     postprocess=post, cache=cache, cfg=cfg, progress=False,
                     order=again.labelling_order(POOL))
    sent = [request_key("fake", r) for r in backend.calls]
    assert len(sent) == len(POOL) - 6 and not set(sent) & set(asked)
    assert res.usage["inputs"] == len(POOL) and res.usage["labels"] == len(POOL)
    assert all("demos" in rec for rec in read_ledger(tmp_path / "o" / LEDGER).values())


def test_an_order_that_is_not_the_pool_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="labelling order"):
        label_pool(POOL, FakeBackend(), tmp_path / "o", build_request=builder().build_request,
                   postprocess=lambda ex, raws: None, cache=None,  # type: ignore[arg-type,return-value]
                   cfg=TeacherConfig(backend="fake"), progress=False, order=POOL[:-1])


def test_the_dry_run_counts_the_prefixes_a_prompt_cache_serves() -> None:
    cfg = TeacherConfig(backend="fake", k_demos=3)
    count = lambda t: len(t.split())  # noqa: E731
    estimates = {}
    for name, b in {"alone": builder(group_size=0), "grouped": builder(group_size=4, per_input=0)}.items():
        estimates[name] = estimate_labelling(POOL, None, build_request=b.build_request, cache=None,
                                             cfg=cfg, count_tokens=count, model="fake",
                                             order=b.labelling_order(POOL))
    alone, grouped = estimates["alone"], estimates["grouped"]
    assert alone.calls == grouped.calls == len(POOL)
    assert grouped.cached_prompt_tokens > alone.cached_prompt_tokens
    # every prompt after the first of a group reuses all of it up to the input
    assert grouped.prefix_hits == len(POOL) - 1
    assert grouped.seconds < alone.seconds


def test_cached_prompt_tokens_at_the_cached_price() -> None:
    cfg = TeacherConfig(backend="fake", price_prompt_per_1m=2.0, price_completion_per_1m=8.0,
                        price_cached_input_per_1m=0.5)
    assert cfg.cost(1_000_000, 100_000, 600_000) == pytest.approx(0.4 * 2 + 0.6 * 0.5 + 0.1 * 8)
    plain = TeacherConfig(backend="fake", price_prompt_per_1m=2.0)
    assert plain.cost(1_000_000, 0, 600_000) == pytest.approx(2.0)  # no cached price: full price


def test_the_ledgers_cached_tokens_price_the_run(tmp_path: Path) -> None:
    class Caching(FakeBackend):
        async def acomplete(self, request: TeacherRequest) -> Completion:
            comp = await super().acomplete(request)
            comp.extra["cached_tokens"] = comp.prompt_tokens // 2
            return comp

    cfg = TeacherConfig(backend="fake", price_prompt_per_1m=1e6, price_cached_input_per_1m=0.0)
    b = builder(group_size=4, per_input=0)
    res = label_pool(POOL, Caching(), tmp_path / "o", build_request=b.build_request,
                     postprocess=lambda ex, raws: Pseudolabel(raws[0], True), cache=None, cfg=cfg,
                     progress=False, order=b.labelling_order(POOL))
    u = res.usage
    assert 0 < u["cached_prompt_tokens"] < u["prompt_tokens"]
    assert u["cost"] == pytest.approx(u["prompt_tokens"] - u["cached_prompt_tokens"])


def test_a_group_goes_to_its_own_endpoint_while_it_has_room() -> None:
    async def scenario() -> list[str]:
        endpoints = [Endpoint(url=f"http://e{i}", session=None, capacity=2) for i in range(3)]  # type: ignore[arg-type]
        pool = EndpointPool(endpoints, backoff_s=0.1, backoff_max_s=1.0)
        home = group_slot("g7", 3)
        got = [await pool.acquire(set(), home) for _ in range(3)]
        return [ep.url for ep in got] + [f"http://e{home}"]

    *urls, home_url = asyncio.run(scenario())
    assert urls[:2] == [home_url, home_url]  # both of its slots
    assert urls[2] != home_url  # full: the group spills to another endpoint
    assert group_slot("g7", 3) == group_slot("g7", 3) and {group_slot(f"g{i}", 3) for i in range(30)} == {0, 1, 2}


def test_llamacpp_keeps_the_prompt_cache_and_sends_a_group_to_one_slot() -> None:
    from mckd.teacher.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend.__new__(LlamaCppBackend)  # the request body needs no model
    backend.slots = 4
    body = backend.body(TeacherRequest(prompt="Input: x\nOutput:", group="g3"))
    assert body["cache_prompt"] is True and body["id_slot"] == group_slot("g3", 4)
    assert "id_slot" not in backend.body(TeacherRequest(prompt="p"))
    backend.slots = 1
    assert "id_slot" not in backend.body(TeacherRequest(prompt="p", group="g3"))


def test_routing_fields_stay_out_of_the_cache_key() -> None:
    plain = TeacherRequest(prompt="p")
    routed = TeacherRequest(prompt="p", group="g1", demos=("a", "b"))
    assert request_key("m", plain) == request_key("m", routed)
