"""The report's per-sentence view of the test set: gold, the teacher's answer and the student's
output side by side, with the differences marked by the task's optional `OutputView` hook
(tasks/base.py: slot values coloured by type, bracket differences for trees), and a switch that
shows only the sentences where student and teacher disagree. Plain HTML and CSS (a checkbox and
a sibling selector), no script, like the rest of report.html.

The student is the one `mckd export` ships by default (ship/runfiles.py: the best primary test
score among the trained students); its outputs are its step's `test.jsonl`.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mckd.errors import MckdError
from mckd.examples import Example, read_examples
from mckd.ship.runfiles import GOLD_TEST, TEACHER_TEST, pick_method, seed_folder
from mckd.tasks import get_task
from mckd.tasks.base import OutputView

log = logging.getLogger(__name__)

CSS = """table.sentences td,table.sentences th{text-align:left;vertical-align:top;line-height:1.7}
table.sentences td.id{color:#666;white-space:nowrap}.diff{color:#b00020}
.chunk{border-radius:3px;padding:1px 3px;color:#222}.chunk sub{font-size:.65em;color:#555;
margin-left:2px}.chunk.diff{outline:2px solid #b00020}.con .br{color:#999;font-weight:normal}
.con.diff>.br{color:#b00020;font-weight:bold}.none{color:#999}
td.same{background:#e3f1e6}td.differs{background:#fbe3e6}
#only-disagree:checked~table.sentences tr:is(.agree,.unasked){display:none}"""
STATUS_CELLS = {"agree": '<td class="same">same</td>', "disagree": '<td class="differs">differs</td>',
                "unasked": '<td class="none">–</td>'}


@dataclass
class SentenceRow:
    gold: Example
    teacher: str | None
    student: str | None
    asked: bool  # whether the teacher labelled this sentence (it may label a subset)

    @property
    def status(self) -> str:
        """`agree` or `disagree` (student vs teacher, whitespace aside), `unasked`."""
        if not self.asked:
            return "unasked"
        same = (self.student or "").split() == (self.teacher or "").split()
        return "agree" if same else "disagree"


@dataclass
class SentenceView:
    method: str
    reason: str
    seed: int | None
    rows: list[SentenceRow]


def read_view(run_dir: Path, results: dict[str, Any]) -> SentenceView | None:
    """The test set with the teacher's and the shipped student's outputs, from the run's
    files; None when the run has no test predictions of a trained student."""
    try:
        folder, seed = seed_folder(run_dir, results)
        method, reason = pick_method(folder, results)
    except MckdError:
        return None
    if not (folder / GOLD_TEST).exists() or not (folder / method / "test.jsonl").exists():
        return None
    gold = read_examples(folder / GOLD_TEST)
    student = {ex.id: ex.target for ex in read_examples(folder / method / "test.jsonl")}
    # the teacher's test inputs: all of the test set, a subset (`data.teacher_test`), or none
    has_teacher = (folder / TEACHER_TEST).exists()
    teacher = {ex.id: ex.target for ex in read_examples(folder / TEACHER_TEST)} if has_teacher else {}
    rows = [SentenceRow(ex, teacher.get(ex.id), student.get(ex.id), ex.id in teacher)
            for ex in gold]
    return SentenceView(method, reason, seed, rows)


def sentences_html(view: SentenceView, task: Any) -> str:
    """The section: a note, the disagreement switch, and one table row per test sentence."""
    def cell(source: str, output: str | None, reference: str | None) -> str:
        if isinstance(task, OutputView):
            return task.output_html(source, output, reference)
        return html.escape(output) if output is not None else '<span class="none">–</span>'

    e = html.escape
    disagree = sum(r.status == "disagree" for r in view.rows)
    asked = sum(r.asked for r in view.rows)
    seed = f" (seed {view.seed})" if view.seed is not None else ""
    out = ["<h2>Test sentences: gold, teacher and student</h2>",
           f'<p class="note">The student is {e(view.method)}{seed}, the one <code>mckd export</code> '
           f"ships ({e(view.reason)}). Marked red: in the teacher's or the student's output but not "
           "in the gold one; in the gold column, what the student missed. "
           f"Student and teacher disagree on {disagree} of the {asked} sentences the teacher "
           f"labelled (of {len(view.rows)}).</p>",
           '<input type="checkbox" id="only-disagree"> <label for="only-disagree">show only the '
           "sentences where student and teacher disagree</label>",
           '<table class="sentences">',
           "<tr><th>id</th><th>gold</th><th>teacher</th><th>student</th><th>student vs teacher</th></tr>"]
    for row in view.rows:
        src, gold = row.gold.source, row.gold.target
        status = STATUS_CELLS[row.status]
        teacher = cell(src, row.teacher, gold) if row.asked else '<span class="none">not asked</span>'
        out.append(f'<tr class="{row.status}">'
                   f'<td class="id">{e(row.gold.id)}</td><td>{cell(src, gold, row.student)}</td>'
                   f"<td>{teacher}</td><td>{cell(src, row.student, gold)}</td>{status}</tr>")
    out.append("</table>")
    return "\n".join(out)


def sentences_section(run_dir: Path, results: dict[str, Any]) -> str:
    """The HTML section for report.html, or "" when the run has nothing to show (or its task
    is not installed here)."""
    view = read_view(run_dir, results)
    if view is None:
        return ""
    try:
        task = get_task(str(results.get("task")))
    except MckdError as e:
        log.warning("no per-sentence view in the report: %s", e)
        return ""
    return sentences_html(view, task)
