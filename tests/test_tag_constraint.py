"""Constrained decoding for slot filling: over real tokenizers (WordPiece, SentencePiece-style
BPE, bytes, word-level), the constraint admits exactly the valid BIO sequences of n tags from
the label set, spelled as training tokenizes them, including tags whose tokens are a prefix of
another tag's; and a generating student decodes valid tag sequences through it."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from mckd.student.model import train_tokenizer
from mckd.tasks import TASKS
from mckd.tasks.slots import is_valid
from mckd.tasks.slots.constraint import TagConstraint

TASK = TASKS["slots"]
# `B-playlist` is a token prefix of `B-playlist_owner` under most tokenizers
LABELS = ["O", "B-playlist", "I-playlist", "B-playlist_owner", "I-playlist_owner", "B-x.y", "I-x.y"]


def _tokenizers() -> dict[str, Any]:
    from transformers import AutoTokenizer

    from mckd.student.encoder import resolve_encoder

    text = " ".join(LABELS) + " hello"
    return {"wordpiece": AutoTokenizer.from_pretrained(resolve_encoder("minilm")),
            "byte": train_tokenizer([], "byte"),
            "bpe": train_tokenizer([text], "bpe", vocab_size=60),
            "word": train_tokenizer(["O B-playlist I-playlist B-x.y"], "word")}


TOKENIZERS = _tokenizers()


def _walk(c: TagConstraint, ids: list[int]) -> bool:
    """Whether the constraint lets a decoder write `ids` and then end."""
    s = c.start()
    for t in ids:
        if t not in c.next_tokens(s) or (s := c.step(s, t)) is None:
            return False
    return not c.next_tokens(s) or c.eos in c.next_tokens(s)


@pytest.mark.parametrize("space_first", [False, True])
@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_admits_exactly_the_valid_sequences(name: str, space_first: bool) -> None:
    tok = TOKENIZERS[name]
    c = TASK.decoding_constraint("a b c", LABELS, tok, space_first=space_first)
    assert isinstance(c, TagConstraint)
    accepted = 0
    for tags in itertools.product(LABELS, repeat=3):
        ids = tok((" " if space_first else "") + " ".join(tags), add_special_tokens=False)["input_ids"]
        spelled = tok.unk_token_id not in ids  # a word-level tokenizer cannot write unseen tags
        ok = _walk(c, ids)
        assert ok == (is_valid(tags) and spelled), (tags, ok)
        if ok:
            accepted += 1
            assert c.decode([*ids, c.eos], c.eos) == (" ".join(tags), True)
    assert accepted == (91 if name != "word" else 34)  # valid sequences of 3 over 7 labels
    first_o = tok((" " if space_first else "") + "O", add_special_tokens=False)["input_ids"]
    assert c.decode(first_o, c.eos) == ("O", False)


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_every_walk_ends_in_n_valid_tags(name: str) -> None:
    c = TASK.decoding_constraint("a b c d", LABELS, TOKENIZERS[name])
    rng = random.Random(0)
    for _ in range(200):
        s, out = c.start(), []
        while (allowed := c.next_tokens(s)) and (t := rng.choice(sorted(allowed))) != c.eos:
            out.append(t)
            s = c.step(s, t)
            assert s is not None
        assert len(out) < c.max_tokens()
        text, complete = c.decode([*out, c.eos], c.eos)
        assert complete and len(text.split()) == 4 and is_valid(text.split())


def test_no_label_set_means_no_constraint() -> None:
    assert TASK.decoding_constraint("a b", None, TOKENIZERS["byte"]) is None


def test_a_seq2seq_student_writes_valid_tags_for_every_input(tmp_path) -> None:
    """A tiny T5 trained a few steps on slot examples decodes, through the task's constraint,
    one valid tag from its label set per input word, however little it learned."""
    from mckd.student import build_student
    from mckd.student.config import Seq2SeqConfig

    corpus = TASK.builtin_corpus(24, 0, 6, seed=3)
    cfg = Seq2SeqConfig(model="t5-tiny", tokenizer="word",
                        train={"epochs": 1, "batch_size": 8, "fidelity_sample": 0, "threads": 1})
    student = build_student(cfg, TASK)
    student.fit(corpus.labeled, tmp_path / "s")
    labels = set(TASK.label_set(corpus.labeled))
    preds = student.predict([ex.source for ex in corpus.test])
    for ex, p in zip(corpus.test, preds, strict=True):
        tags = p.text.split()
        assert p.meta["complete"] and len(tags) == len(ex.source.split()), p
        assert is_valid(tags) and set(tags) <= labels
