"""Speculative decoding settings: how they are written, what reaches llama.cpp, and which of
them enter the teacher cache key (greedy: none; sampling: all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mckd.config import load_config
from mckd.errors import ConfigError
from mckd.teacher.backends.base import TeacherRequest
from mckd.teacher.cache import request_key
from mckd.teacher.config import TeacherConfig, load_teacher_config, parse_overrides
from mckd.teacher.label import model_id

REQ = TeacherRequest(prompt="Sentence: a b\nTree:", max_tokens=64, stop=("\n",), grammar="root ::= x")


@pytest.fixture
def ggufs(tmp_path: Path) -> tuple[str, str, str]:
    """Three stand-in model files: the key names a file, it never opens it."""
    paths = [tmp_path / f"{name}.gguf" for name in ("teacher", "draft", "other-draft")]
    for p in paths:
        p.write_bytes(b"GGUF")
    return str(paths[0]), str(paths[1]), str(paths[2])


def cfg(teacher: str, temperature: float = 0.0, **spec: Any) -> TeacherConfig:
    return TeacherConfig(backend="llamacpp", model=teacher, temperature=temperature,
                         speculative=spec)


def test_draft_model_alone_turns_on_draft_speculation() -> None:
    c = load_teacher_config(None, parse_overrides(["speculative.draft_model=qwen2.5-coder-0.5b"]))
    assert c.speculative.enabled and c.speculative.types() == ["draft"]
    assert not TeacherConfig().speculative.enabled  # off by default


def test_type_is_one_name_or_a_list() -> None:
    one = load_teacher_config(None, parse_overrides(["speculative.type=ngram_mod"]))
    assert one.speculative.types() == ["ngram_mod"]
    both = load_teacher_config(None, parse_overrides(
        ["speculative.type=[draft, ngram_simple]", "speculative.draft_model=d.gguf"]))
    assert both.speculative.types() == ["draft", "ngram_simple"]
    assert load_teacher_config(None, {"speculative": {"type": "none"}}).speculative.types() == []


def test_run_config_takes_teacher_speculative() -> None:
    run = load_config(None, ["teacher.speculative.draft_model=qwen2.5-coder-0.5b",
                             "teacher.speculative.n_max=4"])
    assert run.teacher.speculative.types() == ["draft"] and run.teacher.speculative.n_max == 4


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["speculative.type=draft"], "type 'draft' needs a draft_model"),
        (["speculative.type=lookahead"], "speculative.type.0"),
        (["speculative.type=ngram_mod", "speculative.draft_model=d.gguf"], "has no 'draft'"),
        (["speculative.type=[ngram_mod, ngram_mod]"], "lists a drafter twice"),
        (["speculative.n_max=0"], "speculative.n_max"),
        (["speculative.draft=x"], "speculative.draft"),
    ],
)
def test_bad_speculative_settings_are_one_line_errors(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_teacher_config(None, parse_overrides(overrides))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_greedy_keys_ignore_the_drafter(ggufs: tuple[str, str, str]) -> None:
    teacher, draft, other = ggufs
    plain = model_id(cfg(teacher))
    assert plain == "teacher.gguf"
    for spec in ({"draft_model": draft}, {"draft_model": other, "n_max": 3},
                 {"type": "ngram_mod", "ngram_n": 2}, {"type": ["draft", "ngram_simple"],
                                                       "draft_model": draft}):
        assert model_id(cfg(teacher, **spec)) == plain
        assert request_key(model_id(cfg(teacher, **spec)), REQ) == request_key(plain, REQ)


def test_sampled_keys_name_the_drafter(ggufs: tuple[str, str, str]) -> None:
    teacher, draft, other = ggufs
    sampled = TeacherRequest(prompt=REQ.prompt, temperature=0.7, seed=1)
    names = [model_id(cfg(teacher, 0.7)),
             model_id(cfg(teacher, 0.7, draft_model=draft)),
             model_id(cfg(teacher, 0.7, draft_model=other)),
             model_id(cfg(teacher, 0.7, draft_model=draft, n_max=3)),
             model_id(cfg(teacher, 0.7, type="ngram_mod")),
             model_id(cfg(teacher, 0.7, type="ngram_mod", ngram_n=2))]
    assert names[0] == "teacher.gguf"  # no speculation: the key as before
    assert len({request_key(n, sampled) for n in names}) == len(names)
    # the draft model is named by its file, not where it lives
    moved = Path(draft).parent / "elsewhere"
    moved.mkdir()
    (moved / "draft.gguf").write_bytes(b"GGUF")
    assert model_id(cfg(teacher, 0.7, draft_model=str(moved / "draft.gguf"))) == names[1]


def test_missing_draft_model_names_the_setting(ggufs: tuple[str, str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        model_id(cfg(ggufs[0], 0.7, draft_model="nope.gguf"))
    assert "teacher.speculative.draft_model: 'nope.gguf'" in str(info.value)


def test_llama_cpp_params_follow_the_settings(ggufs: tuple[str, str, str]) -> None:
    xllamacpp = pytest.importorskip("xllamacpp")
    from mckd.teacher.backends.llamacpp import _speculative_params

    teacher, draft, _ = ggufs
    c = cfg(teacher, type=["draft", "ngram_mod"], draft_model=draft, n_max=5, p_min=0.6,
            ngram_n=3)
    c.n_threads = 2
    params = xllamacpp.CommonParams()
    _speculative_params(params, c, xllamacpp)
    sp, kinds = params.speculative, xllamacpp.common_speculative_type
    assert list(sp.types) == [kinds.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE,
                              kinds.COMMON_SPECULATIVE_TYPE_NGRAM_MOD]
    assert sp.draft.mparams.path == draft and sp.draft.cpuparams.n_threads == 2
    assert sp.draft.n_max == 5 and sp.draft.p_min == pytest.approx(0.6)
    assert sp.ngram_mod.n_match == 3 and sp.ngram_mod.n_max == 5
    assert sp.ngram_simple.size_n == 3 and sp.ngram_simple.size_m == 5
