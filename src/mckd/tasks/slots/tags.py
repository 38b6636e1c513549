"""What a valid BIO tag sequence is, how a broken one is repaired, and the chunks it marks.
The slot task and the tagging student (student/tagger.py, student/bio.py) share these."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from mckd.examples import Example
from mckd.tasks.base import gold_outputs
from mckd.tasks.slots.conlleval import split_tag

TAG = re.compile(r"O|[BI]-\S+")
OUTSIDE = "O"


def tag_problem(tag: str) -> str | None:
    """Why `tag` is not a BIO tag (`O`, `B-type`, `I-type`), or None if it is one."""
    return None if TAG.fullmatch(tag) else f"tag {tag!r} is not O, B-type or I-type"


def sequence_problem(tags: Sequence[str], words: Sequence[str]) -> str | None:
    """What is wrong with gold tags for these words (count, shape, emptiness), or None.
    An `I-x` after `O` is allowed in gold data: conlleval reads it as a chunk start."""
    if not words:
        return "empty sentence"
    if len(tags) != len(words):
        return f"{len(tags)} tags for {len(words)} words"
    for i, tag in enumerate(tags, start=1):
        if not TAG.fullmatch(tag):
            return f"tag {i} {tag!r} is not O, B-type or I-type"
    return None


def as_valid(tags: Sequence[str]) -> list[str]:
    """The same chunks as conlleval reads them, as a valid sequence: an `I-x` that does not
    follow `B-x` or `I-x` starts a chunk, so it becomes `B-x`."""
    out: list[str] = []
    for tag in tags:
        prev = out[-1] if out else OUTSIDE
        if tag.startswith("I-") and prev not in (f"B-{tag[2:]}", tag):
            tag = f"B-{tag[2:]}"
        out.append(tag)
    return out


def is_valid(tags: Sequence[str]) -> bool:
    """Whether a tag sequence obeys the BIO constraints (`I-x` only after `B-x` or `I-x`)."""
    return all(TAG.fullmatch(t) for t in tags) and as_valid(tags) == list(tags)


def tag_set(sequences: Iterable[Sequence[str]], existing: Sequence[str] = ()) -> list[str]:
    """`existing` (kept in its order, so a trained layer's rows still mean the same tags), then
    `O` and, for every type seen in `sequences` as B-x or I-x, both B-x and I-x, sorted."""
    types = {tag[2:] for seq in sequences for tag in seq if tag != OUTSIDE}
    out = list(existing)
    seen = set(out)
    for tag in [OUTSIDE, *(f"{p}-{t}" for t in sorted(types) for p in "BI")]:
        if tag not in seen:
            out.append(tag)
            seen.add(tag)
    return out


def repair_tags(
    tags: Sequence[str], n: int, labels: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """Exactly `n` valid BIO tags from a model's tags, and the problems found: tags that are
    not O/B-x/I-x (or not in `labels`, when given) become O, extra tags are dropped, missing
    ones are O, and an `I-x` without `B-x` before it becomes `B-x`."""
    problems: list[str] = []
    known = set(labels) if labels else None
    unknown = sum(not TAG.fullmatch(t) or (known is not None and t not in known) for t in tags)
    if unknown:
        problems.append(f"replaced {unknown} unknown tag{'s' if unknown > 1 else ''} with O")
        tags = [t if TAG.fullmatch(t) and (known is None or t in known) else OUTSIDE for t in tags]
    if len(tags) > n:
        problems.append(f"dropped {len(tags) - n} extra tags")
        tags = tags[:n]
    elif len(tags) < n:
        problems.append(f"added {n - len(tags)} missing tags as O")
        tags = [*tags, *[OUTSIDE] * (n - len(tags))]
    out = as_valid(tags)
    fixed = sum(a != b for a, b in zip(out, tags, strict=True))
    if fixed:
        problems.append(f"made {fixed} I- without B- into B-")
    return out, problems


def gold_tags(example: Example) -> list[str] | None:
    """The example's gold tags: meta["gold"], else its target; None when neither is there."""
    gold = example.meta.get("gold") or example.target
    return gold.split() if gold else None


def tag_pairs(golds: Sequence[Example], preds: Sequence[str]) -> tuple[list[list[str]], list[list[str] | None]]:
    """Gold tags and scorable predicted tags (None: not one BIO tag per word), sentence by
    sentence."""
    gold = gold_outputs(golds, preds, gold_tags, "meta['gold']")
    return gold, [pred_tags(p, len(g)) for g, p in zip(gold, preds, strict=True)]


def pred_tags(pred: str | None, n: int) -> list[str] | None:
    """A prediction's tags, or None when it cannot be scored (wrong count, a non-BIO tag)."""
    tags = (pred or "").split()
    return tags if len(tags) == n and all(TAG.fullmatch(t) for t in tags) else None


def label_types(labels: Sequence[str]) -> list[str]:
    """The slot types named by a label set (`B-x` or `I-x` names type x)."""
    types = {split_tag(t)[1] for t in labels if t[:2] in ("B-", "I-")}
    return sorted(types)


def chunks(tags: list[str], words: list[str]) -> list[tuple[str, str]]:
    """(type, words) of each B-/I- chunk of a valid BIO sequence."""
    out: list[tuple[str, str]] = []
    for tag, word in zip(tags, words, strict=True):
        if tag.startswith("B-"):
            out.append((tag[2:], word))
        elif tag.startswith("I-") and out:
            out[-1] = (out[-1][0], f"{out[-1][1]} {word}")
    return out
