"""Describe a treebank: sentence lengths, phrase labels, vocabulary, and how the trivial
right- and left-branching parsers score on it (the bar every parser must clear)."""

from __future__ import annotations

import statistics
from collections import Counter

from nltk import Tree

from mckd.tasks.constituency.task import ConstituencyTask
from mckd.tasks.constituency.trees import is_preterminal, tree_words

SHORT = 25  # FINDINGS.md measures real PTB on sentences of at most 25 tokens


def _baselines(trees: list[Tree]) -> dict[str, float]:
    task = ConstituencyTask()
    golds = [task.example(str(i), t) for i, t in enumerate(trees)]
    sources = [ex.source for ex in golds]
    out = {}
    for kind in ("right", "left"):
        scores = task.score(golds, task.baseline(sources, kind))
        out[f"{kind}_f1"] = round(scores["f1"], 1)
        out[f"{kind}_evalb_unlabeled_f1"] = round(scores["evalb_unlabeled_f1"], 1)
    return out


def treebank_stats(trees: list[Tree]) -> dict:
    """Numbers for DATA.md and for sizing up a user's treebank; lengths count every token."""
    if not trees:
        raise ValueError("no trees to describe")
    lengths = [len(tree_words(t)) for t in trees]
    labels = Counter(st.label() for t in trees for st in t.subtrees() if not is_preterminal(st))
    total = sum(labels.values())
    bins = Counter(min(n // 5 * 5, 40) for n in lengths)
    short = [t for t, n in zip(trees, lengths, strict=True) if n <= SHORT]
    return {
        "sentences": len(trees),
        "tokens": sum(lengths),
        "vocabulary": len({w for t in trees for w in tree_words(t)}),
        "length": {
            "mean": round(statistics.mean(lengths), 1),
            "median": statistics.median(lengths),
            "sd": round(statistics.pstdev(lengths), 1),
            "min": min(lengths),
            "max": max(lengths),
            "share_10_35": round(sum(10 <= n <= 35 for n in lengths) / len(lengths), 3),
            "histogram": {f"{b}-{b + 4}" if b < 40 else "40+": bins[b] for b in sorted(bins)},
        },
        "labels": {k: round(100 * v / total, 1) for k, v in labels.most_common()},
        "constituents_per_sentence": round(total / len(trees), 2),
        "baselines": _baselines(trees),
        f"baselines_len_le_{SHORT}": _baselines(short) if short else {},
    }


def format_stats(stats: dict) -> str:
    """The stats as a few plain-text lines."""
    ln = stats["length"]
    lines = [
        f"sentences {stats['sentences']}, tokens {stats['tokens']}, vocabulary {stats['vocabulary']}",
        f"length mean {ln['mean']} median {ln['median']} sd {ln['sd']} range {ln['min']}-{ln['max']}, "
        f"{100 * ln['share_10_35']:.1f}% within 10-35",
        "length histogram: " + ", ".join(f"{k}: {v}" for k, v in ln["histogram"].items()),
        "phrase labels (%): " + ", ".join(f"{k} {v}" for k, v in stats["labels"].items()),
    ]
    for key in ("baselines", f"baselines_len_le_{SHORT}"):
        b = stats[key]
        if b:
            lines.append(
                f"{key}: right-branching F1 {b['right_f1']} (EVALB unlabeled {b['right_evalb_unlabeled_f1']}), "
                f"left-branching F1 {b['left_f1']} (EVALB unlabeled {b['left_evalb_unlabeled_f1']})"
            )
    return "\n".join(lines)
