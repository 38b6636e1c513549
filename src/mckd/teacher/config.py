"""The teacher's settings: which backend, how to call it, how to prompt, what it costs.

One flat pydantic model, so that a YAML `teacher:` section reads top to bottom. Unknown keys
are errors. Secrets never live here: `api_key_env` names the environment variable that holds
the key, and the key itself is read only when the HTTP client is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from mckd.errors import ConfigError
from mckd.settings import merge, read_yaml
from mckd.settings import parse_overrides as parse_overrides  # the old place of this name
from mckd.teacher.prompts import PromptConfig

BackendKind = Literal["openai", "llamacpp", "transformers", "fake"]
GrammarField = Literal["grammar", "guided_grammar", "structured_outputs", "none"]
# llama.cpp's drafters: a smaller model of the same vocabulary, or n-gram lookups in the tokens
# seen so far (prompt and answer), which cost no model call.
SpeculativeType = Literal[
    "draft", "ngram_simple", "ngram_map_k", "ngram_map_k4v", "ngram_mod", "ngram_cache"
]


class SpeculativeConfig(BaseModel):
    """Speculative decoding in the in-process llama.cpp backend: a drafter proposes the next
    tokens and the teacher checks them all in one batch, keeping the longest prefix it would
    have produced itself. The teacher's own sampler (grammar included) picks every token, so a
    greedy answer does not depend on these settings. Off unless a type or a draft model is set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    type: list[SpeculativeType] = Field(
        default_factory=list,
        description="Drafters, one name or a list: draft (the draft_model), ngram_simple, "
        "ngram_map_k, ngram_map_k4v, ngram_mod, ngram_cache. Empty: draft when draft_model is "
        "set, else no speculation.",
    )
    draft_model: str | None = Field(
        None,
        description="Draft model: a name from `mckd models list` or a .gguf path, with the "
        "teacher's vocabulary (qwen2.5-coder-0.5b for the 1.5B teacher).",
    )
    n_max: int = Field(8, ge=1, le=64, description="Most tokens drafted per step.")
    n_min: int = Field(
        0, ge=0, description="Fewest tokens a draft model's draft must have to be checked."
    )
    p_min: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A draft model stops drafting when its own top token is less likely than this.",
    )
    ngram_n: int = Field(
        4, ge=1, le=64, description="n-gram drafters: tokens matched to find a continuation."
    )

    @field_validator("type", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None or value == "none":
            return []
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> SpeculativeConfig:
        if len(set(self.type)) != len(self.type):
            raise ValueError(f"type lists a drafter twice: {self.type}")
        if "draft" in self.type and not self.draft_model:
            raise ValueError("type 'draft' needs a draft_model")
        if self.draft_model and self.type and "draft" not in self.type:
            raise ValueError(
                f"draft_model is set but type {self.type} has no 'draft': add it or unset the model"
            )
        return self

    def types(self) -> list[str]:
        """The drafters in force (empty: no speculation)."""
        return list(self.type) or (["draft"] if self.draft_model else [])

    @property
    def enabled(self) -> bool:
        return bool(self.types())


class TeacherConfig(BaseModel):
    """How the teacher LLM is reached and called."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- which model, where
    backend: BackendKind = Field(
        "llamacpp",
        description="openai: any OpenAI-compatible HTTP server (OpenAI, vLLM, llama.cpp server, "
        "Ollama, TGI); llamacpp: a GGUF file run in-process; transformers: a local Hugging Face "
        "causal LM; fake: deterministic echo backend for tests.",
    )
    model: str = Field(
        "",
        description="Model name sent to the server (openai), path to a .gguf file (llamacpp), or "
        "a Hugging Face id or directory (transformers). Part of the cache key.",
    )
    base_url: str | list[str] = Field(
        "http://127.0.0.1:8080/v1",
        description="Base URL of the OpenAI-compatible API, up to and including /v1, or a list "
        "of them (replicas serving the same model, e.g. several `vllm serve`): requests spread "
        "over them, `concurrency` in flight on each, and a failed request is retried on another. "
        "Never part of the cache key.",
    )
    api_key_env: str | None = Field(
        "OPENAI_API_KEY",
        description="Name of the environment variable that holds the API key (sent as a Bearer "
        "token when set). The key is never written to config dumps, logs or the cache.",
    )
    api: Literal["completions", "chat"] = Field(
        "completions",
        description="completions: a plain prompt (/completions); chat: messages "
        "(/chat/completions). Sets the prompt's style unless prompt.style says otherwise.",
    )
    grammar_field: GrammarField = Field(
        "grammar",
        description="How a GBNF grammar reaches an HTTP server: 'grammar' (llama.cpp server), "
        "'guided_grammar' (older vLLM), 'structured_outputs' (vLLM >= 0.10, sent as "
        "{'grammar': ...}), or 'none' (the server gets no grammar; use it for the OpenAI API "
        "and other servers that reject unknown fields).",
    )
    # --- where the calls run
    runner: Literal["local", "ray"] = Field(
        "local",
        description="local: this process calls the backend; ray: Ray Data actors do "
        "(`pip install 'mckd[ray]'`), each holding one backend, while this process keeps the "
        "cache and the ledger.",
    )
    workers: int = Field(2, ge=1, le=4096, description="runner ray: actors, one backend each.")
    ray_address: str | None = Field(
        None,
        description="runner ray: the cluster to join ('auto', 'ray://head:10001'); null starts "
        "a local one.",
    )
    # --- engine sizing
    context_size: int = Field(
        8192, ge=64, description="Context window in tokens (prompt + output); 30 labeled-tree "
        "demonstrations take ~3,100 tokens."
    )
    n_threads: int = Field(1, ge=1, description="CPU threads for the in-process llama.cpp backend.")
    cache_reuse: int = Field(
        0,
        ge=0,
        description="llama.cpp in-process: also reuse cached chunks of at least this many tokens "
        "that the previous prompt holds later than the shared prefix, shifted into place "
        "(llama.cpp's n_cache_reuse; 0: the shared prefix only). A shifted chunk was computed "
        "after other text, so answers can change: the setting is part of the cache key.",
    )
    speculative: SpeculativeConfig = Field(
        default_factory=SpeculativeConfig,
        description="llamacpp backend: speculative decoding (draft model and/or n-gram "
        "drafting); see SpeculativeConfig and docs/TEACHER.md. Off by default.",
    )
    device: str = Field(
        "auto", description="transformers backend: 'auto', 'cpu', 'cuda', 'cuda:1', ..."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="transformers backend: weight dtype ('auto' = bf16 on GPU, fp32 on CPU).",
    )
    batch_size: int = Field(
        8, ge=1, description="transformers backend: prompts generated together in one batch."
    )
    # --- calling
    concurrency: int = Field(
        8,
        ge=1,
        le=1024,
        description="Requests in flight at once on each HTTP endpoint (base_url); in-process "
        "engines serialize calls whatever this says.",
    )
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout in seconds (HTTP).")
    retries: int = Field(
        4,
        ge=0,
        le=50,
        description="Retries after a failed attempt (timeouts, 5xx, 429, "
        "dropped connections, unreadable responses); non-retryable errors fail at once.",
    )
    backoff_s: float = Field(
        0.5,
        ge=0,
        description="Base delay of the exponential backoff (doubled each retry, with "
        "full jitter). A server's Retry-After header overrides it.",
    )
    backoff_max_s: float = Field(30.0, ge=0, description="Upper bound on one backoff delay.")
    # --- decoding
    max_tokens: int | None = Field(
        None, ge=1, description="Most tokens generated per call; null: the task's estimate for "
        "each input (long enough for any valid answer)."
    )
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    stop: list[str] | None = Field(
        None,
        description="Stop strings; null: end of line in the completion style (one answer per "
        "line), none in the chat style.",
    )
    samples: int = Field(
        1,
        ge=1,
        le=64,
        description="Completions drawn per input (each with its own sample index "
        "in the cache key); more than one only makes sense with temperature > 0 and a consensus.",
    )
    seed: int = Field(
        0, description="Seed for demonstration sampling and for backends that take one."
    )
    # --- prompting
    k_demos: int = Field(
        30, ge=0, description="Labeled demonstrations per prompt (the paper's 30; with the "
        "default shared demonstrations a local server processes them once. 30 beat 10 by 4.7 F1 "
        "for the 1.5B local teacher at 1.3x the time: docs/TEACHER.md)."
    )
    prompt: PromptConfig = Field(
        default_factory=PromptConfig,
        description="Prompt form (the task's answer forms), demonstration choice (random, "
        "shared, nearest), grammar, consensus and task-specific answer settings; see "
        "mckd.teacher.prompts.PromptConfig. Its k and seed are taken from k_demos and seed.",
    )
    # --- cost and cache
    price_prompt_per_1m: float = Field(
        0.0, ge=0, description="Price per million prompt tokens (any currency) for cost reports."
    )
    price_completion_per_1m: float = Field(
        0.0, ge=0, description="Price per million completion tokens (same currency)."
    )
    price_cached_input_per_1m: float | None = Field(
        None,
        ge=0,
        description="Price per million prompt tokens served from the provider's prompt cache "
        "(same currency; hosted APIs charge a fraction of the prompt price). None: the prompt "
        "price.",
    )
    est_prompt_tokens_per_s: float = Field(
        500.0,
        gt=0,
        description="Dry-run estimate: prompt tokens processed per second per "
        "request stream (measured llama.cpp 1.5B on 2 CPU cores: ~65).",
    )
    est_completion_tokens_per_s: float = Field(
        30.0,
        gt=0,
        description="Dry-run estimate: generated tokens per second per request "
        "stream (llama.cpp 1.5B on 2 CPU cores: ~11.5).",
    )
    cache: bool = Field(True, description="Read and write the shared teacher cache.")
    cache_path: str | None = Field(
        None,
        description="SQLite cache file. Default: $MCKD_CACHE_DIR/teacher.sqlite, else "
        "~/.cache/mckd/teacher.sqlite (shared by every run on this machine).",
    )

    @field_serializer("prompt")
    def _prompt_without_shadowed(self, prompt: PromptConfig) -> dict[str, Any]:
        # k and seed come from k_demos and seed: a dump (the run's config.yaml) must load again
        return prompt.model_dump(mode="json", exclude={"k", "seed"})

    @model_validator(mode="after")
    def _check(self) -> TeacherConfig:
        for key, use in (("k", "k_demos"), ("seed", "seed")):
            if key in self.prompt.model_fields_set:
                raise ValueError(f"prompt.{key} is taken from the teacher's {use}: set {use} instead")
        style = {"completions": "completion", "chat": "chat"}[self.api]
        if self.prompt.style is not None and self.prompt.style != style:
            raise ValueError(f"api {self.api!r} sends {style} requests but prompt.style is "
                             f"{self.prompt.style!r}: set one of them only")
        if self.max_tokens is not None and self.prompt.max_tokens is not None:
            raise ValueError("max_tokens and prompt.max_tokens both set: set max_tokens only")
        urls = self.base_urls()
        if not urls or any(not u.strip() for u in urls):
            raise ValueError(f"base_url must be a URL or a non-empty list of URLs, but received {self.base_url!r}")
        if len(set(urls)) != len(urls):
            dup = next(u for u in urls if urls.count(u) > 1)
            raise ValueError(f"base_url lists {dup!r} twice")
        if self.backoff_max_s < self.backoff_s:
            raise ValueError(
                f"backoff_max_s must be >= backoff_s ({self.backoff_s}), but received {self.backoff_max_s}"
            )
        return self

    def base_urls(self) -> list[str]:
        """The HTTP endpoints, one or more, without trailing slashes."""
        urls = [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)
        return [u.rstrip("/") for u in urls]

    def total_concurrency(self) -> int:
        """Requests in flight at once over all endpoints (HTTP), else `concurrency`."""
        return self.concurrency * (len(self.base_urls()) if self.backend == "openai" else 1)

    def prompt_style(self) -> str:
        """'completion' or 'chat': prompt.style, else what `api` calls."""
        return self.prompt.style or ("chat" if self.api == "chat" else "completion")

    def answer_tokens(self) -> int | None:
        """The configured answer token limit (None: the task estimates it per input)."""
        return self.max_tokens if self.max_tokens is not None else self.prompt.max_tokens

    def stop_strings(self) -> tuple[str, ...]:
        """The configured stop strings, else the prompt style's default."""
        if self.stop is not None:
            return tuple(self.stop)
        return ("\n",) if self.prompt_style() == "completion" else ()

    def api_key(self) -> str | None:
        """The API key from the environment, or None when unset (local servers need none)."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0) -> float:
        """What the tokens cost; `cached_prompt_tokens` (part of `prompt_tokens`) at the cached
        price where one is set."""
        cached = min(cached_prompt_tokens, prompt_tokens)
        cached_price = self.price_prompt_per_1m if self.price_cached_input_per_1m is None \
            else self.price_cached_input_per_1m
        return (
            (prompt_tokens - cached) * self.price_prompt_per_1m
            + cached * cached_price
            + completion_tokens * self.price_completion_per_1m
        ) / 1e6


def teacher_config_from(data: dict[str, Any], *, source: str = "teacher config") -> TeacherConfig:
    """Validate a mapping; any bad key or value is a one-line ConfigError naming it."""
    try:
        return TeacherConfig(**data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ConfigError(f"{source}: {where}: {err['msg']} (got {err.get('input')!r})") from None


def load_teacher_config(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> TeacherConfig:
    """Read a YAML file (its `teacher:` section if it has one, else the whole mapping), then apply
    overrides (None values are ignored, so CLI options left unset change nothing)."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = read_yaml(path)
        data = loaded.get("teacher", loaded) if "teacher" in loaded else loaded
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: 'teacher' must be a mapping")
    data = merge(data, {k: v for k, v in (overrides or {}).items() if v is not None})
    return teacher_config_from(data, source=str(path) if path else "teacher config")
