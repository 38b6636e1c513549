"""Decoding that can only write exactly n valid BIO tags from a label set (slot filling).

The output is the tags joined by spaces, `O B-fromloc.city_name I-fromloc.city_name`, one per
input word. Each tag is a unit of one or more tokens: the first written as the tokenizer
encodes it at the start of the output (with a leading space for decoder-only models), every
later one with its separating space (byte-level BPE and SentencePiece keep the space in the
token; WordPiece drops it). The tags allowed next are `O` and every `B-x`, plus `I-x` right
after `B-x` or `I-x`; their token sequences form a trie, so the allowed next tokens are the
children of the node the tokens of the current tag have reached.

One tag's tokens can be a prefix of another's (`B-playlist`, `B-playlist_owner`). Such a tag
is held open: the next token either continues the longer tag or starts the next tag (for the
last tag: EOS), and decides. A tag that nothing extends is committed at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from mckd.tasks.base import accepted_steps
from mckd.tasks.slots.tags import OUTSIDE, label_types

ROOT = 0


@dataclass
class Trie:
    """Token sequences of tags: `children[node]` maps a token to the next node; `tag[node]`
    is the tag whose tokens end there (None inside a tag)."""

    children: list[dict[int, int]] = field(default_factory=lambda: [{}])
    tag: list[str | None] = field(default_factory=lambda: [None])

    def add(self, tag: str, ids: Sequence[int]) -> None:
        node = ROOT
        for tok in ids:
            nxt = self.children[node].get(tok)
            if nxt is None:
                nxt = len(self.children)
                self.children[node][tok] = nxt
                self.children.append({})
                self.tag.append(None)
            node = nxt
        # two tags with the same tokens (an uncased tokenizer, `B-PER`, `B-per`): the first wins
        if node != ROOT and self.tag[node] is None:
            self.tag[node] = tag


@dataclass
class TagVocab:
    """Everything about a label set under one tokenizer: a trie of the tags that may open a
    chunk or stay outside (`O`, `B-x`) for the first position and one for later positions,
    and the tokens of each `I-x` (never first)."""

    first: Trie
    later: Trie
    inside: dict[str, tuple[int, ...]]  # type x -> tokens of " I-x"
    longest: int  # most tokens of one tag


@lru_cache(maxsize=8)
def tag_vocab(labels: tuple[str, ...], tokenizer: Any, space_first: bool) -> TagVocab:
    """The tries for a label set (cached: a student decodes many inputs with one label set)."""
    def ids(text: str) -> tuple[int, ...]:
        return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])

    def spelled(ids: tuple[int, ...]) -> bool:
        # a word-level tokenizer writes a tag it never saw as <unk>: such a tag cannot be output
        return bool(ids) and tokenizer.unk_token_id not in ids

    types = label_types(labels)
    first, later = Trie(), Trie()
    longest = 0
    for tag in [OUTSIDE, *(f"B-{t}" for t in types)]:
        a, b = ids((" " if space_first else "") + tag), ids(" " + tag)
        if spelled(a) and spelled(b):
            first.add(tag, a)
            later.add(tag, b)
            longest = max(longest, len(a), len(b))
    inside = {t: i for t in types if spelled(i := ids(f" I-{t}"))}
    longest = max([longest, *(len(v) for v in inside.values())])
    return TagVocab(first, later, inside, longest)


class TagState(NamedTuple):
    tags: tuple[str, ...] = ()  # tags committed so far
    node: int = ROOT            # node of the current tag's tokens in the opening trie; -1: off it
    inside: int = 0             # tokens of the current `I-x` written; -1: off it (or none allowed)


def _type(tag: str) -> str:
    return "" if tag == OUTSIDE else tag[2:]


class TagConstraint:
    """The language of `n` valid BIO tags from `labels`, over a tokenizer's ids (the
    `DecodingConstraint` protocol of mckd.tasks.base)."""

    def __init__(self, n: int, labels: Sequence[str], tokenizer: Any, *,
                 space_first: bool = False) -> None:
        self.n = n
        self.vocab = tag_vocab(tuple(labels), tokenizer, space_first)
        eos = tokenizer.eos_token_id
        # BERT-style tokenizers end a sequence with [SEP] (as the student model does)
        self.eos: int | None = eos if eos is not None else tokenizer.sep_token_id

    def start(self) -> TagState:
        return self._fresh(())

    def max_tokens(self) -> int:
        return self.n * self.vocab.longest + 1

    def _fresh(self, tags: tuple[str, ...]) -> TagState:
        """The state before the next tag, after `tags`."""
        if len(tags) >= self.n:
            return TagState(tags, -1, -1)
        prev = _type(tags[-1]) if tags else ""
        return TagState(tags, ROOT, 0 if prev in self.vocab.inside else -1)

    def _trie(self, s: TagState) -> Trie:
        return self.vocab.first if not s.tags else self.vocab.later

    def _inside_ids(self, s: TagState) -> tuple[int, ...]:
        return self.vocab.inside[_type(s.tags[-1])] if s.inside >= 0 else ()

    def _written(self, s: TagState) -> str | None:
        """The tag the current tokens spell in full, if any (it may still be extended)."""
        if s.node > ROOT and (tag := self._trie(s).tag[s.node]) is not None:
            return tag
        inside = self._inside_ids(s)
        if s.inside > 0 and s.inside == len(inside):
            return f"I-{_type(s.tags[-1])}"
        return None

    def _continuations(self, s: TagState) -> set[int]:
        toks = set(self._trie(s).children[s.node]) if s.node >= 0 else set()
        inside = self._inside_ids(s)
        if 0 <= s.inside < len(inside):
            toks.add(inside[s.inside])
        return toks

    def next_tokens(self, s: TagState) -> set[int]:
        toks = self._continuations(s)
        written = self._written(s)
        if written is not None:  # held open: the next tag (or the end) may follow instead
            after = self._fresh((*s.tags, written))
            if len(after.tags) < self.n:
                toks |= self._continuations(after)
            elif self.eos is not None:
                toks.add(self.eos)
        return toks

    def step(self, s: TagState, token: int) -> TagState | None:
        """Feed one token; None if it leaves the language."""
        if token in self._continuations(s):
            trie = self._trie(s)
            node = trie.children[s.node].get(token, -1) if s.node >= 0 else -1
            inside = self._inside_ids(s)
            ins = s.inside + 1 if 0 <= s.inside < len(inside) and inside[s.inside] == token else -1
            nxt = TagState(s.tags, node, ins)
            written = self._written(nxt)
            if written is not None and not self._continuations(nxt):
                return self._fresh((*s.tags, written))  # nothing extends it: commit
            return nxt
        written = self._written(s)
        if written is None or len(s.tags) + 1 >= self.n:
            return None
        return self.step(self._fresh((*s.tags, written)), token)

    def decode(self, tokens: Sequence[int], eos_id: int) -> tuple[str, bool]:
        """The tags of generated tokens, spelled as in the label set, and whether all n are there."""
        s = self.start()
        for _, after in accepted_steps(self, tokens, eos_id):
            s = after
        tags = s.tags
        written = self._written(s)
        if written is not None and len(tags) < self.n:
            tags = (*tags, written)
        return " ".join(tags), len(tags) == self.n
