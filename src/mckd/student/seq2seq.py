"""The generating student: an encoder-decoder or decoder-only model behind the Student protocol.

    student = Seq2SeqStudent(Seq2SeqConfig(model="t5-tiny"), task)
    report = student.fit(train_examples, Path("run/student"))   # resumes if interrupted
    preds = student.predict(["The cat sat ."])                   # list[Prediction]
    student.save(Path("model_dir")); Seq2SeqStudent.load(Path("model_dir"))
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mckd.errors import ConfigError, InputError
from mckd.examples import Example
from mckd.io import atomic_write
from mckd.student.base import Prediction, TrainReport
from mckd.student.config import CausalConfig, Seq2SeqConfig
from mckd.student.distributed import current_ranks
from mckd.student.generate import BRACKETS, encode_prompts, generate
from mckd.student.model import StudentModel, build_model, load_student, save_student
from mckd.student.train import Encoded, resolve_device, train
from mckd.tasks import DEFAULT_TASK, get_task

log = logging.getLogger(__name__)
CONFIG_FILE = "student_config.json"
GenConfig = Seq2SeqConfig | CausalConfig
FidelityFn = Callable[[list[str], list[str], list[str]], float]


def to_placeholder(target: str, placeholder: str) -> str:
    """`( ( The ) ( cat ) )` -> `( ( * ) ( * ) )`: the model writes structure, not words."""
    return " ".join(t if t in BRACKETS else placeholder for t in target.split())


def exact_match(targets: list[str], preds: list[str], sources: list[str]) -> float:
    """Share of predictions identical to their target, 0-100 (fidelity for tasks without F1)."""
    del sources
    return 100.0 * sum(t.split() == p.split() for t, p in zip(targets, preds, strict=True)) / max(1, len(targets))


class Seq2SeqStudent:
    """Trains from its config's initial weights; predicts with batched, optionally constrained decoding."""

    def __init__(self, cfg: GenConfig | None = None, task: Any = None, *,
                 fidelity: FidelityFn | None = None) -> None:
        # A copy: fit() settles what the config leaves open (constrained decoding), and that
        # must not change the config a caller (a run, the next seed) shares.
        self.cfg = (cfg or Seq2SeqConfig()).model_copy(deep=True)
        self.task = task
        self._fidelity = fidelity
        self.sm: StudentModel | None = None

    # -- training ---------------------------------------------------------------------------
    def fit(self, train_examples: list[Example], out_dir: Path, *,
            on_step: Callable[[int], None] | None = None) -> TrainReport:
        out_dir = Path(out_dir)
        if self.cfg.target_format == "placeholder" and self.task is not None and not self.task.copies_words:
            raise ConfigError(f"target_format 'placeholder' replaces the input words in the target, "
                              f"but {self.task.name} targets do not contain them; use 'text'")
        done = out_dir / "DONE"
        if done.exists():  # finished earlier: load, don't retrain
            self.sm = load_student(out_dir / "model")
            return TrainReport(**json.loads(done.read_text()))
        pairs = self._pairs(train_examples)
        cfg, tcfg = self.cfg, self.cfg.train
        targets = [to_placeholder(t, cfg.placeholder) if cfg.target_format == "placeholder" else t
                   for _, t in pairs]
        sources = [s for s, _ in pairs]
        if tcfg.threads:
            torch.set_num_threads(tcfg.threads)
        self.sm = build_model(cfg.model, cfg.kind, sources + targets, tokenizer=cfg.tokenizer,
                              bpe_vocab_size=cfg.bpe_vocab_size, seed=tcfg.seed, dropout=cfg.dropout,
                              t5_shape=cfg.t5_shape)
        data, longest, cut = self._encode(sources, targets)
        self.sm.meta.update(target_format=cfg.target_format, placeholder=cfg.placeholder,
                            max_target_tokens=longest)
        if self.task is not None:  # a saved student decodes for its task without being told
            self.sm.meta.update(task=self.task.name, labels=self.task.label_set(train_examples))
        fidelity = self._fidelity_callback(train_examples) if tcfg.fidelity_sample > 0 else None
        self.sm.model.to(resolve_device(tcfg.device))
        report = train(self.sm, data, tcfg, out_dir, fidelity=fidelity, on_step=on_step)
        report.extra.update(truncated_targets=cut[1], truncated_sources=cut[0], examples=len(data))
        ranks = current_ranks()
        if ranks.main:  # under `accelerate launch`, one process writes
            save_student(self.sm, out_dir / "model")
            self._write_config(out_dir / "model")
            with atomic_write(done) as f:
                json.dump(dataclasses.asdict(report), f, indent=1)
            shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
        ranks.wait()
        return report

    def _pairs(self, examples: list[Example]) -> list[tuple[str, str]]:
        if not examples:
            raise InputError(None, None, "no training examples (the training set is empty)")
        missing = [ex.id for ex in examples if ex.target is None or not ex.target.strip()]
        if missing:
            raise InputError(None, None, f"{len(missing)} training examples have no target "
                             f"(first: id {missing[0]!r}); a student trains on labeled examples only")
        return [(ex.source, ex.target) for ex in examples]  # type: ignore[misc]

    def _encode(self, sources: list[str], targets: list[str]) -> tuple[list[Encoded], int, tuple[int, int]]:
        """Token ids; over-long sources and targets are truncated and counted, never silently."""
        assert self.sm is not None
        tcfg, tok = self.cfg.train, self.sm.tokenizer
        sep = self.cfg.separator if isinstance(self.cfg, CausalConfig) else ""
        prompts = encode_prompts(self.sm, sources, 10**9, sep)
        lead = " " if self.cfg.kind == "causal" else ""
        tgt_ids = tok([lead + t for t in targets], add_special_tokens=False)["input_ids"]
        eos = self.sm.eos_id
        long_src = sum(len(p) > tcfg.max_source_len for p in prompts)
        long_tgt = sum(len(t) + 1 > tcfg.max_target_len for t in tgt_ids)
        for what, n, limit in (("sources", long_src, tcfg.max_source_len), ("targets", long_tgt, tcfg.max_target_len)):
            if n:
                log.warning("%d of %d training %s are longer than %d tokens and were truncated "
                            "(raise train.max_%s_len to keep them)", n, len(targets), what, limit, what[:-1])
        data = [Encoded(p[:tcfg.max_source_len], [*t, eos][:tcfg.max_target_len])
                for p, t in zip(prompts, tgt_ids, strict=True)]
        return data, max(len(t) + 1 for t in tgt_ids), (long_src, long_tgt)

    def _fidelity_callback(self, examples: list[Example]) -> Callable[[], float]:
        """F1 (or exact match) of the student's decodes of a fixed training sample vs their labels."""
        tcfg = self.cfg.train
        sample = random.Random(tcfg.seed).sample(examples, min(tcfg.fidelity_sample, len(examples)))
        metric: FidelityFn = self._fidelity or exact_match
        if self._fidelity is None and tcfg.fidelity_metric == "task" and hasattr(self.task, "fidelity"):
            metric = self.task.fidelity

        def measure() -> float:
            preds = self.predict([ex.source for ex in sample])
            return metric([ex.target for ex in sample], [p.text for p in preds], [ex.source for ex in sample])

        return measure

    # -- prediction and persistence -----------------------------------------------------------
    def predict(self, sources: list[str]) -> list[Prediction]:
        if self.sm is None:
            raise InputError(None, None, "the student has no model yet: fit() or load() it first")
        if not sources:
            return []
        meta = self.sm.meta
        placeholder = meta.get("placeholder") if meta.get("target_format") == "placeholder" else None
        longest = int(meta.get("max_target_tokens") or 128)
        constraint = self._constraint(placeholder)
        gen = self.cfg.generate
        if gen.constrained is None:  # on where the task has a constraint
            gen = gen.model_copy(update={"constrained": constraint is not None and constraint(sources[0]) is not None})
        preds = generate(self.sm, sources, gen, max_source_len=self.cfg.train.max_source_len,
                         default_max_new_tokens=int(longest * 1.25) + 8, placeholder=placeholder,
                         separator=getattr(self.cfg, "separator", ""), constraint=constraint,
                         copies_words=self.task.copies_words if self.task is not None else True)
        return preds

    def _constraint(self, placeholder: str | None) -> Callable[[str], Any] | None:
        """The task's decoding constraint for one source, over this model's tokenizer."""
        task, sm = self.task, self.sm
        if task is None or sm is None:
            return None
        labels, causal = sm.meta.get("labels"), sm.kind == "causal"
        return lambda source: task.decoding_constraint(source, labels, sm.tokenizer,
                                                       placeholder=placeholder, space_first=causal)

    def save(self, path: Path) -> None:
        if self.sm is None:
            raise InputError(None, None, "the student has no model yet: fit() or load() it first")
        save_student(self.sm, path)
        self._write_config(Path(path))

    def _write_config(self, path: Path) -> None:
        with atomic_write(path / CONFIG_FILE) as f:
            f.write(self.cfg.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: Path, task: Any = None, *, device: str | None = None) -> Seq2SeqStudent:
        path = Path(path)
        cfg_path = path / CONFIG_FILE
        if not cfg_path.exists():
            raise InputError(path, None, f"not a trained student directory (no {CONFIG_FILE})")
        raw = json.loads(cfg_path.read_text())
        cfg: GenConfig = CausalConfig(**raw) if raw.get("kind") == "causal" else Seq2SeqConfig(**raw)
        student = cls(cfg, task)
        student.sm = load_student(path)
        if task is None:
            # students saved before their task was recorded were all parsers
            student.task = get_task(student.sm.meta.get("task", DEFAULT_TASK))
        student.sm.model.to(resolve_device(device or cfg.train.device))
        return student
