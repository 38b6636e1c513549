"""The decoding constraint of generating students (the `DecodingConstraint` protocol of
mckd.tasks.base): only a well-formed tree over exactly the input's words.

The output language is the unlabeled bracketing `( ( ( The ) ( cat ) ) ( sat ) )`: each word in
its own brackets, in input order; every other constituent has at least two children; one root.
A small state machine over *units* (open bracket, close bracket, word i) tracks the next word, a
stack of child counts of the open constituents and whether the last open bracket is still
undecided (word or constituent). A unit may be several tokens (subwords, bytes), so each beam
also carries the tokens of the unit it is in the middle of. Open brackets are allowed only
while enough words remain to give every open constituent two children, so every prefix the
constraint allows can be completed: the output is always valid, even from an untrained model.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mckd.tasks.base import accepted_steps

OPEN, CLOSE = -1, -2  # unit codes; a word unit is its index in the sentence (>= 0)


class TreeState(NamedTuple):
    i: int = 0                      # next word to place
    stack: tuple[int, ...] = ()     # children closed so far in each open constituent
    pending: bool = False           # an open bracket not yet known to hold a word or constituents
    in_word: bool = False           # a word was placed; its close bracket is due
    done: bool = False              # the root is closed; only EOS may follow
    partial: tuple[int, ...] = ()   # tokens of a unit written only in part


def words_needed(stack: tuple[int, ...], pending: bool) -> int:
    """Fewest words that still complete the tree (each constituent needs two children)."""
    need, carry = (1 if pending else 0), (1 if pending else 0)
    for count in reversed(stack):
        need += max(0, 2 - count - carry)
        carry = 1
    return need


def allowed_units(s: TreeState, n: int) -> list[int]:
    """Units that may come next and keep the tree completable."""
    if s.done:
        return []
    if s.in_word:
        return [CLOSE]
    left = n - s.i
    if s.pending:
        # Only a one-word sentence may be a bare word at the root.
        units = [s.i] if s.i < n and (s.stack or n == 1) else []
        # Opening again turns the pending bracket into a constituent with one more child to come.
        if words_needed((*s.stack, 0), True) <= left:
            units.append(OPEN)
        return units
    if not s.stack:  # nothing written yet
        return [OPEN]
    units = []
    if left > 0 and words_needed(s.stack, True) <= left:
        units.append(OPEN)
    if s.stack[-1] >= 2 and (len(s.stack) > 1 or left == 0):
        units.append(CLOSE)
    return units


def advance(s: TreeState, unit: int) -> TreeState:
    """The state after writing one whole unit (assumed allowed)."""
    if unit == OPEN:
        stack = (*s.stack, 0) if s.pending else s.stack
        return TreeState(s.i, stack, True, False, False)
    if unit == CLOSE:
        if s.in_word:  # closes a word's own brackets
            if not s.stack:
                return TreeState(s.i, (), False, False, True)
            return TreeState(s.i, (*s.stack[:-1], s.stack[-1] + 1), False, False, False)
        stack = s.stack[:-1]
        if not stack:
            return TreeState(s.i, (), False, False, True)
        return TreeState(s.i, (*stack[:-1], stack[-1] + 1), False, False, False)
    return TreeState(s.i + 1, s.stack, False, True, False)


class TreeConstraint:
    """The token ids of each unit for one input sentence."""

    def __init__(self, words: list[str], tokenizer: Any, *,
                 placeholder: str | None = None, space_first: bool = False) -> None:
        def ids(text: str) -> tuple[int, ...]:
            return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])

        self.words = words
        self.n = len(words)
        # A unit after another is written with its separating space: for byte and byte-level
        # BPE tokenizers the space is part of the token(s); for the others it is dropped.
        self.open_first = ids(" (" if space_first else "(")
        self.open = ids(" (")
        self.close = ids(" )")
        self.word_ids = [ids(" " + (placeholder or w)) for w in words]

    def start(self) -> TreeState:
        return TreeState()

    def max_tokens(self) -> int:
        return max_tree_tokens(self)

    def unit_ids(self, unit: int, first: bool) -> tuple[int, ...]:
        if unit == OPEN:
            return self.open_first if first else self.open
        if unit == CLOSE:
            return self.close
        return self.word_ids[unit]

    def next_tokens(self, s: TreeState) -> set[int]:
        first = not s.stack and not s.pending and not s.done
        k = len(s.partial)
        return {seq[k] for u in allowed_units(s, self.n)
                if len(seq := self.unit_ids(u, first)) > k and seq[:k] == s.partial}

    def step(self, s: TreeState, token: int) -> TreeState | None:
        """Feed one token; None if it leaves the language."""
        first = not s.stack and not s.pending and not s.done
        partial = (*s.partial, token)
        k = len(partial)
        matches = [u for u in allowed_units(s, self.n)
                   if self.unit_ids(u, first)[:k] == partial]
        if not matches:
            return None
        # A whole unit written commits it; words win a tie with a bracket spelled the same.
        for u in sorted(matches, reverse=True):
            if len(self.unit_ids(u, first)) == k:
                return advance(s, u)
        return s._replace(partial=partial)

    def decode(self, tokens: list[int], eos_id: int) -> tuple[str, bool]:
        """Text of a generated token sequence with the input's own words; and whether it is complete."""
        s, out = self.start(), []
        for before, s in accepted_steps(self, tokens, eos_id):
            if s.partial == ():  # a whole unit was written
                out.append(self.words[before.i] if s.i > before.i else "(" if s.pending else ")")
        return " ".join(out), s.done


def max_tree_tokens(c: TreeConstraint) -> int:
    """Longest token sequence the language allows for this input (binary tree, every word bracketed)."""
    brackets = (2 * c.n - 1) * (len(c.open) + len(c.close))
    return sum(len(w) for w in c.word_ids) + brackets + len(c.open_first) + 1
