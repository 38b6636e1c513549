"""Reading a run's results.json: the methods in the order reports list them, the metric
columns (the task's, primary first), the primary metric and the environment the scores were
computed in. The report and the shipping of a student both read it through these."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mckd.errors import InputError

# Columns of a results.json written before it carried its task's metrics (parsing only).
METRIC_COLUMNS = {
    "f1": "F1 (paper metric)",
    "evalb_f1": "EVALB F1",
    "evalb_unlabeled_f1": "EVALB unlabeled F1",
    "valid": "valid outputs",
}
METHOD_ORDER = ("teacher", "sft", "vanilla_kd", "kd_self_distill")


def load_results(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "results.json"
    if not path.exists():
        raise InputError(path, None, "no results.json here: run `mckd run` first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(path, e.lineno, f"invalid JSON ({e.msg})") from None


def ordered_methods(methods: dict[str, Any]) -> list[str]:
    fixed = [m for m in METHOD_ORDER if m in methods]
    staged = sorted((m for m in methods if m.startswith("mckd_")), key=stage_count)
    rest = sorted(m for m in methods if m not in fixed and m not in staged)
    return fixed + staged + rest


def stage_count(name: str) -> int:
    digits = "".join(ch for ch in name if ch.isdigit())
    return int(digits) if digits else 0


def metric_columns(results: dict[str, Any]) -> dict[str, str]:
    """Metric key -> column header, the task's primary metric first (results.json `metrics`)."""
    metrics = results.get("metrics")
    if not metrics:
        return METRIC_COLUMNS
    ordered = sorted(metrics, key=lambda m: not m.get("primary"))
    return {m["key"]: m.get("label") or m["key"] for m in ordered}


def primary_key(results: dict[str, Any]) -> str:
    """The key of the metric methods are ranked and plotted by."""
    return next(iter(metric_columns(results)), "f1")


def environment_line(env: dict[str, Any]) -> str:
    """`Python 3.11.7, torch 2.13.0+cpu (2 threads), transformers 5.24.0, ...; CPU; GPU`."""
    parts = [f"Python {env['python']}"] if env.get("python") else []
    for name, version in (env.get("packages") or {}).items():
        threads = f" ({env['torch_threads']} threads)" if name == "torch" and env.get("torch_threads") else ""
        parts.append(f"{name} {version}{threads}")
    return "; ".join([", ".join(parts), *(env[k] for k in ("cpu", "gpu") if env.get(k))])
