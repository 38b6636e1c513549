"""Reading slot-filling corpora and tag files; every bad input is one line naming file:line.

Corpora (`read_slot_corpus`):
- the layout of the public ATIS and Snips releases: a folder with `seq.in` (words), `seq.out`
  (BIO tags) and optionally `label` (intent), one sentence per line; or a directory holding
  such folders (`train/`, `valid/` or `dev/`, `test/`), read in that order;
- CoNLL column files: token in the first column, tag in the last, a blank line between
  sentences, `-DOCSTART-` lines skipped;
- Example JSONL (`.jsonl`): target = the tags, or meta["gold"].

Gold in IOB1 (CoNLL-2003 style: `I-x` opens a chunk, `B-x` only where a chunk follows one of
the same type) is read as IOB2, the chunks unchanged (`as_valid`): students, the Viterbi decoder,
the teacher's grammar and its demonstrations all use IOB2, where `I-x` never follows `O`. The
log says once per corpus how many sentences were converted.

Tag files for scoring (`evaluate_tag_files`): one sentence of space-separated tags per line
(the `seq.out` layout), or Example JSONL, scored as written (as conlleval.pl scores them: no
IOB1 conversion), with a warning when the gold has IOB1 chunk starts and the prediction none. In JSONL the two files are read differently, because
a prediction file keeps its input's meta (`mckd predict`, the run's student outputs and teacher
labels all write `Example.with_target`), gold and intent included:
- gold: the tags in meta["gold"], else `target`; the intent in meta["intent"];
- prediction: the tags in `target` only (a missing or empty one is an error naming the line);
  the intent in meta["predicted_intent"], which only a predictor that predicts intents writes
  (a copied meta["intent"] is the gold's, and is never read as a prediction).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mckd.errors import InputError
from mckd.examples import Example, example_from_line, numbered_examples
from mckd.io import read_text_lines
from mckd.tasks.slots.conlleval import rounded, score_tag_sequences
from mckd.tasks.slots.task import TAG, as_valid, gold_tags, sequence_problem

log = logging.getLogger(__name__)

SPLIT_DIRS = ("train", "valid", "dev", "test")
METRICS = ("conlleval",)
PREDICTED_INTENT = "predicted_intent"
"""The meta key of an intent a predictor predicted (meta["intent"] is the gold intent)."""


def _slot_example(ex_id: str, words: list[str], tags: list[str], **meta: Any) -> Example:
    target = " ".join(tags)
    return Example(ex_id, " ".join(words), target, {"gold": target, **meta})


def read_seq_folder(folder: Path, split: str | None = None) -> list[Example]:
    """One ATIS/Snips folder: seq.in, seq.out and (optional) label, paired line by line."""
    words_path, tags_path, label_path = folder / "seq.in", folder / "seq.out", folder / "label"
    words_lines = read_text_lines(words_path)
    tags_lines = read_text_lines(tags_path)
    labels = read_text_lines(label_path) if label_path.exists() else None
    _trim(words_lines), _trim(tags_lines)
    if labels is not None:
        _trim(labels)
    for path, lines in ((tags_path, tags_lines), (label_path, labels)):
        if lines is not None and len(lines) != len(words_lines):
            raise InputError(path, None, f"{len(lines)} lines, but {words_path} has "
                                         f"{len(words_lines)} (they must pair line by line)")
    prefix = f"{split}-" if split else ""
    out = []
    for i, (w, t) in enumerate(zip(words_lines, tags_lines, strict=True)):
        words, tags = w.split(), t.split()
        if not words:
            raise InputError(words_path, i + 1, "empty sentence")
        problem = sequence_problem(tags, words)
        if problem:
            raise InputError(tags_path, i + 1, f"{problem} (in {words_path})")
        meta: dict[str, Any] = {"split": split} if split else {}
        if labels is not None:
            meta["intent"] = labels[i].strip()
        out.append(_slot_example(f"{prefix}{i + 1}", words, tags, **meta))
    return out


def _trim(lines: list[str]) -> None:
    """Drop trailing blank lines (a final newline twice is common)."""
    while lines and not lines[-1].strip():
        lines.pop()


def read_conll(path: Path) -> list[Example]:
    """A CoNLL column file: token first, tag last, blank lines between sentences."""
    out: list[Example] = []
    words: list[str] = []
    tags: list[str] = []
    start = 0

    def flush() -> None:
        if words:
            out.append(_slot_example(f"{path.stem}-{len(out) + 1}", words.copy(), tags.copy(),
                                     line=start))
            words.clear()
            tags.clear()

    for lineno, line in enumerate(read_text_lines(path), start=1):
        cols = line.split()
        if not cols:
            flush()
            continue
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2:
            raise InputError(path, lineno, f"one column {cols[0]!r}; expected a token and a tag")
        if not TAG.fullmatch(cols[-1]):
            raise InputError(path, lineno, f"tag {cols[-1]!r} is not O, B-type or I-type")
        if not words:
            start = lineno
        words.append(cols[0])
        tags.append(cols[-1])
    flush()
    if not out:
        raise InputError(path, None, "no sentences")
    return out


def read_slot_jsonl(path: Path) -> list[Example]:
    """Example JSONL whose tags (target, else meta["gold"]) are checked against the words."""
    out = []
    for lineno, ex in numbered_examples(path):
        gold = ex.target or ex.meta.get("gold")
        if gold is None:
            raise InputError(path, lineno, "no tags: needs 'target' or meta['gold']")
        problem = sequence_problem(gold.split(), ex.source.split())
        if problem:
            raise InputError(path, lineno, problem)
        out.append(Example(ex.id, ex.source, ex.target, {**ex.meta, "gold": gold}))
    return out


def read_slot_corpus(path: str | Path) -> list[Example]:
    """Any of the module's corpus formats, by what `path` is (see the module docstring), with
    IOB1 gold read as IOB2."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "no such file or directory")
    if path.is_dir():
        if (path / "seq.in").exists():
            return to_iob2(read_seq_folder(path), path)
        splits = [d for d in SPLIT_DIRS if (path / d / "seq.in").exists()]
        if not splits:
            raise InputError(path, None, "no seq.in here or in train/, valid/, dev/ or test/ "
                                         "(expected the ATIS/Snips layout)")
        return to_iob2([ex for d in splits for ex in read_seq_folder(path / d, d)], path)
    if path.suffix == ".jsonl":
        return to_iob2(read_slot_jsonl(path), path)
    return to_iob2(read_conll(path), path)


def iob1_starts(tags: list[str]) -> bool:
    """Whether a tag sequence opens a chunk with `I-x` (IOB1; conlleval reads it as `B-x`)."""
    return as_valid(tags) != tags


def to_iob2(examples: list[Example], where: Path) -> list[Example]:
    """The examples with gold (meta["gold"] and a gold target) in IOB2, chunks unchanged; one
    log line when any sentence had IOB1 chunk starts."""
    out, converted = [], 0
    for ex in examples:
        gold = ex.meta["gold"].split()
        if not iob1_starts(gold):
            out.append(ex)
            continue
        converted += 1
        fixed = " ".join(as_valid(gold))
        target = fixed if ex.target == ex.meta["gold"] else ex.target
        out.append(Example(ex.id, ex.source, target, {**ex.meta, "gold": fixed}))
    if converted:
        log.info("%s: %d of %d sentences start a chunk with I-x (IOB1); read as IOB2 (B-x there), "
                 "the chunks unchanged", where, converted, len(examples))
    return out


# --------------------------------------------------------------------------- scoring files


def _is_jsonl(path: Path, lines: list[str]) -> bool:
    first = next((ln for ln in lines if ln.strip()), "")
    return path.suffix == ".jsonl" or first.lstrip().startswith("{")


def read_tag_file(
    path: str | Path, *, prediction: bool = False
) -> tuple[list[list[str]], list[str | None], list[int]]:
    """Tag sequences, intents (None where not given) and line numbers of a gold tag file, or of
    a prediction file with `prediction` (see the module docstring for what each reads)."""
    path = Path(path)
    lines = read_text_lines(path)
    _trim(lines)
    tags, intents, where = [], [], []
    jsonl = _is_jsonl(path, lines)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            if jsonl:
                continue
            raise InputError(path, lineno, "empty line (expected one sentence of tags per line)")
        if jsonl:
            seq, intent = _jsonl_tags(example_from_line(line, path=path, line=lineno), path,
                                      lineno, prediction)
        else:
            seq, intent = line.split(), None
        for i, tag in enumerate(seq, start=1):
            if not TAG.fullmatch(tag):
                raise InputError(path, lineno, f"tag {i} {tag!r} is not O, B-type or I-type")
        tags.append(seq)
        intents.append(intent)
        where.append(lineno)
    return tags, intents, where


def _jsonl_tags(ex: Example, path: Path, lineno: int, prediction: bool) -> tuple[list[str], str | None]:
    """The tags and intent of one JSONL line of a gold or prediction file."""
    if prediction:
        if not (ex.target or "").strip():
            raise InputError(path, lineno, "no predicted tags: 'target' is empty or null (a "
                                           "prediction's tags come from its target alone)")
        intent = ex.meta.get(PREDICTED_INTENT)
        return ex.target.split(), None if intent is None else str(intent)  # type: ignore[union-attr]
    seq = gold_tags(ex)
    if not seq:
        raise InputError(path, lineno, "no tags: needs meta['gold'] or 'target'")
    intent = ex.meta.get("intent")
    return seq, None if intent is None else str(intent)


def evaluate_tag_files(gold: str | Path, pred: str | Path, metric: str = "conlleval", *,
                       per_sentence: bool = False) -> dict[str, Any]:
    """`mckd evaluate --task slots`: conlleval's figures for a prediction file against a gold
    file, as the script prints them (2 decimals): exactly the keys of the contract, with
    `intent_accuracy` when the gold gives every sentence an intent and the prediction file
    every sentence a predicted one (meta["predicted_intent"]), and with `per_sentence`
    (the script's figures for each sentence alone) when asked. Any bad input is an InputError
    with file:line."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    g_tags, g_int, _ = read_tag_file(gold)
    p_tags, p_int, p_where = read_tag_file(pred, prediction=True)
    if len(g_tags) != len(p_tags):
        short, n = (pred, len(p_tags)) if len(p_tags) < len(g_tags) else (gold, len(g_tags))
        raise InputError(short, None, f"ends after {n} sentences, but {gold} has {len(g_tags)} "
                                      f"and {pred} has {len(p_tags)} (they must pair up)")
    for g, p, lineno in zip(g_tags, p_tags, p_where, strict=True):
        if len(g) != len(p):
            raise InputError(pred, lineno, f"{len(p)} tags, but the gold sentence has {len(g)}")
    _warn_iob1(gold, g_tags, p_tags)
    with_intents = all(i is not None for i in g_int + p_int)
    scores = rounded(score_tag_sequences(
        g_tags, p_tags,
        gold_intents=g_int if with_intents else None,  # type: ignore[arg-type]
        pred_intents=p_int if with_intents else None,  # type: ignore[arg-type]
    ))
    if per_sentence:
        scores["per_sentence"] = [_sentence_row(i, g, p) for i, (g, p) in
                                  enumerate(zip(g_tags, p_tags, strict=True), start=1)]
    return scores


def _warn_iob1(gold: str | Path, g_tags: list[list[str]], p_tags: list[list[str]]) -> None:
    """One warning line when the gold opens chunks with I-x (IOB1) and the prediction never
    does: the chunks may agree, but conlleval compares the tags as written, so token accuracy
    and exact match fall."""
    g_iob1 = sum(iob1_starts(t) for t in g_tags)
    if g_iob1 and not any(iob1_starts(t) for t in p_tags):
        log.warning("%s: %d of %d gold sentences start a chunk with I-x (IOB1) and the predictions "
                    "use B-x (IOB2): chunk F1 is unaffected, but accuracy and exact_match count "
                    "those tags as wrong, as conlleval.pl does (mckd data split converts gold "
                    "to IOB2)", gold, g_iob1, len(g_tags))


def _sentence_row(i: int, gold: list[str], pred: list[str]) -> dict[str, Any]:
    one = rounded(score_tag_sequences([gold], [pred]))
    return {"id": i, **{k: one[k] for k in SENTENCE_KEYS}}


SENTENCE_KEYS = ("tokens", "gold_chunks", "found_chunks", "correct_chunks", "accuracy",
                 "precision", "recall", "f1")
