"""Tree-constrained decoding: every output is one well-formed tree over exactly the input words."""

from __future__ import annotations

import random

import pytest
import torch

from mckd.student.config import GenerateConfig
from mckd.student.generate import generate
from mckd.student.model import build_t5, train_tokenizer
from mckd.tasks.constituency.constraint import (
    CLOSE,
    OPEN,
    TreeConstraint,
    TreeState,
    advance,
    allowed_units,
    max_tree_tokens,
)
from mckd.tasks.constituency.trees import parse_tree, tree_words

SENTENCES = ["The cat sat on the mat .", "Dogs bark", "Stocks fell sharply yesterday in heavy trading",
             "Hi", "A quick brown fox jumps over the lazy dog near the river bank today ."]
TARGETS = ["( ( ( The ) ( cat ) ) ( ( sat ) ( ( on ) ( ( the ) ( mat ) ) ) ) ( . ) )", "( ( Dogs ) ( bark ) )"]


def check_tree(text: str, words: list[str]) -> None:
    """Balanced, one root, each word alone in its brackets, the input words in order."""
    tokens = text.split()
    depth = 0
    for k, t in enumerate(tokens):
        depth += {"(": 1, ")": -1}.get(t, 0)
        assert depth >= 0, text
        assert depth > 0 or k == len(tokens) - 1, f"root closed early: {text}"
        if t not in "()":
            assert tokens[k - 1] == "(" and tokens[k + 1] == ")", text
    assert depth == 0, text
    assert tree_words(parse_tree(text)) == words


def random_walk(c: TreeConstraint, rng: random.Random) -> list[int]:
    s, toks = TreeState(), []
    while allowed := c.next_tokens(s):
        tok = rng.choice(sorted(allowed))
        toks.append(tok)
        s = c.step(s, tok)
        assert s is not None
    assert s.done
    return toks


@pytest.mark.parametrize("kind", ["word", "bpe", "byte"])
def test_any_allowed_path_is_a_valid_tree(kind: str) -> None:
    tok = train_tokenizer(SENTENCES[:3] + TARGETS, kind, vocab_size=300)  # small BPE: words split
    rng = random.Random(0)
    for sentence in SENTENCES:
        words = sentence.split()
        c = TreeConstraint(words, tok)
        for _ in range(30):
            toks = random_walk(c, rng)
            assert len(toks) <= max_tree_tokens(c)
            text, complete = c.decode(toks, eos_id=-1)
            assert complete
            check_tree(text, words)


@pytest.mark.parametrize("kind", ["word", "bpe", "byte"])
def test_unit_tokens_match_how_training_tokenizes_targets(kind: str) -> None:
    tok = train_tokenizer(SENTENCES + TARGETS, kind, vocab_size=300)
    for target in TARGETS:
        words = [t for t in target.split() if t not in "()"]
        c = TreeConstraint(words, tok)
        units, i = [], 0
        for k, t in enumerate(target.split()):
            if t == "(":
                units.extend(c.unit_ids(OPEN, first=k == 0))
            elif t == ")":
                units.extend(c.unit_ids(CLOSE, first=False))
            else:
                units.extend(c.word_ids[i])
                i += 1
        assert units == tok(target, add_special_tokens=False)["input_ids"]
        # and the gold target is in the language
        s = TreeState()
        for t in units:
            s = c.step(s, t)
            assert s is not None
        assert s.done


def test_root_cannot_close_before_the_last_word() -> None:
    s = TreeState()
    for unit in (OPEN, OPEN, 0, CLOSE, OPEN, 1, CLOSE):
        assert unit in allowed_units(s, 3)
        s = advance(s, unit)
    assert CLOSE not in allowed_units(s, 3)  # two children, but word 2 is still to come
    assert allowed_units(s, 2) == [CLOSE]   # with two words the tree can (must) end


def test_one_word_sentence_has_exactly_one_tree() -> None:
    tok = train_tokenizer(["Hi"], "word")
    c = TreeConstraint(["Hi"], tok)
    text, complete = c.decode(random_walk(c, random.Random(0)), eos_id=-1)
    assert (text, complete) == ("( Hi )", True)


@pytest.mark.parametrize("beams", [1, 3])
def test_untrained_model_writes_valid_trees(beams: int) -> None:
    tok = train_tokenizer(SENTENCES + TARGETS, "word")
    sm = build_t5("t5-tiny", tok, seed=1, d_model=32, d_ff=64, num_layers=1, num_heads=2)
    cfg = GenerateConfig(num_beams=beams, batch_size=2, constrained=True)
    preds = generate(sm, SENTENCES, cfg, constraint=lambda s: TreeConstraint(s.split(), tok))
    for sentence, p in zip(SENTENCES, preds, strict=True):
        check_tree(p.text, sentence.split())
        assert p.meta["complete"]
        assert p.mean_logprob is not None and p.mean_logprob < 0
    unconstrained = generate(sm, SENTENCES, cfg.model_copy(update={"constrained": False}),
                             default_max_new_tokens=20)
    assert any(p.text.split() != q.text.split() for p, q in zip(preds, unconstrained, strict=True))


def test_placeholder_words_are_restored_from_the_input() -> None:
    tok = train_tokenizer(["( ( * ) ( * ) )"], "word")  # the model knows no real word at all
    sm = build_t5("t5-tiny", tok, seed=0, d_model=32, d_ff=64, num_layers=1, num_heads=2)
    preds = generate(sm, SENTENCES, GenerateConfig(constrained=True), placeholder="*",
                     constraint=lambda s: TreeConstraint(s.split(), tok, placeholder="*"))
    for sentence, p in zip(SENTENCES, preds, strict=True):
        check_tree(p.text, sentence.split())


def test_processor_masks_everything_but_the_grammar() -> None:
    from mckd.student.constrained import TreeLogitsProcessor

    tok = train_tokenizer(SENTENCES, "word")
    c = TreeConstraint(["Dogs", "bark"], tok)
    proc = TreeLogitsProcessor([c], eos_id=tok.eos_token_id)
    start = torch.tensor([[0]])
    out = proc(start, torch.zeros((1, len(tok))))
    assert torch.isfinite(out).sum() == 1 and torch.isfinite(out[0, c.open[0]])
    step2 = proc(torch.tensor([[0, c.open[0]]]), torch.zeros((1, len(tok))))
    allowed = set(torch.nonzero(torch.isfinite(step2[0])).flatten().tolist())
    assert allowed == {c.open[0]}  # a two-word sentence cannot be a bare word
