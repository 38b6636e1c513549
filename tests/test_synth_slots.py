"""The built-in slot corpus: deterministic, disjoint, valid BIO, many slot types, and a test
side whose `unseen` sentences use templates and open-list values training never saw."""

from __future__ import annotations

import json

import pytest

from mckd.examples import read_examples
from mckd.tasks.slots.stats import slot_corpus_stats
from mckd.tasks.slots.synth import (
    SLOT_LISTS,
    TEMPLATES,
    filler_lists,
    realize,
    synth_slot_corpus,
    write_slot_corpus,
)
from mckd.tasks.slots.tags import chunks


@pytest.fixture(scope="module")
def corpus():
    return synth_slot_corpus(40, 400, 200, seed=3)


def test_deterministic_for_a_seed() -> None:
    a = synth_slot_corpus(10, 30, 20, seed=7)
    b = synth_slot_corpus(10, 30, 20, seed=7)
    c = synth_slot_corpus(10, 30, 20, seed=8)
    assert a == b
    assert [e.source for e in a.test] != [e.source for e in c.test]


def test_sizes_disjoint_and_pool_keeps_gold(corpus) -> None:
    assert (len(corpus.labeled), len(corpus.pool), len(corpus.test)) == (40, 400, 200)
    every = corpus.labeled + corpus.pool + corpus.test
    assert len({e.id for e in every}) == len(every)
    assert len({e.source for e in every}) == len(every)
    assert all(e.target is None and e.meta["gold"] for e in corpus.pool)
    assert all(e.target == e.meta["gold"] for e in corpus.labeled + corpus.test)


def test_every_sentence_is_valid_bio_with_intent_and_domain(corpus) -> None:
    domains = {d for d, _ in TEMPLATES}
    for ex in corpus.labeled + corpus.pool + corpus.test:
        words, tags = ex.source.split(), ex.meta["gold"].split()
        assert len(words) == len(tags), ex
        prev = "O"
        for tag in tags:
            assert tag == "O" or tag[:2] in ("B-", "I-"), tag
            if tag.startswith("I-"):
                assert prev[2:] == tag[2:], ex  # I-x only after B-x or I-x
            prev = tag
        assert ex.meta["domain"] in domains and ex.meta["intent"]


def test_slot_types_and_shared_fillers() -> None:
    assert len(set(SLOT_LISTS)) >= 25
    lists = [SLOT_LISTS[t] for t in ("fromloc.city_name", "toloc.city_name", "city")]
    assert len(set(lists)) == 1
    open_lists, closed = filler_lists()
    for name in SLOT_LISTS.values():
        assert name in open_lists or name in closed, name


def test_templates_only_name_known_slots() -> None:
    import random

    rng = random.Random(0)
    values = {**filler_lists()[0], **filler_lists()[1]}
    for templates in TEMPLATES.values():
        for template in templates:
            for _ in range(5):
                words, tags = realize(template, values, rng)
                assert len(words) == len(tags) and any(t != "O" for t in tags), template


def test_unseen_test_sentences_use_new_templates_and_values(corpus) -> None:
    unseen = [e for e in corpus.test if e.meta["unseen"]]
    assert len(unseen) == 60  # 0.3 of 200
    train = corpus.labeled + corpus.pool
    train_values = {v for e in train for _, v in chunks(e.meta["gold"].split(), e.source.split())}
    open_lists = filler_lists()[0]
    open_types = {t for t, name in SLOT_LISTS.items() if name in open_lists}
    new_open = [v for e in unseen for t, v in chunks(e.meta["gold"].split(), e.source.split())
                if t in open_types and v not in train_values]
    all_open = [v for e in unseen for t, v in chunks(e.meta["gold"].split(), e.source.split())
                if t in open_types]
    # a held-out value can equal a seen value of another list ("new york" city/state,
    # "purple rain" song/album), nothing else
    assert len(new_open) >= 0.9 * len(all_open) > 0
    stats = slot_corpus_stats(corpus)
    assert stats["slot_types"] >= 25
    assert stats["unseen_sentences_unseen_filler_share"] > stats["test_unseen_filler_share"] > 0


def test_no_unseen_share_means_no_unseen_sentences() -> None:
    c = synth_slot_corpus(5, 20, 30, seed=1, unseen_share=0.0)
    assert not any(e.meta["unseen"] for e in c.test)
    assert slot_corpus_stats(c)["test_unseen_sentences"] == 0


def test_max_words_and_bad_arguments() -> None:
    c = synth_slot_corpus(5, 20, 10, seed=2, max_words=8)
    assert all(len(e.source.split()) <= 8 for e in c.labeled + c.pool + c.test)
    with pytest.raises(ValueError, match="unseen_share"):
        synth_slot_corpus(1, 1, 1, unseen_share=1.5)
    with pytest.raises(ValueError, match="distinct sentences"):
        synth_slot_corpus(1, 5, 1, max_words=2)


def test_written_corpus_reads_back(tmp_path, corpus) -> None:
    sizes = write_slot_corpus(tmp_path, corpus, {"generator": "synth_slots", "seed": 3})
    assert sizes == {"labeled": 40, "unlabeled": 400, "test": 200}
    assert read_examples(tmp_path / "test.jsonl") == corpus.test
    info = json.loads((tmp_path / "split.json").read_text())
    assert info["stats"]["test"]["sentences"] == 200 and info["seed"] == 3
