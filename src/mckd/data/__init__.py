"""Corpora: the built-in synthetic treebank, readers for users' treebanks, and splits."""

from __future__ import annotations

from mckd.data.corpus import DemoCorpusConfig, build_demo_corpus, write_trees
from mckd.data.readers import Treebank, load_treebank
from mckd.data.split import SplitConfig, split_treebank
from mckd.data.synth import synth_treebank

__all__ = [
    "DemoCorpusConfig",
    "SplitConfig",
    "Treebank",
    "build_demo_corpus",
    "load_treebank",
    "split_treebank",
    "synth_treebank",
    "write_trees",
]
