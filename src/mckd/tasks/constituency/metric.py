"""The paper's parsing metric, as the official MCKD evaluation computes it.

The paper's metric ("mckd") is per-sentence unlabeled bracket F1, averaged over sentences. It
reproduces the official MCKD evaluation (METHOD.md): the prediction is first repaired the way
the official code repairs it (brackets balanced at the end, `a/b`, `a-b`, `don't`-style and
`X's` tokens split when the sentence has them split); punctuation is removed by the GOLD POS
tag (a token stays only if its gold tag is one of the 36 PTB word tags), position by position;
spans of more than one remaining word count, the whole sentence included; a prediction whose
remaining word count differs from the gold's, or that cannot be read as one tree, scores 0.
Words are never compared, only positions. A sentence with one remaining word scores 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from mckd.tasks.constituency.brackets import (
    WORD_TAGS,
    looks_labeled,
    scan_brackets,
    unlabeled_from_spans,
)
from mckd.tasks.constituency.evalb import Scanned

Span = tuple[int, int]

_CONTRACTIONS = {"won't": "wo n't", "don't": "do n't", "can't": "ca n't"}


@dataclass(frozen=True)
class PaperScore:
    f1: float  # 0-100
    precision: float
    recall: float
    success: bool
    problem: str | None = None


@dataclass
class PaperResult:
    sentences: list[PaperScore] = field(default_factory=list)

    @property
    def mean_f1(self) -> float:
        return sum(s.f1 for s in self.sentences) / len(self.sentences) if self.sentences else 0.0

    @property
    def failed(self) -> int:
        return sum(not s.success for s in self.sentences)


def _split_on(tokens: list[str], sep: str, sentence: str) -> list[str]:
    """`a/b` -> `( a ) ( / ) ( b )` when the sentence has `a / b` (same for '-')."""
    out: list[str] = []
    for tok in tokens:
        if len(tok) > 1 and sep in tok and f" {sep} ".join(tok.split(sep)) in sentence:
            out.append(f" ( {sep} ) ".join(f"( {part} )" for part in tok.split(sep)))
        else:
            out.append(tok)
    return " ".join(out).split()


def fixup_prediction(sentence: str, prediction: str) -> str:
    """The official code's repair of a raw prediction, step for step (substring tests against
    the space-joined sentence included), so that scores match the paper's."""
    s = prediction
    opened, closed = s.count("("), s.count(")")
    if opened > closed:
        s += " )" * (opened - closed)
    while s.count(")") > s.count("(") and s.endswith(" )"):
        s = s[:-2]
    tokens = s.split()
    if "/" in s:
        tokens = _split_on(tokens, "/", sentence)
    if "-" in s:
        tokens = _split_on(tokens, "-", sentence)
    if "'" not in s:
        return " ".join(" ".join(tokens).replace("(", "( ").split())
    out = []
    for tok in tokens:
        if tok in _CONTRACTIONS and _CONTRACTIONS[tok] in sentence:
            out.append(f"( {_CONTRACTIONS[tok]} )")
        elif tok.endswith("'s") and tok not in sentence:
            out.append(f"( {tok[:-2]} 's )")
        else:
            out.append(tok)
    return " ".join(" ".join(out).replace("(", "( ").split())


def _prediction_spans(text: str) -> tuple[int, list[tuple[int, int]]]:
    """Leaf count and node spans of a repaired prediction where every '(' opens a node and
    every other token is a leaf; anything that is not exactly one tree is a ValueError."""
    stack: list[int] = []
    spans: list[tuple[int, int]] = []
    leaves = 0
    done = False
    for tok in text.replace("(", " ( ").replace(")", " ) ").split():
        if tok == "(":
            if done:
                raise ValueError("more than one tree")
            stack.append(leaves)
        elif tok == ")":
            if not stack:
                raise ValueError("unbalanced brackets: unexpected ')'")
            spans.append((stack.pop(), leaves))
            done = not stack
        elif not stack:
            raise ValueError(f"word {tok!r} outside any brackets")
        else:
            leaves += 1
    if stack:
        raise ValueError(f"unbalanced brackets: {len(stack)} unclosed '('")
    if not done:
        raise ValueError("no tree")
    return leaves, spans


class PaperGold:
    """What the metric needs from one gold tree: the word mask and the gold spans."""

    __slots__ = ("kept", "kept_before", "n", "sentence", "spans")

    def __init__(
        self,
        gold: str | Scanned,
        sentence: str | None = None,
        *,
        drop_punctuation: bool = True,
    ) -> None:
        words, tags, spans = scan_brackets(gold) if isinstance(gold, str) else gold
        if not drop_punctuation:
            tags = ["NN"] * len(words)
        self.n = len(words)
        self.sentence = " ".join(words) if sentence is None else sentence
        # word position -> number of kept (non-punctuation) words before it
        self.kept_before = list(accumulate(map(WORD_TAGS.__contains__, tags), initial=0))
        self.kept = self.kept_before[-1]
        self.spans = self._masked({(a, b) for a, b, _ in spans})

    def _masked(self, spans: set[tuple[int, int]] | list[tuple[int, int]]) -> set[tuple[int, int]]:
        kb = self.kept_before
        return {(kb[a], kb[b]) for a, b in spans if kb[b] - kb[a] > 1}


def score_prediction(gold: PaperGold, prediction: str) -> PaperScore:
    """One sentence. A labeled prediction is first turned into the paper's unlabeled form."""
    if looks_labeled(prediction):
        # a malformed one is left to the official repair and its failure rules
        try:
            words, _, spans = scan_brackets(prediction, labels=True)
            prediction = unlabeled_from_spans(words, [(i, j) for i, j, _ in spans])
        except ValueError:
            pass
    fixed = fixup_prediction(gold.sentence, prediction)
    try:
        leaves, spans = _prediction_spans(fixed)
    except ValueError as e:
        return PaperScore(0.0, 0.0, 0.0, False, f"cannot read the repaired prediction: {e}")
    if leaves > gold.n:
        return PaperScore(0.0, 0.0, 0.0, False, f"{leaves} words for {gold.n} gold words")
    pred_kept = gold.kept_before[leaves]
    if pred_kept != gold.kept or pred_kept == 0:
        return PaperScore(
            0.0, 0.0, 0.0, False, f"{pred_kept} words after punctuation removal, gold {gold.kept}"
        )
    pred = gold._masked(spans)
    correct = len(pred & gold.spans)
    if correct == 0:
        return PaperScore(0.0, 0.0, 0.0, True)
    p, r = correct / len(pred), correct / len(gold.spans)
    return PaperScore(100.0 * 2 * p * r / (p + r), 100.0 * p, 100.0 * r, True)


def paper_metric(
    golds: Sequence[str],
    predictions: Sequence[str],
    sentences: Sequence[str] | None = None,
    *,
    drop_punctuation: bool = True,
) -> PaperResult:
    """Score predictions against labeled gold trees (with POS tags). `sentences` defaults to
    each gold tree's words joined by spaces. With `drop_punctuation=False` every token counts
    (for gold trees without POS tags). Raises `TreeSyntaxError` on a malformed gold tree."""
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} gold trees but {len(predictions)} predictions")
    result = PaperResult()
    for i, (g, p) in enumerate(zip(golds, predictions, strict=True)):
        sentence = sentences[i] if sentences is not None else None
        gold = PaperGold(g, sentence, drop_punctuation=drop_punctuation)
        result.sentences.append(score_prediction(gold, p))
    return result


def average(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0



def span_f1(pred: Iterable[Span], gold: Iterable[Span]) -> float:
    """Unlabeled span F1 (0-100) of one sentence; two empty sets (one-word sentences) agree."""
    p, g = set(pred), set(gold)
    if not p and not g:
        return 100.0
    match = len(p & g)
    if match == 0:
        return 0.0
    precision, recall = match / len(p), match / len(g)
    return 100.0 * 2 * precision * recall / (precision + recall)
