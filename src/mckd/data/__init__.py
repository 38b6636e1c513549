"""The names `mckd.data` had before the task packages: each now lives with what it belongs to
(the generic split in mckd.split, the treebank ones in mckd.tasks.constituency). They still
import from here, on first use: most need nltk, which takes seconds to import."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_WHERE = {
    "DemoCorpusConfig": "mckd.split",
    "SplitConfig": "mckd.split",
    "Treebank": "mckd.tasks.constituency.readers",
    "build_demo_corpus": "mckd.tasks.constituency.corpus",
    "load_treebank": "mckd.tasks.constituency.readers",
    "split_treebank": "mckd.tasks.constituency.corpus",
    "synth_treebank": "mckd.tasks.constituency.synth",
    "write_trees": "mckd.tasks.constituency.corpus",
}

if TYPE_CHECKING:
    from mckd.split import DemoCorpusConfig, SplitConfig
    from mckd.tasks.constituency.corpus import build_demo_corpus, split_treebank, write_trees
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
