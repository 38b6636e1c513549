"""Steps of the baselines and the single-student methods: data, teacher, sft, vanilla KD,
KD + self-distillation, and the task's trivial baselines. MCKD's stages are in stages.py.

Each function takes the run context and the step's folder, writes its files there, and returns
the step's metrics (written to metrics.json by the run directory)."""

from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path
from typing import Any

from mckd.distill.context import DATA, RunContext
from mckd.errors import ConfigError, InputError, MckdError
from mckd.examples import Example, read_examples, write_examples
from mckd.io import read_text_lines
from mckd.teacher.label import label_files

log = logging.getLogger(__name__)


# --- data ------------------------------------------------------------------------------------------


def run_data(ctx: RunContext, folder: Path) -> dict[str, Any]:
    """Write labeled.jsonl, unlabeled.jsonl and test.jsonl: the run's fixed copy of its data."""
    labeled, pool, test = make_data(ctx.cfg, ctx.task)
    for name, examples in zip(FILES, (labeled, pool, test), strict=True):
        write_examples(folder / name, examples)
    return {"labeled": len(labeled), "unlabeled": len(pool), "test": len(test)}


def make_data(cfg: Any, task: Any) -> tuple[list[Example], list[Example], list[Example]]:
    """The run's labeled pairs, unlabeled pool and test set, in memory."""
    d = cfg.data
    if d.source == "demo":  # the task's built-in corpus
        demo = d.demo
        # A numbered teacher subset is the test set a corpus of that size has (its requests,
        # and so the teacher's cache, stay the same when n_test grows).
        prefix = {"test_prefix": d.teacher_test} if isinstance(d.teacher_test, int) else {}
        corpus = task.builtin_corpus(demo.n_labeled, demo.n_unlabeled, demo.n_test,
                                     seed=demo.seed, max_words=demo.max_len, **prefix)
        labeled, pool, test = corpus.labeled, corpus.pool, corpus.test
    else:
        labeled, pool, test = load_data_files(cfg)
        labeled = _take(labeled, d.n_labeled, d.seed)
        pool, test = _take(pool, d.n_unlabeled, d.seed), _take(test, d.n_test, None)
    # The pool's targets are never shown to any student: gold stays only in meta for scoring.
    pool = [Example(ex.id, ex.source, None, ex.meta) for ex in pool]
    return labeled, pool, test


FILES = ("labeled.jsonl", "unlabeled.jsonl", "test.jsonl")


def load_data_files(cfg: Any) -> tuple[list[Example], list[Example], list[Example]]:
    d = cfg.data
    return (read_examples(d.labeled, require_target=True), read_examples(d.unlabeled),
            read_examples(d.test, require_target=True))


def teacher_subset(cfg: Any, test: list[Example]) -> list[Example]:
    """The test examples the teacher is scored on (`data.teacher_test`), in test order: the
    first N, those a file of ids names, or all of them."""
    chosen = cfg.data.teacher_test
    if chosen is None:
        return test
    if isinstance(chosen, int):
        if chosen > len(test):
            raise ConfigError(f"data.teacher_test = {chosen}: the test set has {len(test)} examples")
        return test[:chosen]
    wanted = read_test_ids(chosen, {ex.id for ex in test})
    return [ex for ex in test if ex.id in wanted]


def read_test_ids(path: str | Path, known: set[str]) -> set[str]:
    """Ids in a file, one per line or as JSONL records with an `id`; each must be a test id."""
    ids: set[str] = set()
    for line, text in enumerate(read_text_lines(path), start=1):
        text = text.strip()
        if not text:
            continue
        if text.startswith("{"):
            try:
                text = str(json.loads(text)["id"])
            except (ValueError, KeyError, TypeError):
                raise InputError(path, line, "expected a test id or a JSON object with an 'id'") from None
        if text not in known:
            raise InputError(path, line, f"{text!r} is not an id of the test set")
        ids.add(text)
    if not ids:
        raise InputError(path, None, "no test ids in the file")
    return ids


def _take(examples: list[Example], n: int | None, seed: int | None) -> list[Example]:
    """The first n examples, after a seeded shuffle when `seed` is given."""
    if seed is not None:
        examples = list(examples)
        random.Random(seed).shuffle(examples)
    return examples if n is None else examples[:n]


# --- teacher ---------------------------------------------------------------------------------------


def run_teacher_pool(ctx: RunContext, folder: Path) -> dict[str, Any]:
    """The teacher labels the unlabeled pool (once; its cache and ledger make a rerun free);
    with stage0 auto, only when the probe chose a stage 0 that uses the teacher's labels."""
    from mckd.distill.stage0 import teacher_pool_skipped

    skipped = teacher_pool_skipped(ctx)
    if skipped:
        log.info("the teacher labels no pool input: %s", skipped)
        return {"skipped": skipped}
    labels, usage = label_with_teacher(ctx, ctx.pool(), folder)
    labels = [ex.with_target(ex.target, stage0_source="teacher") for ex in labels]
    write_examples(folder / "labels.jsonl", labels)
    return {"usage": usage, "pseudolabels": ctx.pseudolabel_quality(labels)}


def run_teacher_test(ctx: RunContext, folder: Path) -> dict[str, Any]:
    """The `teacher` method: the LLM labels its test inputs (`data.teacher_test`), which are
    scored."""
    test = teacher_subset(ctx.cfg, ctx.test())
    blind = [Example(ex.id, ex.source, None, {}) for ex in test]  # gold stays out of the prompt
    labels, usage = label_with_teacher(ctx, blind, folder)
    write_examples(folder / "predictions.jsonl", labels)
    return {"test": ctx.score(test, [ex.target for ex in labels]), "usage": usage}


def label_with_teacher(ctx: RunContext, inputs: list[Example], folder: Path) -> tuple[list[Example], dict[str, Any]]:
    """Label `inputs` with the teacher, demonstrations drawn from the gold pairs. The labelling
    run's own files (ledger, pseudolabels, rejections, usage) go in `folder/labelling`."""
    write_examples(folder / "inputs.jsonl", inputs)
    result = label_files(folder / "inputs.jsonl", folder / "labelling", ctx.cfg.teacher,
                         labeled_path=ctx.rd.folder(DATA) / "labeled.jsonl", task=ctx.task,
                         extra_labels=ctx.cfg.task_labels(), progress=sys.stderr.isatty())
    # One label per input, in input order; an input the teacher gave nothing usable has None.
    by_id = {ex.id: ex for ex in result.labels}
    labels = [ex.with_target(by_id[ex.id].target) if ex.id in by_id else ex.with_target(None)
              for ex in inputs]
    return labels, result.usage


# --- trivial baselines -----------------------------------------------------------------------------


def run_baselines(ctx: RunContext, folder: Path) -> dict[str, Any]:
    """The task's trivial baselines on the test inputs."""
    test = ctx.test()
    out = {}
    for name, make in ctx.task.baselines().items():
        preds = make([ex.source for ex in test])
        write_examples(folder / f"{name}.jsonl", [ex.with_target(p) for ex, p in zip(test, preds, strict=True)])
        out[name] = {"test": ctx.score(test, preds)}
    return out


# --- students --------------------------------------------------------------------------------------


def run_sft(ctx: RunContext, folder: Path) -> dict[str, Any]:
    """Fine-tune on the gold pairs only; label the pool too when stage 0 may use its labels
    (pool.jsonl)."""
    from mckd.distill.stage0 import needs_sft_pool

    test = ctx.test()
    sets = {"test": test}
    if needs_sft_pool(ctx.cfg):
        sets["pool"] = ctx.pool()
    train, preds = ctx.train_student(folder, ctx.labeled(), sets, save=True)
    return {"test": ctx.score(test, [ex.target for ex in preds["test"]]), "train": train}


def distill_train_set(ctx: RunContext, labels: list[Example]) -> list[Example]:
    """Pseudolabeled examples (plus the gold pairs when `add_gold`)."""
    train = [ex for ex in labels if ex.target is not None]
    return ctx.labeled() + train if ctx.cfg.add_gold else train


def init_checkpoint(ctx: RunContext) -> Path | None:
    return ctx.rd.folder("sft") / "model" if ctx.cfg.init_from_sft else None


def run_vanilla_kd(ctx: RunContext, folder: Path) -> dict[str, Any]:
    """One student on all stage-0 labels (the teacher's by default); it also relabels the pool when kd_self_distill runs."""
    from mckd.distill.stage0 import first_labels_step

    test, labels = ctx.test(), ctx.rd.read(first_labels_step(ctx.cfg), "labels.jsonl")
    sets = {"test": test}
    if "kd_self_distill" in ctx.cfg.methods:
        sets["pool"] = labels
    train, preds = ctx.train_student(folder, distill_train_set(ctx, labels), sets,
                                     init_from=init_checkpoint(ctx), save=True)
    return {"test": ctx.score(test, [ex.target for ex in preds["test"]]), "train": train}


def run_kd_self_distill(ctx: RunContext, folder: Path) -> dict[str, Any]:
    """Keep the share of the vanilla student's pool relabels with the highest mean token
    log-probability; train a new student on it."""
    relabels = ctx.rd.read("vanilla_kd", "pool.jsonl")
    kept = keep_most_confident(relabels, ctx.cfg.self_distill_keep)
    write_examples(folder / "kept.jsonl", kept)
    test = ctx.test()
    train, preds = ctx.train_student(folder, distill_train_set(ctx, kept), {"test": test},
                                     init_from=init_checkpoint(ctx), save=True)
    return {"test": ctx.score(test, [ex.target for ex in preds["test"]]), "train": train,
            "pseudolabels": ctx.pseudolabel_quality(kept)}


def keep_most_confident(relabels: list[Example], share: float) -> list[Example]:
    """The top `share` of examples by meta.mean_logprob (ties keep pool order)."""
    missing = [ex.id for ex in relabels if ex.meta.get("mean_logprob") is None]
    if missing:
        raise MckdError(f"kd_self_distill needs the student's mean_logprob, missing for {len(missing)} "
                        f"pool examples (first: {missing[0]})")
    n = max(1, round(share * len(relabels)))
    ranked = sorted(range(len(relabels)), key=lambda i: -relabels[i].meta["mean_logprob"])
    return [relabels[i] for i in sorted(ranked[:n])]
