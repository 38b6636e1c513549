"""Read a user's treebank (PTB .mrg files, one-tree-per-line files, or a directory of either)
into normalized trees that remember where they came from."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from nltk import Tree

from mckd.errors import InputError
from mckd.tasks.constituency.trees import TREE_SUFFIXES, normalize_tree, read_trees, tree_words

log = logging.getLogger(__name__)


@dataclass
class Treebank:
    """Normalized trees, each with its origin (`file#index`, index 0-based within the file),
    and how many trees were dropped and why (counted, never silently)."""

    trees: list[Tree] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def tree_files(path: Path) -> list[Path]:
    """The files `read_trees` would read for `path`: .mrg files under a directory if there are
    any, else files with a tree suffix; a file is itself."""
    if not path.exists():
        raise InputError(path, None, "no such file or directory")
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    mrg = [p for p in files if p.suffix == ".mrg"]
    files = mrg or [p for p in files if p.suffix in TREE_SUFFIXES]
    if not files:
        raise InputError(path, None, "no tree files (.mrg, .txt, ...) in directory")
    return files


def load_treebank(path: str | Path, *, max_len: int | None = None, drop_repeats: bool = False) -> Treebank:
    """Read and normalize every tree under `path` (drop traces and function tags), skipping
    trees with no words left, sentences longer than `max_len` tokens (punctuation counted),
    and, with `drop_repeats`, repeats of a sentence already seen (what a split does to the
    corpus it draws labeled and unlabeled sentences from). Repeats are kept by default: a
    test treebank is scored whole."""
    path = Path(path)
    bank = Treebank()
    seen: set[str] = set()
    for file in tree_files(path):
        for index, raw in enumerate(read_trees(file)):
            try:
                tree = normalize_tree(raw)
            except ValueError:
                bank.drop("no words after removing traces")
                continue
            words = tree_words(tree)
            if max_len is not None and len(words) > max_len:
                bank.drop(f"longer than {max_len} tokens")
                continue
            sentence = " ".join(words)
            if drop_repeats and sentence in seen:
                bank.drop("repeated sentence")
                continue
            seen.add(sentence)
            bank.trees.append(tree)
            bank.origins.append(f"{file}#{index}")
    if bank.dropped:
        log.info("%s: kept %d trees, dropped %s", path, len(bank.trees), bank.dropped)
    return bank
