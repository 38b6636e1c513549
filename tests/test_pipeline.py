"""End to end on a tiny treebank with the fake teacher and a fake student: every method runs,
the run directory has one folder per step, results.json and the reports are complete."""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import re
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

import mckd.student
from mckd.config import config_from_dict, load_config
from mckd.distill.pipeline import run_pipeline
from mckd.errors import MckdError
from mckd.examples import Example, read_examples
from mckd.student.base import Prediction
from mckd.teacher.backends.fake import FakeBackend

sys.path.insert(0, str(Path(__file__).parent))
import pipeline_fakes as pf

REAL_BUILD_STUDENT = mckd.student.build_student
ALL_METHODS = ["teacher", "sft", "vanilla_kd", "kd_self_distill", "mckd_2stage", "mckd_3stage"]


@pytest.fixture(autouse=True)
def fake_student(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mckd.student, "build_student", pf.fake_build_student)


@pytest.fixture
def teacher_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every prompt the fake LLM answers, in order."""
    calls: list[str] = []
    original = FakeBackend.acomplete

    async def counted(self, request):  # type: ignore[no-untyped-def]
        calls.append(request.prompt or repr(request.messages))
        return await original(self, request)

    monkeypatch.setattr(FakeBackend, "acomplete", counted)
    return calls


def run(tmp_path: Path, **overrides):  # type: ignore[no-untyped-def]
    return run_pipeline(config_from_dict(pf.tiny_config(tmp_path, **overrides)))


# ---- the paper's metric, counted by hand on the tiny corpus -------------------------------------
# Per sentence, unlabeled brackets over two or more words once punctuation is gone (the tiny
# corpus's only punctuation is the final "."), the whole sentence included; F1 averaged over
# the sentences. test_metrics.py checks the project's scorer against the paper's own code.


def punctuation(gold: str) -> set[int]:
    """Positions of the words of a gold tree (with POS tags) tagged as punctuation."""
    tags = re.findall(r"\(([^\s()]+) [^\s()]+\)", gold)
    assert set(tags) <= {"DT", "JJ", "NN", "VBD", "IN", "."}, gold  # the tiny corpus's tags
    return {i for i, tag in enumerate(tags) if tag == "."}


def brackets(tree: str, punct: set[int], *, labeled: bool) -> set[tuple[int, int]]:
    """(start, end) over the words left without punctuation of every bracket covering two or
    more of them; brackets over the same words count once."""
    tokens = tree.replace("(", " ( ").replace(")", " ) ").split()
    spans, starts, kept, seen = set(), [], 0, 0
    for before, token in zip([None, *tokens], tokens, strict=False):
        if token == "(":
            starts.append(kept)
        elif token == ")":
            start = starts.pop()
            if kept - start >= 2:
                spans.add((start, kept))
        elif not (labeled and before == "("):  # a word, not a label
            kept += seen not in punct
            seen += 1
    return spans


def paper_f1(golds: list[str], preds: list[str]) -> float:
    """Mean per-sentence bracket F1 in percent: 2PR/(P+R) = 2 * matched / (gold + predicted)."""
    total = 0.0
    for gold, pred in zip(golds, preds, strict=True):
        punct = punctuation(gold)
        g, p = brackets(gold, punct, labeled=True), brackets(pred, punct, labeled=False)
        total += 2 * len(g & p) / (len(g) + len(p))
    return 100 * total / len(golds)


def flat(words: list[str]) -> str:
    return "( " + " ".join(f"( {w} )" for w in words) + " )"


def right_branching(words: list[str]) -> str:
    return f"( {words[0]} )" if len(words) == 1 else f"( ( {words[0]} ) {right_branching(words[1:])} )"


def left_branching(words: list[str]) -> str:
    return f"( {words[0]} )" if len(words) == 1 else f"( {left_branching(words[:-1])} ( {words[-1]} ) )"


def targets(path: Path, order: list[Example]) -> list[str]:
    """The targets of a predictions or labels file, in the order of `order`'s ids."""
    by_id = {ex.id: ex.target for ex in read_examples(path)}
    assert set(by_id) == {ex.id for ex in order}, path
    return [by_id[ex.id] for ex in order]  # type: ignore[misc]


def test_the_hand_counted_metric_on_one_sentence() -> None:
    gold = "(S (NP (DT the) (NN dog)) (VP (VBD saw) (NP (DT a) (NN cat))) (. .))"
    words = ["the", "dog", "saw", "a", "cat", "."]
    assert punctuation(gold) == {5}
    assert brackets(gold, {5}, labeled=True) == {(0, 5), (0, 2), (2, 5), (3, 5)}
    # right-branching: (0,5) (1,5) (2,5) (3,5) once the "." is gone, 3 of them gold
    assert brackets(right_branching(words), {5}, labeled=False) == {(0, 5), (1, 5), (2, 5), (3, 5)}
    assert paper_f1([gold], [right_branching(words)]) == pytest.approx(75.0)
    assert paper_f1([gold], [flat(words)]) == pytest.approx(40.0)  # P 1/1, R 1/4
    # left-branching: (0,2) (0,3) (0,4) (0,5) and (0,6) -> (0,5) once the "." is gone
    assert paper_f1([gold], [left_branching(words)]) == pytest.approx(50.0)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_every_method_end_to_end(tmp_path: Path, teacher_calls: list[str]) -> None:
    summary = run(tmp_path)
    root = tmp_path / "run"
    results = json.loads((root / "results.json").read_text())
    assert list(results["methods"]) == ALL_METHODS
    # Each method's test F1 is the paper's F1 of its test predictions, counted by hand.
    test = read_examples(root / "data" / "test.jsonl")
    golds, words = [ex.meta["tree"] for ex in test], [ex.source.split() for ex in test]
    teacher = results["methods"]["teacher"]["test"]
    # the echoing fake teacher's answers read as flat trees: one bracket, the gold root
    assert targets(root / "teacher_test" / "predictions.jsonl", test) == [flat(w) for w in words]
    assert teacher["f1"] == pytest.approx(paper_f1(golds, [flat(w) for w in words]))
    assert teacher["precision"] == 100.0 and teacher["sentences"] == 8
    for name in ALL_METHODS[1:]:
        preds = targets(root / name / "test.jsonl", test)
        # no student saw a test sentence: each answers with its fallback, right-branching
        assert preds == [right_branching(w) for w in words], name
        scores = results["methods"][name]["test"]
        assert scores["f1"] == pytest.approx(paper_f1(golds, preds)) and scores["sentences"] == 8, name
    baselines = results["baselines"]
    assert set(baselines) == {"right_branching", "left_branching"}
    assert baselines["right_branching"]["test"]["f1"] == pytest.approx(
        paper_f1(golds, [right_branching(w) for w in words]))
    assert baselines["left_branching"]["test"]["f1"] == pytest.approx(
        paper_f1(golds, [left_branching(w) for w in words]))
    assert baselines["right_branching"]["test"]["f1"] > baselines["left_branching"]["test"]["f1"]
    # Pseudolabel quality at every stage, against the pool's gold trees, counted by hand: the
    # teacher's flat trees, then each stage's relabels of partitions its students never saw
    # (right-branching).
    labels = results["pseudolabels"]
    assert [labels[s]["stage"] for s in ("teacher", "stage1", "stage2")] == [0, 1, 2]
    assert all(labels[s]["gold_inputs"] == 16 for s in ("teacher", "stage1", "stage2"))
    pool = read_examples(root / "data" / "unlabeled.jsonl")
    pool_golds, pool_words = [ex.meta["tree"] for ex in pool], [ex.source.split() for ex in pool]
    expected = {"teacher": [flat(w) for w in pool_words],
                "stage1": [right_branching(w) for w in pool_words],
                "stage2": [right_branching(w) for w in pool_words]}
    for stage, trees in expected.items():
        assert targets(root / stage / "labels.jsonl", pool) == trees, stage
        assert labels[stage]["gold"]["f1"] == pytest.approx(paper_f1(pool_golds, trees)), stage
    assert labels["stage1"]["gold"]["f1"] != labels["teacher"]["gold"]["f1"]
    # Teacher: the pool (16) and the test inputs (8) labelled once each.
    assert results["teacher"]["pool"]["inputs"] == 16 and results["teacher"]["test"]["inputs"] == 8
    assert results["teacher"]["pool"]["calls"] == 16 and results["teacher"]["test"]["calls"] == 8
    assert len(teacher_calls) == 24 == len(set(teacher_calls))
    # 2-stage and 3-stage share stage 1: one pair of stage-1 students, one pair of stage-2.
    assert sorted(results["students"]) == sorted(
        ["sft", "vanilla_kd", "kd_self_distill", "stage1_part0", "stage1_part1", "stage2_part0",
         "stage2_part1", "mckd_2stage", "mckd_3stage"])
    for step in ["data", "teacher", "teacher_test", "baselines", "partitions", "stage1", "stage2",
                 *results["students"]]:
        assert (root / step / "DONE").exists(), step
        assert (root / step / "metrics.json").exists() and (root / step / "log.txt").exists()
    assert yaml.safe_load((root / "config.yaml").read_text())["name"] == "tiny"
    assert summary.report == root / "report.html"

    parser = _Collector()
    parser.feed((root / "report.html").read_text())
    assert parser.tags["table"] >= 4 and len(parser.images) == 3  # methods, stages, comparisons
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    text = " ".join(parser.text)
    for needle in [*ALL_METHODS, "right_branching", "Pseudolabel quality by stage", "cache hits",
                   "Comparisons", "MCKD-3 \u2212 vanilla KD"]:
        assert needle in text
    md = (root / "report.md").read_text()
    assert "| mckd_3stage |" in md and "![methods](plots/methods.png)" in md
    assert (root / "plots" / "methods.png").read_bytes().startswith(b"\x89PNG")
    # what the scores were computed with
    env = results["environment"]
    torch_version = importlib.metadata.version("torch")
    assert env["packages"]["torch"] == torch_version and env["packages"]["mckd"] == importlib.metadata.version("mckd")
    assert env["python"] == platform.python_version() and env["torch_threads"] >= 1
    assert f"torch {torch_version} ({env['torch_threads']} threads)" in md


def test_rerun_skips_every_finished_step(tmp_path: Path, teacher_calls: list[str]) -> None:
    first = run(tmp_path)
    calls = len(teacher_calls)
    again = run(tmp_path)
    assert all(o.skipped for o in again.outcomes)
    assert len(teacher_calls) == calls
    assert again.results["methods"] == first.results["methods"]


def test_partitions_and_stage_inputs(tmp_path: Path) -> None:
    run(tmp_path, partitions=3, stages=[2], methods=["mckd"])
    root = tmp_path / "run"
    parts = json.loads((root / "partitions" / "partitions.json").read_text())
    pool = [ex.id for ex in read_examples(root / "data" / "unlabeled.jsonl")]
    assert sorted(i for p in parts for i in p) == sorted(pool) and [len(p) for p in parts] in ([6, 5, 5], [5, 6, 5], [5, 5, 6])
    for k, part in enumerate(parts):
        inputs = json.loads((root / f"stage1_part{k}" / "inputs.json").read_text())
        # Student k trains on every partition except k and relabels exactly partition k.
        assert sorted(inputs["train_ids"]) == sorted(set(pool) - set(part))
        assert sorted(inputs["relabels_ids"]) == sorted(part)
    merged = read_examples(root / "stage1" / "labels.jsonl")
    assert [ex.id for ex in merged] == pool and all(ex.target for ex in merged)
    results = json.loads((root / "results.json").read_text())
    assert list(results["methods"]) == ["mckd_2stage"] and "teacher_test" not in results["teacher"]


def test_add_gold_and_init_from_sft(tmp_path: Path) -> None:
    run(tmp_path, add_gold=True, init_from_sft=True, methods=["sft", "vanilla_kd", "mckd"], stages=[2])
    root = tmp_path / "run"
    gold = {ex.id for ex in read_examples(root / "data" / "labeled.jsonl")}
    sft_model = str((root / "sft" / "model").resolve())
    for step in ("vanilla_kd", "stage1_part0", "stage1_part1", "mckd_2stage"):
        train = set(json.loads((root / step / "inputs.json").read_text())["train_ids"])
        assert gold <= train, step
        assert json.loads((root / step / "train.json").read_text())["extra"]["loaded_from"] == sft_model
    sft = root / "sft"
    assert set(json.loads((sft / "inputs.json").read_text())["train_ids"]) == gold
    assert json.loads((sft / "train.json").read_text())["extra"]["loaded_from"] is None


def test_self_distill_keeps_most_confident_half(tmp_path: Path) -> None:
    run(tmp_path, methods=["vanilla_kd", "kd_self_distill"])
    root = tmp_path / "run"
    relabels = read_examples(root / "vanilla_kd" / "pool.jsonl")
    kept = read_examples(root / "kd_self_distill" / "kept.jsonl")
    assert len(kept) == len(relabels) // 2
    worst_kept = min(ex.meta["mean_logprob"] for ex in kept)
    dropped = [ex for ex in relabels if ex.id not in {k.id for k in kept}]
    assert all(ex.meta["mean_logprob"] <= worst_kept for ex in dropped)
    train = json.loads((root / "kd_self_distill" / "inputs.json").read_text())["train_ids"]
    assert sorted(train) == sorted(ex.id for ex in kept)


def test_force_redoes_a_step_and_what_follows(tmp_path: Path, teacher_calls: list[str]) -> None:
    run(tmp_path)
    calls = len(teacher_calls)
    again = run_pipeline(config_from_dict(pf.tiny_config(tmp_path)), force=["stage1"])
    redone = {o.name for o in again.outcomes if not o.skipped}
    assert redone == {"stage1_part0", "stage1_part1", "stage1", "mckd_2stage", "stage2_part0",
                      "stage2_part1", "stage2", "mckd_3stage"}
    assert len(teacher_calls) == calls
    # Forcing the teacher redoes its steps from the cache: no new LLM call.
    again = run_pipeline(config_from_dict(pf.tiny_config(tmp_path)), force=["teacher"])
    assert "vanilla_kd" in {o.name for o in again.outcomes if not o.skipped}
    assert len(teacher_calls) == calls


def test_changed_setting_redoes_only_what_it_affects(tmp_path: Path) -> None:
    run(tmp_path)
    cfg = pf.tiny_config(tmp_path, self_distill_keep=0.25)
    again = run_pipeline(config_from_dict(cfg))
    assert {o.name for o in again.outcomes if not o.skipped} == {"kd_self_distill"}


class SeededStudent(pf.FakeStudent):
    """The fake student, answering sentences it never saw right-branching under an even seed
    and left-branching under an odd one: students of two run seeds score differently."""

    def __init__(self, cfg: object, task: object = None) -> None:
        super().__init__(cfg, task)
        self.odd = cfg.train.seed % 2 == 1  # type: ignore[attr-defined]

    def predict(self, sources: list[str]) -> list[Prediction]:
        preds = super().predict(sources)
        if self.odd:
            preds = [Prediction(left_branching(s.split()), p.mean_logprob, p.meta) if "fallback" in p.meta else p
                     for s, p in zip(sources, preds, strict=True)]
        return preds


def test_seeds_mean_and_std(tmp_path: Path, teacher_calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mckd.student, "build_student", SeededStudent)
    summary = run_pipeline(config_from_dict(pf.tiny_config(tmp_path, methods=["sft", "vanilla_kd", "mckd"],
                                                           stages=[2])), seeds=2)
    root = tmp_path / "run"
    assert (root / "seed-0" / "results.json").exists() and (root / "seed-1" / "results.json").exists()
    results = json.loads((root / "results.json").read_text())
    assert results["seeds"] == [0, 1]
    entry = results["methods"]["mckd_2stage"]
    assert set(entry["per_seed"]) == {"0", "1"}
    # each seed's F1, counted by hand from its test predictions: right- then left-branching
    test = read_examples(root / "seed-0" / "data" / "test.jsonl")
    golds, words = [ex.meta["tree"] for ex in test], [ex.source.split() for ex in test]
    shapes = {"0": right_branching, "1": left_branching}
    f1s = []
    for seed, shape in shapes.items():
        preds = targets(root / f"seed-{seed}" / "mckd_2stage" / "test.jsonl", test)
        assert preds == [shape(w) for w in words], seed
        f1s.append(paper_f1(golds, preds))
        assert entry["per_seed"][seed]["f1"] == pytest.approx(f1s[-1]), seed
    assert f1s[0] != f1s[1]
    assert entry["test"]["f1"] == pytest.approx((f1s[0] + f1s[1]) / 2)
    # the sample standard deviation of two values: their distance over the square root of 2
    assert entry["test_std"]["f1"] == pytest.approx(abs(f1s[0] - f1s[1]) / math.sqrt(2))
    # The teacher does not depend on the run seed: the second seed is served from the cache.
    assert len(teacher_calls) == 16
    assert results["teacher"]["pool"]["cache_hits"] == 16
    assert "±" in (root / "report.md").read_text()
    assert summary.report == root / "report.html"


def test_bad_runs_fail_early_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each problem is a one-line error before any step runs (no run directory appears)."""
    monkeypatch.setenv("MCKD_MODELS_DIR", str(tmp_path / "models"))
    base = pf.tiny_config(tmp_path)
    cases = {
        "unknown": ({**base, "stagez": 2}, "unknown key 'stagez'"),
        "stages": ({**base, "stages": [1]}, "each stage count must be >= 2"),
        "partitions": ({**base, "partitions": 1}, "partitions = 1"),
        "labeled": ({**base, "data": {**base["data"], "n_labeled": 50}},
                    "data.n_labeled = 50: larger than the data"),
        "missing": ({**base, "data": {**base["data"], "test": str(tmp_path / "nope.jsonl")}},
                    "nope.jsonl: no such file"),
        "model": ({**base, "teacher": {"backend": "llamacpp", "model": "qwen2.5-coder-1.5b"}},
                  "mckd models fetch qwen2.5-coder-1.5b"),
        "force": (base, "--force stage7: no such step"),
    }
    for name, (cfg, expected) in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        with pytest.raises(MckdError) as info:
            run_pipeline(load_config(path), force=["stage7"] if name == "force" else None)
        assert expected in str(info.value) and "\n" not in str(info.value), name
        assert not (tmp_path / "run").exists(), name


def test_cli_prints_one_line_and_exit_code(tmp_path: Path) -> None:
    cfg = pf.tiny_config(tmp_path, partitions=1)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "mckd", "run", "bad.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mckd: error: bad.yaml: partitions = 1: Input should be greater than or equal to 2"]


@pytest.mark.slow
def test_real_chart_student_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same run with the real span-chart student (one epoch) instead of the fake."""
    monkeypatch.setattr(mckd.student, "build_student", REAL_BUILD_STUDENT)
    student = {"kind": "chart", "epochs": 1, "min_steps": 0, "min_epochs": 1, "batch_size": 8}
    summary = run(tmp_path, student=student, stages=[2], init_from_sft=True)
    assert list(summary.results["methods"]) == ["teacher", "sft", "vanilla_kd", "kd_self_distill", "mckd_2stage"]
    root = tmp_path / "run"
    for step in ("sft", "vanilla_kd", "kd_self_distill", "mckd_2stage"):
        assert (root / step / "model" / "chart_config.json").exists(), step
    kept = read_examples(root / "kd_self_distill" / "kept.jsonl")
    assert len(kept) == 8 and all(isinstance(ex.meta["mean_logprob"], float) for ex in kept)


@pytest.mark.parametrize(
    ("methods", "stages", "expected", "absent"),
    [
        (["teacher"], [2], ["teacher"], ["teacher", "sft", "partitions"]),
        (["kd_self_distill"], [2], ["kd_self_distill"], ["teacher_test", "sft", "partitions"]),
        (["mckd"], [4], ["mckd_4stage"], ["teacher_test", "vanilla_kd", "mckd_2stage"]),
    ],
)
def test_method_subsets_run_only_what_they_need(tmp_path: Path, methods: list[str], stages: list[int],
                                                expected: list[str], absent: list[str]) -> None:
    summary = run(tmp_path, methods=methods, stages=stages)
    assert list(summary.results["methods"]) == expected
    for step in absent:
        assert not (tmp_path / "run" / step).exists(), step
    if methods == ["mckd"]:
        assert [summary.results["pseudolabels"][f"stage{i}"]["stage"] for i in (1, 2, 3)] == [1, 2, 3]


def test_one_run_per_run_directory(tmp_path: Path) -> None:
    import fcntl

    (tmp_path / "run").mkdir()
    with open(tmp_path / "run" / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `mckd run` holds it
        with pytest.raises(MckdError, match="another mckd run is using this run directory"):
            run(tmp_path)
    assert not (tmp_path / "run" / "data").exists()
    assert "mckd_3stage" in run(tmp_path).results["methods"]  # free again once released


def test_a_seq2seq_student_leaves_the_run_config_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """The student decides its decoding (constrained for trees) on its own copy of the config: the
    run's config, its config.yaml and its step hashes stay as they were."""
    monkeypatch.setattr(mckd.student, "build_student", REAL_BUILD_STUDENT)
    student = {"kind": "seq2seq", "model": "t5-tiny",
               "t5_shape": {"d_model": 32, "d_ff": 64, "num_layers": 1, "num_heads": 2},
               "train": {"epochs": 1, "batch_size": 8, "fidelity_sample": 0, "progress": False}}
    cfg = config_from_dict(pf.tiny_config(tmp_path, student=student, methods=["sft"], baselines=False))
    before = cfg.model_dump()
    run_pipeline(cfg)
    assert cfg.model_dump() == before
    saved = tmp_path / "run" / "config.yaml"
    assert yaml.safe_load(saved.read_text()) == cfg.model_dump(mode="json")
    model_dir = tmp_path / "run" / "sft" / "model"
    saved_student = json.loads((model_dir / "student_config.json").read_text())
    assert saved_student["generate"]["constrained"] == before["student"]["generate"]["constrained"]
    # Decoding was constrained (the task's tree constraint): its flag reaches every prediction
    # and the counts in results.json.
    preds = read_examples(tmp_path / "run" / "sft" / "test.jsonl")
    assert all("complete" in ex.meta["student"] for ex in preds)
    incomplete = sum(ex.meta["student"]["complete"] is False for ex in preds)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["students"]["sft"]["predictions"]["test"] == {"predictions": 8, "fallback": 0,
                                                                 "incomplete": incomplete}
    caplog.clear()
    with caplog.at_level("INFO"):
        again = run_pipeline(load_config(saved))
    assert all(o.skipped for o in again.outcomes)
    assert "settings changed" not in caplog.text


def test_prediction_flags_reach_predictions_results_and_report(tmp_path: Path) -> None:
    """A student's flags (here the fake's fallback for inputs it never saw) are kept in the
    predictions files and counted per student and set in results.json and the report."""
    summary = run(tmp_path, methods=["sft", "mckd"], stages=[2])
    root = tmp_path / "run"
    preds = read_examples(root / "sft" / "test.jsonl")
    fallbacks = sum("fallback" in ex.meta["student"] for ex in preds)
    assert fallbacks > 0 and all("tree" in ex.meta for ex in preds)  # gold tree kept beside them
    students = summary.results["students"]
    assert students["sft"]["predictions"] == {"test": {"predictions": 8, "fallback": fallbacks, "incomplete": 0}}
    # Each stage-1 student relabels a partition it never saw: every relabel is its fallback.
    relabels = read_examples(root / "stage1_part0" / "relabels.jsonl")
    assert students["stage1_part0"]["predictions"]["relabels"]["fallback"] == len(relabels) > 0
    assert all(ex.meta["student"]["fallback"] for ex in relabels)
    md = (root / "report.md").read_text()
    assert "fallback / incomplete outputs" in md and f"| test {fallbacks} / 0 |" in md


def test_results_hold_only_the_plans_steps(tmp_path: Path) -> None:
    """Folders of steps that an earlier plan ran stay on disk but are not results any more."""
    run(tmp_path)
    summary = run(tmp_path, methods=["sft", "mckd"], stages=[2], baselines=False)
    results = summary.results
    assert list(results["methods"]) == ["sft", "mckd_2stage"]
    assert (tmp_path / "run" / "kd_self_distill" / "DONE").exists()  # left by the first plan
    assert sorted(results["students"]) == ["mckd_2stage", "sft", "stage1_part0", "stage1_part1"]
    assert set(results["step_seconds"]) == {"data", "sft", "teacher", "partitions", "stage1_part0",
                                            "stage1_part1", "stage1", "mckd_2stage"}
    assert results["baselines"] == {} and list(results["teacher"]) == ["pool"]
    assert list(results["pseudolabels"]) == ["teacher", "stage1"]
