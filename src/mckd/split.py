"""Split a corpus into the three files a run reads: labeled.jsonl (the few gold pairs),
unlabeled.jsonl (the pool the teacher labels) and test.jsonl.

Every record is an Example as the task's reader makes it (`Task.read_corpus`), renamed
`<split>-<index>` and with meta["origin"] saying where it came from; in the pool the target is
None, while whatever gold the task keeps in meta (parsing: the labeled tree with POS tags) stays,
so that pseudolabel quality can be scored.

A separate test corpus (ATIS's 893 test sentences, Snips's 700, WSJ section 23) is kept whole
by default, repeated sentences included, since published figures are computed on all of it;
its sentences are kept out of the labeled and unlabeled sides instead. `dedup_test` drops
repeats of a test sentence. What was kept and dropped, and why, goes to split.json and the log.

`DemoCorpusConfig` holds the sizes of a task's built-in corpus (`data.demo` in a run config),
split by the task's own generator.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mckd.errors import ConfigError, InputError
from mckd.examples import Example, write_examples
from mckd.io import atomic_write

if TYPE_CHECKING:
    from mckd.tasks.base import Task

log = logging.getLogger(__name__)

MIN_LEN, MAX_LEN = 5, 40  # tokens, punctuation included, like PTB sentence lengths


class DemoCorpusConfig(BaseModel):
    """Sizes and seed of the task's built-in corpus, which a run with `data.source: demo` uses
    (`Task.builtin_corpus`: parsing, the synthetic treebank; slots, generated assistant
    requests). The field names are the treebank's; `n_unlabeled` is the pool for any task."""

    model_config = ConfigDict(extra="forbid")

    n_labeled: int = Field(50, ge=1, description="Gold pairs (prompt demonstrations).")
    n_unlabeled: int = Field(1000, ge=1, description="Pool of sentences for the teacher to label.")
    n_test: int = Field(500, ge=1, description="Held-out test sentences.")
    seed: int = Field(0, description="Seed of the generator and of the split.")
    max_len: int = Field(
        MAX_LEN,
        ge=MIN_LEN,
        le=MAX_LEN,
        description="Longest sentence, in tokens (punctuation counted).",
    )


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
    n_test: int | None = Field(
        None,
        ge=1,
        description="Held-out sentences scored against gold; None: 500 drawn from the treebank, "
        "or every tree of a separate test treebank when one is given.",
    )
    n_unlabeled: int | None = Field(
        None, ge=0, description="Size of the pool the teacher labels; None takes all the rest."
    )
    seed: int = Field(0, description="Seed of the shuffle that picks each side.")
    max_len: int | None = Field(
        None, ge=1, description="Drop sentences with more tokens than this (punctuation counted), "
        "from a separate test corpus too."
    )
    dedup_test: bool = Field(
        False, description="Drop repeats of a sentence from a separate test corpus (the first is "
        "kept). Off by default: published scores use every sentence of a test set."
    )


DEFAULT_TEST = 500
OVERLAP = "also in the test set"
REPEAT = "repeated sentence"


def _shuffled(n: int, rng: random.Random) -> list[int]:
    order = list(range(n))
    rng.shuffle(order)
    return order


def _too_few(where: str | Path, dropped: dict[str, int], asked: str, need: str, have: int) -> InputError:
    why = f" (dropped: {_describe(dropped)})" if dropped else ""
    return InputError(
        where, None, f"asked for {asked}, needs {need}, but only {have} usable sentences{why}"
    )


def split_items(
    items: list[Example],
    dropped: dict[str, int],
    cfg: SplitConfig,
    *,
    where: str | Path,
    test_items: list[Example] | None = None,
    test_dropped: dict[str, int] | None = None,
    test_where: str | Path | None = None,
) -> dict[str, list[Example]]:
    """Shuffle once with the seed, then take test, labeled, and unlabeled in that order (so
    the test set for a seed does not change when the pool grows). With `test_items` (e.g. WSJ
    section 23) the test side comes from them, repeats and all, and their sentences are kept
    out of the labeled and unlabeled sides (counted in `dropped`), never out of the test."""
    rng = random.Random(cfg.seed)
    if test_items is None:
        n_test = cfg.n_test or DEFAULT_TEST
        order = _shuffled(len(items), rng)
        test_side, rest, test_src = order[:n_test], order[n_test:], items
    else:
        n_test = cfg.n_test or len(test_items)
        if n_test > len(test_items):
            raise _too_few(test_where or where, test_dropped or {}, f"{n_test} test sentences",
                           str(n_test), len(test_items))
        test_side, test_src = _shuffled(len(test_items), rng)[:n_test], test_items
        held_out = {test_items[i].source for i in test_side}
        rest = []
        for i in _shuffled(len(items), rng):
            if items[i].source in held_out:
                dropped[OVERLAP] = dropped.get(OVERLAP, 0) + 1
            else:
                rest.append(i)
    pool = len(rest) - cfg.n_labeled if cfg.n_unlabeled is None else cfg.n_unlabeled
    if cfg.n_labeled + pool > len(rest) or pool < (1 if cfg.n_unlabeled is None else 0):
        test = f"{n_test} test" if test_items is None else f"{n_test} test (from {test_where})"
        unl = "" if cfg.n_unlabeled is None else f" + {cfg.n_unlabeled} unlabeled"
        wanted = cfg.n_labeled + (cfg.n_unlabeled or 0) + (n_test if test_items is None else 0)
        need = f"{'more than ' if cfg.n_unlabeled is None else ''}{wanted}"
        have = len(items) if test_items is None else len(rest)
        raise _too_few(where, dropped, f"{cfg.n_labeled} labeled + {test}{unl} sentences", need, have)
    cuts = {
        "test": test_side,
        "labeled": rest[: cfg.n_labeled],
        "unlabeled": rest[cfg.n_labeled : cfg.n_labeled + pool],
    }
    out: dict[str, list[Example]] = {}
    for name in SPLITS:
        src = test_src if name == "test" else items
        out[name] = [  # file order within a split: easier to inspect
            Example(f"{name}-{i:06d}", src[i].source,
                    None if name == "unlabeled" else src[i].target, src[i].meta)
            for i in sorted(cuts[name])
        ]
    _check_disjoint(out)
    return out


def filter_items(items: list[Example], max_len: int | None, *,
                 drop_repeats: bool = True) -> tuple[list[Example], dict[str, int]]:
    """Drop sentences longer than `max_len` tokens and, with `drop_repeats`, repeats of a
    sentence already kept (so a split cannot put one sentence on both sides); what was dropped
    is counted."""
    kept, dropped, seen = [], {}, set()
    for ex in items:
        if max_len is not None and len(ex.source.split()) > max_len:
            reason = f"longer than {max_len} tokens"
        elif drop_repeats and ex.source in seen:
            reason = REPEAT
        else:
            seen.add(ex.source)
            kept.append(ex)
            continue
        dropped[reason] = dropped.get(reason, 0) + 1
    return kept, dropped


def _check_disjoint(splits: dict[str, list[Example]]) -> None:
    seen: dict[str, str] = {}
    for name, exs in splits.items():
        for ex in exs:
            other = seen.setdefault(ex.source, name)
            assert other == name, f"sentence in both {other} and {name}: {ex.source!r}"


def _describe(dropped: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in dropped.items())


def accounting(splits: dict[str, list[Example]], *, read: int, dropped: dict[str, int],
               test_read: int | None, test_dropped: dict[str, int] | None) -> dict[str, Any]:
    """What split.json says was read, dropped (by reason) and kept on each side."""
    test = [ex.source for ex in splits["test"]]
    return {"read": read, "dropped": dropped, "test_read": test_read, "test_dropped": test_dropped,
            "test_repeats_kept": len(test) - len(set(test))}


def split_summary(info: dict[str, Any], where: str | Path, test_where: str | Path | None) -> list[str]:
    """One line for the corpus the labeled and unlabeled sides come from, one for the test side."""
    sizes, dropped, read = info["sizes"], info["dropped"], info["read"]
    used = sizes["labeled"] + sizes["unlabeled"] + (sizes["test"] if test_where is None else 0)
    unused = read - sum(dropped.values()) - used
    first = f"{where}: {read} sentences read, " + (
        f"{sizes['test']} drawn for test, " if test_where is None else "") + (
        f"{sizes['labeled']} labeled, {sizes['unlabeled']} unlabeled")
    first += f"; dropped {_describe(dropped)}" if dropped else ""
    first += f"; {unused} left unused" if unused else ""
    if test_where is None:
        return [first]
    n, test_read, test_dropped = sizes["test"], info["test_read"], info["test_dropped"] or {}
    test = f"{test_where}: " + (f"all {n}" if n == test_read else f"{n} of {test_read}") + " test sentences kept"
    test += f"; dropped {_describe(test_dropped)}" if test_dropped else ""
    usable = test_read - sum(test_dropped.values())
    if n < usable:
        test += f"; drawn at random from the {usable} usable" if test_dropped else ", drawn at random"
    repeats = info["test_repeats_kept"]
    test += f"; {repeats} repeat an earlier test sentence (dedup_test, --dedup-test, drops them)" if repeats else ""
    return [first, test]


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


def split_corpus(
    task: Task,
    path: str | Path,
    out_dir: str | Path,
    cfg: SplitConfig,
    *,
    test_path: str | Path | None = None,
) -> dict[str, int]:
    """`mckd data split --task T`: read a corpus with the task's reader, split it, and write
    labeled/unlabeled/test.jsonl. `test_path` (optional) is a separate corpus for the test side."""
    read = task.read_corpus(path)
    items, dropped = filter_items(read, cfg.max_len)
    test_read = None if test_path is None else task.read_corpus(test_path)
    test_items, test_dropped = (None, None) if test_read is None else filter_items(
        test_read, cfg.max_len, drop_repeats=cfg.dedup_test)
    splits = split_items(items, dropped, cfg, where=path, test_items=test_items,
                         test_dropped=test_dropped, test_where=test_path)
    info = {
        "task": task.name,
        "corpus": str(path),
        "test_corpus": None if test_path is None else str(test_path),
        "config": cfg.model_dump(),
        **accounting(splits, read=len(read), dropped=dropped,
                     test_read=None if test_read is None else len(test_read), test_dropped=test_dropped),
    }
    return write_and_log(splits, out_dir, info, path, test_path)


def write_and_log(splits: dict[str, list[Example]], out_dir: str | Path, info: dict[str, Any],
           where: str | Path, test_where: str | Path | None) -> dict[str, int]:
    sizes = write_split(splits, out_dir, info)
    for line in split_summary({**info, "sizes": sizes}, where, test_where):
        log.info("%s", line)
    log.info("wrote %s to %s", sizes, out_dir)
    return sizes
