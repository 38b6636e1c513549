from __future__ import annotations

import json

import pytest

from mckd.errors import InputError
from mckd.examples import Example, read_examples, write_examples


def test_round_trip(tmp_path):
    exs = [Example("a", "The cat sat", "( ( The ) ( cat ) ( sat ) )", {"tree": "(S ...)"}),
           Example("b", "Dogs bark .", None)]
    path = tmp_path / "x.jsonl"
    write_examples(path, exs)
    assert read_examples(path) == exs
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "source": "x"}\n{"id": "b"}\n', "x.jsonl:2: missing field 'source'"),
        ('{"id": "a", "source": "x"\n', "x.jsonl:1: invalid JSON"),
        ('{"id": "a", "source": "x"}\n{"id": "a", "source": "y"}\n', "x.jsonl:2: duplicate id 'a'"),
        ("[1, 2]\n", "x.jsonl:1: expected a JSON object"),
        ("\n\n", "x.jsonl: file is empty"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    with pytest.raises(InputError) as e:
        read_examples(path)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_non_utf8_and_missing(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(json.dumps({"id": "a", "source": "x"}).encode() + b"\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"x.jsonl:2: not valid UTF-8"):
        read_examples(path)
    with pytest.raises(InputError, match="no such file"):
        read_examples(tmp_path / "nope.jsonl")


def test_require_target(tmp_path):
    path = tmp_path / "x.jsonl"
    write_examples(path, [Example("a", "x", None)])
    with pytest.raises(InputError, match=r"x.jsonl:1: missing field 'target'"):
        read_examples(path, require_target=True)


def test_written_files_get_the_usual_mode(tmp_path):
    import os

    path = tmp_path / "x.jsonl"
    write_examples(path, [Example("a", "x", None)])
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
