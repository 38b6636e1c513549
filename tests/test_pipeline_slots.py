"""The whole `mckd run` pipeline on slot filling: the built-in slot corpus, a fake teacher that
answers with noisy tags (a dropped chunk, an unknown tag, one answer with no tags), and the real
tagging student on a tiny random BERT. Every method runs; results.json carries conlleval F1 as
each method's primary test metric, the all-O baseline and pseudolabel quality against the
pool's gold; the report shows the task's columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mckd.teacher.backends as backends
from mckd.config import config_from_dict
from mckd.distill.pipeline import run_pipeline
from mckd.examples import read_examples
from mckd.tasks import TASKS
from mckd.tasks.slots import is_valid
from mckd.teacher.backends.base import TeacherRequest
from mckd.teacher.backends.fake import FakeBackend, last_input

TASK = TASKS["slots"]
CONLLEVAL = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "conlleval"
SIZES = {"n_labeled": 8, "n_unlabeled": 16, "n_test": 8, "seed": 1, "max_len": 12}


def noisy(gold: str, k: int) -> str:
    """The gold tags as a weak teacher might give them: the last chunk missed, and every third
    sentence an unknown tag on its first word; every seventh answer is not tags at all."""
    if k % 7 == 3:
        return "I am not sure what you mean."
    tags = gold.split()
    starts = [i for i, t in enumerate(tags) if t.startswith("B-")]
    if starts:
        i = starts[-1]
        tags[i] = "O"
        while i + 1 < len(tags) and tags[i + 1].startswith("I-"):
            i += 1
            tags[i] = "O"
    if k % 3 == 0:
        tags[0] = "B-not_a_slot"
    return " ".join(tags)


@pytest.fixture
def teacher(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], list[TeacherRequest]]:
    """The fake teacher's answer for every sentence of the corpus (by sentence), and the
    requests it receives."""
    corpus = TASK.builtin_corpus(SIZES["n_labeled"], SIZES["n_unlabeled"], SIZES["n_test"],
                                 seed=SIZES["seed"], max_words=SIZES["max_len"])
    answers = {ex.source: noisy(ex.meta["gold"], k)
               for k, ex in enumerate(corpus.labeled + corpus.pool + corpus.test)}

    def respond(request: TeacherRequest) -> str:
        return " " + answers[last_input(request)]

    requests: list[TeacherRequest] = []

    def build(cfg: Any) -> FakeBackend:
        backend = FakeBackend(respond)
        backend.calls = requests  # every backend of the run records into one list
        return backend

    monkeypatch.setattr(backends, "build_backend", build)
    return answers, requests


def config(tmp_path: Path, encoder: str) -> dict[str, Any]:
    return {"name": "slots", "task": {"name": "slots", "labels": ["B-extra_type"]},
            "data": {"source": "demo", "demo": SIZES},
            "teacher": {"backend": "fake", "model": "fake", "k_demos": 4,
                        "cache_path": str(tmp_path / "cache.sqlite")},
            "student": {"kind": "tagger", "encoder": encoder, "epochs": 2, "min_steps": 0,
                        "batch_size": 8, "early_stopping": "none", "lr_encoder": 1e-3,
                        "lr_head": 3e-3, "device": "cpu", "threads": 1},
            "stages": [2, 3], "run_dir": str(tmp_path / "run")}


# ---- conlleval's chunk F1, counted by hand (not with the project's scorer) ------------------


def chunks(tags: list[str]) -> set[tuple[int, int, str]]:
    """(start, end, type) of each chunk as conlleval.pl reads BIO tags: a chunk starts at B-x,
    or at an I-x that does not continue a chunk of type x, and ends before the first tag that
    does not continue it."""
    out, start, kind = set(), 0, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, typ = tag.partition("-")
        if kind is not None and not (prefix == "I" and typ == kind):
            out.add((start, i, kind))
            kind = None
        if kind is None and prefix in ("B", "I"):
            start, kind = i, typ
    return out


def chunk_counts(golds: list[str], preds: list[str | None]) -> tuple[int, int, int]:
    """Gold chunks, found chunks and correct ones (same start, end and type); a missing
    prediction (None) finds none."""
    gold = found = correct = 0
    for g, p in zip(golds, preds, strict=True):
        a, b = chunks(g.split()), chunks(p.split()) if p is not None else set()
        gold, found, correct = gold + len(a), found + len(b), correct + len(a & b)
    return gold, found, correct


def conll_f1(golds: list[str], preds: list[str | None]) -> float:
    """Chunk F1 in percent: 2PR/(P+R) = 2 * correct / (gold + found)."""
    gold, found, correct = chunk_counts(golds, preds)
    return 200 * correct / (gold + found) if correct else 0.0


@pytest.mark.skipif(not CONLLEVAL.is_dir(), reason="shared test data not present")
def test_the_hand_counted_chunks_match_conlleval_pl() -> None:
    """The counting above against conlleval.pl's own output on 300 sentences."""
    golds = (CONLLEVAL / "gold.txt").read_text().splitlines()
    preds = (CONLLEVAL / "pred.txt").read_text().splitlines()
    expected = json.loads((CONLLEVAL / "expected.json").read_text())
    for k, (g, p) in enumerate(zip(golds, preds, strict=True)):
        row = expected["sentences"][k]
        assert chunk_counts([g], [p]) == (row["gold_chunks"], row["found_chunks"], row["correct_chunks"]), k
    summary = expected["summary"]
    assert chunk_counts(golds, preds) == (summary["gold_chunks"], summary["found_chunks"],
                                          summary["correct_chunks"])
    assert round(conll_f1(golds, preds), 2) == summary["f1"]


def test_every_method_on_slot_filling(tmp_path: Path, tiny_encoder: str,
                                      teacher: tuple[dict[str, str], list[TeacherRequest]]) -> None:
    answers, requests = teacher
    summary = run_pipeline(config_from_dict(config(tmp_path, tiny_encoder)))
    root = tmp_path / "run"
    results = json.loads((root / "results.json").read_text())
    assert results["task"] == "slots" and results["student"].startswith("tagger")
    assert list(results["methods"]) == ["teacher", "sft", "vanilla_kd", "kd_self_distill",
                                        "mckd_2stage", "mckd_3stage"]
    assert results["metrics"][0] == {"key": "f1", "label": "F1", "primary": True,
                                     "note": "conlleval chunk F1 (conlleval.pl, 2004)"}
    test = read_examples(root / "data" / "test.jsonl")
    pool = read_examples(root / "data" / "unlabeled.jsonl")
    assert len(test) == 8 and len(pool) == 16 and all(ex.target is None for ex in pool)

    # every student's test predictions: one valid tag per word, scored as conlleval scores them
    for method in ("sft", "vanilla_kd", "kd_self_distill", "mckd_2stage", "mckd_3stage"):
        scores = results["methods"][method]["test"]
        assert {"f1", "precision", "recall", "accuracy", "exact_match"} <= set(scores)
        preds = read_examples(root / method / "test.jsonl")
        for ex, p in zip(test, preds, strict=True):
            assert len(p.target.split()) == len(ex.source.split()) and is_valid(p.target.split())
        assert scores["f1"] == pytest.approx(conll_f1([ex.target for ex in test],
                                                      [p.target for p in preds]))

    # the teacher: its answers repaired (a tag outside the label set of the labeled examples and
    # task.labels -> O), the answer without tags rejected
    labels_set = set(TASK.label_set(read_examples(root / "data" / "labeled.jsonl"), ["extra_type"]))
    expected = [None if "sure" in answers[ex.source] else
                " ".join(t if t in labels_set else "O" for t in answers[ex.source].split()) for ex in test]
    assert None in expected and any("B-not_a_slot" in answers[ex.source] for ex in test)
    teacher_f1 = results["methods"]["teacher"]["test"]["f1"]
    assert teacher_f1 == pytest.approx(conll_f1([ex.target for ex in test], expected)) and teacher_f1 < 100
    assert results["teacher"]["test"]["rejections"] == {"invalid_output": expected.count(None)}
    pool_answers = [answers[ex.source] for ex in pool]
    assert results["teacher"]["pool"]["rejections"] == {
        "invalid_output": sum("sure" in a for a in pool_answers)}
    # the grammar of every request admits the config's extra label
    assert requests and all(r.grammar and '"B-extra_type"' in r.grammar for r in requests)

    # the all-O baseline: no chunk found, every O tag right
    all_o = results["baselines"]["all_o"]["test"]
    tags = [t for ex in test for t in ex.target.split()]
    assert all_o["f1"] == 0.0 and all_o["accuracy"] == pytest.approx(100 * tags.count("O") / len(tags))

    # pseudolabel quality against the pool's gold, for the teacher and each stage
    golds = [ex.meta["gold"] for ex in pool]
    quality = results["pseudolabels"]
    for stage in ("teacher", "stage1", "stage2"):
        labels = {ex.id: ex.target for ex in read_examples(root / stage / "labels.jsonl")}
        assert set(labels) == {ex.id for ex in pool}, stage
        assert quality[stage]["gold_inputs"] == 16, stage
        assert quality[stage]["gold"]["f1"] == pytest.approx(
            conll_f1(golds, [labels[ex.id] for ex in pool])), stage
    teacher_labels = {ex.id: ex.target for ex in read_examples(root / "teacher" / "labels.jsonl")}
    assert [teacher_labels[ex.id] for ex in pool] == [
        None if "sure" in answers[ex.source] else
        " ".join(t if t in labels_set else "O" for t in answers[ex.source].split()) for ex in pool]
    md = (root / "report.md").read_text()
    assert "| method | F1 | P | R | tag acc | EM |" in md and "_all_o_" in md
    html = summary.report.read_text()
    assert "tag acc" in html and "conlleval chunk F1" in html
