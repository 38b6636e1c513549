"""report.md / report.html from results.json alone; seed averaging."""

from __future__ import annotations

import json
import statistics
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mckd.distill.results import aggregate_seeds
from mckd.errors import InputError
from mckd.report import write_report


def results(seed: int, f1: float) -> dict:
    return {
        "name": "demo <script>alert(1)</script>",
        "task": "constituency",
        "seeds": [seed],
        "metric_names": {"f1": "the paper's metric", "evalb_f1": "EVALB"},
        "methods": {
            "teacher": {"test": {"f1": 41.0 + seed, "evalb_f1": 30.0, "valid": 9.0, "sentences": 10.0}},
            "mckd_2stage": {"test": {"f1": f1, "evalb_f1": 50.0, "valid": 10.0, "sentences": 10.0}},
            "vanilla_kd": {"test": {"f1": f1 - 2, "evalb_f1": 48.0, "valid": 10.0, "sentences": 10.0}},
        },
        "baselines": {"right_branching": {"test": {"f1": 49.3, "valid": 10.0, "sentences": 10.0}}},
        "pseudolabels": {
            "teacher": {"stage": 0, "inputs": 20, "labeled": 19, "gold": {"f1": 40.0 + seed}},
            "stage1": {"stage": 1, "inputs": 20, "labeled": 20, "gold": {"f1": 55.0 + seed}},
        },
        "teacher": {"pool": {"inputs": 20, "valid": 18, "rejected": 1, "calls": 0 if seed else 20,
                             "cache_hits": 20 if seed else 0, "prompt_tokens": 1000, "completion_tokens": 300,
                             "seconds": 12.5, "wall_seconds": 13.0, "cost": 0.25,
                             "rejections": {"invalid_output": 1, "<timeout>": 0}}},
        "students": {"vanilla_kd": {"train_size": 19, "epochs": 3, "seconds": 4.2, "fidelity": 97.0}},
    }


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_from_results_only(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps(results(0, 60.0)))
    paths = write_report(tmp_path)
    html = paths["html"].read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;timeout&gt;" in html  # reasons are escaped too
    page = _Page()
    page.feed(html)
    assert "script" not in page.tags and page.tags.count("img") == 2 and page.tags.count("table") == 5
    md = paths["md"].read_text()
    # method order: teacher, vanilla_kd, then MCKD; baselines in italics; valid out of sentences
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:5]] == ["| teacher", "| vanilla_kd", "| mckd_2stage",
                                                      "| _right_branching_"]
    assert "| 9 / 10 |" in md and "| 60.0 | 50.0 | 10 / 10 |" in md
    assert "| pool | invalid_output | 1 |" in md
    assert "| 0 | teacher | 19 | 40.0 |" in md and "| 1 | stage1 | 20 | 55.0 |" in md
    assert (tmp_path / "plots" / "f1_by_stage.png").read_bytes()[:4] == b"\x89PNG"


def test_report_without_scores_has_no_plots(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"name": "empty", "methods": {}}))
    paths = write_report(tmp_path)
    assert "<img" not in paths["html"].read_text() and "Plots" not in paths["md"].read_text()


def test_missing_or_broken_results(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no results\.json here"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text('{"methods": ')
    with pytest.raises(InputError, match=r"results\.json:1: invalid JSON"):
        write_report(tmp_path)


def test_seed_average_and_report(tmp_path: Path) -> None:
    merged = aggregate_seeds([results(0, 60.0), results(1, 64.0), results(2, 65.0)])
    entry = merged["methods"]["mckd_2stage"]
    assert entry["test"]["f1"] == pytest.approx(63.0)
    assert entry["test_std"]["f1"] == pytest.approx(statistics.stdev([60.0, 64.0, 65.0]))
    assert entry["per_seed"]["2"]["f1"] == 65.0 and merged["seeds"] == [0, 1, 2]
    assert merged["pseudolabels"]["stage1"]["gold"]["f1"] == pytest.approx(56.0)
    # same inputs for every seed; calls and cache hits add up
    pool = merged["teacher"]["pool"]
    assert pool["inputs"] == 20 and pool["calls"] == 20 and pool["cache_hits"] == 40
    assert set(merged["students"]) == {"seed-0/vanilla_kd", "seed-1/vanilla_kd", "seed-2/vanilla_kd"}
    (tmp_path / "results.json").write_text(json.dumps(merged))
    md = write_report(tmp_path)["md"].read_text()
    assert f"| mckd_2stage | 63.0 ± {statistics.stdev([60.0, 64.0, 65.0]):.1f} |" in md
    assert "over 3 seeds" in md


def test_seed_average_keeps_each_value_with_its_own_seed(tmp_path: Path) -> None:
    """A method missing from one seed: its mean covers the seeds that have it, says how many,
    and each value stays under its own seed."""
    runs = [results(0, 60.0), results(1, 64.0), results(2, 65.0)]
    del runs[1]["methods"]["vanilla_kd"]
    del runs[0]["methods"]["teacher"]
    merged = aggregate_seeds(runs)
    vanilla = merged["methods"]["vanilla_kd"]
    assert vanilla["seed_count"] == 2 and vanilla["test"]["f1"] == pytest.approx(60.5)
    assert {s: v["f1"] for s, v in vanilla["per_seed"].items()} == {"0": 58.0, "2": 63.0}
    teacher = merged["methods"]["teacher"]  # missing from the first seed, still reported
    assert teacher["seed_count"] == 2 and set(teacher["per_seed"]) == {"1", "2"}
    assert merged["methods"]["mckd_2stage"]["seed_count"] == 3
    (tmp_path / "results.json").write_text(json.dumps(merged))
    md = write_report(tmp_path)["md"].read_text()
    assert "| vanilla_kd (2 of 3 seeds) | 60.5 ±" in md and "| mckd_2stage | 63.0 ±" in md


def test_the_environment_is_one_summary_line(tmp_path: Path) -> None:
    env = {"python": "3.11.7", "platform": "Linux", "cpu": "AMD EPYC", "torch_threads": 2, "gpu": None,
           "packages": {"mckd": "0.1.0", "torch": "2.13.0+cpu", "transformers": "5.24.0"}}
    (tmp_path / "results.json").write_text(json.dumps({**results(0, 60.0), "environment": env}))
    md = write_report(tmp_path)["md"].read_text()
    assert ("- **environment**: Python 3.11.7, mckd 0.1.0, torch 2.13.0+cpu (2 threads), "
            "transformers 5.24.0; AMD EPYC\n") in md
    (tmp_path / "results.json").write_text(json.dumps({**results(0, 60.0), "environment": {**env, "gpu": "H200"}}))
    assert "transformers 5.24.0; AMD EPYC; H200\n" in write_report(tmp_path)["md"].read_text()
