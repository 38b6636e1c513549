"""Reading slot-filling corpora; every bad input is one line naming file:line.

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
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mckd.errors import InputError
from mckd.examples import Example, numbered_examples
from mckd.io import read_text_lines
from mckd.tasks.slots.tags import TAG, as_valid, sequence_problem

log = logging.getLogger(__name__)

SPLIT_DIRS = ("train", "valid", "dev", "test")


def _slot_example(ex_id: str, words: list[str], tags: list[str], **meta: Any) -> Example:
    target = " ".join(tags)
    return Example(ex_id, " ".join(words), target, {"gold": target, **meta})


def read_seq_folder(folder: Path, split: str | None = None) -> list[Example]:
    """One ATIS/Snips folder: seq.in, seq.out and (optional) label, paired line by line."""
    words_path, tags_path, label_path = folder / "seq.in", folder / "seq.out", folder / "label"
    words_lines = read_text_lines(words_path)
    tags_lines = read_text_lines(tags_path)
    labels = read_text_lines(label_path) if label_path.exists() else None
    trim(words_lines), trim(tags_lines)
    if labels is not None:
        trim(labels)
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


def trim(lines: list[str]) -> None:
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
