"""Plain text: any text-to-text task scored by exact match. The target is the answer as
written (stripped); there is no grammar, no decoding constraint and no built-in corpus. It is
what `mckd label --task text` (or `none`) uses to keep the teacher's raw answers.

Gold is `meta["gold"]`, else the target of a gold example, as for the other tasks: a pool
example keeps its gold in meta (its target is a pseudolabel, or None), and a prediction is only
ever its target (prediction files keep the input's meta, gold included)."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mckd.errors import ConfigError, InputError
from mckd.evidence import SentenceStats, mean_stats
from mckd.examples import Example, numbered_examples, read_examples
from mckd.io import read_text_lines
from mckd.tasks.base import AnswerError, Corpus, DecodingConstraint, Metric, Repaired, gold_outputs


def _exact(targets: Sequence[str], preds: Sequence[str]) -> float:
    hits = sum(t.split() == p.split() for t, p in zip(targets, preds, strict=True))
    return 100.0 * hits / max(1, len(targets))


def gold_text(example: Example) -> str | None:
    """The example's gold text: meta["gold"], else its target; None when neither is there."""
    return example.meta.get("gold") or example.target


def _gold_texts(golds: Sequence[Example], preds: Sequence[str]) -> list[str]:
    """Each gold example's text, one per prediction."""
    return gold_outputs(golds, preds, gold_text, "meta['gold']")


def _read_golds(path: str | Path) -> list[str]:
    """Gold texts: Example JSONL (meta["gold"], else the target) or one text per line."""
    if Path(path).suffix != ".jsonl":
        return read_text_lines(path)
    golds = []
    for lineno, ex in numbered_examples(path):
        gold = gold_text(ex)
        if gold is None:
            raise InputError(path, lineno, "no gold text: needs 'target' or meta['gold']")
        golds.append(gold)
    return golds


def _read_predictions(path: str | Path) -> list[str]:
    """Predictions: the targets of Example JSONL (never meta, which may hold the input's gold),
    or one text per line."""
    if Path(path).suffix != ".jsonl":
        return read_text_lines(path)
    preds = []
    for lineno, ex in numbered_examples(path):
        if ex.target is None or not ex.target.strip():
            what = "missing" if ex.target is None else "empty"
            raise InputError(path, lineno, f"no prediction: 'target' is {what}")
        preds.append(ex.target)
    return preds


class TextTask:
    """Free text with exact-match scoring."""

    name = "text"
    metrics = (Metric("exact_match", "exact match", "outputs identical to the gold text "
                      "(whitespace-normalised), percent", primary=True),)
    student_kinds = ("seq2seq", "causal")
    prompt_forms = ("text",)
    copies_words = False
    eval_metrics = ("exact",)

    def has_gold(self, example: Example) -> bool:
        """Gold is meta["gold"]: a pseudolabel's target is not gold."""
        return bool(example.meta.get("gold"))

    def validate(self, example: Example) -> str | None:
        return None if example.target and example.target.strip() else "empty target"

    def score(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, float]:
        return {"exact_match": _exact(_gold_texts(golds, preds), preds), "sentences": float(len(preds))}

    def sentence_stats(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, SentenceStats]:
        """Exact match as the mean of one hit (100) or miss (0) per example."""
        texts = _gold_texts(golds, preds)
        return {"exact_match": mean_stats([100.0 * (t.split() == p.split())
                                           for t, p in zip(texts, preds, strict=True)])}

    def fidelity(self, targets: Sequence[str], preds: Sequence[str], sources: Sequence[str]) -> float:
        return _exact(targets, preds)

    def baselines(self) -> dict[str, Callable[[list[str]], list[str]]]:
        return {}

    def instruction(self, form: str) -> str:
        return ""

    def demo_output(self, example: Example, form: str) -> str:
        if example.target is None:
            raise ConfigError(f"labeled example {example.id!r} has no target")
        return example.target

    def label_set(self, labeled: Sequence[Example], extra: Sequence[str] = ()) -> Any:
        return list(extra)

    def grammar(self, source: str, form: str, labels: Any, options: Any) -> str | None:
        return None

    def answer_budget(self, source: str, form: str, count_tokens: Callable[[str], int]) -> int:
        return 2 * count_tokens(source) + 32

    def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
        text = raw.strip()
        if not text:
            raise AnswerError("empty output")
        return Repaired(text)

    def combine(self, source: str, answers: Sequence[Repaired], how: str) -> tuple[Repaired, dict[str, Any]]:
        """The most frequent usable answer (ties: the earliest), whatever `how` says."""
        usable = [a.text for a in answers if a.valid]
        if not usable:
            return answers[0], {"samples": len(answers), "usable": 0}
        text, votes = Counter(usable).most_common(1)[0]
        return Repaired(text), {"samples": len(answers), "usable": len(usable), "votes": votes}

    def decoding_constraint(self, source: str, labels: Any, tokenizer: Any, *,
                            placeholder: str | None = None,
                            space_first: bool = False) -> DecodingConstraint | None:
        return None

    def output_html(self, source: str, output: str | None, reference: str | None) -> str:
        """The text, marked whole when it differs from `reference` (exact match is all-or-none)."""
        if output is None:
            return '<span class="none">–</span>'
        text = html.escape(output)
        differs = reference is not None and output.split() != reference.split()
        return f'<span class="diff">{text}</span>' if differs else text

    def read_corpus(self, path: str | Path) -> list[Example]:
        """Example JSONL; a target is gold, copied into meta["gold"] (unless meta has one) so
        that a split's pool, whose targets are removed, can still be scored."""
        return [ex if ex.target is None else Example(ex.id, ex.source, ex.target, {"gold": ex.target, **ex.meta})
                for ex in read_examples(path)]

    def evaluate_files(self, gold: str | Path, pred: str | Path, metric: str, *,
                       per_sentence: bool = False) -> dict[str, Any]:
        """Exact match of two files, each either Example JSONL (`.jsonl`: gold is meta["gold"],
        else the target; a prediction is its target, which must not be empty) or any other
        file, one text per line."""
        golds, preds = _read_golds(gold), _read_predictions(pred)
        if len(golds) != len(preds):
            raise InputError(pred, None, f"{len(preds)} predictions, but {gold} has {len(golds)}")
        out: dict[str, Any] = {"metric": metric, "exact_match": _exact(golds, preds),
                               "sentences": len(golds)}
        if per_sentence:
            out["per_sentence"] = [{"id": i, "match": g.split() == p.split()}
                                   for i, (g, p) in enumerate(zip(golds, preds, strict=True), 1)]
        return out

    def builtin_corpus(self, n_labeled: int, n_pool: int, n_test: int, *, seed: int,
                       max_words: int | None = None, test_prefix: int | None = None) -> Corpus:
        raise ConfigError("the text task has no built-in corpus: use data.source 'files'")
