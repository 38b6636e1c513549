"""Constituency parsing: the task object the pipeline uses, and the paper's metric.

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

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from nltk import Tree

from mckd.examples import Example
from mckd.tasks.evalb import COLLINS, EvalbParams, evalb
from mckd.tasks.trees import (
    WORD_TAGS,
    Repair,
    left_branching,
    looks_labeled,
    parse_bracketed,
    repair,
    right_branching,
    scan_brackets,
    to_labeled,
    to_unlabeled,
    tree_words,
)

_TOKEN = re.compile(r"\(|\)|[^\s()]+")
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
    tokens = _split_on(s.split(), "/", sentence)
    tokens = _split_on(tokens, "-", sentence)
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
    for tok in _TOKEN.findall(text):
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
        self, gold: str, sentence: str | None = None, *, drop_punctuation: bool = True
    ) -> None:
        words, tags, spans = scan_brackets(gold)
        if not drop_punctuation:
            tags = ["NN"] * len(words)
        self.n = len(words)
        self.sentence = " ".join(words) if sentence is None else sentence
        self.kept_before = [0] * (self.n + 1)
        kept = 0
        for i, tag in enumerate(tags):
            self.kept_before[i] = kept
            kept += tag in WORD_TAGS
        self.kept_before[self.n] = kept
        self.kept = kept
        self.spans = self._masked({(a, b) for a, b, _ in spans})

    def _masked(self, spans: set[tuple[int, int]] | list[tuple[int, int]]) -> set[tuple[int, int]]:
        kb = self.kept_before
        return {(kb[a], kb[b]) for a, b in spans if kb[b] - kb[a] > 1}


def score_prediction(gold: PaperGold, prediction: str) -> PaperScore:
    """One sentence. A labeled prediction is first turned into the paper's unlabeled form."""
    if looks_labeled(prediction):
        # a malformed one is left to the official repair and its failure rules
        with contextlib.suppress(ValueError):
            prediction = to_unlabeled(parse_bracketed(prediction))
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


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


class ConstituencyTask:
    """Constituency parsing as the pipeline sees it: the paper's unlabeled bracketing as the
    target, repair of generated trees, and scores (the paper's metric and EVALB)."""

    name = "constituency"

    def linearize(self, tree: Tree) -> str:
        return to_unlabeled(tree)

    def example(self, id: str, tree: Tree, *, labeled: bool = True) -> Example:
        """The Example for a normalized gold tree (target None for the unlabeled pool)."""
        return Example(
            id,
            " ".join(tree_words(tree)),
            to_unlabeled(tree) if labeled else None,
            {"tree": to_labeled(tree, pos=True)},
        )

    def repair(self, text: str, source: str) -> Repair:
        return repair(text, source.split())

    def score(self, golds: list[Example], preds: list[str]) -> dict[str, float]:
        """`f1`/`precision`/`recall`: the paper's metric (mean per sentence, 0-100); `valid`:
        predictions it could score; `evalb_unlabeled_f1` always and `evalb_f1` when both gold
        and predictions carry phrase labels (EVALB, COLLINS.prm, corpus-level)."""
        if len(golds) != len(preds):
            raise ValueError(f"{len(golds)} gold examples but {len(preds)} predictions")
        trees = [ex.meta.get("tree") or ex.target for ex in golds]
        if any(t is None for t in trees):
            raise ValueError("a gold example has neither meta['tree'] nor a target")
        tagged = all(ex.meta.get("tree") for ex in golds)
        sources = [ex.source for ex in golds]
        paper = paper_metric(trees, preds, sources, drop_punctuation=tagged)
        out = {
            "f1": paper.mean_f1,
            "precision": _mean([s.precision for s in paper.sentences]),
            "recall": _mean([s.recall for s in paper.sentences]),
            "valid": float(len(preds) - paper.failed),
            "sentences": float(len(preds)),
        }
        unlabeled = evalb(trees, preds, EvalbParams(labeled=False), malformed_is_error=True)
        out["evalb_unlabeled_f1"] = unlabeled.all.figures()["Bracketing FMeasure"]
        if tagged and any(looks_labeled(p) for p in preds):
            labeled = evalb(trees, preds, COLLINS, malformed_is_error=True)
            out["evalb_f1"] = labeled.all.figures()["Bracketing FMeasure"]
            out["evalb_valid"] = float(labeled.all.valid)
        return out

    def baseline(self, sources: list[str], kind: str = "right") -> list[str]:
        """Right- or left-branching trees over each source's words, in the target form."""
        build = {"right": right_branching, "left": left_branching}[kind]
        return [build(source.split()) for source in sources]

    def fidelity(self, targets: list[str], preds: list[str], sources: list[str]) -> float:
        """Mean per-sentence unlabeled span F1 (0-100) of predictions against pseudolabel
        targets, every token counted (no gold POS tags to find punctuation by); targets that
        are not well-formed trees are left out."""
        scores = []
        for target, pred, source in zip(targets, preds, sources, strict=True):
            try:
                gold = PaperGold(target, source, drop_punctuation=False)
            except ValueError:
                continue
            scores.append(score_prediction(gold, pred).f1)
        return _mean(scores)
