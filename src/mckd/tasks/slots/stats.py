"""Describe a slot-filling corpus: sizes, lengths, slot types and how often each occurs, the
share of words outside any slot (what the all-`O` tagger gets right), and intents where the
corpus has them."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from mckd.examples import Example
from mckd.tasks.base import Corpus
from mckd.tasks.slots.tags import chunks


def slot_stats(examples: list[Example]) -> dict[str, Any]:
    """Numbers for sizing up a slot corpus (tags in meta["gold"], as the slot readers give)."""
    if not examples:
        raise ValueError("no sentences to describe")
    lengths = [len(ex.source.split()) for ex in examples]
    types: Counter[str] = Counter()
    outside = 0
    for ex in examples:
        tags = ex.meta["gold"].split()
        outside += tags.count("O")
        types.update(kind for kind, _ in chunks(tags, ex.source.split()))
    intents = Counter(ex.meta["intent"] for ex in examples if ex.meta.get("intent"))
    tokens = sum(lengths)
    return {
        "sentences": len(examples),
        "tokens": tokens,
        "vocabulary": len({w for ex in examples for w in ex.source.split()}),
        "length": {"mean": round(statistics.fmean(lengths), 2), "median": statistics.median(lengths),
                   "min": min(lengths), "max": max(lengths)},
        "chunks": sum(types.values()),
        "chunks_per_sentence": round(sum(types.values()) / len(examples), 2),
        "outside_share": round(outside / tokens, 4) if tokens else 0.0,
        "slot_types": len(types),
        "chunks_by_type": dict(types.most_common()),
        "intents": dict(intents.most_common()),
    }


def format_slot_stats(stats: dict[str, Any], top: int = 15) -> str:
    """The stats as a few plain-text lines (the `top` most frequent slot types and intents)."""
    ln = stats["length"]
    kinds = list(stats["chunks_by_type"].items())
    lines = [
        f"sentences {stats['sentences']}, tokens {stats['tokens']}, vocabulary {stats['vocabulary']}",
        f"length mean {ln['mean']} median {ln['median']} range {ln['min']}-{ln['max']}",
        f"chunks {stats['chunks']} ({stats['chunks_per_sentence']} per sentence), "
        f"{100 * stats['outside_share']:.1f}% of words outside any slot",
        f"slot types {stats['slot_types']}: " + ", ".join(f"{k} {v}" for k, v in kinds[:top])
        + (", ..." if len(kinds) > top else ""),
    ]
    if stats["intents"]:
        intents = list(stats["intents"].items())
        lines.append(f"intents {len(intents)}: " + ", ".join(f"{k} {v}" for k, v in intents[:top])
                     + (", ..." if len(intents) > top else ""))
    return "\n".join(lines)


def _part_stats(examples: list[Example]) -> dict[str, Any]:
    n = len(examples)
    tokens = sum(len(ex.source.split()) for ex in examples)
    n_chunks = sum(len(chunks(ex.meta["gold"].split(), ex.source.split())) for ex in examples)
    return {
        "sentences": n,
        "tokens": tokens,
        "words_per_sentence": round(tokens / n, 2) if n else 0.0,
        "chunks_per_sentence": round(n_chunks / n, 2) if n else 0.0,
    }


def slot_corpus_stats(corpus: Corpus) -> dict[str, Any]:
    """Sizes, slot types, chunks per sentence, and how much of the test side training never
    saw: the share of test chunks whose words are never a chunk in labeled + pool, overall
    and on the `unseen` test sentences."""
    train = corpus.labeled + corpus.pool
    everything = train + corpus.test
    types: Counter[str] = Counter()
    for ex in everything:
        types.update(kind for kind, _ in chunks(ex.meta["gold"].split(), ex.source.split()))
    train_values = {
        value for ex in train for _, value in chunks(ex.meta["gold"].split(), ex.source.split())
    }

    def unseen(examples: list[Example]) -> float:
        values = [v for ex in examples for _, v in chunks(ex.meta["gold"].split(), ex.source.split())]
        new = sum(v not in train_values for v in values)
        return round(100.0 * new / len(values), 2) if values else 0.0

    novel = [ex for ex in corpus.test if ex.meta.get("unseen")]
    return {
        "labeled": _part_stats(corpus.labeled),
        "pool": _part_stats(corpus.pool),
        "test": _part_stats(corpus.test),
        "slot_types": len(types),
        "chunks_by_type": dict(sorted(types.items())),
        "intents": dict(sorted(Counter(ex.meta["intent"] for ex in everything).items())),
        "domains": dict(sorted(Counter(ex.meta["domain"] for ex in everything).items())),
        "test_unseen_sentences": len(novel),
        "test_unseen_filler_share": unseen(corpus.test),
        "unseen_sentences_unseen_filler_share": unseen(novel),
    }
