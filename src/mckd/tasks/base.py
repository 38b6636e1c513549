"""The Task protocol: everything the pipeline, teacher, students, report and CLI may know about
an output format. A task is a class implementing this protocol: a built-in one in a package of
its own under `mckd.tasks`, or one from another package, found through the `mckd.tasks` entry
points (docs/TASKS.md); nothing outside `tasks/` switches on a task's name.

Targets are strings (the student's target form: the unlabeled bracketing for parsing, BIO tags
joined by spaces for slot filling); sources are the input tokens joined by spaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from mckd.errors import ConfigError

if TYPE_CHECKING:
    from mckd.evidence import SentenceStats
    from mckd.examples import Example


T = TypeVar("T")


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


OUTCOMES = ("valid", "repaired", "rejected")
"""What became of an answer, counted apart in the ledger and the report: usable as written,
usable only after a repair, nothing usable."""


@dataclass
class Repaired:
    """An answer after the task's repair: `text` in the target form, None when nothing usable
    was left; `problems` are what the repair had to do (empty when it was valid as written:
    any entry makes the answer repaired, not valid). `complete` False keeps a text that the
    repair could not fully fix (for trees: leaves that still differ from the input words)."""

    text: str | None
    problems: list[str] = field(default_factory=list)
    complete: bool = True

    @property
    def valid(self) -> bool:
        """Usable as written: nothing had to be repaired."""
        return self.outcome == "valid"

    @property
    def outcome(self) -> str:
        """What became of the answer: "valid", "repaired" (usable after a repair, or kept
        though not fully fixed) or "rejected" (no text)."""
        if self.text is None:
            return "rejected"
        return "valid" if self.complete and not self.problems else "repaired"


class DecodingConstraint(Protocol):
    """What a generating student needs to decode only valid outputs for one input: a state
    machine over the student's token ids (student/constrained.py drives it in greedy and beam
    search). A state for which `next_tokens` is empty is finished: only EOS may follow."""

    def start(self) -> Any:
        """The state before the first token."""
        ...

    def next_tokens(self, state: Any) -> set[int]:
        """Token ids allowed next (empty: the output is complete)."""
        ...

    def step(self, state: Any, token: int) -> Any | None:
        """The state after one token; None if the token leaves the language."""
        ...

    def decode(self, tokens: Sequence[int], eos_id: int) -> tuple[str, bool]:
        """The output text (target form) of generated tokens, and whether it is complete."""
        ...

    def max_tokens(self) -> int:
        """The most tokens a complete output can take (generation is never cut shorter)."""
        ...


def accepted_steps(constraint: DecodingConstraint, tokens: Sequence[int],
                   eos_id: int) -> Iterator[tuple[Any, Any]]:
    """(state before, state after) for each generated token a constraint accepts, from its
    start up to EOS or the first token it rejects: what a constraint's `decode` reads."""
    state = constraint.start()
    for tok in tokens:
        if tok == eos_id:
            return
        nxt = constraint.step(state, tok)
        if nxt is None:
            return
        yield state, nxt
        state = nxt


def gold_outputs(golds: Sequence[Example], preds: Sequence[str],
                 gold_of: Callable[[Example], T | None], where: str) -> list[T]:
    """Each gold example's output (`gold_of`, which looks in `where`, then the target), one
    per prediction; a count that differs, or a gold example without one, is a ValueError."""
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold examples but {len(preds)} predictions")
    out = []
    for ex in golds:
        gold = gold_of(ex)
        if gold is None:
            raise ValueError(f"gold example {ex.id!r} has neither {where} nor a target")
        out.append(gold)
    return out


@dataclass(frozen=True)
class Corpus:
    """A built-in corpus: labeled (gold) pairs, unlabeled pool (gold kept for scoring
    pseudolabels) and test pairs."""

    labeled: list[Example]
    pool: list[Example]
    test: list[Example]


@runtime_checkable
class Task(Protocol):
    """What a task provides. Constituency parsing (tasks/constituency/), slot filling
    (tasks/slots/) and plain text (tasks/text.py) implement it; docs/TASKS.md writes one."""

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

    def sentence_stats(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, SentenceStats]:
        """Per-sentence statistics of the metrics a resample of the sentences can recompute
        (mckd.evidence: per-sentence counts and the function from their sums to the metric),
        keyed as in `metrics`; each one's `value()` is what `score` returns for its key. The
        run's bootstrap intervals and paired comparisons come from these; a metric left out
        gets no interval. The primary metric should be here."""
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

    def label_set(self, labeled: Sequence[Example], extra: Sequence[str] = ()) -> Any:
        """The labels answers may use, from the labeled examples plus `extra` (the config's
        `task.labels`). Opaque to the caller, which hands it back to `grammar` and
        `decoding_constraint` as is (slots: the tag list; parsing: phrase labels and POS tags)."""
        ...

    def grammar(self, source: str, form: str, labels: Any, options: Any) -> str | None:
        """A GBNF grammar that admits only valid answers for this input, or None. `options` are
        the teacher's prompt settings (mckd.teacher.prompts.PromptConfig: `style`, and settings
        only some tasks read, such as `root` and `max_depth`); in the completion style the
        grammar should admit one leading space."""
        ...

    def answer_budget(self, source: str, form: str, count_tokens: Callable[[str], int]) -> int:
        """Most tokens an answer for this input may need, counted with the backend's
        `count_tokens`."""
        ...

    def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
        """A raw answer -> the target form, repaired; raises only AnswerError. Whatever the
        repair changes goes in `problems` (so the answer counts as repaired, not valid); text
        around the answer that it ignores does not. `options` as for
        `grammar` (parsing reads `nest_flat`), plus `options.labels`, the label set the prompts
        use (slots repairs tags outside it); None when the caller has no prompt settings."""
        ...

    def combine(self, source: str, answers: Sequence[Repaired], how: str) -> tuple[Repaired, dict[str, Any]]:
        """One answer from several sampled ones (each as `read_answer` returned it, usable or
        not), with what was done; `how` is the configured consensus ("mbr" or "vote"). The
        result keeps the problems of the sample it picks, and is repaired when it is built from
        repaired samples."""
        ...

    # --- students
    def decoding_constraint(self, source: str, labels: Any, tokenizer: Any, *,
                            placeholder: str | None = None,
                            space_first: bool = False) -> DecodingConstraint | None:
        """A constraint for a generating (seq2seq/causal) student's output for this input, over
        the student's `tokenizer`, or None when the task has none. `placeholder` replaces the
        input words in the output (students trained on placeholder targets); `space_first`
        says the first unit is written with a leading space (decoder-only models)."""
        ...

    # --- data
    def read_corpus(self, path: str | Path) -> list[Example]:
        """Read a user's corpus in any of the task's standard formats (errors name file:line)."""
        ...

    def evaluate_files(self, gold: str | Path, pred: str | Path, metric: str, *,
                       per_sentence: bool = False) -> dict[str, Any]:
        """`mckd evaluate`: score a prediction file against a gold file (with per-sentence rows
        when asked); bad input is an InputError naming file and line."""
        ...

    eval_metrics: tuple[str, ...]
    """Values `mckd evaluate --metric` accepts for this task; the first is the default."""

    def builtin_corpus(self, n_labeled: int, n_pool: int, n_test: int, *, seed: int,
                       max_words: int | None = None, test_prefix: int | None = None) -> Corpus:
        """The task's generated built-in corpus (the demo's data): `n_labeled` gold pairs, a pool
        of `n_pool` inputs (gold kept in meta only) and `n_test` test pairs, sentences of at
        most `max_words` words. With `test_prefix` P the labeled pairs, the pool and the first
        P test pairs are exactly those of the corpus with n_test = P, and the other test pairs
        follow them (so the teacher's test subset, and its cache, survive a larger test set)."""
        ...

    # Optional hooks, called through their helpers (a task may leave them out):
    # `label_coverage` (LabelCoverage): how much gold the run's label set cannot express;
    # `stats`, `format_stats` (CorpusStats): `mckd data stats`;
    # `write_builtin_corpus`, `write_generated` (BuiltinCorpusFiles): `mckd data synth`;
    # `output_html` (OutputView): the report's per-sentence view.


@runtime_checkable
class LabelCoverage(Protocol):
    """An optional hook, outside `Task` so that tasks written without it still are Tasks: call
    it through `label_coverage`. Slot filling implements it; parsing returns None."""

    def label_coverage(self, golds: Sequence[Example], labels: Any) -> dict[str, Any] | None:
        """How much of the gold outputs `labels` (a `label_set`) can express, for the report:
        `gold_chunks` (units of gold), `outside_label_set` (those no answer in the label set
        can give), `outside_share` (0-100), `recall_ceiling` (0-100, the most any method can
        recall) and `f1_ceiling` (the F1 that recall gives at precision 100), plus what the
        task adds; None when the label set limits nothing (or the golds have nothing to
        count)."""
        ...


def label_coverage(task: Task, golds: Sequence[Example], labels: Any) -> dict[str, Any] | None:
    """The task's `label_coverage` (LabelCoverage), None for a task without the hook."""
    if not isinstance(task, LabelCoverage):
        return None
    return task.label_coverage(golds, labels)


@runtime_checkable
class CorpusStats(Protocol):
    """Optional hooks for `mckd data stats`: numbers that describe a corpus of the task."""

    def stats(self, path: str | Path) -> dict[str, Any]:
        """Numbers describing the corpus at `path` (any format `read_corpus` reads), as JSON."""
        ...

    def format_stats(self, stats: dict[str, Any]) -> str:
        """`stats` as a few lines of plain text."""
        ...


@runtime_checkable
class BuiltinCorpusFiles(Protocol):
    """Optional hooks for `mckd data synth`: the built-in corpus's generator written to files."""

    def write_builtin_corpus(self, out_dir: str | Path, n_labeled: int, n_pool: int, n_test: int,
                             *, seed: int, max_words: int | None = None) -> dict[str, int]:
        """Write `builtin_corpus(...)` under `out_dir` as labeled.jsonl, unlabeled.jsonl,
        test.jsonl and split.json (and whatever else the task keeps beside them); return the
        three sizes."""
        ...

    def write_generated(self, path: str | Path, n: int, *, seed: int,
                        max_words: int | None = None) -> None:
        """Write `n` generated gold examples, unsplit, to the file `path` in a format
        `read_corpus` reads (so `mckd data split` can split them)."""
        ...


def optional_hook(task: Task, hook: type[Any], command: str) -> Any:
    """`task` as the optional `hook` protocol it implements; a one-line ConfigError naming
    the command that needs it otherwise."""
    if not isinstance(task, hook):
        raise ConfigError(f"the {task.name} task has no {command} (it does not implement "
                          f"{hook.__name__})")
    return task


@runtime_checkable
class OutputView(Protocol):
    """An optional task hook (outside `Task`, so tasks written before it still are tasks): how
    the report's per-sentence view shows the task's outputs. A task without it is shown as
    escaped text."""

    def output_html(self, source: str, output: str | None, reference: str | None) -> str:
        """One output (target form; None: there is none) of `source` as an HTML fragment, with
        what `reference` (another output for the same input, or None) lacks marked by class
        `diff`. Text must be escaped; the report's page styles the classes `diff`, `none`, `con`
        and `br` (a constituent and its brackets) and `chunk` (a labelled span); anything else
        is styled inline."""
        ...


def primary_metric(task: Task) -> Metric:
    """The task's primary metric."""
    return next(m for m in task.metrics if m.primary)


def metrics_json(task: Task) -> list[dict[str, Any]]:
    """The task's metrics for results.json (primary first), so that a report made from
    results.json alone can label and order any task's columns."""
    ordered = sorted(task.metrics, key=lambda m: not m.primary)
    return [{"key": m.key, "label": m.label, "note": m.note, "primary": m.primary} for m in ordered]
