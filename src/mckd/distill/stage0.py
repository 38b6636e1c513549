"""Stage 0: where the pool's first labels come from (`stage0` in the config).

- `teacher`: the LLM's labels (the paper; the `teacher` step's labels.jsonl is stage 0 and no
  step of this module runs).
- `sft`: the student trained on the gold pairs labels the pool (the `sft` step predicts it), so
  vanilla KD, KD + self-distillation and MCKD become self-training through the same stages.
  The LLM labels no pool input.
- `combine`: per input, the label the teacher and the sft student agree on; else the sft
  student's where its confidence (mean log-probability) is among the highest of the inputs
  they disagree on (`COMBINE_SFT_SHARE` of them); else the teacher's, or the sft student's
  when the probe found it clearly better.
- `auto`: the probe decides: `sft` where it found the gold-trained student clearly better than
  the teacher (the `teacher` step then labels no pool input), else `teacher`.

Every stage-0 label records its source in `meta.stage0_source` (`teacher`, `sft`, or `agree`
when both gave it), kept through the later stages' relabels; results.json counts them.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from mckd.distill.context import RunContext
from mckd.examples import Example, write_examples

log = logging.getLogger(__name__)

STAGE0 = "stage0"
SFT_POOL = "pool.jsonl"  # the sft step's labels of the pool, when stage 0 may use them
# auto's choice by the probe's verdict (benchmarks/stage0_results.md). Where the probe shows no
# difference (both demos), the teacher's labels made the best final students: combined labels
# scored higher on the pool but their MCKD-3 student was worse (slots: -4.5 [-6.0, -3.3]) or
# no better (parsing: -0.4), and the sft student's labels were worse on both. Only a clearly
# better gold-trained student (real ATIS: sft 80.7 against the teacher's 63.7) makes it the source.
AUTO = {"teacher": "teacher", "none": "teacher", "sft": "sft"}
# combine: the share of the inputs where teacher and sft disagree that go to the sft student,
# its most confident first (benchmarks/stage0_results.md: on the slot demo's pool 25%, 50% and
# 75% give 74.2, 72.5 and 72.3 against the teacher's 71.5 and the sft student's 65.4).
COMBINE_SFT_SHARE = 0.5


def first_labels_step(cfg: Any) -> str:
    """The step whose labels.jsonl holds the pool's stage-0 labels."""
    return "teacher" if cfg.stage0 == "teacher" else STAGE0


def uses_pool_labels(cfg: Any) -> bool:
    """Whether a method trains on the pool's labels (stage 0 and after)."""
    return any(m in cfg.methods for m in ("vanilla_kd", "kd_self_distill", "mckd"))


def needs_probe(cfg: Any) -> bool:
    return bool(cfg.probe) or cfg.stage0 in ("combine", "auto")


def needs_teacher_pool(cfg: Any) -> bool:
    """Whether the teacher labels the pool (the `teacher` step runs)."""
    return uses_pool_labels(cfg) and cfg.stage0 != "sft"


def needs_sft_pool(cfg: Any) -> bool:
    """Whether the sft student labels the pool (its labels are stage 0, or a candidate for it)."""
    return uses_pool_labels(cfg) and cfg.stage0 != "teacher"


def resolve(ctx: RunContext) -> tuple[str, str]:
    """The stage-0 source this run uses and why. `auto` reads the finished probe."""
    cfg = ctx.cfg
    if cfg.stage0 != "auto":
        return cfg.stage0, "stage0 is set to it in the config"
    from mckd.distill.probe import PROBE

    probe = ctx.rd.metrics(PROBE)
    d = probe["difference"]
    numbers = (f"teacher {probe['teacher']['value']:.1f} vs gold-trained student "
               f"{probe['sft']['value']:.1f}, difference {d['value']:+.1f} "
               f"[{d['low']:+.1f}, {d['high']:+.1f}] on {probe['examples']} held-out labeled examples")
    found = {"teacher": "the teacher clearly better", "none": "no difference",
             "sft": "the gold-trained student clearly better"}[probe["verdict"]]
    return AUTO[probe["verdict"]], f"auto: the probe found {found} ({numbers})"


def teacher_pool_skipped(ctx: RunContext) -> str | None:
    """Why the `teacher` step need not label the pool (auto resolved to sft), else None."""
    if ctx.cfg.stage0 != "auto":
        return None
    mode, reason = resolve(ctx)
    return None if mode in ("teacher", "combine") else f"stage 0 is {mode}: {reason}"


def run_stage0(ctx: RunContext, folder: Path) -> dict[str, Any]:
    """Write the pool's stage-0 labels (labels.jsonl, pool order, meta.stage0_source)."""
    mode, reason = resolve(ctx)
    pool = ctx.pool()
    sft = _by_id(ctx.rd.read("sft", SFT_POOL))
    teacher = _by_id(ctx.rd.read("teacher", "labels.jsonl")) if mode != "sft" else {}
    # each source's labels of the pool, and their quality: the candidates stage 0 chooses from
    sourced = {"sft": [_label(ex, sft.get(ex.id), "sft") for ex in pool]}
    if mode != "sft":
        sourced["teacher"] = [_label(ex, teacher.get(ex.id), "teacher") for ex in pool]
    candidates = {name: ctx.pseudolabel_quality(labels) for name, labels in sourced.items()}
    if mode in sourced:
        labels = sourced[mode]
    else:
        from mckd.distill.probe import PROBE

        # a difference the probe did not show is noise: only a clear one overrules the teacher
        fallback = "sft" if ctx.rd.metrics(PROBE)["verdict"] == "sft" else "teacher"
        labels = combine(pool, teacher, sft, COMBINE_SFT_SHARE, fallback)
        reason += (f"; where they disagree: the sft student's label on its "
                   f"{COMBINE_SFT_SHARE:.0%} most confident inputs, else the {fallback}'s")
    write_examples(folder / "labels.jsonl", labels)
    sources = Counter(ex.meta["stage0_source"] for ex in labels if ex.target is not None)
    log.info("stage 0 from %s (%s): %s", mode, reason,
             ", ".join(f"{n} {src}" for src, n in sorted(sources.items())))
    quality = candidates[mode] if mode in candidates else ctx.pseudolabel_quality(labels)
    return {"requested": ctx.cfg.stage0, "mode": mode, "reason": reason, "sources": dict(sources),
            "pseudolabels": quality, "candidates": candidates}


def combine(pool: list[Example], teacher: dict[str, Example], sft: dict[str, Example],
            sft_share: float, fallback: str) -> list[Example]:
    """Per input: the label both sources agree on; else the sft student's when its confidence
    ranks in the top `sft_share` of the disagreements; else `fallback`'s (the other source's
    when `fallback` has none; "drop": no label, so the input is labelled first by stage 1)."""
    def text(d: dict[str, Example], ex: Example) -> str | None:
        found = d.get(ex.id)
        return found.target if found is not None else None

    disagree = [ex for ex in pool if text(teacher, ex) != text(sft, ex)
                and text(teacher, ex) is not None and text(sft, ex) is not None]
    ranked = sorted(disagree, key=lambda ex: -_confidence(sft[ex.id]))
    confident = {ex.id for ex in ranked[:round(sft_share * len(ranked))]}
    out = []
    for ex in pool:
        t, s = text(teacher, ex), text(sft, ex)
        if t is not None and t == s:
            out.append(_label(ex, teacher[ex.id], "agree"))
        elif s is not None and (t is None or ex.id in confident):
            out.append(_label(ex, sft[ex.id], "sft"))
        elif fallback == "drop":
            out.append(_label(ex, None, "dropped"))
        elif t is not None and (fallback == "teacher" or s is None):
            out.append(_label(ex, teacher[ex.id], "teacher"))
        else:  # sft is the fallback, or neither source has a label
            out.append(_label(ex, sft.get(ex.id), "sft"))
    return out


def pool_labels_path(rd: Any, name: str, stage: int) -> Path:
    """The file holding the pool labels that results.json's `pseudolabels.<name>` scores: a
    stage's step folder, or the sft student's pool predictions (a stage-0 candidate)."""
    if name == "sft" and stage == 0:
        return rd.folder("sft") / SFT_POOL
    return rd.folder(name) / "labels.jsonl"


def source_counts(labels: list[Example]) -> dict[str, int]:
    """How many labels came from each source (`teacher` when the file records none)."""
    return dict(Counter(ex.meta.get("stage0_source", "teacher") for ex in labels
                        if ex.target is not None))


def _confidence(ex: Example) -> float:
    value = ex.meta.get("mean_logprob")
    return float(value) if isinstance(value, (int, float)) else float("-inf")


def _by_id(examples: list[Example]) -> dict[str, Example]:
    return {ex.id: ex for ex in examples}


def _label(pool_ex: Example, labelled: Example | None, source: str) -> Example:
    """The pool example with the source's label and what the source said about it (the
    teacher's record, the student's confidence and flags)."""
    if labelled is None or labelled.target is None:
        return pool_ex.with_target(None, stage0_source=source)
    said = {k: v for k, v in labelled.meta.items() if k in ("teacher", "mean_logprob", "student")}
    return pool_ex.with_target(labelled.target, **said, stage0_source=source)
