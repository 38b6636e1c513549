"""The report's view of a run's uncertainty (results.json `evidence`, `test_ci`,
`teacher_subset`, `gold_ci`; distill/compare.py writes them): interval columns, the table of
paired comparisons, and error bars for the plots. Results without them render as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mckd.evidence import signed

Table = tuple[list[str], list[list[str]]]
Column = tuple[str, Callable[[str, dict[str, Any]], str]]

WHERE = {"test": "test set", "teacher_subset": "the teacher's sentences", "pool": "pool labels"}


def level_label(results: dict[str, Any]) -> str:
    level = (results.get("evidence") or {}).get("level", 0.95)
    return f"{100 * level:g}%"


def interval(entry: dict[str, Any], field: str, key: str) -> tuple[float, float] | None:
    """The (low, high) interval of `entry[field][key]` (field: test_ci, gold_ci, ...)."""
    ci = (entry.get(field) or {}).get(key)
    return (float(ci[0]), float(ci[1])) if isinstance(ci, list) and len(ci) == 2 else None


def interval_cell(ci: tuple[float, float] | None) -> str:
    return "–" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def teacher_subset_size(results: dict[str, Any]) -> int | None:
    """How many test sentences the teacher is scored on, when fewer than the test set."""
    n, total = results.get("teacher_test"), results.get("test")
    return n if isinstance(n, int) and isinstance(total, int) and n < total else None


def method_columns(results: dict[str, Any], key: str, label: str) -> list[Column]:
    """Extra columns of the method table: the primary metric's interval and, when the teacher
    labels only part of the test set, every method's score on those sentences."""
    entries = [*results.get("methods", {}).values(), *results.get("baselines", {}).values()]
    out: list[Column] = []
    if any(interval(e, "test_ci", key) for e in entries):
        out.append((f"{level_label(results)} interval of {label}",
                    lambda _, e: interval_cell(interval(e, "test_ci", key))))
    subset = teacher_subset_size(results)
    if subset is not None and any(key in (e.get("teacher_subset") or {}) for e in entries):
        def on_subset(_: str, e: dict[str, Any]) -> str:
            value = (e.get("teacher_subset") or {}).get(key)
            if value is None:
                return "–"
            return f"{value:.1f} {interval_cell(interval(e, 'teacher_subset_ci', key))}"
        out.append((f"{label} on the teacher's {subset}", on_subset))
    return out


def method_label(name: str, results: dict[str, Any]) -> str:
    """The teacher's row says that it is scored on fewer sentences than the others."""
    subset = teacher_subset_size(results)
    return f"{name} (on {subset} of {results['test']})" if name == "teacher" and subset else name


def methods_note(results: dict[str, Any], label: str) -> str:
    evidence = results.get("evidence")
    if not evidence:
        return ""
    note = (f"Intervals: {level_label(results)} bootstrap intervals of {label} over the test "
            f"sentences ({evidence['resamples']} resamples")
    note += f"; of the mean over {evidence['seeds']} seeds). " if evidence.get("seeds", 1) > 1 else "). "
    subset = teacher_subset_size(results)
    if subset:
        note += (f"The teacher labels {subset} of the {results['test']} test sentences; every "
                 f"other row is scored on all of them, and on the teacher's {subset} in the last "
                 "column. ")
    return note


def comparison_section(results: dict[str, Any], label: str) -> tuple[str, str, Table]:
    """Paired differences of the primary metric with their intervals and verdicts."""
    evidence = results.get("evidence") or {}
    rows = []
    for c in [*evidence.get("comparisons", []), *evidence.get("pool_comparisons", [])]:
        rows.append([c["label"], f"{WHERE.get(c['on'], c['on'])} ({c['sentences']})",
                     signed(c["difference"]), f"[{signed(c['ci'][0])}, {signed(c['ci'][1])}]",
                     c["verdict"]])
    seeds = evidence.get("seeds", 1)
    note = (f"Paired bootstrap: A \u2212 B in {label} on the same resamples of the same sentences "
            f"({evidence.get('resamples')} resamples"
            + (f"; each side averaged over {seeds} seeds" if seeds > 1 else "")
            + "). 'better' or 'worse' only when the whole interval is above or below 0; "
            "otherwise this test set does not show a difference. Pool rows compare the pool's "
            "labels after each stage against its gold.")
    header = ["comparison", "on (sentences)", "difference", f"{level_label(results)} interval", "verdict"]
    return "Comparisons", note, (header, rows)


def error_bars(values: list[float], cis: list[tuple[float, float] | None]) -> list[list[float]] | None:
    """Asymmetric error bars (below, above) from intervals; None when no value has one."""
    if not any(cis):
        return None
    below = [v - ci[0] if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    above = [ci[1] - v if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    return [[max(0.0, x) for x in below], [max(0.0, x) for x in above]]


def plot_comparisons(results: dict[str, Any], figure: Callable[[float, float], tuple[Any, Any]],
                     label: str) -> Any | None:
    """Each paired difference as a point with its interval, beside a line at 0 (a forest plot);
    None when results.json has no comparisons. `figure` makes the (figure, axes)."""
    evidence = results.get("evidence") or {}
    rows = [*evidence.get("comparisons", []), *evidence.get("pool_comparisons", [])]
    if not rows:
        return None
    fig, ax = figure(7.5, 0.9 + 0.32 * len(rows))
    y = list(range(len(rows)))[::-1]  # the first comparison on top
    colors = {"better": "#55a868", "worse": "#c44e52"}
    for yi, c in zip(y, rows, strict=True):
        d, (low, high) = c["difference"], c["ci"]
        ax.errorbar([d], [yi], xerr=[[max(0.0, d - low)], [max(0.0, high - d)]], marker="o",
                    capsize=3, color=colors.get(c["verdict"], "#4c72b0"))
    ax.axvline(0.0, color="#444", linewidth=0.8)
    ax.set_yticks(y, [f"{c['label']} ({WHERE.get(c['on'], c['on'])})" for c in rows], fontsize=8)
    ax.set_xlabel(f"difference in {label}, {level_label(results)} paired bootstrap interval")
    ax.set_title("Comparisons (green: better, red: worse, blue: no difference shown)", fontsize=9)
    return fig
