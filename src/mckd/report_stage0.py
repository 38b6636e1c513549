"""The report's sections on the probe (teacher vs gold-trained student on held-out gold) and on
stage 0 (where the pool's first labels came from, and why), from results.json alone."""

from __future__ import annotations

from typing import Any

Table = tuple[list[str], list[list[str]]]


def stage0_sections(results: dict[str, Any]) -> list[tuple[str, str, Table]]:
    out = []
    probe = results.get("probe")
    if isinstance(probe, dict) and "difference" in probe:
        out.append(("Probe: the teacher against the gold-trained student", _probe_note(probe),
                    _probe_table(probe)))
    stage0 = results.get("stage0")
    if isinstance(stage0, dict) and stage0.get("sources") is not None:
        mode, requested = stage0.get("mode"), stage0.get("requested")
        asked = f" (stage0: {requested})" if requested != mode else ""
        note = (f"The pool's first labels, which vanilla KD, KD + self-distillation and MCKD's "
                f"stage 1 train on, came from {mode}{asked}: {stage0.get('reason', '')}. "
                "'agree': the teacher and the sft student gave the same label.")
        rows = [[src, str(n)] for src, n in sorted(stage0["sources"].items())]
        out.append(("Stage 0", note, (["source", "pool labels"], rows)))
    return out


def _interval(d: dict[str, Any], sign: bool = False) -> list[str]:
    f = "+.1f" if sign else ".1f"
    return [format(d["value"], f), f"[{d['low']:{f}}, {d['high']:{f}}]"]


def _probe_table(probe: dict[str, Any]) -> Table:
    pct = round(100 * probe.get("level", 0.95))
    rows = [["teacher (demonstrations from the other folds)", *_interval(probe["teacher"])],
            ["student trained on the other folds' gold", *_interval(probe["sft"])],
            ["difference, teacher - student", *_interval(probe["difference"], sign=True)]]
    return ["", probe.get("metric_label", "F1"), f"{pct}% interval"], rows


def _probe_note(probe: dict[str, Any]) -> str:
    usage, est = probe.get("usage") or {}, probe.get("pool_estimate") or {}
    text = (f"{probe.get('folds')}-fold cross-validation over the {probe.get('examples')} labeled "
            "examples, before any pool input is labelled: the teacher labels each fold with "
            "demonstrations from the other folds only, and a student trained on the other folds "
            "predicts it; both are scored on the same held-out gold (paired bootstrap, "
            f"{probe.get('resamples')} resamples). Teacher: {usage.get('calls', 0)} calls, "
            f"{usage.get('cache_hits', 0)} cache hits, {usage.get('seconds', 0.0):.0f} s, cost "
            f"{usage.get('cost', 0.0):.4f}.")
    if "seconds" in est:
        text += (f" The pool ({est['inputs']} inputs) at this rate: ~{est['seconds'] / 60:.0f} min, "
                 f"cost ~{est.get('cost', 0.0):.4f}.")
    return f"{text} Verdict: {probe.get('recommendation', '')}."
