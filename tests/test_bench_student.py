"""The student speed benchmark's training baseline is the standard Hugging Face setup: batches
padded one by one by DataCollatorForSeq2Seq and grouped by length."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_student as bench


def test_hf_baseline_pads_per_batch_and_groups_by_length(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import DataCollatorForSeq2Seq, Trainer

    from mckd.student.model import build_t5, train_tokenizer

    samplers: list[str] = []
    widths: list[int] = []
    sampler, collate = Trainer._get_train_sampler, DataCollatorForSeq2Seq.__call__

    def spy_sampler(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        out = sampler(self, *args, **kwargs)
        samplers.append(type(out).__name__)
        return out

    def spy_collate(self, features, *args, **kwargs):  # type: ignore[no-untyped-def]
        batch = collate(self, features, *args, **kwargs)
        widths.append(batch["input_ids"].shape[1])
        assert widths[-1] == max(len(f["input_ids"]) for f in features)  # padded to this batch only
        return batch

    monkeypatch.setattr(Trainer, "_get_train_sampler", spy_sampler)
    monkeypatch.setattr(DataCollatorForSeq2Seq, "__call__", spy_collate)
    pairs = bench.load_data(24, 0)
    sm = build_t5("t5-tiny", train_tokenizer([t for p in pairs for t in p], "word"), seed=0,
                  d_model=32, d_ff=64, num_layers=1, num_heads=2)
    data = bench.encode(sm, pairs)
    assert bench.time_hf_trainer(sm, data, 4, tmp_path, standard=True) > 0
    assert samplers == ["LengthGroupedSampler"]
    assert len(widths) == 6 and len(set(widths)) > 1
