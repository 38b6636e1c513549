"""The teacher's per-input tag grammar (GBNF): one valid BIO tag per word, from a label set."""

from __future__ import annotations

from collections.abc import Sequence

from mckd.errors import ConfigError
from mckd.tasks.slots.prompts import check_form
from mckd.tasks.slots.tags import TAG, label_types
from mckd.teacher.gbnf import gbnf_literal


def tag_grammar(
    words: Sequence[str], labels: Sequence[str], *, form: str = "tags", leading_space: bool = True
) -> str:
    """GBNF admitting exactly one tag per word, only `O` and the B-/I- tags of the label set's
    types, and `I-x` only right after `B-x` or `I-x`. The state is (word index, type of the
    previous tag or none), so every rule is finite and nothing repeats.

    Forms: "tags" (`O B-x I-x`) and "interleaved" (`w1 O w2 B-x w3 I-x`)."""
    if not words:
        raise ConfigError("grammar: cannot build a tag grammar for an empty sentence")
    check_form(form, "grammar: unknown form")
    for tag in labels:
        if not TAG.fullmatch(tag):
            raise ConfigError(f"grammar: label {tag!r} is not O, B-type or I-type")
    for w in words:
        if not w or any(c.isspace() for c in w):
            raise ConfigError(f"grammar: word {w!r} is empty or contains a space")
    types = label_types(labels)
    n = len(words)
    rules = [f"root ::= {'[ ]? ' if leading_space else ''}s0-o"]
    for i in range(n):
        # what comes before tag i: a space after the previous tag, and the word if interleaved
        sep = " " if i else ""
        pre = gbnf_literal(f"{sep}{words[i]} ") if form == "interleaved" else gbnf_literal(sep)
        pre = "" if pre == '""' else pre + " "

        def then(state: str, i: int = i) -> str:
            return f" s{i + 1}-{state}" if i + 1 < n else ""

        if types:  # b{i}: a B- tag at word i, each type leading to its own state
            rules.append(f"b{i} ::= " + " | ".join(
                gbnf_literal(f"B-{t}") + then(f"t{k}") for k, t in enumerate(types)))
        fresh = ['"O"' + then("o"), *([f"b{i}"] if types else [])]
        rules.append(f"s{i}-o ::= " + " | ".join(pre + alt for alt in fresh))
        for k, t in enumerate(types if i else ()):  # after B-t or I-t, I-t may follow
            inside = [*fresh, gbnf_literal(f"I-{t}") + then(f"t{k}")]
            rules.append(f"s{i}-t{k} ::= " + " | ".join(pre + alt for alt in inside))
    return "\n".join(rules) + "\n"
