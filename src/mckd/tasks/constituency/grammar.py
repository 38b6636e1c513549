"""Per-input GBNF grammars that make every teacher output a well-formed tree over the input words.

A grammar is written for one input sentence. It admits exactly the bracketings whose leaves are
the input words in order, each word in its own leaf bracket, and (by default) that form ONE
tree: the root opens before the first word and cannot close before the last one, and after the
last word exactly the brackets still open are closed. The state of the grammar is (word index,
number of open brackets), bounded by `max_depth`, so every rule is finite and no rule repeats
without bound (unbounded repetition made small models loop forever).

Two output forms:
- unlabeled (the paper's): `( ( ( The ) ( cat ) ) ( sat ) )`
- labeled (PTB, which LLMs saw in pretraining): `(S (NP (DT The) (NN cat)) (VP (VBD sat)))`,
  phrase labels and POS tags from fixed sets.

`root="forest"` drops the single-root constraint (brackets stay balanced, but the output may be
several trees side by side); it exists to measure what the constraint is worth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from mckd.errors import ConfigError
from mckd.teacher.gbnf import gbnf_choice, gbnf_literal

Form = Literal["unlabeled", "labeled"]
Root = Literal["single", "forest"]

# Penn Treebank phrase labels (function tags and indices are stripped by normalisation).
PTB_PHRASE_LABELS: tuple[str, ...] = (
    "S", "SBAR", "SBARQ", "SINV", "SQ", "ADJP", "ADVP", "CONJP", "FRAG", "INTJ", "LST", "NAC",
    "NP", "NX", "PP", "PRN", "PRT", "QP", "RRC", "UCP", "VP", "WHADJP", "WHADVP", "WHNP", "WHPP",
    "X",
)
# Penn Treebank POS tags, punctuation tags included.
PTB_POS_TAGS: tuple[str, ...] = (
    "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNS", "NNP",
    "NNPS", "PDT", "POS", "PRP", "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB",
    "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB", "#", "$", "``", "''", ",",
    ".", ":", "-LRB-", "-RRB-",
)


def _alternatives(name: str, what: str, values: Iterable[str]) -> str:
    vals = set(values)
    if not vals:
        raise ConfigError(f"grammar: the {what} set is empty")
    for v in sorted(vals, key=lambda v: (-len(v), v)):
        if not v or any(c.isspace() or c in "()" for c in v):
            raise ConfigError(f"grammar: {what} {v!r} may not be empty or contain spaces or brackets")
    return gbnf_choice(name, vals)


def _check_words(words: Sequence[str]) -> None:
    if not words:
        raise ConfigError("grammar: cannot build a tree grammar for an empty sentence")
    for w in words:
        if not w or any(c.isspace() for c in w) or "(" in w or ")" in w:
            raise ConfigError(
                f"grammar: word {w!r} contains a space or a bracket; escape brackets as -LRB-/-RRB-"
            )


def tree_grammar(
    words: Sequence[str],
    *,
    form: Form = "labeled",
    root: Root = "single",
    max_depth: int = 30,
    labels: Iterable[str] = PTB_PHRASE_LABELS,
    tags: Iterable[str] = PTB_POS_TAGS,
    leading_space: bool = True,
) -> str:
    """GBNF for the bracketings of `words` in the given form (see the module docstring).

    `max_depth` bounds the number of constituent brackets open at once (leaf brackets not
    counted). `leading_space` admits one optional space first, since completion models write
    `Output: (S ...` with a space after the colon.
    """
    _check_words(words)
    if max_depth < 1:
        raise ConfigError(f"grammar: max_depth must be at least 1, got {max_depth}")
    n = len(words)
    low = 1 if root == "single" else 0  # fewest brackets that stay open between words
    if form == "labeled":
        open_tok, close_tok = '"(" lab " "', '")"'
    elif form == "unlabeled":
        open_tok, close_tok = '"( "', '" )"'
    else:
        raise ConfigError(f"grammar: unknown form {form!r} (expected 'labeled' or 'unlabeled')")
    if root not in ("single", "forest"):
        raise ConfigError(f"grammar: unknown root mode {root!r} (expected 'single' or 'forest')")

    space = "[ ]? " if leading_space else ""
    # Single root: the root bracket is opened first and the depth never returns to 0 before
    # the last word, so that first bracket is the one closed last.
    start = f"{open_tok} o0-1" if root == "single" else "o0-0"
    rules = [f"root ::= {space}{start}"]
    if form == "labeled":
        rules.append(_alternatives("lab", "phrase label", labels))
        rules.append(_alternatives("tag", "POS tag", tags))
    for i, word in enumerate(words):
        w = gbnf_literal(word)
        leaf = f'"(" tag " " {w} ")"' if form == "labeled" else f'"( " {w} " )"'
        for d in range(low, max_depth + 1):
            # o{i}-{d}: before word i with d brackets open: open one more, or write the leaf.
            alts = [f"{open_tok} o{i}-{d + 1}"] if d < max_depth else []
            alts.append(f"{leaf} c{i}-{d}")
            rules.append(f"o{i}-{d} ::= " + " | ".join(alts))
            # c{i}-{d}: after word i with d open: close one, or go on to the next word.
            if i == n - 1:
                rules.append(f"c{i}-{d} ::= " + (" ".join([close_tok] * d) if d else '""'))
                continue
            alts = [f'" " o{i + 1}-{d}']
            if d - 1 >= low:
                alts.append(f"{close_tok} c{i}-{d - 1}")
            rules.append(f"c{i}-{d} ::= " + " | ".join(alts))
    return "\n".join(rules) + "\n"
