"""The one labelling path and the generating student follow the task's hooks: teacher settings
reach every request, samples are combined by the task, only the task's AnswerError becomes a
rejection, and input words are restored only into outputs that copy them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import mckd.teacher.backends as backends
from mckd.errors import ConfigError
from mckd.examples import Example, read_examples, write_examples
from mckd.tasks import TASKS
from mckd.tasks.base import AnswerError, Repaired
from mckd.tasks.text import TextTask
from mckd.teacher.backends.fake import FakeBackend, last_input
from mckd.teacher.config import TeacherConfig, teacher_config_from
from mckd.teacher.label import label_files, task_prompting

TREES = TASKS["constituency"]
TREE = "(S (NP (DT The) (NN cat)) (VP (VBD sat)) (. .))"
DEMOS = [Example(f"d{i}", "The cat sat .", "( ( ( The ) ( cat ) ) ( sat ) ( . ) )", {"tree": TREE})
         for i in range(3)]
POOL = [Example("u0", "A dog ran ."), Example("u1", "Cats sleep .")]


def requests(cfg: TeacherConfig, task: Any = TREES) -> list:
    build = task_prompting(task, cfg, DEMOS, POOL, count_tokens=lambda t: len(t.split()),
                           context_size=100_000).build
    return [build(ex, 0) for ex in POOL]


def test_teacher_settings_reach_the_tree_prompt_requests() -> None:
    default = requests(TeacherConfig(backend="fake", k_demos=2))
    assert all(r.top_p == 1.0 and r.stop == ("\n",) and r.prompt is not None for r in default)
    source = POOL[0].source  # the task's estimate: tokens (at least 1 per 2 characters) + 8 per word + 16
    assert default[0].max_tokens == max(len(source.split()), len(source) // 2) + 8 * 4 + 16
    cfg = TeacherConfig(backend="fake", k_demos=2, top_p=0.9, stop=["END"], max_tokens=77)
    for r in requests(cfg):
        assert (r.top_p, r.stop, r.max_tokens) == (0.9, ("END",), 77)
    chat = requests(TeacherConfig(backend="fake", k_demos=2, api="chat"))
    assert all(r.prompt is None and r.messages[-1][0] == "user" and r.stop == () for r in chat)


def test_teacher_settings_that_contradict_each_other_are_one_line_errors() -> None:
    for data, expected in [({"api": "chat", "prompt": {"style": "completion"}}, "api 'chat'"),
                           ({"max_tokens": 50, "prompt": {"max_tokens": 60}}, "set max_tokens only")]:
        with pytest.raises(ConfigError) as info:
            teacher_config_from({"backend": "fake", **data})
        assert expected in str(info.value) and "\n" not in str(info.value)


class VoteTask(TextTask):
    """Plain text whose answers are read in upper case, so the test can tell its hooks ran."""

    def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
        return super().read_answer(raw.upper(), example, form, options)


def label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: Any, respond: Any, **cfg: Any):
    monkeypatch.setattr(backends, "build_backend", lambda c: FakeBackend(respond))
    write_examples(tmp_path / "pool.jsonl", POOL)
    write_examples(tmp_path / "demos.jsonl", DEMOS)
    config = TeacherConfig(backend="fake", k_demos=1, cache=False, **cfg)
    return label_files(tmp_path / "pool.jsonl", tmp_path / "out", config, task=task,
                       labeled_path=tmp_path / "demos.jsonl", progress=False)


def test_samples_are_combined_by_the_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {0: "first", 1: "second", 2: "second"}
    res = label(tmp_path, monkeypatch, VoteTask(), lambda r: answers[r.sample_index],
                samples=3, temperature=0.7)
    assert [ex.target for ex in res.labels] == ["SECOND", "SECOND"]
    assert res.labels[0].meta["teacher"]["consensus"] == {"samples": 3, "usable": 3, "votes": 2}


def test_only_answer_errors_become_rejections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    class Picky(TextTask):
        def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
            if "dog" in raw:
                raise AnswerError("no dogs here")
            return Repaired(raw.strip())

    res = label(tmp_path, monkeypatch, Picky(), last_input)
    assert [ex.id for ex in res.labels] == ["u1"]
    rejected = read_examples(tmp_path / "out" / "rejected.jsonl")[0].meta["teacher"]
    assert rejected["reason"] == "invalid_output" and rejected["problems"] == ["no dogs here"]

    class Buggy(TextTask):
        def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
            return Repaired({"a": 1}["b"])  # a bug in the task, not bad model output

    with caplog.at_level(logging.ERROR), pytest.raises(KeyError):
        label(tmp_path / "bug", monkeypatch, Buggy(), last_input)
    assert "Traceback" in caplog.text and "KeyError" in caplog.text


def test_a_broken_task_module_is_not_an_unknown_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mckd.tasks

    def broken(name: str) -> Any:
        raise ImportError("No module named 'somedependency'")

    monkeypatch.setattr(mckd.tasks, "get_task", broken)
    with pytest.raises(ImportError, match="somedependency"):
        label(tmp_path, monkeypatch, "constituency", last_input)


def _tiny():
    from mckd.student.model import build_t5, train_tokenizer

    sources = ["a b c", "d", "a a a b", "c d"]
    tok = train_tokenizer([*sources, "( ( a ) ( b ) )", "X Y Z"], "word")
    return sources, build_t5("t5-tiny", tok, seed=3, d_model=32, d_ff=64, num_layers=1, num_heads=2)


@pytest.mark.parametrize("task", ["constituency", "text"])
def test_words_are_restored_only_where_outputs_copy_them(task: str) -> None:
    from mckd.student.config import Seq2SeqConfig
    from mckd.student.generate import decode_text, generate
    from mckd.student.seq2seq import Seq2SeqStudent

    sources, sm = _tiny()
    sm.meta.update(target_format="placeholder", placeholder="*", max_target_tokens=6)
    student = Seq2SeqStudent(Seq2SeqConfig(generate={"constrained": False}), TASKS[task])
    student.sm = sm
    got = [p.text for p in student.predict(sources)]
    raw = [p.text for p in generate(sm, sources, student.cfg.generate, default_max_new_tokens=int(6 * 1.25) + 8,
                                    separator="")]
    assert raw == [" ".join(decode_text(sm, sm.tokenizer(t)["input_ids"]).split()) for t in raw]
    if TASKS[task].copies_words:  # every word slot gets the input's words back
        assert all(set(g.split()) <= {"(", ")", *s.split()} for g, s in zip(got, sources, strict=True))
        assert got != raw
    else:  # nothing of the input is forced into a tag sequence or free text
        assert got == raw


class _Sized(TextTask):
    """Three answer tokens per input word, and no grammar."""

    def answer_budget(self, source: str, form: str, count_tokens: Any) -> int:
        return 3 * len(source.split())


def test_budget_and_grammar_come_from_the_task() -> None:
    reqs = requests(TeacherConfig(backend="fake", k_demos=1), _Sized())
    assert [r.max_tokens for r in reqs] == [12, 9] and all(r.grammar is None for r in reqs)
    assert reqs[0].prompt.startswith("Input: ")  # the text task has no instruction
