"""IOB1 gold (CoNLL-2003 style: `I-x` opens a chunk, `B-x` only between two chunks of one type).
The corpus readers, and so `mckd data split` and the runs made from its files, read it as IOB2
with the same chunks and say so once in the log; `mckd evaluate` scores two tag files
literally, as conlleval.pl does, and warns when the gold is IOB1 and the prediction is not."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from mckd import cli
from mckd.examples import Example, read_examples, write_examples
from mckd.tasks.slots import SlotsTask
from mckd.tasks.slots.conlleval import score_tag_sequences

TASK = SlotsTask()
# words, IOB1 tags, the same chunks in IOB2
ROWS = [("fly to new york", "O O I-city I-city", "O O B-city I-city"),
        ("Peter Blackburn Paul Smith", "I-PER I-PER B-PER I-PER", "B-PER I-PER B-PER I-PER"),
        ("on monday", "O B-day", "O B-day"),
        ("boston friday", "I-city I-day", "B-city B-day")]


def seq_folder(folder: Path, column: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "seq.in").write_text("".join(r[0] + "\n" for r in ROWS))
    (folder / "seq.out").write_text("".join(r[column] + "\n" for r in ROWS))
    return folder


def conll_file(path: Path) -> Path:
    blocks = ["\n".join(f"{w} NNP {t}" for w, t in zip(words.split(), tags.split(), strict=True))
              for words, tags, _ in ROWS]
    path.write_text("-DOCSTART- -X- O O\n\n" + "\n\n".join(blocks) + "\n")
    return path


def jsonl_file(path: Path) -> Path:
    write_examples(path, [Example(str(i), w, t if i % 2 else None, {"gold": t})
                          for i, (w, t, _) in enumerate(ROWS)])
    return path


@pytest.mark.parametrize("make", ["seq", "conll", "jsonl"])
def test_corpus_readers_give_iob2_with_the_same_chunks(tmp_path: Path, make: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    path = {"seq": lambda: seq_folder(tmp_path / "atis", 1),
            "conll": lambda: conll_file(tmp_path / "ner.conll"),
            "jsonl": lambda: jsonl_file(tmp_path / "data.jsonl")}[make]()
    with caplog.at_level(logging.INFO, logger="mckd"):
        examples = TASK.read_corpus(path)
    assert [ex.meta["gold"] for ex in examples] == [r[2] for r in ROWS]
    assert all(ex.target in (None, ex.meta["gold"]) for ex in examples)
    iob1 = [r[1].split() for r in ROWS]
    same = score_tag_sequences(iob1, [ex.meta["gold"].split() for ex in examples])
    assert same["f1"] == 100.0  # conlleval reads the same chunks in both
    notes = [r.getMessage() for r in caplog.records if "IOB1" in r.getMessage()]
    assert len(notes) == 1 and "3 of 4 sentences" in notes[0] and str(path) in notes[0]


def test_iob2_corpora_are_read_without_a_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mckd"):
        examples = TASK.read_corpus(seq_folder(tmp_path / "atis", 2))
    assert [ex.target for ex in examples] == [r[2] for r in ROWS]
    assert not [r for r in caplog.records if "IOB1" in r.getMessage()]


def test_data_split_writes_iob2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture) -> None:
    corpus = seq_folder(tmp_path / "atis", 1)
    monkeypatch.setattr(sys, "argv", ["mckd", "data", "split", "--task", "slots", "--corpus",
                                      str(corpus), "--labeled", "1", "--test", "1",
                                      "--out", str(tmp_path / "split")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code in (0, None), capsys.readouterr().err
    written = [ex for name in ("labeled", "unlabeled", "test")
               for ex in read_examples(tmp_path / "split" / f"{name}.jsonl")]
    assert len(written) == 4
    iob2 = {r[0]: r[2] for r in ROWS}
    assert all(ex.meta["gold"] == iob2[ex.source] for ex in written)
    assert all(ex.target in (None, iob2[ex.source]) for ex in written)


def test_evaluate_is_literal_and_warns_about_iob1_gold(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    gold, iob1, iob2 = tmp_path / "gold.txt", tmp_path / "iob1.txt", tmp_path / "iob2.txt"
    gold.write_text("".join(r[1] + "\n" for r in ROWS))
    iob1.write_text(gold.read_text())
    iob2.write_text("".join(r[2] + "\n" for r in ROWS))
    with caplog.at_level(logging.WARNING, logger="mckd"):
        scores = TASK.evaluate_files(gold, iob2, "conlleval")
    # conlleval.pl compares the tags as written: same chunks, fewer tags right
    assert scores["f1"] == 100.0 and scores["accuracy"] == 66.67 and scores["exact_match"] == 25.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    assert "IOB1" in warnings[0].getMessage() and "3 of 4" in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mckd"):
        assert TASK.evaluate_files(gold, iob1, "conlleval")["accuracy"] == 100.0
        TASK.evaluate_files(iob2, iob2, "conlleval")
    assert not caplog.records


def test_the_conlleval_parity_files_give_no_warning(test_data: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    d = test_data / "conlleval"
    with caplog.at_level(logging.WARNING, logger="mckd"):
        scores = TASK.evaluate_files(d / "gold.txt", d / "pred.txt", "conlleval")
    expected = json.loads((d / "expected.json").read_text())["summary"]
    assert {k: scores[k] for k in expected} == expected and not caplog.records
