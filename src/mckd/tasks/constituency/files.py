"""Scoring prediction files against gold files (`mckd evaluate --task constituency`): the
paper's metric, and EVALB labeled or unlabeled (COLLINS.prm), as the tools print them."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from mckd.errors import InputError
from mckd.examples import example_from_line
from mckd.io import read_text_lines
from mckd.tasks.constituency.brackets import TreeSyntaxError, scan_brackets
from mckd.tasks.constituency.evalb import (
    COLLINS,
    EvalbParams,
    EvalbResult,
    EvalbTotals,
    Scanned,
    evalb,
)
from mckd.tasks.constituency.metric import PaperGold, PaperResult, average, score_prediction

METRICS = ("mckd", "evalb", "evalb-unlabeled")



def _read_lines(path: str | Path, *, normalize: bool = False, prediction: bool = False) -> list[str]:
    """One tree per line (trailing blank lines ignored). A .mrg file or a directory of them is
    read as trees: normalized (no traces or function tags) for the paper's metric, which
    compares word positions, as they are for EVALB, which deletes traces itself. Example JSONL
    is read by `_jsonl_trees`."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".mrg":
        # nltk (seconds to import) only for .mrg input: plain tree files are scanned without it
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
        "precision": round(average([s.precision for s in result.sentences]), 4),
        "recall": round(average([s.recall for s in result.sentences]), 4),
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
