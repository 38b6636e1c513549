"""The slot-filling commands: `mckd data synth-slots`, `mckd data split --task slots` on the
ATIS/Snips layout, CoNLL files and JSONL, and `mckd evaluate --task slots --json` (exactly the
contract's keys); bad input is one line with file and line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mckd import cli
from mckd.examples import read_examples

DATA = Path(__file__).parent / "data" / "conlleval"
CONTRACT = {"f1", "precision", "recall", "sentences", "tokens", "gold_chunks", "found_chunks",
            "correct_chunks", "accuracy", "exact_match", "per_type"}
ROWS = [("fly to boston", "O O B-toloc.city_name", "atis_flight"),
        ("play some jazz", "O O B-genre", "PlayMusic"),
        ("flights from denver to new york", "O O B-fromloc.city_name O B-toloc.city_name I-toloc.city_name",
         "atis_flight"),
        ("remind me to call mom", "O O O B-todo I-todo", "AddReminder"),
        ("weather in paris tomorrow", "O O B-city B-date", "GetWeather"),
        ("book a table for two", "O O O O B-party_size", "BookRestaurant")]


def mckd(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["mckd", *args])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out, err = capsys.readouterr()
    return e.value.code, out, err


def seq_folder(folder: Path, rows: list[tuple[str, str, str]]) -> None:
    folder.mkdir(parents=True)
    for name, col in (("seq.in", 0), ("seq.out", 1), ("label", 2)):
        (folder / name).write_text("".join(r[col] + "\n" for r in rows))


def test_synth_slots_writes_the_three_files_and_statistics(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "corpus"
    code, stdout, _ = mckd(monkeypatch, capsys, "data", "synth-slots", "--out", str(out),
                           "--labeled", "5", "--pool", "20", "--test", "10", "--seed", "3")
    assert code == 0 and "wrote 5 labeled, 20 unlabeled, 10 test" in stdout
    labeled, pool, test = (read_examples(out / f"{n}.jsonl") for n in ("labeled", "unlabeled", "test"))
    assert (len(labeled), len(pool), len(test)) == (5, 20, 10)
    assert all(ex.target is None and ex.meta["gold"] for ex in pool)
    info = json.loads((out / "split.json").read_text())
    assert info["sizes"] == {"labeled": 5, "unlabeled": 20, "test": 10}
    assert info["config"]["seed"] == 3 and info["stats"]["slot_types"] > 5
    # same seed, same corpus
    mckd(monkeypatch, capsys, "data", "synth-slots", "--out", str(tmp_path / "again"),
         "--labeled", "5", "--pool", "20", "--test", "10", "--seed", "3")
    assert (tmp_path / "again" / "test.jsonl").read_text() == (out / "test.jsonl").read_text()


def split(monkeypatch, capsys, corpus: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return mckd(monkeypatch, capsys, "data", "split", "--task", "slots", "--corpus", str(corpus),
                "--out", str(out), "--labeled", "2", "--test", "2", *extra)


def test_split_reads_the_atis_snips_directory_layout(tmp_path, monkeypatch, capsys) -> None:
    seq_folder(tmp_path / "atis" / "train", ROWS[:4])
    seq_folder(tmp_path / "atis" / "valid", ROWS[4:5])
    seq_folder(tmp_path / "atis" / "test", ROWS[5:])
    code, out, _ = split(monkeypatch, capsys, tmp_path / "atis", tmp_path / "s")
    assert code == 0 and "wrote 2 labeled, 2 unlabeled, 2 test" in out
    files = {n: read_examples(tmp_path / "s" / f"{n}.jsonl") for n in ("labeled", "unlabeled", "test")}
    everything = [ex for exs in files.values() for ex in exs]
    assert sorted(ex.source for ex in everything) == sorted(r[0] for r in ROWS)
    by_source = {r[0]: r for r in ROWS}
    for ex in everything:  # gold and intent kept; the pool's target dropped, its gold kept
        _, tags, intent = by_source[ex.source]
        assert ex.meta["gold"] == tags and ex.meta["intent"] == intent
        assert ex.target == (None if ex in files["unlabeled"] else tags)
    assert json.loads((tmp_path / "s" / "split.json").read_text())["task"] == "slots"
    # one such folder alone, and the held-out test folder as a separate test corpus
    code, out, _ = mckd(monkeypatch, capsys, "data", "split", "--task", "slots", "--corpus",
                        str(tmp_path / "atis" / "train"), "--out", str(tmp_path / "one"),
                        "--labeled", "1", "--test", "2")
    assert code == 0 and "wrote 1 labeled, 1 unlabeled, 2 test" in out
    assert {ex.source for ex in read_examples(tmp_path / "one" / "test.jsonl")} < {r[0] for r in ROWS[:4]}
    code, out, _ = mckd(monkeypatch, capsys, "data", "split", "--task", "slots", "--corpus",
                        str(tmp_path / "atis" / "train"), "--test-corpus", str(tmp_path / "atis" / "test"),
                        "--out", str(tmp_path / "sep"), "--labeled", "2")
    assert code == 0 and "wrote 2 labeled, 2 unlabeled, 1 test" in out


def test_split_reads_conll_and_jsonl(tmp_path, monkeypatch, capsys) -> None:
    conll = tmp_path / "train.conll"
    conll.write_text("-DOCSTART- O\n\n" + "\n\n".join(
        "\n".join(f"{w} {t}" for w, t in zip(words.split(), tags.split(), strict=True))
        for words, tags, _ in ROWS) + "\n")
    code, out, _ = split(monkeypatch, capsys, conll, tmp_path / "c")
    assert code == 0 and "wrote 2 labeled, 2 unlabeled, 2 test" in out
    jsonl = tmp_path / "all.jsonl"
    jsonl.write_text("".join(json.dumps({"id": str(i), "source": s, "target": t}) + "\n"
                             for i, (s, t, _) in enumerate(ROWS)))
    code, out, _ = split(monkeypatch, capsys, jsonl, tmp_path / "j")
    assert code == 0 and "wrote 2 labeled, 2 unlabeled, 2 test" in out
    test = read_examples(tmp_path / "j" / "test.jsonl")
    assert all(ex.target == ex.meta["gold"] for ex in test)


@pytest.mark.parametrize(("files", "message"), [
    ({"seq.in": "a b\na b c\n", "seq.out": "O O\nO B-x\n"}, "seq.out:2: 2 tags for 3 words"),
    ({"seq.in": "a b\n", "seq.out": "O X-y\n"}, "seq.out:1: tag 2 'X-y' is not O, B-type or I-type"),
    ({"seq.in": "a b\n\nc\n", "seq.out": "O O\nO\nO\n"}, "seq.in:2: empty sentence"),
])
def test_split_bad_corpus_is_one_line(tmp_path, monkeypatch, capsys, files: dict[str, str],
                                      message: str) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    code, _, err = split(monkeypatch, capsys, folder, tmp_path / "s")
    assert code == 2 and err.count("\n") == 1 and message in err


def test_evaluate_prints_exactly_the_contract(monkeypatch, capsys) -> None:
    code, out, _ = mckd(monkeypatch, capsys, "evaluate", "--task", "slots", "--metric", "conlleval",
                        "--gold", str(DATA / "gold.txt"), "--pred", str(DATA / "pred.txt"), "--json")
    scores = json.loads(out)
    assert code == 0 and set(scores) == CONTRACT
    expected = json.loads((DATA / "expected.json").read_text())["summary"]
    assert {k: scores[k] for k in expected} == expected
    code, out, _ = mckd(monkeypatch, capsys, "evaluate", "--task", "slots", "--gold", str(DATA / "gold.txt"),
                        "--pred", str(DATA / "pred.txt"))
    assert code == 0 and "f1" in out and "69.36" in out  # the table, conlleval the default metric


def test_evaluate_bad_input_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "g.txt").write_text("O B-x\n")
    (tmp_path / "p.txt").write_text("O B-x O\n")
    code, _, err = mckd(monkeypatch, capsys, "evaluate", "--task", "slots", "--gold", str(tmp_path / "g.txt"),
                        "--pred", str(tmp_path / "p.txt"), "--json")
    assert code == 2 and err.count("\n") == 1 and "p.txt:1: 3 tags, but the gold sentence has 2" in err
    code, _, err = mckd(monkeypatch, capsys, "evaluate", "--task", "slots", "--metric", "evalb",
                        "--gold", str(tmp_path / "g.txt"), "--pred", str(tmp_path / "g.txt"))
    assert code == 2 and "--metric must be one of conlleval" in err


def test_data_stats_describes_a_slot_corpus(tmp_path, monkeypatch, capsys) -> None:
    seq_folder(tmp_path / "atis", ROWS)
    code, stdout, _ = mckd(monkeypatch, capsys, "data", "stats", "--task", "slots",
                           "--corpus", str(tmp_path / "atis"), "--json")
    assert code == 0
    stats = json.loads(stdout)
    assert (stats["sentences"], stats["tokens"], stats["chunks"]) == (6, 26, 8)
    assert stats["chunks_by_type"]["toloc.city_name"] == 2 and stats["slot_types"] == 7
    assert stats["outside_share"] == round(16 / 26, 4)
    assert stats["intents"] == {"atis_flight": 2, "PlayMusic": 1, "AddReminder": 1,
                                "GetWeather": 1, "BookRestaurant": 1}
    code, stdout, _ = mckd(monkeypatch, capsys, "data", "stats", "--task", "slots",
                           "--corpus", str(tmp_path / "atis"))
    assert code == 0 and "chunks 8 (1.33 per sentence), 61.5% of words outside any slot" in stdout
    code, _, err = mckd(monkeypatch, capsys, "data", "stats", "--task", "slots")
    assert code != 0 and "--corpus" in err
