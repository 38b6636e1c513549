"""`mckd evaluate`: the JSON contract, the table, and one-line errors for bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mckd import cli

DATA = Path(__file__).parent / "data"


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["mckd", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def evaluate(monkeypatch, capsys, gold: Path, pred: Path, metric: str, *extra: str):
    return run_cli(
        monkeypatch,
        capsys,
        "evaluate",
        "--task",
        "constituency",
        "--metric",
        metric,
        "--gold",
        str(gold),
        "--pred",
        str(pred),
        *extra,
    )


@pytest.fixture
def paper_files(tmp_path: Path) -> tuple[Path, Path]:
    pairs = [
        json.loads(x) for x in (DATA / "paper_metric" / "pairs.jsonl").read_text().splitlines()
    ]
    gold, pred = tmp_path / "gold.txt", tmp_path / "pred.txt"
    gold.write_text("".join(p["gold"] + "\n" for p in pairs))
    pred.write_text("".join(p["prediction"] + "\n" for p in pairs))
    return gold, pred


@pytest.mark.parametrize("which", ["labeled", "unlabeled"])
def test_evalb_json_matches_evalb_summary(monkeypatch, capsys, which):
    metric = "evalb" if which == "labeled" else "evalb-unlabeled"
    code, out, _ = evaluate(
        monkeypatch,
        capsys,
        DATA / "evalb" / "gold.txt",
        DATA / "evalb" / "test.txt",
        metric,
        "--json",
    )
    assert code == 0
    got = json.loads(out)
    want = json.loads((DATA / "evalb" / f"expected_{which}.json").read_text())["summary"]
    for block, figures in (("all", got), ("len<=40", got["len<=40"])):
        w = want[block]
        assert figures["f1"] == w["Bracketing FMeasure"]
        assert figures["precision"] == w["Bracketing Precision"]
        assert figures["recall"] == w["Bracketing Recall"]
        assert figures["sentences"] == w["Number of sentence"]
        assert figures["valid"] == w["Number of Valid sentence"]
        assert figures["errors"] == w["Number of Error sentence"]
        assert figures["skipped"] == w["Number of Skip  sentence"]
        assert figures["complete_match"] == w["Complete match"]
        assert figures["tag_accuracy"] == w["Tagging accuracy"]


def test_paper_metric_json(monkeypatch, capsys, paper_files):
    code, out, _ = evaluate(monkeypatch, capsys, *paper_files, "mckd", "--json")
    assert code == 0
    got = json.loads(out)
    want = json.loads((DATA / "paper_metric" / "expected.json").read_text())
    assert got["f1"] == round(want["mean_f1"], 4)
    assert got["sentences"] == 300 and got["errors"] == want["failed"] == 300 - got["valid"]
    assert got["tag_accuracy"] is None


def test_table_output(monkeypatch, capsys, paper_files):
    code, out, _ = evaluate(monkeypatch, capsys, *paper_files, "mckd")
    assert code == 0
    assert "f1" in out and "85.87" in out


def test_unlabeled_predictions_with_evalb_unlabeled(monkeypatch, capsys, tmp_path):
    gold = tmp_path / "gold.txt"
    gold.write_text("(S (NP (DT The) (NN cat)) (VP (VBD sat)) (. .))\n")
    pred = tmp_path / "pred.txt"
    pred.write_text("( ( ( The ) ( cat ) ) ( sat ) ( . ) )\n")
    code, out, _ = evaluate(monkeypatch, capsys, gold, pred, "evalb-unlabeled", "--json")
    assert code == 0
    got = json.loads(out)
    # EVALB counts the one-word VP, which the unlabeled form (unary chains collapsed) lacks
    assert (got["precision"], got["recall"], got["f1"]) == (100.0, 66.67, 80.0)
    assert got["tag_accuracy"] is None  # the prediction had no tags of its own
    code, _, err = evaluate(monkeypatch, capsys, gold, pred, "evalb")
    assert code == 2 and "pred.txt:1: tree has no phrase labels" in err


def bad_input_error(monkeypatch, capsys, tmp_path, gold_text, pred_text, metric="evalb"):
    gold, pred = tmp_path / "gold.txt", tmp_path / "pred.txt"
    for path, text in ((gold, gold_text), (pred, pred_text)):
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, out, err = evaluate(monkeypatch, capsys, gold, pred, metric, "--json")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    return err.strip()


TREE = "(S (NP (DT The) (NN cat)) (VP (VBD sat)) (. .))\n"


def test_different_lengths(monkeypatch, capsys, tmp_path):
    err = bad_input_error(monkeypatch, capsys, tmp_path, TREE * 3, TREE * 2)
    assert "pred.txt:2: ends after 2 trees" in err and "must pair line by line" in err


def test_empty_file(monkeypatch, capsys, tmp_path):
    err = bad_input_error(monkeypatch, capsys, tmp_path, "", TREE)
    assert err.endswith("gold.txt: file is empty")


def test_non_utf8(monkeypatch, capsys, tmp_path):
    err = bad_input_error(
        monkeypatch, capsys, tmp_path, TREE, TREE.encode() + b"(S (NN caf\xe9))\n"
    )
    assert "pred.txt:2: not valid UTF-8" in err


def test_unbalanced_gold(monkeypatch, capsys, tmp_path):
    err = bad_input_error(monkeypatch, capsys, tmp_path, TREE + "(S (NP (DT a) (NN b))\n", TREE * 2)
    assert "gold.txt:2: unbalanced brackets: 1 unclosed '('" in err


def test_unbalanced_prediction_is_an_error_for_evalb(monkeypatch, capsys, tmp_path):
    err = bad_input_error(
        monkeypatch, capsys, tmp_path, TREE, "(S (NP (DT The) (NN cat)) (VP (VBD sat)) (. .)))\n"
    )
    assert "pred.txt:1: unbalanced brackets: unexpected ')' at column 48" in err


def test_paper_metric_gold_needs_pos_tags(monkeypatch, capsys, tmp_path):
    err = bad_input_error(
        monkeypatch, capsys, tmp_path, "( ( The ) ( cat ) )\n", "( ( The ) ( cat ) )\n", "mckd"
    )
    assert "gold.txt:1: gold tree has no POS tags" in err


def test_unknown_metric(monkeypatch, capsys, tmp_path):
    err = bad_input_error(monkeypatch, capsys, tmp_path, TREE, TREE, "parseval")
    assert "--metric must be one of mckd, evalb, evalb-unlabeled" in err


def test_console_script_end_to_end(tmp_path):
    gold, pred = tmp_path / "gold.txt", tmp_path / "pred.txt"
    gold.write_text(TREE * 2)
    pred.write_text("( ( ( The ) ( cat ) ) ( sat ) ( . ) )\n( ( The ) ( cat ) ( sat ) ( . ) )\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mckd",
            "evaluate",
            "--gold",
            str(gold),
            "--pred",
            str(pred),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(done.stdout)
    assert got["metric"] == "mckd" and got["valid"] == 2
    assert got["f1"] == pytest.approx((100.0 + 200 / 3) / 2, abs=1e-4)  # P=1, R=1/2 -> F1=2/3


def test_mrg_gold_with_traces(monkeypatch, capsys, tmp_path):
    gold = tmp_path / "gold.mrg"
    gold.write_text(
        "( (S \n    (NP-SBJ-1 (DT The) (NN cat) )\n    (VP (VBD sat) \n"
        "      (NP (-NONE- *T*-1) ))\n    (. .) ))\n"
    )
    pred = tmp_path / "pred.txt"
    pred.write_text("( ( ( The ) ( cat ) ) ( sat ) ( . ) )\n")
    code, out, _ = evaluate(monkeypatch, capsys, gold, pred, "mckd", "--json")
    assert code == 0 and json.loads(out)["f1"] == 100.0
    labeled = tmp_path / "pred_labeled.txt"
    labeled.write_text("(S (NP (DT The) (NN cat)) (VP (VBD sat)) (. .))\n")
    code, out, _ = evaluate(monkeypatch, capsys, gold, labeled, "evalb", "--json")
    assert code == 0 and json.loads(out)["f1"] == 100.0  # EVALB drops traces and TOP itself


def test_per_sentence_rows(monkeypatch, capsys, paper_files):
    code, out, _ = evaluate(
        monkeypatch,
        capsys,
        DATA / "evalb" / "gold.txt",
        DATA / "evalb" / "test.txt",
        "evalb",
        "--json",
        "--sentences",
    )
    assert code == 0
    rows = json.loads(out)["per_sentence"]
    want = json.loads((DATA / "evalb" / "expected_labeled.json").read_text())["sentences"]
    assert [{k: v for k, v in r.items() if k != "problem"} for r in rows] == want
    assert all((r["problem"] is None) == (r["status"] == 0) for r in rows)
    code, out, _ = evaluate(monkeypatch, capsys, *paper_files, "mckd", "--json", "--sentences")
    rows = json.loads(out)["per_sentence"]
    want = json.loads((DATA / "paper_metric" / "expected.json").read_text())["per_sentence"]
    assert [(r["f1"], r["success"]) for r in rows] == [(w["f1"], w["success"]) for w in want]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("metric", ["mckd", "evalb-unlabeled"])
def test_jsonl_predictions_are_read_from_their_target(monkeypatch, capsys, tmp_path, metric):
    """`mckd predict` and the run's students write Example JSONL that keeps the input's meta,
    gold tree included: the prediction is the target, never meta['tree'], and a missing one
    is an error naming the line."""
    gold_tree = TREE.strip()
    gold = _jsonl(tmp_path / "gold.jsonl", [{"id": "1", "source": "The cat sat .",
                                              "target": "( ( The ) ( cat ) ( sat ) ( . ) )",
                                              "meta": {"tree": gold_tree}}])
    pred_row = {"id": "1", "source": "The cat sat .", "target": "( ( ( The ) ( cat ) ) ( sat ) ( . ) )",
                "meta": {"tree": gold_tree}}
    pred = _jsonl(tmp_path / "pred.jsonl", [pred_row])
    text_gold, text_pred = tmp_path / "gold.txt", tmp_path / "pred.txt"
    text_gold.write_text(TREE)
    text_pred.write_text(pred_row["target"] + "\n")
    code, out, _ = evaluate(monkeypatch, capsys, text_gold, text_pred, metric, "--json")
    want = json.loads(out)
    assert want["valid"] == 1 and want["f1"] > 0
    for g in (text_gold, gold):  # the same figures as the one-tree-per-line files
        code, out, err = evaluate(monkeypatch, capsys, g, pred, metric, "--json")
        assert code == 0, err
        assert json.loads(out) == want
    for empty in ("", None):
        _jsonl(pred, [{**pred_row, "target": empty}])
        code, out, err = evaluate(monkeypatch, capsys, gold, pred, metric, "--json")
        assert code == 2 and out == "" and err.count("\n") == 1
        assert "pred.jsonl:1: no predicted tree" in err
