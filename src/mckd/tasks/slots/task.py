"""Slot filling (BIO tagging) as the pipeline sees it: the hooks call this package's modules.

`source` is the words joined by spaces, `target` the BIO tags joined by spaces, one per word
(`O`, `B-type` for a value's first word, `I-type` for the rest); `meta["intent"]` is optional;
`meta["gold"]` holds the gold tags where they are known, on pool examples too (whose target is
a pseudolabel or None), so pseudolabels can be scored against it. The metric is conlleval's
chunk F1 (conlleval.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mckd.errors import ConfigError
from mckd.evidence import SentenceStats, f1_from_counts, safe_ratio
from mckd.examples import Example, write_examples
from mckd.tasks.base import Corpus, DecodingConstraint, Metric, Repaired
from mckd.tasks.slots import prompts
from mckd.tasks.slots.conlleval import ChunkCounts, score_tag_sequences
from mckd.tasks.slots.constraint import TagConstraint
from mckd.tasks.slots.files import evaluate_tag_files
from mckd.tasks.slots.grammar import tag_grammar
from mckd.tasks.slots.readers import read_slot_corpus
from mckd.tasks.slots.stats import format_slot_stats, slot_stats
from mckd.tasks.slots.synth import synth_slot_corpus, write_slot_corpus
from mckd.tasks.slots.tags import (
    OUTSIDE,
    TAG,
    as_valid,
    gold_tags,
    label_types,
    pred_tags,
    repair_tags,
    sequence_problem,
    tag_pairs,
    tag_set,
)
from mckd.tasks.slots.view import tags_html


def _all_o(sources: list[str]) -> list[str]:
    return [" ".join("O" for _ in s.split()) for s in sources]


class SlotsTask:
    """Slot filling as the pipeline sees it (see the module docstring)."""

    name = "slots"
    metrics = (
        Metric("f1", "F1", "conlleval chunk F1 (conlleval.pl, 2004)", primary=True),
        Metric("precision", "P", "conlleval chunk precision"),
        Metric("recall", "R", "conlleval chunk recall"),
        Metric("accuracy", "tag acc", "token tag accuracy (conlleval)"),
        Metric("exact_match", "EM", "sentences with every tag right (%)"),
    )
    student_kinds = ("tagger", "seq2seq", "causal")
    prompt_forms = ("tags", "interleaved")
    copies_words = False
    eval_metrics = ("conlleval",)

    # --- gold and scoring
    def has_gold(self, example: Example) -> bool:
        return bool(example.meta.get("gold"))

    def validate(self, example: Example) -> str | None:
        if example.target is None:
            return "no target"
        return sequence_problem(example.target.split(), example.source.split())

    def score(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, float]:
        """conlleval's figures; `valid`: predictions with one BIO tag per word. Any other
        prediction finds no chunk and gets no tag right."""
        gold, pred = tag_pairs(golds, preds)
        s = score_tag_sequences(gold, pred)
        out = {m.key: float(s[m.key]) for m in self.metrics}
        out["valid"] = float(sum(p is not None for p in pred))
        out["sentences"] = float(len(gold))
        return out

    def sentence_stats(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, SentenceStats]:
        """conlleval's counts per sentence (correct, found and gold chunks; right tags, tokens;
        exact sentences), summed over a resample before its figures are computed, as the
        script sums them over a file."""
        rows = []
        for g, p in zip(*tag_pairs(golds, preds), strict=True):
            c = ChunkCounts()
            c.add(g, p)
            rows.append((c.correct.total(), c.found.total(), c.gold.total(), c.correct_tags,
                         c.tokens, c.exact, 1))
        counts = np.array(rows, dtype=np.float64).reshape(-1, 7)
        return {
            "f1": SentenceStats(counts, lambda s: f1_from_counts(s[..., 0], s[..., 1], s[..., 2])),
            "precision": SentenceStats(counts, lambda s: safe_ratio(s[..., 0], s[..., 1])),
            "recall": SentenceStats(counts, lambda s: safe_ratio(s[..., 0], s[..., 2])),
            "accuracy": SentenceStats(counts, lambda s: safe_ratio(s[..., 3], s[..., 4])),
            "exact_match": SentenceStats(counts, lambda s: safe_ratio(s[..., 5], s[..., 6])),
        }

    def label_coverage(self, golds: Sequence[Example], labels: Sequence[str]) -> dict[str, Any] | None:
        """Gold chunks (as conlleval counts them) whose slot type is not in the label set: no
        teacher answer (grammar or repair) and no student trained on its labels can give
        them. Adds `label_types` (types in the label set) and `types_outside` ({type: gold
        chunks}, most first). None when the golds have no chunk."""
        seqs = [tags for ex in golds if (tags := gold_tags(ex))]
        per_type = score_tag_sequences(seqs, seqs)["per_type"] if seqs else {}
        counts = {kind: v["gold"] for kind, v in per_type.items() if v["gold"]}
        total = sum(counts.values())
        if not total:
            return None
        known = set(label_types(labels))
        outside = {k: n for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                   if k not in known}
        missing = sum(outside.values())
        recall = 100.0 * (total - missing) / total
        return {"gold_chunks": total, "outside_label_set": missing,
                "outside_share": 100.0 * missing / total, "recall_ceiling": recall,
                "f1_ceiling": 2 * 100.0 * recall / (100.0 + recall) if recall else 0.0,
                "label_types": len(known), "types_outside": outside}

    def fidelity(self, targets: Sequence[str], preds: Sequence[str], sources: Sequence[str]) -> float:
        """conlleval F1 of predictions against (pseudo)label targets; missing targets and
        targets without one BIO tag per word are left out."""
        gold, pred = [], []
        for target, p, source in zip(targets, preds, sources, strict=True):
            n = len(source.split())
            tags = pred_tags(target, n)
            if tags is not None:
                gold.append(tags)
                pred.append(pred_tags(p, n))
        return float(score_tag_sequences(gold, pred)["f1"]) if gold else 0.0

    def baselines(self) -> dict[str, Callable[[list[str]], list[str]]]:
        return {"all_o": _all_o}

    # --- teacher
    def instruction(self, form: str) -> str:
        prompts.check_form(form)
        return prompts.INSTRUCTIONS[form]

    def demo_output(self, example: Example, form: str) -> str:
        tags = gold_tags(example) if example.target is None else example.target.split()
        if tags is None:
            raise ConfigError(f"labeled example {example.id!r} has no target")
        if form == "interleaved":
            return " ".join(f"{w} {t}" for w, t in zip(example.source.split(), tags, strict=True))
        self.instruction(form)  # checks the form
        return " ".join(tags)

    def label_set(self, labeled: Sequence[Example], extra: Sequence[str] = ()) -> list[str]:
        """O, and B-x and I-x for every type x in the examples' tags (the target, else
        meta["gold"]) or in `extra` (full tags or bare type names): a JSON list, saved with a
        generating student for its decoding constraint."""
        sequences = [(ex.target or ex.meta.get("gold") or "").split() for ex in labeled]
        sequences.append([t if t[:2] in ("B-", "I-") else f"B-{t}" for t in extra if t != OUTSIDE])
        return tag_set(sequences)

    def grammar(self, source: str, form: str, labels: Sequence[str], options: Any) -> str | None:
        """`tag_grammar` for the input's words; in the completion style it admits one
        leading space."""
        style = getattr(options, "style", None) or "completion"
        return tag_grammar(source.split(), labels, form=form, leading_space=style == "completion")

    def answer_budget(self, source: str, form: str, count_tokens: Callable[[str], int]) -> int:
        return prompts.answer_budget(source, form, count_tokens)

    def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
        """Tags read from the answer and repaired (`repair_tags`); `options.labels` (the label
        set of the prompts, when the labelling run hands it over) is the set a tag must come
        from. An answer with no tag at all is unusable."""
        words = example.source.split()
        tags, problems = prompts.read_tags(raw, words, form)
        if not any(TAG.fullmatch(t) for t in tags):
            return Repaired(None, [*problems, "no tags in the answer"])
        fixed, repairs = repair_tags(tags, len(words), getattr(options, "labels", None))
        return Repaired(" ".join(fixed), problems + repairs)

    def combine(self, source: str, answers: Sequence[Repaired], how: str) -> tuple[Repaired, dict[str, Any]]:
        """'vote': per word, the tag most samples give (ties: the earliest sample's), then
        any `I-x` left without `B-x` made `B-x`; 'mbr': the sample agreeing with the others
        on the most tags. Samples without one tag per word are left out; when none is left,
        the first sample goes on as it is."""
        n = len(source.split())
        samples = [(a, tags) for a in answers if (tags := pred_tags(a.text, n)) is not None]
        usable = [tags for _, tags in samples]
        info: dict[str, Any] = {"samples": len(answers), "usable": len(usable)}
        if not usable:
            return answers[0], info
        if how == "mbr":
            agree = [sum(sum(x == y for x, y in zip(a, b, strict=True)) for b in usable)
                     for a in usable]
            best = max(range(len(usable)), key=lambda i: (agree[i], -i))
            info["chosen"] = best
            return Repaired(" ".join(usable[best]), list(samples[best][0].problems)), info
        if how != "vote":
            raise ConfigError(f"slots: unknown consensus {how!r} (expected 'vote' or 'mbr')")
        voted = []
        for column in zip(*usable, strict=True):
            counts = Counter(column)
            top = max(counts.values())
            voted.append(next(t for t in column if counts[t] == top))
        tags = as_valid(voted)
        fixed = sum(a != b for a, b in zip(tags, voted, strict=True))
        info["unanimous"] = sum(len(set(c)) == 1 for c in zip(*usable, strict=True))
        info["bio_fixed"] = fixed
        problems = [f"made {fixed} I- without B- into B-"] if fixed else []
        repaired = sum(not a.valid for a, _ in samples)
        if repaired:  # the vote's tags came partly from answers that needed a repair
            problems.append(f"voted over {repaired} repaired sample{'s' if repaired > 1 else ''}")
        return Repaired(" ".join(tags), problems), info

    # --- students
    def decoding_constraint(self, source: str, labels: Any, tokenizer: Any, *,
                            placeholder: str | None = None,
                            space_first: bool = False) -> DecodingConstraint | None:
        """Exactly one valid BIO tag from `labels` per input word (constraint.py);
        None when the student saved no label set. `placeholder` does not apply: tags do not
        contain the input words."""
        if not labels:
            return None
        return TagConstraint(len(source.split()), labels, tokenizer, space_first=space_first)

    # --- data
    def output_html(self, source: str, output: str | None, reference: str | None) -> str:
        """The words with slot values coloured by type; values `reference` lacks marked."""
        return tags_html(source, output, reference)

    def read_corpus(self, path: str | Path) -> list[Example]:
        """The ATIS/Snips `seq.in`/`seq.out`/`label` layout, CoNLL column files or Example
        JSONL (readers.py)."""
        return read_slot_corpus(path)

    def evaluate_files(self, gold: str | Path, pred: str | Path, metric: str, *,
                       per_sentence: bool = False) -> dict[str, Any]:
        return evaluate_tag_files(gold, pred, metric, per_sentence=per_sentence)

    def builtin_corpus(self, n_labeled: int, n_pool: int, n_test: int, *, seed: int,
                       max_words: int | None = None, test_prefix: int | None = None) -> Corpus:
        """The generated assistant-request corpus (synth.py)."""
        return synth_slot_corpus(n_labeled, n_pool, n_test, seed=seed, max_words=max_words,
                                 test_prefix=test_prefix)

    def write_builtin_corpus(self, out_dir: str | Path, n_labeled: int, n_pool: int, n_test: int,
                             *, seed: int, max_words: int | None = None) -> dict[str, int]:
        """The generated corpus's files; split.json carries its statistics (stats.py)."""
        corpus = self.builtin_corpus(n_labeled, n_pool, n_test, seed=seed, max_words=max_words)
        config: dict[str, Any] = {"n_labeled": n_labeled, "n_pool": n_pool, "n_test": n_test,
                                  "seed": seed}
        if max_words is not None:
            config["max_words"] = max_words
        info = {"task": self.name, "corpus": "synthetic assistant requests (mckd.tasks.slots.synth)",
                "config": config}
        return write_slot_corpus(out_dir, corpus, info)

    def write_generated(self, path: str | Path, n: int, *, seed: int,
                        max_words: int | None = None) -> None:
        """`n` generated requests as Example JSONL (tags in the target and meta["gold"])."""
        write_examples(path, synth_slot_corpus(n, 0, 0, seed=seed, max_words=max_words).labeled)

    def stats(self, path: str | Path) -> dict[str, Any]:
        """Lengths, slot types and counts, words outside any slot, intents (stats.py)."""
        return slot_stats(self.read_corpus(path))

    def format_stats(self, stats: dict[str, Any]) -> str:
        return format_slot_stats(stats)
