"""The built-in treebank (synthetic trees, synth.py) split into labeled / unlabeled / test in
one call, and a user's treebank split with its drop counts (`split_treebank`), on the generic
split of mckd.split."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nltk import Tree

from mckd.examples import Example
from mckd.io import atomic_write
from mckd.split import (
    DemoCorpusConfig,
    SplitConfig,
    accounting,
    split_items,
    validated,
    write_and_log,
    write_split,
)
from mckd.tasks.constituency.readers import Treebank, load_treebank
from mckd.tasks.constituency.synth import synth_treebank
from mckd.tasks.constituency.task import ConstituencyTask
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


def _demo_bank(cfg: DemoCorpusConfig, test_prefix: int | None = None
               ) -> tuple[Treebank, dict[str, list[Example]]]:
    """The first trees split as `mckd data split` does. With `test_prefix` P, the split is
    that of a corpus with n_test = P, and the other n_test - P test trees are the trees drawn
    after those (appended in order): a larger test set keeps a smaller one's sentences."""
    core = cfg.n_test if test_prefix is None else test_prefix
    if not 1 <= core <= cfg.n_test:
        raise ValueError(f"test_prefix {test_prefix} must be between 1 and n_test ({cfg.n_test})")
    needed = cfg.n_labeled + cfg.n_unlabeled + cfg.n_test
    bank = _unique_trees(cfg, needed)  # its first trees do not depend on `needed`
    bank.trees, bank.origins = bank.trees[:needed], bank.origins[:needed]
    first = cfg.n_labeled + cfg.n_unlabeled + core
    split_cfg = SplitConfig(
        n_labeled=cfg.n_labeled, n_test=core, n_unlabeled=cfg.n_unlabeled, seed=cfg.seed
    )
    head = Treebank(trees=bank.trees[:first], origins=bank.origins[:first], dropped=bank.dropped)
    splits = split_examples(head, split_cfg, where="trees.txt")
    task = ConstituencyTask()
    for i in range(first, needed):  # ids go on from the split's, so file order is draw order
        ex = task.example("", bank.trees[i]).with_target(task.linearize(bank.trees[i]),
                                                         origin=bank.origins[i])
        splits["test"].append(Example(f"test-{i:06d}", ex.source, ex.target, ex.meta))
    return bank, splits


def demo_splits(cfg: DemoCorpusConfig, test_prefix: int | None = None) -> dict[str, list[Example]]:
    """The demo corpus's labeled / unlabeled / test examples, without writing anything
    (`test_prefix`: see `_demo_bank`)."""
    return _demo_bank(cfg, test_prefix)[1]


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


def split_examples(
    bank: Treebank,
    cfg: SplitConfig,
    *,
    where: str | Path,
    test_bank: Treebank | None = None,
    test_where: str | Path | None = None,
) -> dict[str, list[Example]]:
    """`split_items` for treebanks: each tree becomes the constituency task's example."""
    task = ConstituencyTask()

    def items(b: Treebank) -> list[Example]:
        return [task.example("", t).with_target(task.linearize(t), origin=o)
                for t, o in zip(b.trees, b.origins, strict=True)]

    return split_items(items(bank), bank.dropped, cfg, where=where,
                       test_items=None if test_bank is None else items(test_bank),
                       test_dropped=None if test_bank is None else test_bank.dropped,
                       test_where=test_where)


def split_treebank(
    trees: str | Path,
    out_dir: str | Path,
    cfg: SplitConfig,
    *,
    test_trees: str | Path | None = None,
) -> dict[str, int]:
    """Read a treebank (file or directory), split it, and write labeled/unlabeled/test.jsonl.
    `test_trees` (optional) is a separate treebank for the test side, such as WSJ section 23."""
    bank = load_treebank(trees, max_len=cfg.max_len, drop_repeats=True)
    read = len(bank.trees) + sum(bank.dropped.values())  # before the test overlap is counted
    test_bank = None if test_trees is None else load_treebank(
        test_trees, max_len=cfg.max_len, drop_repeats=cfg.dedup_test)
    splits = split_examples(bank, cfg, where=trees, test_bank=test_bank, test_where=test_trees)
    info = {
        "trees": str(trees),
        "test_trees": None if test_trees is None else str(test_trees),
        "config": cfg.model_dump(),
        **accounting(splits, read=read, dropped=bank.dropped,
                     test_read=None if test_bank is None else len(test_bank.trees) + sum(test_bank.dropped.values()),
                     test_dropped=None if test_bank is None else test_bank.dropped),
    }
    return write_and_log(splits, out_dir, info, trees, test_trees)
