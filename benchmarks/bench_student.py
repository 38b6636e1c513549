"""Student speed: our training loop and generation against the plain Hugging Face way, same run.

    OMP_NUM_THREADS=1 python benchmarks/bench_student.py --n-train 160 --n-gen 192

Training: `mckd.student.train.train` (length-bucketed batches, dynamic padding) against
`Seq2SeqTrainer` configured the way the Hugging Face examples train seq2seq models: each batch
padded to its own longest example by `DataCollatorForSeq2Seq`, batches grouped by length
(`group_by_length=True`; in transformers 5 `train_sampling_strategy="group_by_length"`). Also
timed for reference: `Seq2SeqTrainer` on examples padded in advance to the longest one. Same
model and initial weights, same batch size and learning rate, one epoch each, the three
alternated --repeats times (best time of each kept). Generation: `generate` (length-sorted batches, KV cache) against plain
`model.generate` on unsorted batches of the same size (alternated likewise) and one sentence at
a time in input order (first --n-single sentences); the same model, greedy, all three with the
same tree constraint (so outputs end where the tree ends, as a trained model's would), outputs
compared. Data: trees from the built-in synthetic treebank, the paper's unlabeled target form.
Results go to benchmarks/student_speed_results.md by hand.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import torch
from transformers import LogitsProcessorList

from mckd.student.config import GenerateConfig, TrainConfig
from mckd.student.constrained import TreeLogitsProcessor
from mckd.student.generate import generate
from mckd.student.model import StudentModel, build_t5, train_tokenizer
from mckd.student.train import Encoded, train
from mckd.tasks.constituency.constraint import TreeConstraint, max_tree_tokens
from mckd.tasks.constituency.synth import synth_treebank
from mckd.tasks.constituency.trees import to_unlabeled, tree_words


def load_data(n: int, seed: int) -> list[tuple[str, str]]:
    return [(" ".join(tree_words(t)), to_unlabeled(t)) for t in synth_treebank(n, seed)]


def encode(sm: StudentModel, pairs: list[tuple[str, str]]) -> list[Encoded]:
    tok = sm.tokenizer
    return [Encoded(tok(s)["input_ids"], tok(t, add_special_tokens=False)["input_ids"] + [sm.eos_id])
            for s, t in pairs]


def time_ours(sm: StudentModel, data: list[Encoded], batch: int, out: Path) -> float:
    cfg = TrainConfig(epochs=1, batch_size=batch, fidelity_sample=0, progress=False, device="cpu",
                      save_every_steps=10**6, max_grad_norm=None)
    start = time.perf_counter()
    train(sm, data, cfg, out)
    return time.perf_counter() - start


def group_by_length() -> dict[str, object]:
    """The trainer argument that groups batches by length: renamed in transformers 5."""
    from transformers import Seq2SeqTrainingArguments

    if "train_sampling_strategy" in Seq2SeqTrainingArguments.__dataclass_fields__:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def time_hf_trainer(sm: StudentModel, data: list[Encoded], batch: int, out: Path, *, standard: bool) -> float:
    """`Seq2SeqTrainer`, standard: per-batch padding (`DataCollatorForSeq2Seq`) and batches
    grouped by length; otherwise every example padded in advance to the longest one."""
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    extra: dict = {}
    if standard:
        rows = [{"input_ids": d.source, "attention_mask": [1] * len(d.source), "labels": d.target} for d in data]
        collator = DataCollatorForSeq2Seq(sm.tokenizer, model=sm.model, label_pad_token_id=-100)
        extra = group_by_length()
    else:
        src_w = max(len(d.source) for d in data)
        tgt_w = max(len(d.target) for d in data)
        rows = [{"input_ids": torch.tensor(d.source + [sm.pad_id] * (src_w - len(d.source))),
                 "attention_mask": torch.tensor([1] * len(d.source) + [0] * (src_w - len(d.source))),
                 "labels": torch.tensor(d.target + [-100] * (tgt_w - len(d.target)))} for d in data]
        collator = None
    args = Seq2SeqTrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch, num_train_epochs=1, learning_rate=3e-4,
        lr_scheduler_type="linear", use_cpu=True, report_to="none", save_strategy="no",
        logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0, max_grad_norm=0.0, **extra)
    trainer = Seq2SeqTrainer(model=sm.model, args=args, train_dataset=rows, data_collator=collator)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


@torch.inference_mode()
def hf_generate(sm: StudentModel, sources: list[str], batch: int, max_new: int) -> tuple[float, list[str]]:
    """Plain `model.generate` in input order (no sorting), `batch` sentences at a time, with the
    same tree constraint as ours so both do the same decoding work."""
    sm.model.eval()
    texts: list[str] = []
    start = time.perf_counter()
    for i in range(0, len(sources), batch):
        chunk = sources[i:i + batch]
        constraints = [TreeConstraint(s.split(), sm.tokenizer) for s in chunk]
        enc = sm.tokenizer(chunk, return_tensors="pt", padding=True)
        out = sm.model.generate(**enc, max_new_tokens=max(max_tree_tokens(c) for c in constraints),
                                do_sample=False, num_beams=1, eos_token_id=sm.eos_id, pad_token_id=sm.pad_id,
                                logits_processor=LogitsProcessorList([TreeLogitsProcessor(constraints, sm.eos_id)]))
        texts.extend(c.decode(row, sm.eos_id)[0] for c, row in zip(constraints, out[:, 1:].tolist(), strict=True))
    return time.perf_counter() - start, texts


def time_ours_generate(sm: StudentModel, sources: list[str], batch: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    preds = generate(sm, sources, GenerateConfig(batch_size=batch, constrained=True),
                     constraint=lambda s: TreeConstraint(s.split(), sm.tokenizer))
    return time.perf_counter() - start, [p.text for p in preds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=640)
    ap.add_argument("--n-gen", type=int, default=320)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--gen-batch", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--gen-epochs", type=int, default=2)
    ap.add_argument("--n-single", type=int, default=32, help="sentences decoded one at a time")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    pairs = load_data(args.n_train + args.n_gen, args.seed)
    train_pairs, gen_sources = pairs[:args.n_train], [s for s, _ in pairs[args.n_train:]]
    tok = train_tokenizer([t for p in train_pairs for t in p], "word")
    sm = build_t5("t5-tiny", tok, seed=args.seed, d_model=args.d_model, d_ff=4 * args.d_model,
                  num_layers=2, num_heads=4)
    data = encode(sm, train_pairs)
    tokens = sum(len(d.source) + len(d.target) for d in data)
    res: dict = {"model_params": sum(p.numel() for p in sm.model.parameters()), "threads": args.threads,
                 "n_train": len(data), "n_gen": len(gen_sources), "cpu": platform.processor() or platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        # Alternate the three, --repeats times each, from the same initial weights; keep each
        # one's best time (the machine is shared, so the minimum is the least disturbed run).
        hf_times, padded_times, our_times, init = [], [], [], copy.deepcopy(sm.model.state_dict())
        for rep in range(args.repeats):
            for times, standard in ((hf_times, True), (padded_times, False)):
                hf_model = StudentModel(copy.deepcopy(sm.model), sm.tokenizer, "seq2seq", dict(sm.meta))
                times.append(time_hf_trainer(hf_model, data, args.batch, Path(tmp) / f"hf{rep}{standard}",
                                             standard=standard))
            sm.model.load_state_dict(init)
            our_times.append(time_ours(sm, data, args.batch, Path(tmp) / f"ours{rep}"))
        res["train_hf_s"], res["train_ours_s"] = min(hf_times), min(our_times)
        res["train_hf_prepadded_s"] = min(padded_times)
        res["train_hf_all_s"], res["train_ours_all_s"] = hf_times, our_times
        res["train_hf_prepadded_all_s"] = padded_times
        print(json.dumps({"phase": "train", **res}), flush=True)
        # A few more epochs (untimed) for the generation model.
        train(sm, data, TrainConfig(epochs=args.gen_epochs, batch_size=args.batch, fidelity_sample=0,
                                    progress=False, device="cpu", save_every_steps=10**6),
              Path(tmp) / "gen-model")
    res["train_examples"] = len(data)
    res["train_tokens"] = tokens
    res["train_speedup"] = res["train_hf_s"] / res["train_ours_s"]
    res["train_speedup_vs_prepadded"] = res["train_hf_prepadded_s"] / res["train_ours_s"]
    # Generation, constrained for every method so outputs end where the tree ends (an
    # under-trained free-running model would run every sentence to the length limit).
    # Ours and the unsorted batches alternate; one-by-one runs on the first --n-single only.
    ours_t, unsorted_t = [], []
    for _ in range(args.repeats):
        t, ours = time_ours_generate(sm, gen_sources, args.gen_batch)
        ours_t.append(t)
        t, unsorted = hf_generate(sm, gen_sources, args.gen_batch, 0)
        unsorted_t.append(t)
    single_s, single = hf_generate(sm, gen_sources[:args.n_single], 1, 0)
    res.update(gen_ours_s=min(ours_t), gen_hf_unsorted_batch_s=min(unsorted_t), gen_ours_all_s=ours_t,
               gen_hf_unsorted_batch_all_s=unsorted_t, gen_n_single=args.n_single,
               gen_same_as_unsorted=sum(a == b for a, b in zip(ours, unsorted, strict=True)) / len(ours),
               gen_same_as_single=sum(a == b for a, b in zip(ours, single, strict=False)) / len(single),
               gen_mean_words=sum(len(s.split()) for s in gen_sources) / len(gen_sources))
    res["gen_ours_sent_per_s"] = len(gen_sources) / res["gen_ours_s"]
    res["gen_hf_unsorted_batch_sent_per_s"] = len(gen_sources) / res["gen_hf_unsorted_batch_s"]
    res["gen_hf_single_sent_per_s"] = args.n_single / single_s
    res["train_ours_ex_per_s"] = len(data) / res["train_ours_s"]
    res["train_hf_ex_per_s"] = len(data) / res["train_hf_s"]
    res["train_hf_prepadded_ex_per_s"] = len(data) / res["train_hf_prepadded_s"]
    res["gen_speedup_vs_single"] = res["gen_ours_sent_per_s"] / res["gen_hf_single_sent_per_s"]
    res["gen_speedup_vs_unsorted_batch"] = res["gen_ours_sent_per_s"] / res["gen_hf_unsorted_batch_sent_per_s"]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
