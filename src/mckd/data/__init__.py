"""Corpora: the built-in synthetic treebank, readers for users' treebanks, and splits.

The names below are imported on first use: most of them need nltk, which takes seconds to
import, and a command that never touches a tree should not wait for it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_WHERE = {
    "DemoCorpusConfig": "mckd.data.demo_config",
    "SplitConfig": "mckd.split",
    "Treebank": "mckd.tasks.constituency.readers",
    "build_demo_corpus": "mckd.tasks.constituency.corpus",
    "load_treebank": "mckd.tasks.constituency.readers",
    "split_treebank": "mckd.split",
    "synth_treebank": "mckd.tasks.constituency.synth",
    "write_trees": "mckd.tasks.constituency.corpus",
}

if TYPE_CHECKING:
    from mckd.data.demo_config import DemoCorpusConfig
    from mckd.split import SplitConfig, split_treebank
    from mckd.tasks.constituency.corpus import build_demo_corpus, write_trees
    from mckd.tasks.constituency.readers import Treebank, load_treebank
    from mckd.tasks.constituency.synth import synth_treebank


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mckd.data' has no attribute {name!r}")
    return getattr(import_module(module), name)


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
