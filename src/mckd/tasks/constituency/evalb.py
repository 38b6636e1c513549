"""EVALB (Sekine & Collins) in pure Python, with COLLINS.prm as the default parameters.

Reproduces the C program's per-sentence status, bracket counts, crossing and tagging figures
and its two summary blocks (all sentences, and sentences of at most CUTOFF_LEN words), so
numbers from here can be put next to published EVALB numbers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from pydantic import BaseModel, ConfigDict, Field

from mckd.tasks.constituency.brackets import Scan, TreeSyntaxError, scan_brackets

# One sentence as scan_brackets reads it: words, tags, constituents (start, end, label).
Scanned = Scan


class EvalbParams(BaseModel):
    """EVALB's parameter file; the defaults are COLLINS.prm (with no limit on errors)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    labeled: bool = Field(True, description="LABELED: brackets must agree on the label to match.")
    cutoff_len: int = Field(40, ge=1, description="CUTOFF_LEN: length limit of the second block.")
    delete_labels: frozenset[str] = Field(
        frozenset({"TOP", "-NONE-", ",", ":", "``", "''", "."}),
        description="DELETE_LABEL: brackets with these labels are ignored; preterminals with "
        "these tags are removed with their words.",
    )
    delete_labels_for_length: frozenset[str] = Field(
        frozenset({"-NONE-"}),
        description="DELETE_LABEL_FOR_LENGTH: tags not counted in a sentence's length.",
    )
    equal_labels: tuple[tuple[str, str], ...] = Field(
        (("ADVP", "PRT"),), description="EQ_LABEL: pairs of labels that count as the same."
    )


COLLINS = EvalbParams()
_CUT = re.compile(r"[-=]")
OK, ERROR, SKIP = 0, 1, 2


@dataclass(frozen=True)
class EvalbSentence:
    """One row of EVALB's table."""

    id: int
    length: int  # words, traces excluded, punctuation included (EVALB's "Len.")
    status: int  # 0 ok, 1 error (yields differ), 2 skip (no test words)
    matched: int = 0
    gold: int = 0
    test: int = 0
    crossing: int = 0
    words: int = 0
    correct_tags: int = 0
    problem: str | None = None

    @property
    def recall(self) -> float:
        return 100.0 * self.matched / self.gold if self.gold else 0.0

    @property
    def precision(self) -> float:
        return 100.0 * self.matched / self.test if self.test else 0.0

    @property
    def tag_accuracy(self) -> float:
        return 100.0 * self.correct_tags / self.words if self.words else 0.0


@dataclass
class EvalbTotals:
    """Counts summed over sentences (added before dividing, as EVALB does)."""

    sentences: int = 0
    errors: int = 0
    skipped: int = 0
    matched: int = 0
    gold: int = 0
    test: int = 0
    complete: int = 0
    words: int = 0
    correct_tags: int = 0
    crossing: int = 0
    no_crossing: int = 0
    two_or_less_crossing: int = 0

    def add(self, s: EvalbSentence) -> None:
        self.sentences += 1
        if s.status == ERROR:
            self.errors += 1
            return
        if s.status == SKIP:
            self.skipped += 1
            return
        self.matched += s.matched
        self.gold += s.gold
        self.test += s.test
        self.complete += s.gold == s.test == s.matched
        self.words += s.words
        self.correct_tags += s.correct_tags
        self.crossing += s.crossing
        self.no_crossing += s.crossing == 0
        self.two_or_less_crossing += s.crossing <= 2

    @property
    def valid(self) -> int:
        return self.sentences - self.errors - self.skipped

    def figures(self) -> dict[str, float]:
        """The summary block with EVALB's names, full precision (EVALB prints 2 decimals)."""
        r = 100.0 * self.matched / self.gold if self.gold else 0.0
        p = 100.0 * self.matched / self.test if self.test else 0.0
        n = self.valid
        return {
            "Number of sentence": self.sentences,
            "Number of Error sentence": self.errors,
            "Number of Skip  sentence": self.skipped,
            "Number of Valid sentence": n,
            "Bracketing Recall": r,
            "Bracketing Precision": p,
            "Bracketing FMeasure": 2 * p * r / (p + r) if p + r else 0.0,
            "Complete match": 100.0 * self.complete / n if n else 0.0,
            "Average crossing": self.crossing / n if n else 0.0,
            "No crossing": 100.0 * self.no_crossing / n if n else 0.0,
            "2 or less crossing": 100.0 * self.two_or_less_crossing / n if n else 0.0,
            "Tagging accuracy": 100.0 * self.correct_tags / self.words if self.words else 0.0,
        }


@dataclass
class EvalbResult:
    sentences: list[EvalbSentence] = field(default_factory=list)
    all: EvalbTotals = field(default_factory=EvalbTotals)
    short: EvalbTotals = field(default_factory=EvalbTotals)  # len <= cutoff_len
    borrowed_tags: int = 0  # test trees without POS tags that were given the gold tags


class _Rules:
    """EVALB's parameters in the form the inner loop wants, with labels memoised."""

    def __init__(self, params: EvalbParams) -> None:
        self.params = params
        self.delete = params.delete_labels
        self.for_length = params.delete_labels_for_length
        self.canon: dict[str, str] = {}
        for a, b in params.equal_labels:
            root = self.canon.get(a, a)
            self.canon[b] = root
            self.canon.setdefault(a, root)
        self._labels: dict[str, str | None] = {}

    def bracket_label(self, label: str) -> str | None:
        """The label EVALB compares (cut at the first '-' or '=', equal labels merged), or
        None when brackets with it are deleted."""
        out = self._labels.get(label, "")
        if out == "":
            cut = _CUT.split(label, 1)[0]
            cut = self.canon.get(cut, cut)
            out = self._labels[label] = None if cut in self.delete else cut
        return out

    def same_tag(self, a: str, b: str) -> bool:
        return a == b or self.canon.get(a, a) == self.canon.get(b, b)


class _Side:
    """One tree after EVALB's deletions: kept words and tags, and its brackets."""

    __slots__ = ("brackets", "length", "tags", "words")

    def __init__(self, scanned: Scanned, rules: _Rules) -> None:
        words, tags, spans = scanned
        self.length = len(tags) - sum(map(rules.for_length.__contains__, tags))
        dropped = list(map(rules.delete.__contains__, tags))
        if not any(dropped):
            self.words, self.tags = words, tags
            kept_before: list[int] | range = range(len(words) + 1)
        else:
            self.words = [w for w, d in zip(words, dropped, strict=True) if not d]
            self.tags = [t for t, d in zip(tags, dropped, strict=True) if not d]
            # word position -> index among the kept words
            kept_before = list(accumulate((not d for d in dropped), initial=0))
        label = rules.bracket_label
        self.brackets: list[tuple[int, int, str]] = [
            (kept_before[i], kept_before[j], lab)
            for i, j, lab in ((i, j, label(lab)) for i, j, lab in spans)
            if lab is not None and kept_before[i] != kept_before[j]
        ]


def _matched(gold: list, test: list) -> int:
    """Brackets matched one to one (EVALB pairs each gold bracket with an unused equal test
    bracket, so repeated brackets match as often as both sides have them)."""
    g, t = set(gold), set(test)
    if len(g) == len(gold) and len(t) == len(test):
        return len(g & t)  # no repeats: plain set intersection, the common case
    return sum((Counter(gold) & Counter(test)).values())


def _crossing(gold: list[tuple[int, int, str]], test: list[tuple[int, int, str]]) -> int:
    """Test brackets that cross at least one gold bracket."""
    gold_spans = {(s, e) for s, e, _ in gold}
    count = 0
    for s, e, _ in test:
        if (s, e) in gold_spans:
            continue  # gold brackets nest, so none crosses a gold span
        for gs, ge in gold_spans:
            if (gs < s < ge < e) or (s < gs < e < ge):
                count += 1
                break
    return count


def score_sentence(
    sid: int, gold: Scanned, test: Scanned, params: EvalbParams | _Rules = COLLINS
) -> EvalbSentence:
    rules = params if isinstance(params, _Rules) else _Rules(params)
    g, t = _Side(gold, rules), _Side(test, rules)
    if not t.words:
        return EvalbSentence(sid, g.length, SKIP, problem="no words in the test tree")
    if len(g.words) != len(t.words):
        return EvalbSentence(
            sid, g.length, ERROR, problem=f"length unmatch ({len(g.words)}|{len(t.words)})"
        )
    for gw, tw in zip(g.words, t.words, strict=True):
        if gw != tw:
            return EvalbSentence(sid, g.length, ERROR, problem=f"words unmatch ({gw}|{tw})")
    if rules.params.labeled:
        matched = _matched(g.brackets, t.brackets)
    else:
        matched = _matched([b[:2] for b in g.brackets], [b[:2] for b in t.brackets])
    correct = sum(rules.same_tag(a, b) for a, b in zip(g.tags, t.tags, strict=True))
    return EvalbSentence(
        sid,
        g.length,
        OK,
        matched=matched,
        gold=len(g.brackets),
        test=len(t.brackets),
        crossing=_crossing(g.brackets, t.brackets),
        words=len(g.words),
        correct_tags=correct,
    )


def _borrow_tags(gold: Scanned, test: Scanned) -> tuple[Scanned, bool]:
    """A test tree in the unlabeled `( w )` form has no POS tags, so EVALB could not delete its
    punctuation; give it the gold tags when the word counts agree (tagging accuracy is then
    meaningless, and reported as such)."""
    words, tags, spans = test
    if any(tags) or len(words) != len(gold[0]):
        return test, False
    return (words, list(gold[1]), spans), True


def evalb(
    golds: Sequence[str | Scanned],
    tests: Sequence[str | Scanned],
    params: EvalbParams = COLLINS,
    *,
    malformed_is_error: bool = False,
) -> EvalbResult:
    """Score test trees against gold trees, pair by pair (strings or `scan_brackets` output).
    A malformed gold tree raises `TreeSyntaxError` (callers add the file and line); so does a
    malformed test tree unless `malformed_is_error`, which makes it an error sentence."""
    if len(golds) != len(tests):
        raise ValueError(f"{len(golds)} gold trees but {len(tests)} test trees")
    result = EvalbResult()
    rules = _Rules(params)
    for i, (g, t) in enumerate(zip(golds, tests, strict=True), start=1):
        g = scan_brackets(g) if isinstance(g, str) else g
        if isinstance(t, str):
            try:
                t = scan_brackets(t) if t.strip() else ([], [], [])
            except TreeSyntaxError as e:
                if not malformed_is_error:
                    raise
                length = sum(tag not in params.delete_labels_for_length for tag in g[1])
                row = EvalbSentence(i, length, ERROR, problem=e.problem)
                _add(result, row, params)
                continue
        t, borrowed = _borrow_tags(g, t)
        result.borrowed_tags += borrowed
        _add(result, score_sentence(i, g, t, rules), params)
    return result


def _add(result: EvalbResult, row: EvalbSentence, params: EvalbParams) -> None:
    result.sentences.append(row)
    result.all.add(row)
    if row.length <= params.cutoff_len:
        result.short.add(row)
