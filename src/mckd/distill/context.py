"""What every step function needs: the config, the task, the run directory, and the two
actions steps share (train a student and write its predictions; score predictions)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mckd import student as students
from mckd.config import RunConfig
from mckd.distill.rundir import RunDir, write_json
from mckd.examples import Example, write_examples
from mckd.student.base import count_flags
from mckd.tasks.base import Task, label_coverage

log = logging.getLogger(__name__)

DATA = "data"


@dataclass
class RunContext:
    cfg: RunConfig
    task: Task
    rd: RunDir

    # --- data written by the `data` step
    def labeled(self) -> list[Example]:
        return self.rd.read(DATA, "labeled.jsonl")

    def pool(self) -> list[Example]:
        return self.rd.read(DATA, "unlabeled.jsonl")

    def test(self) -> list[Example]:
        return self.rd.read(DATA, "test.jsonl")

    # --- scoring
    def score(self, golds: list[Example], preds: list[str | None]) -> dict[str, float]:
        return {k: float(v) for k, v in self.task.score(golds, [p or "" for p in preds]).items()}

    def pseudolabel_quality(self, labels: list[Example]) -> dict[str, Any]:
        """Pseudolabels of the pool against the pool's gold outputs, where the pool has them."""
        with_gold = [ex for ex in labels if self.task.has_gold(ex)]
        out: dict[str, Any] = {"inputs": len(labels),
                               "labeled": sum(ex.target is not None for ex in labels)}
        if with_gold:
            golds = [Example(ex.id, ex.source, None, ex.meta) for ex in with_gold]  # gold is in meta
            out["gold"] = self.score(golds, [ex.target for ex in with_gold])
            out["gold_inputs"] = len(with_gold)
        return out

    def label_coverage(self) -> dict[str, Any] | None:
        """How much of the test gold (and the pool's, where known) the run's label set (the
        labeled examples' labels plus task.labels: what the teacher may answer, and so what
        the students learn) cannot express, by the task's hook; None when the task's label set
        limits nothing."""
        labels = self.task.label_set(self.labeled(), self.cfg.task_labels())
        out = {}
        for part, examples in (("test", self.test()), ("pool", self.pool())):
            golds = [ex for ex in examples if self.task.has_gold(ex)]
            found = label_coverage(self.task, golds, labels) if golds else None
            if found is not None:
                out[part] = found
        return out or None

    # --- students
    def student_config(self) -> Any:
        """A deep copy of the configured student with the run's seed added to its own seed: a
        student may settle settings left open, and the run's own config must not change."""
        cfg = self.cfg.student.model_copy(deep=True)
        if hasattr(cfg, "seed"):
            cfg.seed += self.cfg.seed
        elif hasattr(getattr(cfg, "train", None), "seed"):
            cfg.train.seed += self.cfg.seed
        return cfg

    def new_student(self, init_from: Path | None = None) -> Any:
        """A fresh student from the pretrained model, or one starting from a saved student
        (init_from_sft)."""
        cfg = self.student_config()
        if init_from is None:
            return students.build_student(cfg, self.task)
        if "model" in type(cfg).model_fields:
            # Generating students build their model from `model`, which may be any saved
            # model directory: a saved student is one.
            return students.build_student(cfg.model_copy(update={"model": str(init_from.resolve())}), self.task)
        return students.load_trained_student(init_from, self.task)  # fit() continues from its weights

    def train_student(
        self,
        folder: Path,
        train: list[Example],
        predict: dict[str, list[Example]],
        *,
        init_from: Path | None = None,
        save: bool = False,
    ) -> tuple[dict[str, Any], dict[str, list[Example]]]:
        """Train one fresh student on `train`, then label each set in `predict`.

        Writes `inputs.json` (training ids), `student/` (the student's own checkpoints, which
        let an interrupted fit resume), `<set>.jsonl` predictions (target = the prediction,
        meta.mean_logprob, meta.student = the prediction's own flags), `train.json` (with the
        count of fallbacks and incomplete decodes per set), and `model/` when `save`. Returns
        the training summary and the predictions by set name."""
        train = [ex for ex in train if ex.target is not None]
        write_json(folder / "inputs.json", {"train_ids": [ex.id for ex in train],
                                            **{f"{k}_ids": [ex.id for ex in v] for k, v in predict.items()}})
        student = self.new_student(init_from)
        report = student.fit(train, folder / "student")
        summary = {"train_size": len(train), **_report_dict(report), "predictions": {}}
        outputs: dict[str, list[Example]] = {}
        for name, examples in predict.items():
            preds = student.predict([ex.source for ex in examples]) if examples else []
            # The flags go under one key, replaced whole: a relabel never keeps an earlier
            # student's flags, and they cannot overwrite the example's own meta (its gold tree).
            outputs[name] = [
                ex.with_target(p.text, mean_logprob=p.mean_logprob, student=p.meta)
                for ex, p in zip(examples, preds, strict=True)
            ]
            write_examples(folder / f"{name}.jsonl", outputs[name])
            summary["predictions"][name] = count_flags(preds)
        write_json(folder / "train.json", summary)
        if save:
            student.save(folder / "model")
        return summary, outputs


def _report_dict(report: Any) -> dict[str, Any]:
    d = asdict(report)
    fidelity = d.get("fidelity") or []
    return {"epochs": d.get("epochs"), "steps": d.get("steps"), "seconds": round(d.get("seconds") or 0.0, 3),
            "final_loss": d.get("final_loss"), "fidelity": fidelity[-1] if fidelity else None,
            "fidelity_by_epoch": fidelity, "stopped_early": d.get("stopped_early"),
            "extra": d.get("extra") or {}}
