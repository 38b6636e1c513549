"""results.json -> report.md, a self-contained report.html and PNG plots.

The report is built only from results.json, so `mckd report RUN_DIR` can regenerate it at any
time. HTML content is escaped; plots are embedded as base64 PNG so the file stands alone.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path
from typing import Any

from mckd import report_evidence as evidence
from mckd.io import atomic_write
from mckd.report_sentences import CSS as SENTENCE_CSS
from mckd.report_sentences import sentences_section
from mckd.results_file import (
    METHOD_ORDER,
    environment_line,
    load_results,
    metric_columns,
    ordered_methods,
    primary_key,
    stage_count,
)

log = logging.getLogger(__name__)

Table = tuple[list[str], list[list[str]]]


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html and plots/*.png in `run_dir` from its results.json."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    plots = make_plots(results)
    plot_dir = run_dir / "plots"
    paths: dict[str, Path] = {}
    for name, png in plots.items():
        with atomic_write(plot_dir / f"{name}.png", "wb") as f:
            f.write(png)
        paths[name] = plot_dir / f"{name}.png"
    sections = build_sections(results)
    with atomic_write(run_dir / "report.md") as f:
        f.write(render_markdown(results, sections, list(plots)))
    with atomic_write(run_dir / "report.html") as f:
        f.write(render_html(results, sections, plots, sentences_section(run_dir, results)))
    paths["md"] = run_dir / "report.md"
    paths["html"] = run_dir / "report.html"
    return paths


# --- numbers to text ---------------------------------------------------------------------------


def fmt(value: Any, std: Any = None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:.{digits}f}"
        return f"{text} ± {std:.{digits}f}" if isinstance(std, (int, float)) else text
    return str(value)


def metric_cell(scores: dict[str, Any], std: dict[str, Any], col: str) -> str:
    """One table cell; `valid` is a count, shown out of the number of sentences."""
    if col == "valid" and isinstance(scores.get("sentences"), (int, float)):
        return f"{fmt(scores.get('valid'), std.get('valid'), digits=0)} / {scores['sentences']:.0f}"
    return fmt(scores.get(col), std.get(col))


def _metric_cols(rows: list[dict[str, Any]], columns: dict[str, str]) -> list[str]:
    present = {k for r in rows for k in r}
    return [k for k in columns if k in present]


# --- sections: each a title, a sentence, and a table -----------------------------------------------


def build_sections(results: dict[str, Any]) -> list[tuple[str, str, Table]]:
    from mckd.report_stage0 import stage0_sections

    sections = [
        ("Methods on the test set", _methods_note(results), method_table(results)),
        evidence.comparison_section(results, _primary_label(results)),
        *stage0_sections(results),
        ("Pseudolabel quality by stage", "Pseudolabels of the unlabeled pool scored against its "
         "gold outputs: stage 0 is the teacher (or the source stage0 chose, beside the "
         "candidates it chose from), stage i the cross-partition relabels of stage i.",
         pseudolabel_table(results)),
        ("Gold outside the run's label set", _coverage_note(results), coverage_table(results)),
        ("Teacher", "Usage of the LLM teacher over the pool and the test inputs; cached calls "
         "cost nothing, and prompt tokens the server served from its prompt cache cost the "
         "cached-input price where teacher.price_cached_input_per_1m is set. Each input's "
         "answer was valid (usable as written), repaired (usable only after the task's "
         "repair: tags added, dropped or replaced, a tree's words or brackets fixed) or "
         "rejected. A method's valid outputs, where the task scores them, are the outputs its "
         "metric could read, repaired ones included.", teacher_table(results)),
        ("Teacher rejections by reason", "Outputs that could not be used (after repair).",
         rejection_table(results)),
        ("Students", "Training of every student: examples, epochs, wall time, and per set it "
         "labelled the outputs that are fallbacks (the student could not run on the input) or "
         "constrained decodes cut short by the length limit.", student_table(results)),
    ]
    return [s for s in sections if s[2][1]]


def _methods_note(results: dict[str, Any]) -> str:
    seeds = results.get("seeds") or []
    note = "Trivial baselines in italics. " if results.get("baselines") else ""
    if len(seeds) > 1:
        note += f"Mean ± standard deviation over {len(seeds)} seeds ({', '.join(map(str, seeds))}). "
    names = results.get("metric_names") or {}
    columns = metric_columns(results)
    shown = method_table(results)[0]
    note += evidence.methods_note(results, _primary_label(results))
    note += " ".join(f"{columns[k]}: {v}." for k, v in names.items() if columns.get(k) in shown)
    test = (results.get("label_coverage") or {}).get("test")
    if isinstance(test, dict) and test.get("outside_label_set"):
        note += (f" {fmt(test.get('outside_share'))}% of the test gold chunks have types outside "
                 f"the run's label set: no method can exceed F1 {fmt(test.get('f1_ceiling'))} "
                 "(the F1 ceiling below).")
    return note


def _primary_label(results: dict[str, Any]) -> str:
    return metric_columns(results).get(primary_key(results), "F1")


def method_table(results: dict[str, Any]) -> Table:
    methods = results.get("methods", {})
    baselines = results.get("baselines", {})
    columns = metric_columns(results)
    cols = _metric_cols([m.get("test", {}) for m in [*methods.values(), *baselines.values()]], columns)
    extra = evidence.method_columns(results, primary_key(results), _primary_label(results))
    rows = []
    for name, entry, kind in [
        *((n, methods[n], "method") for n in ordered_methods(methods)),
        *((n, baselines[n], "baseline") for n in sorted(baselines)),
    ]:
        test, std = entry.get("test", {}), entry.get("test_std", {})
        label = _with_seed_count(evidence.method_label(name, results), entry, results)
        label = label if kind == "method" else f"_{label}_"
        rows.append([label, *(metric_cell(test, std, c) for c in cols), *(cell(name, entry) for _, cell in extra)])
    return ["method", *(columns[c] for c in cols), *(header for header, _ in extra)], rows


def _with_seed_count(name: str, entry: dict[str, Any], results: dict[str, Any]) -> str:
    """The name, and how many seeds its mean covers when that is fewer than the run's."""
    count, seeds = entry.get("seed_count"), len(results.get("seeds") or [])
    return f"{name} ({count} of {seeds} seeds)" if isinstance(count, int) and count < seeds else name


def pseudolabel_table(results: dict[str, Any]) -> Table:
    labels = results.get("pseudolabels", {})
    columns = metric_columns(results)
    cols = _metric_cols([v.get("gold", {}) for v in labels.values()], columns)
    key = primary_key(results)
    with_ci = any(evidence.interval(v, "gold_ci", key) for v in labels.values())
    rows = []
    # at stage 0, the candidates stage0 chose from come before its choice
    for name in sorted(labels, key=lambda n: (labels[n].get("stage", 99), not labels[n].get("candidate"), n)):
        entry = labels[name]
        gold, std = entry.get("gold", {}), entry.get("gold_std", {})
        ci = [evidence.interval_cell(evidence.interval(entry, "gold_ci", key))] if with_ci else []
        shown = f"{name} (candidate)" if entry.get("candidate") else name
        rows.append([fmt(entry.get("stage")), shown, fmt(entry.get("labeled")),
                     *(metric_cell(gold, std, c) for c in cols), *ci])
    ci_header = [f"{evidence.level_label(results)} interval"] if with_ci else []
    return ["stage", "labels", "labeled inputs", *(columns[c] for c in cols), *ci_header], rows


def _coverage_note(results: dict[str, Any]) -> str:
    coverage = results.get("label_coverage") or {}
    types = next((c["label_types"] for c in coverage.values() if "label_types" in c), None)
    size = f" ({types} types)" if isinstance(types, int) else ""
    return (f"The label set{size} is what the labeled examples show plus task.labels: gold of "
            "any other type can be given by no teacher answer and no student trained on its "
            "labels. Recall ceiling: the share of gold chunks of label-set types, the most any "
            "method here can recall. F1 ceiling: the F1 of that recall at precision 100, an "
            "upper bound on every method's F1 (give the full schema as task.labels to lift it).")


def coverage_table(results: dict[str, Any]) -> Table:
    """Per set (test, pool): gold chunks, those of types outside the label set, their share,
    the recall and F1 ceilings, and the commonest missing types."""
    rows = []
    for part, c in sorted((results.get("label_coverage") or {}).items(), key=lambda kv: kv[0] != "test"):
        if not isinstance(c, dict):
            continue
        missing = c.get("types_outside") or {}
        shown = ", ".join(f"{t} {n}" for t, n in list(missing.items())[:5])
        more = f", {len(missing) - 5} more" if len(missing) > 5 else ""
        rows.append([part, fmt(c.get("gold_chunks")), fmt(c.get("outside_label_set")),
                     fmt(c.get("outside_share")), fmt(c.get("recall_ceiling")),
                     fmt(c.get("f1_ceiling")), (shown + more) or "–"])
    return ["gold of", "gold chunks", "outside the label set", "outside (%)", "recall ceiling",
            "F1 ceiling", "types outside (chunks)"], rows


def teacher_table(results: dict[str, Any]) -> Table:
    teacher = results.get("teacher") or {}
    rows = []
    for part, usage in sorted(teacher.items()):
        if not isinstance(usage, dict):
            continue
        rows.append([
            part, fmt(usage.get("inputs")), fmt(usage.get("valid")), fmt(usage.get("repaired")),
            fmt(usage.get("rejected")), fmt(usage.get("calls")),
            fmt(usage.get("cache_hits")), fmt(usage.get("prompt_tokens")),
            fmt(usage.get("cached_prompt_tokens", 0)), fmt(usage.get("completion_tokens")), fmt(usage.get("seconds")),
            fmt(usage.get("wall_seconds")), fmt(usage.get("cost"), digits=4),
        ])
    header = ["inputs of", "inputs", "valid", "repaired", "rejected", "LLM calls", "cache hits", "prompt tokens",
              "of them from the server's prompt cache", "completion tokens", "LLM seconds",
              "wall seconds", "cost"]
    return header, rows


def rejection_table(results: dict[str, Any]) -> Table:
    teacher = results.get("teacher") or {}
    rows = []
    for part, usage in sorted(teacher.items()):
        if isinstance(usage, dict):
            rows += [[part, reason, str(n)] for reason, n in sorted(usage.get("rejections", {}).items())]
    return ["inputs of", "reason", "count"], rows


def student_table(results: dict[str, Any]) -> Table:
    students = results.get("students", {})
    rows = [
        [name, fmt(s.get("train_size")), fmt(s.get("epochs")), fmt(s.get("seconds")),
         fmt(s.get("fidelity")), _flags_cell(s.get("predictions"))]
        for name, s in sorted(students.items(), key=lambda kv: _student_order(kv[0]))
    ]
    return ["student", "training examples", "epochs", "train seconds", "final fidelity",
            "fallback / incomplete outputs"], rows


def _flags_cell(predictions: dict[str, Any] | None) -> str:
    """Fallback outputs and cut-short constrained decodes of a student, per set it labelled:
    `test 2 / 0, pool 0 / 1`."""
    if not predictions:
        return "–"
    return ", ".join(f"{name} {c.get('fallback', 0)} / {c.get('incomplete', 0)}"
                     for name, c in predictions.items())


def _student_order(name: str) -> tuple[Any, ...]:
    """Training order: sft, vanilla_kd, kd_self_distill, then stage by stage, per seed."""
    seed, _, step = name.rpartition("/")
    if step in METHOD_ORDER:
        return (seed, METHOD_ORDER.index(step), 0, 0)
    if step.startswith("stage"):
        stage, _, part = step.removeprefix("stage").partition("_part")
        return (seed, 10 + int(stage), 0, int(part or 0))
    if step.startswith("mckd_"):
        return (seed, 10 + stage_count(step) - 1, 1, 0)
    return (seed, 99, 0, 0)


# --- plots -----------------------------------------------------------------------------------------


def make_plots(results: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes by name: methods side by side, F1 by stage, and the paired comparisons (when
    results.json has them). Empty when there is no data."""
    plots = {}
    methods_png = _plot_methods(results)
    if methods_png:
        plots["methods"] = methods_png
    stages_png = _plot_stages(results)
    if stages_png:
        plots["f1_by_stage"] = stages_png
    comparisons = evidence.plot_comparisons(results, _figure, _primary_label(results))
    if comparisons is not None:
        plots["comparisons"] = _png(comparisons)
    return plots


def _figure(width: float, height: float) -> tuple[Any, Any]:
    # matplotlib is imported for plotting only (about a second). A bare Figure renders with
    # Agg and needs neither pyplot nor a display.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="tight")
    return fig, fig.add_subplot()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _plot_methods(results: dict[str, Any]) -> bytes | None:
    methods = results.get("methods", {})
    key, label = primary_key(results), metric_columns(results).get(primary_key(results), "F1")
    names = [n for n in ordered_methods(methods) if key in methods[n].get("test", {})]
    if not names:
        return None
    values = [methods[n]["test"][key] for n in names]
    # The bootstrap interval where results.json has one (of the seed mean with several
    # seeds), else the standard deviation over seeds.
    errs: Any = evidence.error_bars(values, [evidence.interval(methods[n], "test_ci", key) for n in names])
    if errs is None:
        std = [methods[n].get("test_std", {}).get(key, 0.0) for n in names]
        errs = [std, std] if any(std) else None
    subset = evidence.teacher_subset_size(results)
    ticks = [f"teacher\n(on {subset})" if n == "teacher" and subset else n for n in names]
    colors = ["#8172b2" if n == "teacher" and subset else "#4c72b0" for n in names]
    fig, ax = _figure(max(5, 1.1 * len(names) + 2), 3.6)
    ax.bar(ticks, values, yerr=errs, color=colors, capsize=3)
    for name, style in zip(sorted(results.get("baselines", {})), ("--", ":", "-."), strict=False):
        f1 = results["baselines"][name].get("test", {}).get(key)
        if f1 is not None:
            ax.axhline(f1, linestyle=style, color="#c44e52", label=f"{name} ({f1:.1f})")
    above = errs[1] if errs is not None else [0.0] * len(values)
    for i, v in enumerate(values):  # the value above its error bar
        ax.text(i, v + above[i] + 0.5, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max(100.0, max(values) + 8))
    ax.set_ylabel(f"test {label}")
    ax.set_title("Methods side by side" + (f" ({evidence.level_label(results)} bootstrap intervals)"
                                             if results.get("evidence") else ""))
    ax.tick_params(axis="x", labelrotation=20)
    if results.get("baselines"):
        ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def _plot_stages(results: dict[str, Any]) -> bytes | None:
    labels = results.get("pseudolabels", {})
    key, label = primary_key(results), metric_columns(results).get(primary_key(results), "F1")
    staged = sorted((v["stage"], v["gold"][key], evidence.interval(v, "gold_ci", key))
                    for v in labels.values() if key in v.get("gold", {}) and isinstance(v.get("stage"), int)
                    and not v.get("candidate"))
    methods = results.get("methods", {})
    finals = sorted((stage_count(n), m["test"][key], evidence.interval(m, "test_ci", key))
                    for n, m in methods.items() if n.startswith("mckd_") and key in m.get("test", {}))
    if not staged and not finals:
        return None
    fig, ax = _figure(6.5, 3.8)
    for points, marker, text in ((staged, "o", "pool pseudolabels vs gold"),
                                 # The final student of an N-stage run trains on stage N-1's
                                 # labels: plot it at N.
                                 (finals, "s", "final student, test")):
        if points:
            x, y, cis = zip(*points, strict=True)
            x = [i + (0.06 if marker == "s" else 0.0) for i in x]  # apart from the pool's bars
            ax.errorbar(x, y, yerr=evidence.error_bars(list(y), list(cis)), marker=marker,
                        capsize=3, label=text)
    if "vanilla_kd" in methods and key in methods["vanilla_kd"].get("test", {}):
        vanilla = methods["vanilla_kd"]["test"][key]
        ax.errorbar([1.06], [vanilla], linestyle="none", marker="^", color="#55a868", capsize=3,
                    yerr=evidence.error_bars([vanilla], [evidence.interval(methods["vanilla_kd"], "test_ci", key)]),
                    label="vanilla KD, test", zorder=3)
    ax.set_xlabel("stage (pool: 0 = teacher labels; test: N = final student of N-stage MCKD)")
    ax.set_ylabel(label)
    ax.set_title(f"{label} by stage" + (f" ({evidence.level_label(results)} intervals)"
                                         if any(c for *_, c in [*staged, *finals]) else ""))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    return _png(fig)


# --- rendering -------------------------------------------------------------------------------------


def _summary(results: dict[str, Any]) -> list[tuple[str, str]]:
    keys = ("name", "task", "teacher_model", "student", "labeled", "unlabeled", "test",
            "partitions", "stages", "seeds", "created")
    rows = [(k, fmt(results[k]) if not isinstance(results[k], list)
             else ", ".join(map(str, results[k]))) for k in keys if k in results]
    if isinstance(results.get("environment"), dict):
        rows.append(("environment", environment_line(results["environment"])))
    return rows


def render_markdown(results: dict[str, Any], sections: list[tuple[str, str, Table]],
                    plot_names: list[str]) -> str:
    out = [f"# mckd report: {results.get('name', 'run')}", ""]
    out += [f"- **{k}**: {v}" for k, v in _summary(results)]
    for title, note, (header, rows) in sections:
        out += ["", f"## {title}", "", note, "", "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    if plot_names:
        out += ["", "## Plots", ""] + [f"![{n}](plots/{n}.png)" for n in plot_names]
    return "\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;
color:#222}table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;
padding:.3rem .6rem;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{
text-align:left}td.baseline{font-style:italic;color:#666}img{max-width:100%;margin:.5rem 1rem
.5rem 0}p.note{color:#555}"""


def render_html(results: dict[str, Any], sections: list[tuple[str, str, Table]],
                plots: dict[str, bytes], sentences: str = "") -> str:
    """The page; `sentences` is the per-sentence view of the test set (report_sentences.py)."""
    e = html.escape
    title = f"mckd report: {results.get('name', 'run')}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(title)}</title><style>{_CSS}{SENTENCE_CSS}</style></head><body>",
           f"<h1>{e(title)}</h1>",
           "<ul>", *(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in _summary(results)), "</ul>"]
    for title_, note, (header, rows) in sections:
        out += [f"<h2>{e(title_)}</h2>", f'<p class="note">{e(note)}</p>', "<table>",
                "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"]
        for row in rows:
            first = row[0]
            cls = ' class="baseline"' if first.startswith("_") and first.endswith("_") else ""
            cells = [first.strip("_"), *row[1:]]
            out.append(f"<tr><td{cls}>" + "</td><td>".join(e(c) for c in cells) + "</td></tr>")
        out.append("</table>")
    if plots:
        out.append("<h2>Plots</h2>")
        for name, png in plots.items():
            data = base64.b64encode(png).decode("ascii")
            out.append(f'<img alt="{e(name)}" src="data:image/png;base64,{data}">')
    if sentences:
        out.append(sentences)
    out.append("</body></html>")
    return "\n".join(out) + "\n"
