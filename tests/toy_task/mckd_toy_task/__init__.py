"""A toy topic-classification task for mckd, from a package of its own (docs/TASKS.md).

The output is one label from a fixed set: what a short sentence is about. The teacher's grammar
admits exactly one label, the metric is accuracy (exact match), and a generating student
decodes under a constraint that lets it write one label and nothing else. Everything here goes
through mckd's Task protocol and its public helpers; nothing in mckd knows this task.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mckd.errors import ConfigError, InputError
from mckd.evidence import SentenceStats, mean_stats
from mckd.examples import Example, read_examples
from mckd.io import read_text_lines
from mckd.tasks.base import AnswerError, Corpus, Metric, Repaired, accepted_steps
from mckd.teacher.gbnf import gbnf_choice

LABELS = ("sports", "weather", "music")
SUBJECTS = ("my friend", "the teacher", "our neighbour", "a reporter", "the old man", "my sister",
            "the radio host", "a student", "the driver", "your uncle")
VERBS = ("talked about", "asked about", "wrote about", "complained about", "laughed about")
WHEN = ("today", "all evening", "on monday", "after lunch", "again", "at the party")


def _label(example: Example) -> str | None:
    """The example's gold label: meta["gold"], else its target."""
    return example.meta.get("gold") or example.target


def _hits(golds: Sequence[str | None], preds: Sequence[str]) -> list[float]:
    """100 for a prediction that is its gold label, 0 otherwise."""
    return [100.0 * (g is not None and g == p.strip()) for g, p in zip(golds, preds, strict=True)]


def _accuracy(golds: Sequence[str | None], preds: Sequence[str]) -> float:
    hits = _hits(golds, preds)
    return sum(hits) / max(1, len(hits))


class ChoiceConstraint:
    """Decoding that writes exactly one of `labels` (mckd's DecodingConstraint protocol): the
    state is the tokens written so far; a complete label allows only the end of the output."""

    def __init__(self, labels: Sequence[str], tokenizer: Any, *, space_first: bool = False) -> None:
        def ids(text: str) -> tuple[int, ...]:
            return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])

        self.choices = {ids((" " if space_first else "") + label): label for label in labels}
        for a in self.choices:
            if any(b != a and b[: len(a)] == a for b in self.choices):
                raise ConfigError(f"label {self.choices[a]!r} is spelled as the start of another "
                                  "label under this tokenizer")

    def start(self) -> tuple[int, ...]:
        return ()

    def next_tokens(self, state: tuple[int, ...]) -> set[int]:
        k = len(state)
        return {c[k] for c in self.choices if len(c) > k and c[:k] == state}

    def step(self, state: tuple[int, ...], token: int) -> tuple[int, ...] | None:
        written = (*state, token)
        return written if any(c[: len(written)] == written for c in self.choices) else None

    def decode(self, tokens: Sequence[int], eos_id: int) -> tuple[str, bool]:
        written: tuple[int, ...] = ()
        for _, after in accepted_steps(self, tokens, eos_id):
            written = after
        label = self.choices.get(written)
        return (label or "", label is not None)

    def max_tokens(self) -> int:
        return max(map(len, self.choices)) + 1


class ToyTask:
    """Which of `LABELS` a sentence is about (the label's own word is in the sentence)."""

    name = "toy"
    metrics = (Metric("accuracy", "accuracy", "sentences with the right label (%)", primary=True),)
    student_kinds = ("seq2seq", "causal")
    prompt_forms = ("label",)
    copies_words = False
    eval_metrics = ("accuracy",)

    # --- gold and scoring
    def has_gold(self, example: Example) -> bool:
        return _label(example) is not None

    def validate(self, example: Example) -> str | None:
        return None if example.target in LABELS else f"target {example.target!r} is not one of {LABELS}"

    def score(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, float]:
        return {"accuracy": _accuracy([_label(ex) for ex in golds], preds),
                "sentences": float(len(golds))}

    def sentence_stats(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, SentenceStats]:
        """Accuracy as the mean of one hit (100) or miss (0) per sentence, for the run's
        bootstrap intervals and paired comparisons."""
        return {"accuracy": mean_stats(_hits([_label(ex) for ex in golds], preds))}

    def fidelity(self, targets: Sequence[str], preds: Sequence[str], sources: Sequence[str]) -> float:
        return _accuracy(targets, preds)

    def baselines(self) -> dict[str, Callable[[list[str]], list[str]]]:
        return {"always_" + LABELS[0]: lambda sources: [LABELS[0]] * len(sources)}

    # --- teacher
    def instruction(self, form: str) -> str:
        return f"Say what the input is about: {', '.join(LABELS)}. Answer with that one word."

    def demo_output(self, example: Example, form: str) -> str:
        if example.target is None:
            raise ConfigError(f"labeled example {example.id!r} has no target")
        return example.target

    def label_set(self, labeled: Sequence[Example], extra: Sequence[str] = ()) -> list[str]:
        return sorted(set(LABELS) | set(extra))

    def grammar(self, source: str, form: str, labels: Any, options: Any) -> str | None:
        space = "[ ]? " if (getattr(options, "style", None) or "completion") == "completion" else ""
        return f"root ::= {space}label\n{gbnf_choice('label', labels)}\n"

    def answer_budget(self, source: str, form: str, count_tokens: Callable[[str], int]) -> int:
        return 8

    def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
        """The first label word in the answer's first line; other words around it are a
        repair, no label at all is unusable."""
        words = (raw.strip().splitlines() or [""])[0].split()
        found = [w for w in words if w in LABELS]
        if not found:
            raise AnswerError(f"no label ({', '.join(LABELS)}) in the answer")
        return Repaired(found[0], [] if words == found[:1] else ["label picked out of other words"])

    def combine(self, source: str, answers: Sequence[Repaired], how: str) -> tuple[Repaired, dict[str, Any]]:
        """The label most samples give (ties: the earliest), whatever `how` says."""
        usable = [a.text for a in answers if a.text is not None]
        if not usable:
            return answers[0], {"samples": len(answers), "usable": 0}
        label, votes = Counter(usable).most_common(1)[0]
        return Repaired(label), {"samples": len(answers), "usable": len(usable), "votes": votes}

    # --- students
    def decoding_constraint(self, source: str, labels: Any, tokenizer: Any, *,
                            placeholder: str | None = None,
                            space_first: bool = False) -> ChoiceConstraint | None:
        return ChoiceConstraint(labels or LABELS, tokenizer, space_first=space_first)

    # --- data
    def read_corpus(self, path: str | Path) -> list[Example]:
        """Example JSONL, the label in `target`; the gold is kept in meta["gold"] too, so that
        a split's unlabeled pool can still be scored."""
        out = []
        for ex in read_examples(path, require_target=True):
            if ex.target not in LABELS:
                raise InputError(path, None, f"example {ex.id!r}: label {ex.target!r} is not one of {LABELS}")
            out.append(Example(ex.id, ex.source, ex.target, {**ex.meta, "gold": ex.target}))
        return out

    def evaluate_files(self, gold: str | Path, pred: str | Path, metric: str, *,
                       per_sentence: bool = False) -> dict[str, Any]:
        """Two files of one label per line."""
        golds, preds = read_text_lines(gold), read_text_lines(pred)
        if len(golds) != len(preds):
            raise InputError(pred, None, f"{len(preds)} lines, but {gold} has {len(golds)}")
        return {"metric": metric, "accuracy": _accuracy(golds, preds), "sentences": len(golds)}

    def builtin_corpus(self, n_labeled: int, n_pool: int, n_test: int, *, seed: int,
                       max_words: int | None = None, test_prefix: int | None = None) -> Corpus:
        """Distinct generated sentences, each about one label. Sentences are drawn one after
        the other, so a larger test set keeps a smaller one's (`test_prefix` asks for that)."""
        rng = random.Random(seed)
        seen: set[str] = set()
        examples = []
        while len(examples) < n_labeled + n_pool + n_test:
            label = rng.choice(LABELS)
            source = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {label} {rng.choice(WHEN)}"
            if source in seen or (max_words is not None and len(source.split()) > max_words):
                continue
            seen.add(source)
            examples.append(Example(f"toy-{len(examples):04d}", source, label, {"gold": label}))
        pool = [ex.with_target(None) for ex in examples[n_labeled:n_labeled + n_pool]]
        return Corpus(examples[:n_labeled], pool, examples[n_labeled + n_pool:])

    # --- optional: `mckd data stats`
    def stats(self, path: str | Path) -> dict[str, Any]:
        examples = self.read_corpus(path)
        return {"sentences": len(examples), "labels": dict(Counter(ex.target for ex in examples))}

    def format_stats(self, stats: dict[str, Any]) -> str:
        labels = ", ".join(f"{k} {v}" for k, v in sorted(stats["labels"].items()))
        return f"sentences {stats['sentences']}; labels: {labels}"
