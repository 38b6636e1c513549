"""Teacher backends against real servers on loopback (no patched functions)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from fault_server import FaultServer
from mckd.teacher.backends import build_backend
from mckd.teacher.backends.base import Backend, BackendError, TeacherRequest, complete
from mckd.teacher.backends.fake import FakeBackend
from mckd.teacher.backends.openai import OpenAIBackend, retry_after_seconds
from mckd.teacher.config import TeacherConfig


def http_cfg(url: str, **kw: object) -> TeacherConfig:
    base = dict(
        backend="openai",
        model="m",
        base_url=url,
        timeout_s=2.0,
        retries=2,
        backoff_s=0.01,
        backoff_max_s=0.05,
    )
    return TeacherConfig(**{**base, **kw})


REQ = TeacherRequest(
    prompt="Input: a b\nOutput: ( a b )\n\nInput: the cat\nOutput:", max_tokens=20, stop=("\n",)
)


def test_completion_and_chat_roundtrip() -> None:
    with FaultServer() as srv:
        be = OpenAIBackend(http_cfg(srv.url))
        assert isinstance(be, Backend)
        out = complete(be, REQ)
        assert out.text == " THE CAT"
        assert out.prompt_tokens == len(REQ.prompt.split()) and out.completion_tokens == 2
        assert out.extra["attempts"] == 1
        chat = complete(
            be, TeacherRequest(messages=(("system", "parse"), ("user", "Input: a dog\nOutput:")))
        )
        assert chat.text == " A DOG"
        path, body, _ = srv.requests[-1]
        assert path == "/v1/chat/completions"
        assert body["messages"][0] == {"role": "system", "content": "parse"}
        assert srv.requests[0][0] == "/v1/completions" and srv.requests[0][1]["stop"] == ["\n"]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("grammar", {"grammar": 'root ::= "x"'}),
        ("guided_grammar", {"guided_grammar": 'root ::= "x"'}),
        ("structured_outputs", {"structured_outputs": {"grammar": 'root ::= "x"'}}),
        ("none", {}),
    ],
)
def test_grammar_reaches_the_server_in_the_configured_field(field: str, expected: dict) -> None:
    with FaultServer() as srv:
        be = OpenAIBackend(http_cfg(srv.url, grammar_field=field))
        complete(be, TeacherRequest(prompt="Input: x\nOutput:", grammar='root ::= "x"'))
        body = srv.requests[-1][1]
        sent = {
            k: body[k] for k in ("grammar", "guided_grammar", "structured_outputs") if k in body
        }
        assert sent == expected
        assert be.supports_grammar == (field != "none")


def test_requests_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY carries requests for a host that does not resolve (the loopback server plays
    the proxy: it reads the absolute URL of the request line); NO_PROXY exempts a host."""
    for var in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with FaultServer() as srv:
        proxy = srv.url.rsplit("/v1", 1)[0]
        monkeypatch.setenv("HTTP_PROXY", proxy.replace("http://", "http://user:pw@"))
        out = complete(OpenAIBackend(http_cfg("http://teacher.invalid/v1", retries=0)), REQ)
        assert out.text == " THE CAT"
        assert srv.requests[0][0] == "http://teacher.invalid/v1/completions"
        assert srv.proxy_auth == ["Basic dXNlcjpwdw=="]  # user:pw, to the proxy only
        monkeypatch.setenv("NO_PROXY", "teacher.invalid")
        with pytest.raises(BackendError, match="connection"):
            complete(OpenAIBackend(http_cfg("http://teacher.invalid/v1", retries=0)), REQ)
        assert srv.total_calls() == 1


def test_api_key_comes_from_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-test-123")
    with FaultServer() as srv:
        complete(OpenAIBackend(http_cfg(srv.url, api_key_env="MY_TEACHER_KEY")), REQ)
        complete(OpenAIBackend(http_cfg(srv.url, api_key_env="UNSET_VARIABLE_XYZ")), REQ)
        assert srv.requests[0][2] == "Bearer sk-test-123"
        assert srv.requests[1][2] is None


@pytest.mark.parametrize(
    ("plan", "attempts"),
    [
        (lambda item, n: "500" if n == 1 else None, 2),
        (lambda item, n: "429" if n <= 2 else None, 3),
        (lambda item, n: "503" if n == 1 else None, 2),
        (lambda item, n: "drop" if n == 1 else None, 2),
        (lambda item, n: "garbage" if n == 1 else None, 2),
        (lambda item, n: "hang" if n == 1 else None, 2),
    ],
    ids=["500", "429x2", "503", "drop", "garbage", "hang"],
)
def test_transient_failures_are_retried(plan, attempts: int) -> None:
    with FaultServer(plan, hang_s=1.0) as srv:
        out = complete(OpenAIBackend(http_cfg(srv.url, timeout_s=0.3)), REQ)
        assert out.text == " THE CAT"
        assert out.extra["attempts"] == attempts
        assert srv.total_calls() == attempts


@pytest.mark.parametrize(
    ("fault", "reason", "calls"),
    [
        ("500", "server_error", 3),
        ("429", "rate_limited", 3),
        ("garbage", "bad_response", 3),
        ("drop", "connection", 3),
        ("hang", "timeout", 3),
        ("overflow", "context_overflow", 1),  # retrying cannot help
    ],
)
def test_persistent_failures_raise_with_a_reason(fault: str, reason: str, calls: int) -> None:
    with FaultServer(lambda item, n: fault, hang_s=0.8) as srv:
        be = OpenAIBackend(http_cfg(srv.url, timeout_s=0.25))
        with pytest.raises(BackendError) as err:
            complete(be, REQ)
        assert err.value.reason == reason
        assert err.value.attempts == calls
        assert srv.total_calls() == calls


def test_retry_after_is_honoured() -> None:
    with FaultServer(lambda item, n: "429" if n == 1 else None, retry_after="0.4") as srv:
        # backoff_max_s is far below 0.4: only the server's header can make the client wait that long
        be = OpenAIBackend(http_cfg(srv.url, backoff_s=0.001, backoff_max_s=0.001))
        start = time.perf_counter()
        complete(be, REQ)
        assert time.perf_counter() - start >= 0.4


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds(future) <= 31  # type: ignore[operator]


def test_connection_refused_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    be = OpenAIBackend(http_cfg(f"http://127.0.0.1:{port}/v1", retries=1))
    with pytest.raises(BackendError) as err:
        complete(be, REQ)
    assert err.value.reason == "connection" and err.value.attempts == 2


def test_concurrency_is_bounded() -> None:
    with FaultServer(latency_s=0.15) as srv:
        be = OpenAIBackend(http_cfg(srv.url, concurrency=3))

        async def many() -> list[str]:
            reqs = [TeacherRequest(prompt=f"Input: w{i}\nOutput:") for i in range(9)]
            outs = await asyncio.gather(*(be.acomplete(r) for r in reqs))
            await be.aclose()
            return [o.text for o in outs]

        assert asyncio.run(many()) == [f" W{i}" for i in range(9)]
        assert srv.max_inflight == 3


def test_fake_backend_fails_as_told() -> None:
    be = FakeBackend(fail=lambda req, n: "server_error" if n == 1 else None)
    with pytest.raises(BackendError) as err:
        complete(be, REQ)
    assert err.value.reason == "server_error" and err.value.retryable
    assert complete(be, REQ).text == "the cat"
    assert len(be.calls) == 2


def test_build_backend_by_name(tmp_path: Path) -> None:
    assert isinstance(build_backend(TeacherConfig(backend="openai", model="x")), OpenAIBackend)
    assert isinstance(build_backend(TeacherConfig(backend="fake")), FakeBackend)


# ---------------------------------------------------------------- real local LLM

SMOL = Path.home() / ".cache" / "mckd" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.llm
def test_llamacpp_smollm2_text_grammar_and_prefix_cache() -> None:
    import os

    path = Path(os.environ.get("MCKD_TEST_GGUF", SMOL))
    if not path.is_file():
        pytest.skip(f"{path} missing: run `mckd models fetch smollm2-135m`")
    from mckd.teacher.backends.llamacpp import LlamaCppBackend

    be = LlamaCppBackend(
        TeacherConfig(backend="llamacpp", model=str(path), context_size=1024, n_threads=1)
    )
    assert be.model == path.name
    free = complete(be, TeacherRequest(prompt="The capital of France is", max_tokens=8))
    assert free.text.strip() and free.completion_tokens > 0 and free.prompt_tokens > 0
    prompt = "Question: is the sky green?\nAnswer (yes or no):"
    grammar = 'root ::= ("yes" | "no") "."'
    outs = [
        complete(be, TeacherRequest(prompt=prompt, max_tokens=10, grammar=grammar))
        for _ in range(2)
    ]
    assert all(o.text in ("yes.", "no.") for o in outs)
    assert outs[1].extra["cached_tokens"] > 0  # the repeated prompt came from the KV cache
    chat = complete(
        be,
        TeacherRequest(
            messages=(("user", "Say yes or no."),), max_tokens=5, grammar='root ::= "yes" | "no"'
        ),
    )
    assert chat.text in ("yes", "no")
    with pytest.raises(BackendError) as err:
        complete(be, TeacherRequest(prompt="word " * 2000, max_tokens=4))
    assert err.value.reason == "context_overflow"
    be.close()


# ---------------------------------------------------------------- transformers, tiny random model


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with a word-level tokenizer, saved like a hub checkpoint."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tinylm")
    words = ["[PAD]", "[UNK]", "[EOS]", "Input:", "Output:", "(", ")"] + [
        f"w{i}" for i in range(40)
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    ).save_pretrained(out)
    cfg = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=None,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


def test_transformers_batched_generation_matches_one_at_a_time(tiny_lm: Path) -> None:
    from mckd.teacher.backends.hf import TransformersBackend

    be = TransformersBackend(
        TeacherConfig(backend="transformers", model=str(tiny_lm), batch_size=4, device="cpu")
    )
    reqs = [
        TeacherRequest(prompt=f"Input: w{i} w{i + 1} {'w3 ' * i}Output:", max_tokens=6)
        for i in range(6)
    ]
    single = [complete(be, r) for r in reqs]

    async def together() -> list:
        return await asyncio.gather(*(be.acomplete(r) for r in reqs))

    batched = asyncio.run(together())
    assert [c.text for c in batched] == [c.text for c in single]  # left padding changes nothing
    assert [c.extra["batch"] for c in batched] == [4, 4, 4, 4, 2, 2]
    assert all(c.prompt_tokens == len(r.prompt.split()) for c, r in zip(single, reqs, strict=True))
    assert all(0 < c.completion_tokens <= 6 for c in single)
    # a stop string cuts the text where it first appears
    first = single[0]
    stop = first.text.split()[1]
    stopped = complete(be, TeacherRequest(prompt=reqs[0].prompt, max_tokens=6, stop=(stop,)))
    assert stopped.text == first.text[: first.text.index(stop)] and stopped.finish_reason == "stop"
    with pytest.raises(BackendError) as err:
        complete(be, TeacherRequest(prompt="w1 " * 70, max_tokens=4))
    assert err.value.reason == "context_overflow"
