"""Describe a slot-filling corpus: sizes, lengths, slot types and how often each occurs, the
share of words outside any slot (what the all-`O` tagger gets right), and intents where the
corpus has them."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from mckd.examples import Example
from mckd.tasks.slots.synth import chunks


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
