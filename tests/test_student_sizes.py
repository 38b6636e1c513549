"""The span-chart student trained on 50, 200 and 2,000 gold trees of the built-in treebank,
scored on the demo corpus's held-out test set next to right-branching, then relabelling 1,000
inputs. Slow (minutes on two CPU cores); the figures go to test-artifacts/student_sizes.json.

The training trees come from another grammar seed than the test corpus, so no test sentence
is seen in training."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mckd.examples import Example, read_examples
from mckd.tasks.constituency import ConstituencyTask
from mckd.tasks.constituency.brackets import scan_brackets
from mckd.tasks.constituency.corpus import build_demo_corpus
from mckd.tasks.constituency.synth import synth_treebank
from mckd.tasks.constituency.trees import right_branching

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # ~10 minutes on 2 cores

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SIZES = {50: 20, 200: 20, 2000: 3}  # gold trees -> most epochs (min_steps and fidelity decide)
N_TEST, N_RELABEL = 200, 1000


def gold_examples(n: int, seed: int) -> list[Example]:
    task = ConstituencyTask()
    return [task.example(f"g{i}", t, labeled=True) for i, t in enumerate(synth_treebank(n, seed))]


def test_chart_student_by_gold_size(tmp_path: Path, torch_threads: None) -> None:
    from mckd.student.chart import ChartConfig, ChartStudent

    task = ConstituencyTask()
    paths = build_demo_corpus(tmp_path / "corpus", n_labeled=50, n_unlabeled=1, n_test=N_TEST)
    test = read_examples(paths["test"], require_target=True)
    pool = gold_examples(max(SIZES) + N_RELABEL, seed=7)
    train, relabel = pool[: max(SIZES)], [ex.source for ex in pool[max(SIZES):]]
    assert not {ex.source for ex in test} & {ex.source for ex in pool}

    rb = task.score(test, [right_branching(ex.source.split()) for ex in test])
    rows = [{"student": "right-branching", "f1": rb["f1"]}]
    scores = {}
    for size, epochs in SIZES.items():
        student = ChartStudent(ChartConfig(epochs=epochs, seed=0, threads=2))
        report = student.fit(train[:size], tmp_path / f"chart-{size}")
        preds = student.predict([ex.source for ex in test])
        result = task.score(test, [p.text for p in preds])
        # every prediction is a tree over exactly the input words
        assert result["valid"] == len(test)
        assert all(scan_brackets(p.text)[0] == ex.source.split() for p, ex in zip(preds, test, strict=True))
        scores[size] = result["f1"]
        rows.append({"student": "chart", "gold_trees": size, "epochs": report.epochs,
                     "train_s": round(report.seconds, 1), "f1": round(result["f1"], 2),
                     "evalb_unlabeled_f1": round(result["evalb_unlabeled_f1"], 2)})
        if size == max(SIZES):
            started = time.perf_counter()
            relabelled = student.predict(relabel)
            seconds = time.perf_counter() - started
            assert len(relabelled) == N_RELABEL and all(p.text for p in relabelled)
            rows.append({"student": "chart", "relabel_inputs": N_RELABEL,
                         "relabel_s": round(seconds, 1),
                         "sentences_per_s": round(N_RELABEL / seconds, 1)})

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "student_sizes.json").write_text(json.dumps(rows, indent=1) + "\n")
    assert scores[2000] >= 85.0, rows
    assert scores[50] > rb["f1"] and scores[200] > scores[50] and scores[2000] > scores[200], rows
