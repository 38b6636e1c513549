"""The whole `mckd run` pipeline on a task that is not about trees: a test-only word-tagging
task registered here (not in the package), the fake teacher, and a fake student. Nothing outside
mckd.tasks may assume trees, so every method, baseline, score and report column must come out
of this task's hooks."""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mckd.student
import mckd.tasks
from mckd.config import config_from_dict
from mckd.distill.pipeline import run_pipeline
from mckd.errors import ConfigError
from mckd.evidence import SentenceStats, safe_ratio
from mckd.examples import Example, read_examples
from mckd.student.base import Prediction
from mckd.tasks.base import AnswerError, Corpus, Metric, Repaired, Task

sys.path.insert(0, str(Path(__file__).parent))
import pipeline_fakes as pf

WORDS = ["Anna", "Bob", "Oslo", "Paris", "flew", "to", "from", "saw", "the", "city", "on", "Monday"]


def tag(word: str) -> str:
    return "CAP" if word[0].isupper() else "LOW"


class CaseTags:
    """One tag per word: CAP for a capitalised word, LOW otherwise. Gold tags live in the
    target and, for the pool, in meta['gold']."""

    name = "casetags"
    metrics = (Metric("tag_accuracy", "tag accuracy", "share of words with the right tag", primary=True),
               Metric("exact", "exact sentences", "sentences with every tag right"))
    student_kinds = ("seq2seq",)
    prompt_forms = ("tags",)
    copies_words = False
    eval_metrics = ("accuracy",)

    def has_gold(self, example: Example) -> bool:
        return "gold" in example.meta

    def validate(self, example: Example) -> str | None:
        ok = example.target and len(example.target.split()) == len(example.source.split())
        return None if ok else "one tag per word"

    def score(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, float]:
        right = words = exact = 0
        for ex, pred in zip(golds, preds, strict=True):
            gold = (ex.target or ex.meta["gold"]).split()
            hits = sum(g == p for g, p in zip(gold, pred.split(), strict=False))
            right, words, exact = right + hits, words + len(gold), exact + (pred.split() == gold)
        return {"tag_accuracy": 100.0 * right / max(1, words), "exact": 100.0 * exact / max(1, len(golds)),
                "sentences": float(len(golds))}

    def sentence_stats(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, SentenceStats]:
        rows = []
        for ex, pred in zip(golds, preds, strict=True):
            gold = (ex.target or ex.meta["gold"]).split()
            hits = sum(g == p for g, p in zip(gold, pred.split(), strict=False))
            rows.append((hits, len(gold), pred.split() == gold, 1))
        counts = np.array(rows, dtype=float).reshape(-1, 4)
        return {"tag_accuracy": SentenceStats(counts, lambda s: safe_ratio(s[..., 0], s[..., 1])),
                "exact": SentenceStats(counts, lambda s: safe_ratio(s[..., 2], s[..., 3]))}

    def fidelity(self, targets: Sequence[str], preds: Sequence[str], sources: Sequence[str]) -> float:
        return 100.0 * sum(t == p for t, p in zip(targets, preds, strict=True)) / max(1, len(targets))

    def baselines(self) -> dict[str, Callable[[list[str]], list[str]]]:
        return {"all_low": lambda sources: [" ".join("LOW" for _ in s.split()) for s in sources]}

    def instruction(self, form: str) -> str:
        return "Tag each word CAP or LOW."

    def demo_output(self, example: Example, form: str) -> str:
        return example.target or ""

    def label_set(self, labeled: Sequence[Example], extra: Sequence[str] = ()) -> Any:
        return sorted({t for ex in labeled for t in (ex.target or "").split()} | set(extra))

    def grammar(self, source: str, form: str, labels: Any, options: Any) -> str | None:
        alts = " | ".join(f'"{t}"' for t in labels)
        return "root ::= " + ' " " '.join(f"({alts})" for _ in source.split()) + "\n"

    def answer_budget(self, source: str, form: str, count_tokens: Callable[[str], int]) -> int:
        return 2 * len(source.split()) + 4

    def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
        # the echoing fake teacher answers with the words: read each as its tag
        tokens = raw.split()
        if len(tokens) != len(example.source.split()):
            raise AnswerError(f"{len(tokens)} tags for {len(example.source.split())} words")
        return Repaired(" ".join(t if t in ("CAP", "LOW") else tag(t) for t in tokens))

    def combine(self, source: str, answers: Sequence[Repaired], how: str) -> tuple[Repaired, dict[str, Any]]:
        ok = [a.text.split() for a in answers if a.valid]
        if not ok:
            return answers[0], {"usable": 0}
        return Repaired(" ".join(Counter(col).most_common(1)[0][0] for col in zip(*ok, strict=True))), {"usable": len(ok)}

    def decoding_constraint(self, source: str, labels: Any, tokenizer: Any, *,
                            placeholder: str | None = None, space_first: bool = False) -> Any:
        return None

    def read_corpus(self, path: str | Path) -> list[Example]:
        return read_examples(path)

    def evaluate_files(self, gold: str | Path, pred: str | Path, metric: str, *,
                       per_sentence: bool = False) -> dict[str, Any]:
        golds, preds = read_examples(gold), read_examples(pred)
        return self.score(golds, [p.target or "" for p in preds])

    def builtin_corpus(self, n_labeled: int, n_pool: int, n_test: int, *, seed: int,
                       max_words: int | None = None, test_prefix: int | None = None) -> Corpus:
        # sentences are drawn one by one, so any test set is a prefix of a larger one
        rng = random.Random(seed)
        examples, seen = [], set()
        while len(examples) < n_labeled + n_pool + n_test:
            words = rng.sample(WORDS, rng.randint(2, min(6, max_words or 6)))
            source = " ".join(words)
            if source not in seen:
                seen.add(source)
                examples.append(Example(f"s{len(examples)}", source, " ".join(map(tag, words))))
        pool = [Example(ex.id, ex.source, None, {"gold": ex.target}) for ex in examples[n_labeled:n_labeled + n_pool]]
        return Corpus(examples[:n_labeled], pool, examples[n_labeled + n_pool:])


class TagStudent(pf.FakeStudent):
    """Remembers its training pairs and tags anything else LOW."""

    def predict(self, sources: list[str]) -> list[Prediction]:
        return [Prediction(self.memory.get(s) or " ".join("LOW" for _ in s.split()), -(len(s) % 5) / 2.0)
                for s in sources]


@pytest.fixture(autouse=True)
def register(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(mckd.tasks.TASKS, "casetags", CaseTags())
    monkeypatch.setattr(mckd.student, "build_student", lambda cfg, task: TagStudent(cfg, task))


def config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {"name": "tags", "task": {"name": "casetags", "labels": ["CAP", "LOW"]},
            "data": {"source": "demo", "demo": {"n_labeled": 6, "n_unlabeled": 12, "n_test": 8, "max_len": 6}},
            "teacher": {"backend": "fake", "model": "fake", "k_demos": 3, "samples": 3, "temperature": 0.5,
                        "cache_path": str(tmp_path / "cache.sqlite")},
            "stages": [2, 3], "run_dir": str(tmp_path / "run"), **overrides}


def test_every_method_on_a_task_without_trees(tmp_path: Path) -> None:
    assert isinstance(CaseTags(), Task)
    summary = run_pipeline(config_from_dict(config(tmp_path)))
    root = tmp_path / "run"
    results = json.loads((root / "results.json").read_text())
    assert results["task"] == "casetags" and results["student"].startswith("seq2seq")
    assert list(results["methods"]) == ["teacher", "sft", "vanilla_kd", "kd_self_distill",
                                        "mckd_2stage", "mckd_3stage"]
    # the fake teacher echoes the words, which this task reads as their tags: all right
    assert results["methods"]["teacher"]["test"]["tag_accuracy"] == 100.0
    assert all(0 <= m["test"]["tag_accuracy"] <= 100 for m in results["methods"].values())
    assert set(results["baselines"]) == {"all_low"}
    assert [m["key"] for m in results["metrics"]] == ["tag_accuracy", "exact"]
    assert results["metric_names"] == {"tag_accuracy": "share of words with the right tag",
                                       "exact": "sentences with every tag right"}
    # pseudolabel quality against the pool's gold in meta, at every stage
    assert all(results["pseudolabels"][s]["gold_inputs"] == 12 for s in ("teacher", "stage1", "stage2"))
    assert results["pseudolabels"]["teacher"]["gold"]["tag_accuracy"] == 100.0
    # intervals and comparisons come from this task's per-sentence statistics, on its primary metric
    assert set(results["methods"]["sft"]["test_ci"]) == {"tag_accuracy", "exact"}
    assert results["evidence"]["metric"] == "tag_accuracy" and results["evidence"]["comparisons"]
    assert results["pseudolabels"]["stage1"]["gold_ci"]["tag_accuracy"][0] <= 100.0
    # the teacher sampled 3 answers per input and the task combined them; its grammar was used
    labels = read_examples(root / "teacher" / "labelling" / "pseudolabels.jsonl")
    assert all(ex.meta["teacher"]["consensus"] == {"usable": 3} for ex in labels)
    ledger = [json.loads(line) for line in (root / "teacher" / "labelling" / "ledger.jsonl").read_text().splitlines()]
    assert all(len(rec["keys"]) == 3 for rec in ledger)
    # the built-in corpus is the task's, the report's columns are the task's, primary first
    assert all(set(ex.target.split()) <= {"CAP", "LOW"} for ex in read_examples(root / "data" / "test.jsonl"))
    md = (root / "report.md").read_text()
    assert "| method | tag accuracy | exact sentences |" in md and "_all_low_" in md
    assert "F1" not in md.split("## Teacher")[0]
    assert summary.report.exists()


def test_a_student_kind_the_task_cannot_learn_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(config(tmp_path, student={"kind": "chart"}))
    assert "student kind 'chart' cannot learn the casetags task" in str(info.value)
    assert "\n" not in str(info.value)
    assert config_from_dict(config(tmp_path)).student.kind == "seq2seq"  # the task's default kind


def test_task_section_keys_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'task\.lables'"):
        config_from_dict(config(tmp_path, task={"name": "casetags", "lables": ["X"]}))
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        config_from_dict(config(tmp_path, task={"name": "nope"}))


# --- the built-in text task: pseudolabel quality against the pool's gold in meta ------------------


class EchoOrReverse(pf.FakeStudent):
    """Remembers its training pairs and answers anything else with its words reversed."""

    def predict(self, sources: list[str]) -> list[Prediction]:
        return [Prediction(self.memory.get(s) or " ".join(reversed(s.split())), -(len(s) % 5) / 2.0)
                for s in sources]


def _sentence(i: int) -> str:
    return f"{WORDS[i % len(WORDS)]} {WORDS[(i * 5 + 1) % len(WORDS)]} w{i}"


def test_text_task_scores_pseudolabels_against_the_pools_gold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake teacher echoes its input and the student reverses what it did not see, so the
    teacher's labels are right where the gold is the sentence and every stage's where it is the
    reversed sentence; the rest of the pool has another gold text."""
    from mckd.examples import write_examples

    monkeypatch.setattr(mckd.student, "build_student", lambda cfg, task: EchoOrReverse(cfg, task))
    pool = []
    for i in range(12):
        source = _sentence(i)
        gold = [source, " ".join(reversed(source.split())), f"other {i}"][i % 3]
        pool.append(Example(f"u{i}", source, None, {"gold": gold}))
    labeled = [Example(f"l{i}", _sentence(20 + i), _sentence(20 + i)) for i in range(4)]
    test = [Example(f"t{i}", _sentence(40 + i), _sentence(40 + i) if i % 2 else "no") for i in range(4)]
    paths = {}
    for name, exs in (("labeled", labeled), ("unlabeled", pool), ("test", test)):
        paths[name] = tmp_path / f"{name}.jsonl"
        write_examples(paths[name], exs)
    cfg = {"name": "text", "task": "text",
           "data": {"source": "files", "labeled": str(paths["labeled"]), "unlabeled": str(paths["unlabeled"]),
                    "test": str(paths["test"]), "n_labeled": 4},
           "teacher": {"backend": "fake", "model": "fake", "k_demos": 3, "cache_path": str(tmp_path / "cache.sqlite")},
           "stages": [2, 3], "run_dir": str(tmp_path / "run")}
    run_pipeline(config_from_dict(cfg))
    results = json.loads((tmp_path / "run" / "results.json").read_text())

    # by hand: the share of the pool whose gold is the sentence as written / reversed
    echo_right = 100.0 * sum(ex.meta["gold"] == ex.source for ex in pool) / len(pool)
    reverse_right = 100.0 * sum(ex.meta["gold"].split() == ex.source.split()[::-1] for ex in pool) / len(pool)
    assert echo_right == pytest.approx(100 * 4 / 12) and reverse_right == pytest.approx(100 * 4 / 12)
    quality = results["pseudolabels"]
    assert all(quality[s]["gold_inputs"] == 12 for s in ("teacher", "stage1", "stage2"))
    assert quality["teacher"]["gold"]["exact_match"] == pytest.approx(echo_right)
    assert quality["stage1"]["gold"]["exact_match"] == pytest.approx(reverse_right)
    assert quality["stage2"]["gold"]["exact_match"] == pytest.approx(reverse_right)
    # the teacher's test answers echo the inputs: right on the two test examples whose gold is the input
    assert results["methods"]["teacher"]["test"]["exact_match"] == pytest.approx(50.0)
