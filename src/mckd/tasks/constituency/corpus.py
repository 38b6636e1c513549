"""The built-in demo corpus: its sizes (any task's), and the synthetic trees split into labeled /
unlabeled / test in one call."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nltk import Tree

from mckd.data.demo_config import DemoCorpusConfig
from mckd.examples import Example
from mckd.io import atomic_write
from mckd.split import SplitConfig, split_examples, validated, write_split
from mckd.tasks.constituency.readers import Treebank
from mckd.tasks.constituency.synth import synth_treebank
from mckd.tasks.constituency.trees import to_labeled, tree_words

log = logging.getLogger(__name__)

DONE = "DONE"


def write_trees(path: str | Path, trees: list[Tree]) -> None:
    """One labeled tree per line, atomically."""
    with atomic_write(path) as f:
        for tree in trees:
            f.write(to_labeled(tree, pos=True) + "\n")


def _unique_trees(cfg: DemoCorpusConfig, needed: int) -> Treebank:
    """Draw trees until `needed` distinct sentences exist (repeats are rare but possible).
    synth_treebank(n) is a prefix of synth_treebank(m > n), so drawing more keeps the first."""
    n = needed + needed // 50 + 10
    while True:
        bank = Treebank()
        seen: set[str] = set()
        for i, tree in enumerate(synth_treebank(n, cfg.seed, max_len=cfg.max_len)):
            sentence = " ".join(tree_words(tree))
            if sentence in seen:
                bank.drop("repeated sentence")
                continue
            seen.add(sentence)
            bank.trees.append(tree)
            bank.origins.append(f"trees.txt#{i}")
        if len(bank.trees) >= needed:
            return bank
        n *= 2


def _demo_bank(cfg: DemoCorpusConfig) -> tuple[Treebank, dict[str, list[Example]]]:
    needed = cfg.n_labeled + cfg.n_unlabeled + cfg.n_test
    bank = _unique_trees(cfg, needed)
    bank.trees, bank.origins = bank.trees[:needed], bank.origins[:needed]
    split_cfg = SplitConfig(
        n_labeled=cfg.n_labeled, n_test=cfg.n_test, n_unlabeled=cfg.n_unlabeled, seed=cfg.seed
    )
    return bank, split_examples(bank, split_cfg, where="trees.txt")


def demo_splits(cfg: DemoCorpusConfig) -> dict[str, list[Example]]:
    """The demo corpus's labeled / unlabeled / test examples, without writing anything."""
    return _demo_bank(cfg)[1]


def build_demo_corpus(
    out_dir: str | Path, cfg: DemoCorpusConfig | None = None, **fields: int
) -> dict[str, Path]:
    """Write trees.txt, labeled.jsonl, unlabeled.jsonl, test.jsonl and split.json under `out_dir`,
    then a DONE marker holding the config. A second call with the same config does nothing;
    a different config rebuilds. `fields` override the config: `build_demo_corpus(d, n_test=100)`.
    Returns the paths of the three split files."""
    cfg = validated(
        DemoCorpusConfig, "demo corpus", **{**(cfg or DemoCorpusConfig()).model_dump(), **fields}
    )
    out_dir = Path(out_dir)
    paths = {name: out_dir / f"{name}.jsonl" for name in ("labeled", "unlabeled", "test")}
    done = out_dir / DONE
    if done.exists() and _done_config(done) == cfg.model_dump():
        log.info("demo corpus already built in %s", out_dir)
        return paths
    done.unlink(missing_ok=True)  # a rebuild that dies half way must not look finished
    bank, splits = _demo_bank(cfg)
    write_trees(out_dir / "trees.txt", bank.trees)
    info = {"trees": "trees.txt (synthetic, mckd.tasks.constituency.synth)", "config": cfg.model_dump()}
    sizes = write_split(splits, out_dir, info)
    with atomic_write(done) as f:
        json.dump(cfg.model_dump(), f)
    log.info("built the demo corpus in %s: %s", out_dir, sizes)
    return paths


def _done_config(done: Path) -> dict | None:
    try:
        return json.loads(done.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
