"""The report's per-sentence view: gold, teacher and the shipped student for every test
sentence, differences marked through the task's `output_html` hook, and a switch (CSS only)
that leaves the sentences where student and teacher disagree. The slow test renders it in
headless Chromium and checks the switch hides the agreeing rows."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from mckd.examples import read_examples
from mckd.report import write_report
from mckd.report_sentences import read_view, sentences_html
from mckd.ship.runfiles import pick_method
from mckd.tasks import TASKS
from mckd.tasks.base import OutputView
from mckd.tasks.constituency.view import tree_html
from mckd.tasks.slots.view import chunks, tags_html

sys.path.insert(0, str(Path(__file__).parent))
import ship_runs


@pytest.fixture(scope="module")
def slots_run(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: str) -> Path:
    return ship_runs.slots_run(tmp_path_factory, tiny_encoder)


def test_tree_view_marks_the_constituents_the_reference_lacks() -> None:
    out = tree_html("( ( ( The ) ( cat ) ) ( ( sat ) ( down ) ) )", "( ( The ) ( ( cat ) ( sat ) ( down ) ) )")
    # (The cat) and (sat down) are not in the reference; the sentence is
    assert out.count('class="con diff"') == 2 and out.count('class="con"') == 1
    assert re.sub(r"<[^>]+>", "", out) == "((The cat) (sat down))"
    same = tree_html("( ( a ) ( b ) )", "( ( a ) ( b ) )")
    assert "diff" not in same
    assert "diff" not in tree_html("( ( a ) ( b ) )", None)  # nothing to compare with
    assert tree_html("( ( a <b>", None) == '<span class="diff">( ( a &lt;b&gt;</span>'
    assert "none" in tree_html(None, "( ( a ) ( b ) )")


def test_slot_view_colours_values_and_marks_the_ones_the_reference_lacks() -> None:
    assert chunks(["B-a", "I-a", "O", "I-b", "B-a", "B-a"]) == [("a", 0, 2), ("b", 3, 4),
                                                                ("a", 4, 5), ("a", 5, 6)]
    out = tags_html("fly to new york <now>", "O O B-city I-city B-time", "O O B-city I-city O")
    assert ">new york<sub>city</sub>" in out and "&lt;now&gt;<sub>time</sub>" in out
    assert out.count("chunk diff") == 1 and "chunk diff" in out.split("new york")[1]
    # the same type has the same colour wherever it appears
    colour = re.search(r"background:([^\"]+)", out).group(1)
    assert colour in tags_html("to boston", "O B-city", None)
    assert tags_html("a b", "O", None) == '<span class="diff">O</span>'  # not one tag per word


def test_report_shows_every_test_sentence_side_by_side(slots_run: Path) -> None:
    results = json.loads((slots_run / "results.json").read_text())
    page = write_report(slots_run)["html"].read_text()
    method, _ = pick_method(slots_run, results)
    gold = read_examples(slots_run / "data" / "test.jsonl")
    student = read_examples(slots_run / method / "test.jsonl")
    teacher = read_examples(slots_run / "teacher_test" / "predictions.jsonl")
    disagree = sum((s.target or "").split() != (t.target or "").split()
                   for s, t in zip(student, teacher, strict=True))
    assert page.count('<tr class="disagree">') == disagree
    assert page.count('<tr class="agree">') == len(gold) - disagree
    assert f"The student is {method}" in page
    assert f"disagree on {disagree} of the {len(gold)} sentences the teacher labelled" in page
    assert 'id="only-disagree"' in page and "<script" not in page
    for ex in gold:
        assert f'<td class="id">{ex.id}</td>' in page
    assert 'class="chunk' in page  # the task's rendering, not plain text


def test_sentences_the_teacher_was_not_asked_about(slots_run: Path, tmp_path: Path) -> None:
    """With `data.teacher_test` the teacher labels part of the test set: the others show no
    teacher answer, count as no disagreement, and the switch hides them too."""
    import shutil

    from mckd.examples import write_examples

    run = tmp_path / "run"
    shutil.copytree(slots_run, run)
    answers = read_examples(run / "teacher_test" / "predictions.jsonl")
    write_examples(run / "teacher_test" / "predictions.jsonl", answers[:5])
    page = write_report(run)["html"].read_text()
    total = len(read_examples(run / "data" / "test.jsonl"))
    assert page.count('<tr class="unasked">') == total - 5 and "not asked" in page
    rows = page.count('<tr class="agree">') + page.count('<tr class="disagree">')
    assert rows == 5 and f"the 5 sentences the teacher labelled (of {total})" in page
    assert "tr:is(.agree,.unasked){display:none}" in page


def test_a_task_without_the_hook_is_shown_as_text(slots_run: Path) -> None:
    results = json.loads((slots_run / "results.json").read_text())
    view = read_view(slots_run, results)
    assert view is not None

    class Plain:
        name = "plain"

    assert all(isinstance(TASKS[name], OutputView) for name in ("constituency", "slots", "text"))
    assert not isinstance(Plain(), OutputView)

    html = sentences_html(view, Plain())
    assert 'class="chunk' not in html and view.rows[0].gold.target in html
    assert sentences_html(view, TASKS["slots"]).count("<tr class") == len(view.rows)


@pytest.mark.slow
def test_disagreement_switch_in_chromium(slots_run: Path, tmp_path: Path) -> None:
    """Unchecked, the agreeing rows are on screen (their green status cell); checked, they are
    gone and the disagreeing ones stay."""
    import subprocess

    import matplotlib.image
    import numpy as np

    from test_report_browser import chromium, console_errors

    browser = chromium()
    page = write_report(slots_run)["html"]
    text = page.read_text()
    assert '<tr class="agree">' in text and '<tr class="disagree">' in text
    checked = tmp_path / "checked.html"
    checked.write_text(text.replace('id="only-disagree">', 'id="only-disagree" checked>'))

    def pixels(png: Path, rgb: tuple[int, int, int]) -> int:
        img = matplotlib.image.imread(png)[..., :3]
        return int((np.abs(img - np.array(rgb) / 255.0).max(axis=-1) < 0.01).sum())

    same, differs = (0xE3, 0xF1, 0xE6), (0xFB, 0xE3, 0xE6)  # the status cells' colours
    def render(html: Path, png: Path) -> str:
        """Screenshot of the whole page (tall window: the view is below the plots); the log."""
        shot = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                               "--hide-scrollbars", "--enable-logging=stderr", "--log-level=0",
                               "--window-size=1280,6000", f"--screenshot={png}", html.as_uri()],
                              capture_output=True, text=True, timeout=120)
        assert png.exists(), shot.stderr[-2000:]
        return shot.stderr

    log = render(page, tmp_path / "all.png")
    assert console_errors(log) == []
    assert pixels(tmp_path / "all.png", same) > 500 and pixels(tmp_path / "all.png", differs) > 500
    render(checked, tmp_path / "checked.png")
    assert pixels(tmp_path / "checked.png", same) == 0
    assert pixels(tmp_path / "checked.png", differs) > 500
