"""The slot-filling task: validation, scores, prompts, answer repair, consensus, the per-input
tag grammar (checked exhaustively on small inputs, and with a real llama.cpp model under the
`llm` marker), the corpus readers and file evaluation with their one-line errors."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from pathlib import Path

import pytest

from mckd.errors import ConfigError, InputError
from mckd.examples import Example
from mckd.tasks import TASKS, get_task
from mckd.tasks.base import Repaired, Task, primary_metric
from mckd.tasks.slots import SlotsTask, repair_tags, tag_grammar
from mckd.teacher.prompts import HookOptions
from test_grammar import Gbnf

TASK = SlotsTask()
LABELS = ["O", "B-city", "I-city", "B-day", "I-day"]
WITH_LABELS = HookOptions(labels=LABELS)


def _count(text: str) -> int:
    return len(text.split())


def _ex(source: str, tags: str | None, **meta) -> Example:
    return Example("e", source, tags, meta)


def _bio_valid(tags: list[str]) -> bool:
    prev = "O"
    for t in tags:
        if t.startswith("I-") and prev[2:] != t[2:]:
            return False
        prev = t
    return True


def test_implements_the_protocol() -> None:
    assert isinstance(TASK, Task) and isinstance(TASKS["slots"], SlotsTask)
    assert get_task("slots") is TASKS["slots"]
    assert primary_metric(TASK).key == "f1"
    assert sum(m.primary for m in TASK.metrics) == 1
    assert TASK.student_kinds[0] == "tagger" and TASK.prompt_forms == ("tags", "interleaved")
    assert TASK.copies_words is False


@pytest.mark.parametrize(("source", "tags", "problem"), [
    ("fly to boston", "O O B-city", None),
    ("fly to boston", "O I-city I-city", None),  # conlleval reads it; gold data may have it
    ("fly to boston", "O B-city", "2 tags for 3 words"),
    ("fly to boston", "O O city", "tag 3 'city' is not O, B-type or I-type"),
    ("fly", "X-city", "tag 1 'X-city' is not O, B-type or I-type"),
    ("", "", "empty sentence"),
])
def test_validate(source: str, tags: str, problem: str | None) -> None:
    assert TASK.validate(_ex(source, tags)) == problem


def test_score_uses_meta_gold_and_counts_unusable_predictions() -> None:
    # pool examples carry a pseudolabel target; the gold is in meta["gold"]
    golds = [_ex("fly to boston", "O O O", gold="O O B-city"), _ex("on monday", None, gold="O B-day")]
    s = TASK.score(golds, ["O O B-city", "O B-day"])
    assert s["f1"] == 100.0 and s["valid"] == 2.0 and s["exact_match"] == 100.0
    s = TASK.score(golds, ["O O B-city", "O"])  # second: wrong count, scores as nothing found
    assert s["valid"] == 1.0 and s["recall"] == 50.0 and s["precision"] == 100.0
    assert s["accuracy"] == pytest.approx(60.0)  # 3 of 5 tokens, none from the broken one
    assert set(s) >= {m.key for m in TASK.metrics}
    assert TASK.has_gold(golds[1]) and not TASK.has_gold(_ex("a", "O"))


def test_all_o_baseline_and_fidelity() -> None:
    sources = ["fly to boston", "on monday"]
    preds = TASK.baselines()["all_o"](sources)
    assert preds == ["O O O", "O O"]
    golds = [_ex(sources[0], "O O B-city"), _ex(sources[1], "O B-day")]
    s = TASK.score(golds, preds)
    assert s["f1"] == 0.0 and s["accuracy"] == 60.0
    assert TASK.fidelity(["O O B-city", None], ["O O B-city", "O O"], sources) == 100.0
    assert TASK.fidelity(["O O B-city", "O B-day"], ["O O O", "O B-day"], sources) == \
        pytest.approx(200 / 3)


def test_prompt_outputs_and_label_set() -> None:
    ex = _ex("fly to new york", "O O B-city I-city")
    assert TASK.demo_output(ex, "tags") == "O O B-city I-city"
    assert TASK.demo_output(ex, "interleaved") == "fly O to O new B-city york I-city"
    assert "one tag per word" in TASK.instruction("tags")
    with pytest.raises(ConfigError, match="unknown prompt form"):
        TASK.instruction("trees")
    labels = TASK.label_set([ex], extra=["day", "I-music-item"])
    assert labels == ["O", "B-city", "I-city", "B-day", "I-day", "B-music-item", "I-music-item"]
    assert json.loads(json.dumps(labels)) == labels  # saved with a generating student
    # a pool example's pseudolabel (its target) counts, not the gold kept for scoring
    pool = _ex("fly to rome", "O O B-town", gold="O O B-city")
    assert TASK.label_set([pool]) == ["O", "B-town", "I-town"]
    assert TASK.label_set([_ex("on monday", None, gold="O B-day")]) == ["O", "B-day", "I-day"]
    assert TASK.answer_budget("a b c", "interleaved", _count) > TASK.answer_budget("a b c", "tags", _count) > 3
    assert TASK.answer_budget("a b c d e f", "tags", _count) > TASK.answer_budget("a b c", "tags", _count)


@pytest.mark.parametrize("form", ["tags", "interleaved"])
def test_read_answer_round_trip(form: str) -> None:
    ex = _ex("fly to new york on monday", "O O B-city I-city O B-day")
    raw = " " + TASK.demo_output(ex, form) + "\nInput: something else"
    rep = TASK.read_answer(raw, ex, form, WITH_LABELS)
    assert rep.valid and rep.text == ex.target and rep.problems == []


def test_read_answer_repairs_and_names_the_problems() -> None:
    ex = _ex("fly to new york", None)
    rep = TASK.read_answer("O B-cty I-city I-city O", ex, "tags", WITH_LABELS)
    assert rep.text == "O O B-city I-city"
    assert rep.problems == ["replaced 1 unknown tag with O", "dropped 1 extra tags",
                            "made 1 I- without B- into B-"]
    # without a label set only the shape of a tag is checked
    assert TASK.read_answer("B-cty O O O", ex, "tags", None) == Repaired("B-cty O O O")
    rep = TASK.read_answer("O city B-x O", ex, "tags", None)  # one token per word: kept in place
    assert rep.text == "O O B-x O" and rep.problems == ["replaced 1 unknown tag with O"]
    rep = TASK.read_answer("O city", ex, "tags", None)  # another count: what is not a tag goes
    assert rep.text == "O O O O" and rep.problems == ["added 3 missing tags as O"]
    rep = TASK.read_answer("fly O to O new york B-city", ex, "interleaved", WITH_LABELS)
    assert rep.text == "O O B-city O"
    assert rep.problems[0] == "answer words differ from the input"
    assert not TASK.read_answer("I cannot help with that.", ex, "tags", WITH_LABELS).valid


def test_repair_leaves_valid_tags_alone() -> None:
    assert repair_tags(["O", "B-x", "I-x"], 3) == (["O", "B-x", "I-x"], [])


def test_combine_vote_and_mbr() -> None:
    answers = [Repaired(a) for a in ("O B-city I-city", "O B-day I-city", "O B-day I-day", "O O")]
    answers.append(Repaired(None, ["no tags in the answer"]))
    rep, info = TASK.combine("a b c", answers, "vote")
    # per word: O, B-day (2 of 3), I-city (tie, first sample) -> I-city after B-day -> B-city
    assert rep == Repaired("O B-day B-city", ["made 1 I- without B- into B-"])
    assert info["usable"] == 3 and info["samples"] == 5 and info["bio_fixed"] == 1
    rep, info = TASK.combine("a b c", answers, "mbr")
    assert rep == Repaired("O B-day I-city") and info["chosen"] == 1
    # no usable sample: the first goes on as it is (its problems say why)
    broken = [Repaired(None, ["no tags in the answer"]), Repaired("O")]
    assert TASK.combine("a b c", broken, "vote") == (broken[0], {"samples": 2, "usable": 0})


@pytest.mark.parametrize("form", ["tags", "interleaved"])
def test_grammar_admits_exactly_the_valid_tag_sequences(form: str) -> None:
    words = ["fly", "to", "york"]
    g = Gbnf(tag_grammar(words, LABELS, form=form))
    for tags in itertools.product([*LABELS, "B-music"], repeat=len(words)):
        text = " ".join(f"{w} {t}" for w, t in zip(words, tags, strict=True)) if form == \
            "interleaved" else " ".join(tags)
        expected = _bio_valid(list(tags)) and "B-music" not in tags
        assert g.accepts(text) == expected, text
        assert g.accepts(" " + text) == expected
    assert not g.accepts("O O")  # too few
    assert not g.accepts("O O O O")


def test_grammar_samples_are_valid_answers() -> None:
    words = ["show", "me", "flights", "from", "new", "york", "to", "boston", "on", "monday"]
    g = Gbnf(tag_grammar(words, LABELS, form="interleaved"))
    rng = random.Random(0)
    ex = _ex(" ".join(words), None)
    for _ in range(200):
        rep = TASK.read_answer(g.sample(rng), ex, "interleaved", WITH_LABELS)
        assert rep.valid and rep.problems == [], rep


def test_grammar_bad_input() -> None:
    with pytest.raises(ConfigError, match="empty sentence"):
        tag_grammar([], LABELS)
    with pytest.raises(ConfigError, match="not O, B-type or I-type"):
        tag_grammar(["a"], ["O", "city"])
    assert TASK.grammar("a b", "tags", ["O"], None) is not None


def test_grammar_admits_a_leading_space_only_in_the_completion_style() -> None:
    completion = Gbnf(TASK.grammar("a b", "tags", LABELS, HookOptions(style="completion")))
    chat = Gbnf(TASK.grammar("a b", "tags", LABELS, HookOptions(style="chat")))
    assert completion.accepts(" O B-day") and completion.accepts("O B-day")
    assert chat.accepts("O B-day") and not chat.accepts(" O B-day")


# --------------------------------------------------------------------------- readers


def _seq_folder(folder: Path, rows: list[tuple[str, str, str]]) -> None:
    folder.mkdir(parents=True)
    (folder / "seq.in").write_text("".join(r[0] + "\n" for r in rows))
    (folder / "seq.out").write_text("".join(r[1] + "\n" for r in rows))
    (folder / "label").write_text("".join(r[2] + "\n" for r in rows))


def test_reads_the_atis_snips_layout(tmp_path: Path) -> None:
    _seq_folder(tmp_path / "train", [("fly to boston", "O O B-toloc.city_name", "atis_flight"),
                                     ("play jazz", "O B-genre", "PlayMusic")])
    _seq_folder(tmp_path / "valid", [("on monday", "O B-day", "atis_flight")])
    _seq_folder(tmp_path / "test", [("play miles davis", "O B-artist I-artist", "PlayMusic")])
    examples = TASK.read_corpus(tmp_path)
    assert [e.id for e in examples] == ["train-1", "train-2", "valid-1", "test-1"]
    first = examples[0]
    assert first.source == "fly to boston" and first.target == "O O B-toloc.city_name"
    assert first.meta == {"gold": first.target, "split": "train", "intent": "atis_flight"}
    one = TASK.read_corpus(tmp_path / "test")
    assert one[0].id == "1" and one[0].meta["intent"] == "PlayMusic"
    assert all(TASK.validate(e) is None for e in examples)


@pytest.mark.parametrize(("tags", "where", "problem"), [
    ("O B-x", "seq.out:2", "2 tags for 3 words"),
    ("O B-x foo", "seq.out:2", "tag 3 'foo' is not O, B-type or I-type"),
])
def test_atis_layout_errors_name_file_and_line(tmp_path: Path, tags: str, where: str,
                                               problem: str) -> None:
    _seq_folder(tmp_path / "d", [("a b", "O O", "i"), ("a b c", tags, "i")])
    with pytest.raises(InputError, match=f"{where}: {problem}"):
        TASK.read_corpus(tmp_path / "d")


def test_atis_layout_empty_sentence_and_unpaired_files(tmp_path: Path) -> None:
    _seq_folder(tmp_path / "d", [("a b", "O O", "i"), ("", "", "i"), ("a", "O", "i")])
    with pytest.raises(InputError, match=r"seq.in:2: empty sentence"):
        TASK.read_corpus(tmp_path / "d")
    _seq_folder(tmp_path / "e", [("a b", "O O", "i")])
    (tmp_path / "e" / "label").write_text("i\nj\n")
    with pytest.raises(InputError, match=r"label: 2 lines, but .*seq.in has 1"):
        TASK.read_corpus(tmp_path / "e")
    with pytest.raises(InputError, match=r"no seq\.in"):
        TASK.read_corpus(tmp_path / "e" / "..")  # a directory with neither layout


def test_reads_conll_columns(tmp_path: Path) -> None:
    path = tmp_path / "train.conll"
    path.write_text("-DOCSTART- -X- O O\n\nEU NNP B-ORG\nrejects VBZ O\n\n\n"
                    "Peter NNP B-PER\nBlackburn NNP I-PER\n")
    examples = TASK.read_corpus(path)
    assert [(e.source, e.target) for e in examples] == [
        ("EU rejects", "B-ORG O"), ("Peter Blackburn", "B-PER I-PER")]
    assert examples[1].meta["line"] == 7
    path.write_text("EU B-ORG\nrejects\n")
    with pytest.raises(InputError, match=r"train.conll:2: one column 'rejects'"):
        TASK.read_corpus(path)
    path.write_text("EU B-ORG\nrejects VBZ\n")
    with pytest.raises(InputError, match=r"train.conll:2: tag 'VBZ' is not O"):
        TASK.read_corpus(path)


def test_reads_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"id": "a", "source": "fly to boston", "target": "O O B-city"})
                    + "\n" + json.dumps({"id": "b", "source": "on monday", "target": None,
                                         "meta": {"gold": "O B-day"}}) + "\n")
    a, b = TASK.read_corpus(path)
    assert a.meta["gold"] == "O O B-city" and b.target is None and TASK.has_gold(b)
    path.write_text(json.dumps({"id": "a", "source": "fly to boston", "target": "O B-city"}) + "\n")
    with pytest.raises(InputError, match=r"data.jsonl:1: 2 tags for 3 words"):
        TASK.read_corpus(path)


def test_jsonl_reader_names_the_line_of_a_duplicate_id_or_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    line = json.dumps({"id": "a", "source": "to boston", "target": "O B-city"})
    path.write_text(line + "\n\n" + line + "\n")
    with pytest.raises(InputError, match=r"data.jsonl:3: duplicate id 'a' \(first on line 1\)"):
        TASK.read_corpus(path)
    path.write_text(line + "\n{not json\n")
    with pytest.raises(InputError, match=r"data.jsonl:2: invalid JSON"):
        TASK.read_corpus(path)


# --------------------------------------------------------------------------- evaluate files


def test_evaluate_files_matches_the_recorded_conlleval_output(test_data: Path) -> None:
    d = test_data / "conlleval"
    scores = TASK.evaluate_files(d / "gold.txt", d / "pred.txt", "conlleval")
    expected = json.loads((d / "expected.json").read_text())
    assert {k: scores[k] for k in expected["summary"]} == expected["summary"]
    assert set(scores) == CONTRACT_KEYS  # exactly the contract's keys (no intents given)
    assert scores["sentences"] == 300 and scores["per_type"]["music-item"]["found"] > 0
    rows = TASK.evaluate_files(d / "gold.txt", d / "pred.txt", "conlleval",
                               per_sentence=True)["per_sentence"]
    assert [r.pop("id") for r in rows] == list(range(1, 301))
    assert rows == expected["sentences"]


CONTRACT_KEYS = {"f1", "precision", "recall", "sentences", "tokens", "gold_chunks", "found_chunks",
                 "correct_chunks", "accuracy", "exact_match", "per_type"}


def test_evaluate_jsonl_with_intents(tmp_path: Path) -> None:
    gold, pred = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    gold.write_text("".join(json.dumps({"id": str(i), "source": s, "target": t,
                                        "meta": {"intent": it}}) + "\n"
                            for i, (s, t, it) in enumerate([("a b", "O B-x", "f"),
                                                            ("c", "B-y", "g")])))
    pred.write_text("".join(json.dumps({"id": str(i), "source": s, "target": t,
                                        "meta": {"predicted_intent": it}}) + "\n"
                            for i, (s, t, it) in enumerate([("a b", "O B-x", "f"),
                                                            ("c", "O", "f")])))
    scores = TASK.evaluate_files(gold, pred, "conlleval")
    assert set(scores) == CONTRACT_KEYS | {"intent_accuracy"}
    assert scores["intent_accuracy"] == 50.0 and scores["f1"] == 66.67
    assert scores["exact_match"] == 50.0 and scores["accuracy"] == 66.67


@pytest.mark.parametrize(("pred", "problem"), [
    ("O B-x\nO\n", r"pred.txt:2: 1 tags, but the gold sentence has 2"),
    ("O B-x\nO Q\n", r"pred.txt:2: tag 2 'Q' is not O, B-type or I-type"),
    ("O B-x\n\nO O\n", r"pred.txt:2: empty line"),
    ("O B-x\n", r"pred.txt: ends after 1 sentences, but .*gold.txt has 2"),
])
def test_evaluate_files_errors(tmp_path: Path, pred: str, problem: str) -> None:
    (tmp_path / "gold.txt").write_text("O B-x\nB-y I-y\n")
    (tmp_path / "pred.txt").write_text(pred)
    with pytest.raises(InputError, match=problem):
        TASK.evaluate_files(tmp_path / "gold.txt", tmp_path / "pred.txt", "conlleval")


def test_builtin_corpus_is_valid() -> None:
    corpus = TASK.builtin_corpus(5, 10, 10, seed=0)
    assert all(TASK.validate(e) is None for e in corpus.labeled + corpus.test)
    assert all(TASK.has_gold(e) and e.target is None for e in corpus.pool)


# --------------------------------------------------------------------------- a real LLM

SMOLLM = Path("/root/.cache/mckd/models/SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.mark.llm
@pytest.mark.timeout(600)
@pytest.mark.parametrize("form", ["tags", "interleaved"])
def test_llamacpp_answers_under_the_grammar_are_valid(form: str) -> None:
    """llama.cpp accepts the grammar and every answer it makes under it is a valid tag
    sequence over the input's words (no repair needed), for the tiny local model."""
    pytest.importorskip("xllamacpp")
    from mckd.teacher.backends.base import TeacherRequest
    from mckd.teacher.backends.llamacpp import LlamaCppBackend
    from mckd.teacher.config import TeacherConfig
    from mckd.teacher.models import ModelFetchError, model_path

    try:
        model = str(model_path("smollm2-135m"))
    except ModelFetchError:
        if not SMOLLM.exists():
            pytest.skip("smollm2-135m not fetched: run `mckd models fetch smollm2-135m`")
        model = str(SMOLLM)
    corpus = TASK.builtin_corpus(6, 0, 6, seed=5)
    labels = TASK.label_set(corpus.labeled)
    demos = "".join(f"Input: {d.source}\nOutput: {TASK.demo_output(d, form)}\n\n"
                    for d in corpus.labeled)
    backend = LlamaCppBackend(TeacherConfig(backend="llamacpp", model=model, context_size=2048,
                                            n_threads=2))
    try:
        for ex in corpus.test:
            prompt = f"{TASK.instruction(form)}\n\n{demos}Input: {ex.source}\nOutput:"
            req = TeacherRequest(prompt=prompt, max_tokens=TASK.answer_budget(ex.source, form, _count),
                                 grammar=TASK.grammar(ex.source, form, labels, None))
            raw = asyncio.run(backend.acomplete(req)).text
            rep = TASK.read_answer(raw, ex, form, HookOptions(labels=labels))
            assert rep.valid and rep.problems == [], (raw, rep)
            assert len(rep.text.split()) == len(ex.source.split())
    finally:
        backend.close()


def test_the_labelling_run_repairs_tags_outside_the_label_set(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The label set of the run's prompts (labeled tags plus task.labels) reaches read_answer:
    a tag outside it becomes O, and the ledger says so."""
    import mckd.teacher.backends as backends
    from mckd.examples import read_examples, write_examples
    from mckd.teacher.backends.fake import FakeBackend
    from mckd.teacher.config import TeacherConfig
    from mckd.teacher.label import label_files

    answers = {"fly to rome": "O O B-city", "play some jazz": "O O B-genre"}
    monkeypatch.setattr(backends, "build_backend", lambda c: FakeBackend(
        lambda r: answers[r.prompt.rsplit("Input: ", 1)[1].split("\n")[0]]))
    write_examples(tmp_path / "demos.jsonl", [_ex("fly to boston", "O O B-city")])
    write_examples(tmp_path / "pool.jsonl", [Example(f"u{i}", s) for i, s in enumerate(answers)])
    res = label_files(tmp_path / "pool.jsonl", tmp_path / "out",
                      TeacherConfig(backend="fake", k_demos=1, cache=False), task="slots",
                      labeled_path=tmp_path / "demos.jsonl", progress=False)
    assert [ex.target for ex in res.labels] == ["O O B-city", "O O O"]
    assert res.labels[1].meta["teacher"]["problems"] == ["replaced 1 unknown tag with O"]
    ledger = [json.loads(line) for line in (tmp_path / "out" / "ledger.jsonl").read_text().splitlines()]
    assert [rec.get("problems") for rec in ledger] == [[], ["replaced 1 unknown tag with O"]]
    # with the type in task.labels, the answer stands
    res = label_files(tmp_path / "pool.jsonl", tmp_path / "out2",
                      TeacherConfig(backend="fake", k_demos=1, cache=False), task="slots",
                      labeled_path=tmp_path / "demos.jsonl", extra_labels=["genre"], progress=False)
    assert [ex.target for ex in res.labels] == ["O O B-city", "O O B-genre"]
    assert read_examples(tmp_path / "out2" / "pseudolabels.jsonl")[1].meta["teacher"]["valid"]
