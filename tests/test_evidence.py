"""Bootstrap intervals and paired differences (mckd.evidence), checked by hand on tiny sets,
against a plain loop, and against the tasks' own scorers."""

from __future__ import annotations

import numpy as np
import pytest

import mckd.evidence as ev
from mckd.evidence import (
    Interval,
    Resamples,
    SentenceStats,
    describe_difference,
    f1_stats,
    mean_stats,
    paired_difference,
    score_interval,
    verdict,
)
from mckd.examples import Example
from mckd.tasks import get_task

# Three sentences; per sentence (correct, predicted, gold) chunks.
COUNTS = [(1, 2, 1), (0, 1, 2), (2, 2, 3)]
INDICES = [[0, 1, 2], [0, 0, 0], [2, 2, 1], [1, 1, 1]]


def test_resampled_corpus_f1_is_recomputed_from_summed_counts() -> None:
    stats = f1_stats(*zip(*COUNTS, strict=True))
    # by hand: resample sums (c, p, g) and F1 = 2PR / (P + R) = 200 c / (p + g)
    #   [0, 1, 2] -> (3, 5, 6)  -> 600 / 11
    #   [0, 0, 0] -> (3, 6, 3)  -> 600 / 9
    #   [2, 2, 1] -> (4, 5, 8)  -> 800 / 13
    #   [1, 1, 1] -> (0, 3, 6)  -> 0
    expected = [600 / 11, 600 / 9, 800 / 13, 0.0]
    assert Resamples(INDICES).replicates(stats) == pytest.approx(expected)
    assert stats.value() == pytest.approx(600 / 11)
    # averaging per-sentence F1s instead would give something else on the first resample
    per_sentence = [200 * c / (p + g) for c, p, g in COUNTS]
    assert np.mean(per_sentence) != pytest.approx(600 / 11)


def test_interval_is_the_central_share_of_the_resampled_values() -> None:
    stats = f1_stats(*zip(*COUNTS, strict=True))
    iv = score_interval([stats], Resamples(INDICES), level=0.5)
    # sorted replicates 0, 600/11, 800/13, 600/9; numpy's linear quantiles at 0.25 and 0.75
    # sit at positions 0.75 and 2.25 of the four
    low = 0.0 + 0.75 * (600 / 11 - 0.0)
    high = 800 / 13 + 0.25 * (600 / 9 - 800 / 13)
    assert (iv.value, iv.low, iv.high) == pytest.approx((600 / 11, low, high))


def test_a_per_sentence_mean_is_resampled_as_a_mean() -> None:
    stats = mean_stats([10.0, 20.0, 60.0])
    assert Resamples(INDICES).replicates(stats) == pytest.approx([30.0, 10.0, 140 / 3, 20.0])
    assert stats.value() == pytest.approx(30.0)
    assert stats.take([2, 0]).value() == pytest.approx(35.0)


def test_paired_difference_of_a_method_better_on_every_sentence() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(20, 80, size=200)
    worse, better = mean_stats(base), mean_stats(base + rng.uniform(0.5, 3.0, size=200))
    draws = Resamples.draw(200, 1000, seed=0)
    up = paired_difference([better], [worse], draws, 0.95)
    assert 0.5 < up.low <= up.value <= up.high < 3.0 and verdict(up) == "better"
    down = paired_difference([worse], [better], draws, 0.95)
    assert down.high < 0 and verdict(down) == "worse"
    same = paired_difference([worse], [worse], draws, 0.95)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0) and verdict(same) == "no difference shown"
    # chunk counts: one more correct chunk in every sentence
    gold = rng.integers(1, 5, size=200)
    correct = np.minimum(gold, rng.integers(0, 4, size=200))
    a = f1_stats(np.minimum(correct + 1, gold), gold, gold)
    b = f1_stats(correct, gold, gold)
    assert verdict(paired_difference([a], [b], draws, 0.95)) == "better"


def test_paired_beats_unpaired_when_sentences_vary_more_than_methods() -> None:
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 100, size=300)
    a, b = mean_stats(base + 1.0 + rng.normal(0, 1, 300)), mean_stats(base)
    draws = Resamples.draw(300, 1000, seed=3)
    ia, ib = score_interval([a], draws, 0.95), score_interval([b], draws, 0.95)
    assert ia.low < ib.high  # the separate intervals overlap
    assert paired_difference([a], [b], draws, 0.95).low > 0  # the paired one separates them


def test_seed_average_is_taken_per_resample() -> None:
    s1, s2 = mean_stats([10.0, 20.0, 60.0]), mean_stats([30.0, 20.0, 10.0])
    b = mean_stats([0.0, 0.0, 0.0])
    draws = Resamples(INDICES)
    diff = paired_difference([s1, s2], [b, b], draws, level=0.5)
    # per resample: mean of the two seeds' means (s2 per resample: 20, 30, 40/3, 20)
    per_resample = [(30 + 20) / 2, (10 + 30) / 2, (140 / 3 + 40 / 3) / 2, (20 + 20) / 2]
    assert diff.value == pytest.approx(25.0)
    assert (diff.low, diff.high) == pytest.approx(tuple(np.quantile(per_resample, [0.25, 0.75])))


def test_draw_is_seeded_and_vectorised_sums_match_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = Resamples.draw(50, 40, seed=7), Resamples.draw(50, 40, seed=7)
    assert np.array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, Resamples.draw(50, 40, seed=8).indices)
    counts = np.random.default_rng(0).integers(0, 9, size=(50, 3)).astype(float)
    loop = np.array([[sum(counts[i, k] for i in row) for k in range(3)] for row in a.indices])
    assert np.allclose(a.sums(counts), loop)
    monkeypatch.setattr(ev, "_CELLS_PER_CHUNK", 120)  # 2 rows at a time, nothing kept
    chunked = Resamples(a.indices)
    assert np.allclose(chunked.sums(counts), loop) and chunked._weights is None


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="lie in"):
        Resamples([[0, 3]], sentences=3)
    with pytest.raises(ValueError, match="resamples of 3"):
        Resamples(INDICES).sums(np.ones((4, 2)))
    with pytest.raises(ValueError, match="2-D"):
        SentenceStats(np.ones(3), lambda s: s)


def test_described_in_plain_words() -> None:
    assert describe_difference("MCKD-3", "vanilla KD", Interval(2.14, 0.43, 3.9)) == (
        "MCKD-3 \u2212 vanilla KD: +2.1 [+0.4, +3.9]: better")
    assert describe_difference("a", "b", Interval(0.7, -1.0, 2.5)).endswith(
        "+0.7 [\u22121.0, +2.5]: no difference shown")
    assert verdict(Interval(-2.0, -3.0, -0.1)) == "worse"


# --- the tasks' per-sentence statistics give back their scores ----------------------------------


def _noisy(golds: list[Example], preds: list[str], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [g.target if rng.random() < 0.4 else p for g, p in zip(golds, preds, strict=True)]


@pytest.mark.parametrize("name", ["constituency", "slots"])
def test_task_statistics_reproduce_its_scores(name: str) -> None:
    task = get_task(name)
    test = task.builtin_corpus(5, 5, 40, seed=3, max_words=14).test
    for i, make in enumerate(task.baselines().values()):
        preds = _noisy(test, make([ex.source for ex in test]), i)
        preds[0], preds[1] = "( ( not a tree", ""  # unreadable predictions count too
        scores, stats = task.score(test, preds), task.sentence_stats(test, preds)
        assert "f1" in stats
        for key, s in stats.items():
            assert s.sentences == len(test)
            assert s.value() == pytest.approx(scores[key], abs=1e-9), key


def test_labeled_evalb_statistics_reproduce_the_score() -> None:
    task = get_task("constituency")
    test = task.builtin_corpus(5, 5, 30, seed=4, max_words=14).test
    preds = [ex.meta["tree"] for ex in test]  # labeled predictions: EVALB's labeled F1 applies
    preds[3] = preds[3].replace("(NP", "(VP", 1)
    preds[5] = "(S (NN x))"
    scores, stats = task.score(test, preds), task.sentence_stats(test, preds)
    assert stats["evalb_f1"].value() == pytest.approx(scores["evalb_f1"])
    assert scores["evalb_f1"] < 100


def test_text_exact_match_statistics() -> None:
    task = get_task("text")
    golds = [Example(str(i), "x", t) for i, t in enumerate(["a b", "c", "d"])]
    stats = task.sentence_stats(golds, ["a  b", "c", "e"])
    assert stats["exact_match"].value() == pytest.approx(task.score(golds, ["a  b", "c", "e"])["exact_match"])
