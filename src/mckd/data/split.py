"""Split a treebank into the three files a run reads: labeled.jsonl (the few gold pairs),
unlabeled.jsonl (the pool the teacher labels) and test.jsonl.

Every record is an Example as the constituency task makes it: source = the words of the
normalized tree, target = its unlabeled bracketing (None in the pool), meta["tree"] = the
labeled tree with POS tags, kept in the pool too so that pseudolabel quality can be scored.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mckd.data.readers import Treebank, load_treebank
from mckd.errors import ConfigError, InputError
from mckd.examples import Example, write_examples
from mckd.io import atomic_write
from mckd.tasks.constituency import ConstituencyTask

log = logging.getLogger(__name__)

SPLITS = ("labeled", "unlabeled", "test")
M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], what: str, **fields: Any) -> M:
    """Build a config, turning pydantic's report into one ConfigError line."""
    try:
        return model(**fields)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"{what}: {problems}") from None


class SplitConfig(BaseModel):
    """How many sentences go to each side of the split, and which ones."""

    model_config = ConfigDict(extra="forbid")

    n_labeled: int = Field(50, ge=1, description="Gold pairs: the prompt demonstrations.")
    n_test: int = Field(500, ge=1, description="Held-out sentences, scored against gold.")
    n_unlabeled: int | None = Field(
        None, ge=0, description="Size of the pool the teacher labels; None takes all the rest."
    )
    seed: int = Field(0, description="Seed of the shuffle that picks each side.")
    max_len: int | None = Field(
        None, ge=1, description="Drop sentences with more tokens than this (punctuation counted)."
    )


def split_examples(
    bank: Treebank, cfg: SplitConfig, *, where: str | Path
) -> dict[str, list[Example]]:
    """Shuffle once with the seed, then take test, labeled, and unlabeled in that order (so
    the test set for a seed does not change when the pool grows)."""
    wanted = cfg.n_test + cfg.n_labeled + (cfg.n_unlabeled or 0)
    have = len(bank.trees)
    if wanted > have or (cfg.n_unlabeled is None and have == wanted):
        pool = "" if cfg.n_unlabeled is None else f" + {cfg.n_unlabeled} unlabeled"
        dropped = f" (dropped: {_describe(bank.dropped)})" if bank.dropped else ""
        need = "more than " if cfg.n_unlabeled is None else ""
        raise InputError(
            where,
            None,
            f"asked for {cfg.n_labeled} labeled + {cfg.n_test} test{pool} sentences, needs "
            f"{need}{wanted}, but only {have} usable sentences{dropped}",
        )
    order = list(range(have))
    random.Random(cfg.seed).shuffle(order)
    n_pool = have - cfg.n_test - cfg.n_labeled if cfg.n_unlabeled is None else cfg.n_unlabeled
    cuts = {
        "test": order[: cfg.n_test],
        "labeled": order[cfg.n_test : cfg.n_test + cfg.n_labeled],
        "unlabeled": order[cfg.n_test + cfg.n_labeled : cfg.n_test + cfg.n_labeled + n_pool],
    }
    task = ConstituencyTask()
    out: dict[str, list[Example]] = {}
    for name in SPLITS:
        exs = []
        for i in sorted(cuts[name]):  # file order within a split: easier to inspect
            ex = task.example(f"{name}-{i:06d}", bank.trees[i], labeled=name != "unlabeled")
            exs.append(ex.with_target(ex.target, origin=bank.origins[i]))
        out[name] = exs
    _check_disjoint(out)
    return out


def _check_disjoint(splits: dict[str, list[Example]]) -> None:
    seen: dict[str, str] = {}
    for name, exs in splits.items():
        for ex in exs:
            other = seen.setdefault(ex.source, name)
            assert other == name, f"sentence in both {other} and {name}: {ex.source!r}"


def _describe(dropped: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in dropped.items())


def write_split(
    splits: dict[str, list[Example]], out_dir: str | Path, info: dict
) -> dict[str, int]:
    """Write the three JSONL files and split.json (sizes and where they came from), each atomically."""
    out_dir = Path(out_dir)
    for name in SPLITS:
        write_examples(out_dir / f"{name}.jsonl", splits[name])
    sizes = {name: len(splits[name]) for name in SPLITS}
    with atomic_write(out_dir / "split.json") as f:
        json.dump({**info, "sizes": sizes}, f, indent=2)
        f.write("\n")
    return sizes


def split_treebank(trees: str | Path, out_dir: str | Path, cfg: SplitConfig) -> dict[str, int]:
    """Read a treebank (file or directory), split it, and write labeled/unlabeled/test.jsonl."""
    bank = load_treebank(trees, max_len=cfg.max_len)
    splits = split_examples(bank, cfg, where=trees)
    info = {"trees": str(trees), "config": cfg.model_dump(), "dropped": bank.dropped}
    sizes = write_split(splits, out_dir, info)
    log.info("wrote %s to %s", sizes, out_dir)
    return sizes
