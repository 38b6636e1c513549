"""The Task protocol: everything the pipeline, teacher, students, report and CLI may know about
an output format. A new task is one module implementing this protocol and one entry in
`mckd.tasks.TASKS`; nothing outside `tasks/` switches on a task's name.

Targets are strings (the student's target form: the unlabeled bracketing for parsing, BIO tags
joined by spaces for slot filling); sources are the input tokens joined by spaces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mckd.examples import Example


class AnswerError(ValueError):
    """An answer (from the teacher or a student) that cannot be read as the task's output.

    The only exception a task's `read_answer`/`repair` may raise for bad model output: the
    labelling run turns it into a rejection with this message as the reason. Any other
    exception is a bug in our code and stops the run."""


@dataclass(frozen=True)
class Metric:
    """One number a task's `score` returns: its key in the scores dict, a short column label
    for reports, and a note saying which scorer produced it."""

    key: str
    label: str
    note: str
    primary: bool = False


@dataclass
class Repaired:
    """An answer after the task's repair: `text` in the target form, None when nothing usable
    was left; `problems` are the reasons counted in the ledger (empty when it was valid as is)."""

    text: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class Corpus:
    """A built-in corpus: labeled (gold) pairs, unlabeled pool (gold kept for scoring
    pseudolabels) and test pairs."""

    labeled: list[Example]
    pool: list[Example]
    test: list[Example]


@runtime_checkable
class Task(Protocol):
    """What a task provides. Constituency parsing (tasks/constituency.py) and slot filling
    (tasks/slots.py) implement it."""

    name: str
    metrics: tuple[Metric, ...]
    """Everything `score` returns that a report shows; exactly one is primary (the F1 that
    methods are ranked by and plotted with)."""
    student_kinds: tuple[str, ...]
    """Student kinds that can learn this task; the first is the default."""
    prompt_forms: tuple[str, ...]
    """Answer forms the teacher can be prompted in; the first is the default."""
    copies_words: bool
    """Whether targets contain the input words (so a generating student's words may be
    restored from the input)."""

    # --- gold and scoring
    def has_gold(self, example: Example) -> bool:
        """Whether the example carries a gold output to score against."""
        ...

    def validate(self, example: Example) -> str | None:
        """The problem with a labeled example's target, or None if it is valid."""
        ...

    def score(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, float]:
        """Scores of predictions (target form) against gold examples; keys as in `metrics`."""
        ...

    def fidelity(self, targets: Sequence[str], preds: Sequence[str], sources: Sequence[str]) -> float:
        """Agreement (0-100) of predictions with (pseudo)label targets, for early stopping."""
        ...

    def baselines(self) -> dict[str, Callable[[list[str]], list[str]]]:
        """Trivial outputs to report beside the methods: name -> sources -> predictions."""
        ...

    # --- teacher
    def instruction(self, form: str) -> str:
        """The default instruction that opens a prompt."""
        ...

    def demo_output(self, example: Example, form: str) -> str:
        """The answer shown for a labeled example in a prompt."""
        ...

    def label_set(self, labeled: Sequence[Example], extra: Sequence[str] = ()) -> list[str]:
        """The labels answers may use (tags, phrase labels), from the labeled examples."""
        ...

    def grammar(self, source: str, form: str, labels: Sequence[str], options: Any) -> str | None:
        """A GBNF grammar that admits only valid answers for this input, or None."""
        ...

    def answer_budget(self, source: str, form: str) -> int:
        """Most tokens an answer for this input may need."""
        ...

    def read_answer(self, raw: str, example: Example, form: str) -> Repaired:
        """A raw answer -> the target form, repaired; raises only AnswerError."""
        ...

    def combine(self, source: str, answers: Sequence[str], how: str) -> tuple[str, dict[str, Any]]:
        """One answer (target form) from several sampled ones, with what was done."""
        ...

    # --- students
    def decoding_constraint(self, source: str, labels: Sequence[str]) -> Any | None:
        """A constraint for generating (seq2seq/causal) students, or None."""
        ...

    # --- data
    def read_corpus(self, path: str | Path) -> list[Example]:
        """Read a user's corpus in any of the task's standard formats (errors name file:line)."""
        ...

    def evaluate_files(self, gold: str | Path, pred: str | Path, metric: str) -> dict[str, Any]:
        """`mckd evaluate`: score a prediction file against a gold file."""
        ...

    eval_metrics: tuple[str, ...]
    """Values `mckd evaluate --metric` accepts for this task; the first is the default."""

    def builtin_corpus(self, n_labeled: int, n_pool: int, n_test: int, *, seed: int,
                       max_words: int | None = None) -> Corpus:
        """The task's generated built-in corpus (the demo's data)."""
        ...


def primary_metric(task: Task) -> Metric:
    """The task's primary metric."""
    return next(m for m in task.metrics if m.primary)
