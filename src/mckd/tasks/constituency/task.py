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

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mckd.errors import InputError
from mckd.examples import Example, example_from_line
from mckd.io import read_text_lines
from mckd.tasks.base import Corpus, DecodingConstraint, Metric, Repaired
from mckd.tasks.constituency.brackets import (
    WORD_TAGS,
    TreeSyntaxError,
    left_branching,
    looks_labeled,
    right_branching,
    scan_brackets,
    unlabeled_from_spans,
)
from mckd.tasks.constituency.evalb import (
    COLLINS,
    EvalbParams,
    EvalbResult,
    EvalbTotals,
    Scanned,
    evalb,
)

# nltk takes seconds to import and scoring never needs it, so the nltk-based tree helpers
# are imported where the task uses them.
if TYPE_CHECKING:
    from nltk import Tree

    from mckd.tasks.constituency.trees import Repair

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


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _all_or_none_tagged(golds: list[Example]) -> bool:
    """Whether every gold example has its POS-tagged tree; an error when only some have one, as
    one metric cannot both drop punctuation (by the tags) and count it."""
    untagged = [ex.id for ex in golds if not ex.meta.get("tree")]
    if untagged and len(untagged) < len(golds):
        raise InputError(None, None, f"{len(untagged)} of {len(golds)} gold examples have no POS-tagged "
                         f"tree in meta['tree'] (first: id {untagged[0]!r}) but the others do: the "
                         "paper's metric removes punctuation by those tags, so give every gold example "
                         "its tree, or none")
    return not untagged


class ConstituencyTask:
    """Constituency parsing as the pipeline sees it: the paper's unlabeled bracketing as the
    target, repair of generated trees, and scores (the paper's metric and EVALB)."""

    name = "constituency"
    metrics = (
        Metric("f1", "F1 (paper metric)", "the paper's metric: per-sentence unlabeled bracket F1 "
               "without punctuation, averaged over sentences, invalid trees 0", primary=True),
        Metric("evalb_f1", "EVALB F1", "corpus-level labeled EVALB F1 (COLLINS.prm)"),
        Metric("evalb_unlabeled_f1", "EVALB unlabeled F1", "corpus-level EVALB F1 ignoring labels"),
        Metric("valid", "valid outputs", "outputs that are valid trees over exactly the input words"),
    )
    # seq2seq first: a config that names no student kind gets the paper's kind of student
    student_kinds = ("seq2seq", "chart", "causal")
    prompt_forms = ("labeled", "unlabeled")
    copies_words = True
    eval_metrics = ("mckd", "evalb", "evalb-unlabeled")

    def linearize(self, tree: Tree) -> str:
        from mckd.tasks.constituency.trees import to_unlabeled

        return to_unlabeled(tree)

    def example(self, id: str, tree: Tree, *, labeled: bool = True) -> Example:
        """The Example for a normalized gold tree (target None for the unlabeled pool)."""
        from mckd.tasks.constituency.trees import to_labeled, to_unlabeled, tree_words

        return Example(
            id,
            " ".join(tree_words(tree)),
            to_unlabeled(tree) if labeled else None,
            {"tree": to_labeled(tree, pos=True)},
        )

    def repair(self, text: str, source: str) -> Repair:
        from mckd.tasks.constituency.trees import repair

        return repair(text, source.split())

    # --- gold and scoring -----------------------------------------------------------------

    def has_gold(self, example: Example) -> bool:
        """Gold is the labeled tree with POS tags in meta['tree']."""
        return bool(example.meta.get("tree"))

    def validate(self, example: Example) -> str | None:
        """A target must be one well-formed tree whose leaves are the source's words."""
        if not example.target:
            return "no target"
        try:
            words, _, _ = scan_brackets(example.target)
        except TreeSyntaxError as e:
            return f"target is not a tree: {e}"
        if words != example.source.split():
            return "the target tree's words differ from the source"
        return None

    def score(self, golds: Sequence[Example], preds: Sequence[str]) -> dict[str, float]:
        """`f1`/`precision`/`recall`: the paper's metric (mean per sentence, 0-100); `valid`:
        predictions it could score; `evalb_unlabeled_f1` always and `evalb_f1` when both gold
        and predictions carry phrase labels (EVALB, COLLINS.prm, corpus-level). Punctuation is
        removed by the gold trees' POS tags (`meta["tree"]`); gold examples without them count
        every token, and a set that mixes the two is refused."""
        if len(golds) != len(preds):
            raise ValueError(f"{len(golds)} gold examples but {len(preds)} predictions")
        trees = [ex.meta.get("tree") or ex.target for ex in golds]
        if any(t is None for t in trees):
            raise ValueError("a gold example has neither meta['tree'] nor a target")
        tagged = _all_or_none_tagged(golds)
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

    def label_coverage(self, golds: Sequence[Example], labels: Any) -> dict[str, Any] | None:
        """None: the paper's metric is unlabeled, and the label set (every PTB label plus those
        of the labeled trees and task.labels) bounds no tree the metric scores."""
        return None

    def baseline(self, sources: list[str], kind: str = "right") -> list[str]:
        """Right- or left-branching trees over each source's words, in the target form."""
        build = {"right": right_branching, "left": left_branching}[kind]
        return [build(source.split()) for source in sources]

    def baselines(self) -> dict[str, Callable[[list[str]], list[str]]]:
        """Fully right- and left-branching trees (FINDINGS.md: right-branching is the bar)."""
        return {"right_branching": lambda sources: self.baseline(sources, "right"),
                "left_branching": lambda sources: self.baseline(sources, "left")}

    def fidelity(self, targets: Sequence[str], preds: Sequence[str], sources: Sequence[str]) -> float:
        """Mean per-sentence unlabeled span F1 (0-100) of predictions against pseudolabel
        targets, every token counted (no gold POS tags to find punctuation by); missing
        targets and targets that are not well-formed trees are left out."""
        scores = []
        for target, pred, source in zip(targets, preds, sources, strict=True):
            if not target:
                continue
            try:
                gold = PaperGold(target, source, drop_punctuation=False)
            except ValueError:
                continue
            scores.append(score_prediction(gold, pred).f1)
        return _mean(scores)

    # --- teacher --------------------------------------------------------------------------

    def instruction(self, form: str) -> str:
        from mckd.tasks.constituency.prompts import INSTRUCTION

        return INSTRUCTION

    def demo_output(self, example: Example, form: str) -> str:
        """The labeled tree with POS tags (meta['tree']) or the unlabeled target."""
        from mckd.tasks.constituency.prompts import demo_output

        return demo_output(example, form)

    def label_set(self, labeled: Sequence[Example], extra: Sequence[str] = ()) -> Any:
        """PTB phrase labels (plus `extra`) and POS tags, plus any the labeled trees use."""
        from mckd.tasks.constituency.prompts import label_sets

        return label_sets(labeled, extra)

    def grammar(self, source: str, form: str, labels: Any, options: Any) -> str | None:
        """One tree over exactly the input words (teacher/grammar.py); `options.root` and
        `options.max_depth` shape it."""
        from mckd.tasks.constituency.grammar import tree_grammar

        return tree_grammar(source.split(), form=form, root=options.root,
                            max_depth=options.max_depth, labels=labels.labels, tags=labels.tags,
                            leading_space=(options.style or "completion") == "completion")

    def answer_budget(self, source: str, form: str, count_tokens: Callable[[str], int]) -> int:
        from mckd.tasks.constituency.prompts import answer_budget

        return answer_budget(source, form, count_tokens)

    def read_answer(self, raw: str, example: Example, form: str, options: Any) -> Repaired:
        """The answer in the unlabeled form (flat constituents nested right-branching when
        `options.nest_flat`), repaired; leaves that still differ from the words are kept and
        flagged. Never raises: the repair salvages what it can."""
        from mckd.tasks.constituency.prompts import answer_to_target

        text = answer_to_target(raw, form=form, nest_flat=bool(getattr(options, "nest_flat", False)))
        return self._repaired(text, example.source)

    def _repaired(self, text: str, source: str) -> Repaired:
        rep = self.repair(text, source)
        return Repaired(rep.text, list(rep.problems), rep.yield_ok)

    def combine(self, source: str, answers: Sequence[Repaired], how: str) -> tuple[Repaired, dict[str, Any]]:
        """Consensus over the sampled trees (teacher/consensus.py: "mbr" or "vote"); when no
        sample is usable, the first goes on as it is. The picked tree keeps its repairs; a vote
        that counted repaired trees says so."""
        from mckd.tasks.constituency.consensus import combine

        with_text = [a for a in answers if a.text is not None]
        if not with_text:
            return answers[0], {"samples": len(answers), "usable": 0}
        chosen, info = combine(source.split(), [a.text for a in with_text], how)  # type: ignore[misc]
        out = self._repaired(chosen, source)
        if "picked" in info:
            out.problems[:0] = with_text[info["picked"]].problems
        else:  # a vote over the samples' spans: those of repaired samples count too
            repaired = sum(a.complete and not a.valid for a in with_text)
            if repaired:
                out.problems.append(f"voted over {repaired} repaired sample{'s' if repaired > 1 else ''}")
        return out, info

    # --- students -------------------------------------------------------------------------

    def decoding_constraint(self, source: str, labels: Any, tokenizer: Any, *,
                            placeholder: str | None = None,
                            space_first: bool = False) -> DecodingConstraint | None:
        """Single-rooted trees over exactly the input words (student/constrained.py)."""
        from mckd.student.constrained import TreeConstraint

        return TreeConstraint(source.split(), tokenizer, placeholder=placeholder,
                              space_first=space_first)

    # --- data -----------------------------------------------------------------------------

    def read_corpus(self, path: str | Path) -> list[Example]:
        """A treebank (.mrg files, one-tree-per-line files, or a directory of either), each
        tree normalized, as examples with meta['origin'] = `file#index`."""
        from mckd.tasks.constituency.readers import load_treebank

        bank = load_treebank(path)
        return [self.example(f"{i:06d}", tree).with_target(self.linearize(tree), origin=origin)
                for i, (tree, origin) in enumerate(zip(bank.trees, bank.origins, strict=True))]

    def evaluate_files(self, gold: str | Path, pred: str | Path, metric: str, *,
                       per_sentence: bool = False) -> dict[str, Any]:
        return evaluate_files(gold, pred, metric, per_sentence=per_sentence)

    def builtin_corpus(self, n_labeled: int, n_pool: int, n_test: int, *, seed: int,
                       max_words: int | None = None) -> Corpus:
        """The synthetic PTB-style treebank (mckd.tasks.constituency.synth), split as `mckd data split` does."""
        from mckd.tasks.constituency.corpus import DemoCorpusConfig, demo_splits

        fields: dict[str, Any] = {"n_labeled": n_labeled, "n_unlabeled": n_pool, "n_test": n_test,
                                  "seed": seed}
        if max_words is not None:
            fields["max_len"] = max_words
        splits = demo_splits(DemoCorpusConfig(**fields))
        return Corpus(splits["labeled"], splits["unlabeled"], splits["test"])


# --- scoring files (`mckd evaluate`) ------------------------------------------------------

METRICS = ConstituencyTask.eval_metrics


def _read_lines(path: str | Path, *, normalize: bool = False, prediction: bool = False) -> list[str]:
    """One tree per line (trailing blank lines ignored). A .mrg file or a directory of them is
    read as trees: normalized (no traces or function tags) for the paper's metric, which
    compares word positions, as they are for EVALB, which deletes traces itself. Example JSONL
    is read by `_jsonl_trees`."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".mrg":
        from mckd.tasks.constituency.trees import normalize_tree, read_trees, to_labeled

        trees = read_trees(path)
        if normalize:
            trees = [normalize_tree(t) for t in trees]
        for tree in trees:  # the .mrg outer "( ... )" is what EVALB files call TOP
            if tree.label() == "":
                tree.set_label("TOP")
        return [to_labeled(t) for t in trees]
    lines = read_text_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    if path.suffix == ".jsonl" or next((ln for ln in lines if ln.strip()), "").lstrip().startswith("{"):
        return _jsonl_trees(path, lines, prediction)
    return lines


def _jsonl_trees(path: Path, lines: list[str], prediction: bool) -> list[str]:
    """The trees of an Example JSONL file, one per line. Prediction files (`mckd predict`, a
    run's outputs) keep their input's meta, gold tree included, so a prediction is its
    `target` alone and a missing one is an error; a gold tree is meta['tree'] (with POS tags),
    else the target."""
    out = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise InputError(path, lineno, "empty line (expected one example per line)")
        ex = example_from_line(line, path=path, line=lineno)
        if prediction:
            if not (ex.target or "").strip():
                raise InputError(path, lineno, "no predicted tree: 'target' is empty or null (a "
                                               "prediction's tree comes from its target alone)")
            out.append(ex.target)
            continue
        tree = ex.meta.get("tree") or ex.target
        if not tree:
            raise InputError(path, lineno, "no gold tree: needs meta['tree'] or 'target'")
        out.append(str(tree))
    return out


def _check_gold(path: str | Path, lines: list[str], *, need_tags: bool) -> list[Scanned]:
    scanned = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise InputError(path, lineno, "empty line (expected one tree per line)")
        try:
            s = scan_brackets(line)
        except TreeSyntaxError as e:
            col = f" at column {e.offset + 1}" if e.offset is not None else ""
            raise InputError(path, lineno, f"{e.problem}{col}") from None
        if need_tags and not any(s[1]):
            raise InputError(path, lineno, "gold tree has no POS tags (the metric needs them)")
        scanned.append(s)
    return scanned


def _check_pred(path: str | Path, lines: list[str], *, labeled: bool) -> list[Scanned]:
    scanned = []
    for lineno, line in enumerate(lines, start=1):
        try:
            s = scan_brackets(line) if line.strip() else ([], [], [])
        except TreeSyntaxError as e:
            col = f" at column {e.offset + 1}" if e.offset is not None else ""
            raise InputError(
                path, lineno, f"{e.problem}{col} (the mckd metric scores damaged trees)"
            ) from None
        if labeled and s[0] and not any(label for _, _, label in s[2]):
            raise InputError(
                path, lineno, "tree has no phrase labels; use --metric evalb-unlabeled or mckd"
            )
        scanned.append(s)
    return scanned


def _evalb_block(totals: EvalbTotals, tags: bool) -> dict[str, float | int | None]:
    f = {k: float(f"{v:.2f}") for k, v in totals.figures().items()}  # as EVALB prints them
    return {
        "f1": f["Bracketing FMeasure"],
        "precision": f["Bracketing Precision"],
        "recall": f["Bracketing Recall"],
        "sentences": totals.sentences,
        "valid": totals.valid,
        "errors": totals.errors,
        "skipped": totals.skipped,
        "complete_match": f["Complete match"],
        "tag_accuracy": f["Tagging accuracy"] if tags else None,
        "average_crossing": f["Average crossing"],
        "no_crossing": f["No crossing"],
        "two_or_less_crossing": f["2 or less crossing"],
    }


def _paper_summary(result: PaperResult, rows: bool) -> dict:
    n = len(result.sentences)
    out: dict = {
        "metric": "mckd",
        "f1": round(result.mean_f1, 4),
        "precision": round(_mean([s.precision for s in result.sentences]), 4),
        "recall": round(_mean([s.recall for s in result.sentences]), 4),
        "sentences": n,
        "valid": n - result.failed,
        "errors": result.failed,
        "skipped": 0,
        "complete_match": round(100.0 * sum(s.f1 == 100.0 for s in result.sentences) / n, 4),
        "tag_accuracy": None,
    }
    if rows:
        out["per_sentence"] = [
            {
                "id": i,
                **{k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(s).items()},
            }
            for i, s in enumerate(result.sentences, start=1)
        ]
    return out


def _evalb_rows(result: EvalbResult) -> list[dict]:
    """EVALB's per-sentence table (status 0 ok, 1 error, 2 skip), with the reason for 1 and 2."""
    return [
        {
            "id": r.id,
            "len": r.length,
            "status": r.status,
            "recall": round(r.recall, 2),
            "precision": round(r.precision, 2),
            "matched": r.matched,
            "gold": r.gold,
            "test": r.test,
            "crossing": r.crossing,
            "words": r.words,
            "correct_tags": r.correct_tags,
            "tag_accuracy": round(r.tag_accuracy, 2),
            "problem": r.problem,
        }
        for r in result.sentences
    ]


def evaluate_files(
    gold: str | Path, pred: str | Path, metric: str = "mckd", *, per_sentence: bool = False
) -> dict:
    """Score a prediction file against a gold file (one tree per line each, or Example JSONL:
    `_jsonl_trees`). Returns the figures `mckd evaluate --json` prints (with `per_sentence`
    rows if asked); any bad input is an `InputError` with file:line."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    gold_lines = _read_lines(gold, normalize=metric == "mckd")
    pred_lines = _read_lines(pred, normalize=metric == "mckd", prediction=True)
    if len(gold_lines) != len(pred_lines):
        short, n = (
            (pred, len(pred_lines))
            if len(pred_lines) < len(gold_lines)
            else (gold, len(gold_lines))
        )
        raise InputError(
            short,
            n,
            f"ends after {n} trees, but {gold} has {len(gold_lines)} and "
            f"{pred} has {len(pred_lines)} (they must pair line by line)",
        )
    golds = _check_gold(gold, gold_lines, need_tags=metric == "mckd")
    if metric == "mckd":
        result = PaperResult()
        for g, line in zip(golds, pred_lines, strict=True):
            result.sentences.append(score_prediction(PaperGold(g), line))
        return _paper_summary(result, per_sentence)
    params = COLLINS if metric == "evalb" else EvalbParams(labeled=False)
    preds = _check_pred(pred, pred_lines, labeled=metric == "evalb")
    res = evalb(golds, preds, params)
    tags = res.borrowed_tags == 0
    out = {
        "metric": metric,
        **_evalb_block(res.all, tags),
        f"len<={params.cutoff_len}": _evalb_block(res.short, tags),
    }
    if per_sentence:
        out["per_sentence"] = _evalb_rows(res)
    return out
