"""The model card (README.md) of an exported student, written from the run's results.json:
what the model does, how it was made, the test scores of every method and baseline of the run
beside the teacher's, the data sizes, the environment, the licence, and how to load it.

Every score in the card is results.json's value printed with two decimals; the card adds no
number of its own except the runtime checks `mckd export` measured (said so where shown).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mckd.report_evidence import teacher_subset_size
from mckd.results_file import environment_line, metric_columns, ordered_methods
from mckd.student.config import _MINILM_ALIASES, MINILM

# Base models whose licence we know; anything else points to the base model's own card.
KNOWN_LICENCES = {MINILM: "Apache-2.0"}
# seq2seq presets with no pretrained weights (mckd.student.model): nothing to inherit.
SCRATCH_PRESETS = ("t5-tiny", "t5-small", "t5-base")


@dataclass
class CardFacts:
    """What the card says beyond results.json: which student ships and what `mckd export` saw."""

    method: str
    reason: str
    kind: str
    student_config: dict[str, Any]
    encoder_config: dict[str, Any]
    seed: int | None = None
    example: tuple[str, str] | None = None  # a test input and this student's output for it
    runtime_checks: list[str] = field(default_factory=list)


def base_model(student_config: dict[str, Any], encoder_config: dict[str, Any]) -> tuple[str | None, str]:
    """The pretrained model a student started from (None: trained from scratch) and its
    licence as far as we can tell."""
    name = student_config.get("encoder") or student_config.get("model")
    if name in SCRATCH_PRESETS:
        return None, "no base model: the weights were trained from scratch by this run"
    if name in _MINILM_ALIASES:
        return MINILM, KNOWN_LICENCES[MINILM]
    if name is None:
        return None, "not recorded"
    named = encoder_config.get("license")
    if named:
        return str(name), f"{named} (as its config names it)"
    arch = encoder_config.get("model_type") or "?"
    return str(name), f"not named in its config (model type {arch}): see the base model's card"


COUNTS = ("valid", "sentences")  # counts, not scores: whole numbers unless averaged over seeds


def score_cell(test: dict[str, Any], std: dict[str, Any], key: str) -> str:
    """A score as the card prints it: two decimals, ± the standard deviation over seeds; a count
    of one run as a whole number."""
    value = test.get(key)
    if not isinstance(value, (int, float)):
        return "–"
    spread = std.get(key)
    if isinstance(spread, (int, float)):
        return f"{value:.2f} ± {spread:.2f}"
    return f"{value:.0f}" if key in COUNTS and float(value).is_integer() else f"{value:.2f}"


def score_table(results: dict[str, Any], shipped: str) -> list[str]:
    """Markdown rows: every method (the teacher among them) and baseline on every metric."""
    columns = metric_columns(results)
    methods, baselines = results.get("methods") or {}, results.get("baselines") or {}
    rows = [(n, methods[n], "") for n in ordered_methods(methods)]
    rows += [(n, baselines[n], " (baseline)") for n in sorted(baselines)]
    present = {k for _, entry, _ in rows for k in entry.get("test", {})}
    keys = [k for k in columns if k in present]
    out = ["| method | " + " | ".join(columns[k] for k in keys) + " |",
           "|---|" + "---|" * len(keys)]
    for name, entry, note in rows:
        label = f"**{name}** (this model)" if name == shipped else f"{name}{note}"
        cells = [score_cell(entry.get("test", {}), entry.get("test_std", {}), k) for k in keys]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def yaml_header(results: dict[str, Any], base: str | None, licence: str) -> list[str]:
    """The Hugging Face hub's card metadata."""
    lines = ["---", "library_name: mckd", f"tags: [mckd, knowledge-distillation, {results.get('task')}]"]
    if licence in KNOWN_LICENCES.values():
        lines.append(f"license: {licence.lower()}")
    if base is not None and not Path(base).is_absolute():
        lines.append(f"base_model: {base}")
    return [*lines, "---"]


def model_card(results: dict[str, Any], facts: CardFacts, load_path: str) -> str:
    """The README.md of an exported student."""
    base, licence = base_model(facts.student_config, facts.encoder_config)
    name, task = results.get("name", "run"), results.get("task", "?")
    seeds = results.get("seeds") or []
    out = [*yaml_header(results, base, licence), "",
           f"# {name}: {task} student ({facts.method})", "",
           f"A `{facts.kind}` student for the `{task}` task, distilled with "
           f"[mckd](https://pypi.org/project/mckd/) from the teacher `{results.get('teacher_model')}`"
           f" by the method `{facts.method}` ({facts.reason}).", ""]
    out += ["## Use", "", "```python", "import mckd", f"model = mckd.load({load_path!r})",
            f"print(model.predict([{_example_input(facts)!r}]))", "```", "",
            "Inputs are the words of a sentence separated by spaces, tokenised as the training data "
            "was. Each output has `output` (the task's target form, as in the run's `test.jsonl`) "
            "and `confidence` (the geometric mean of the student's per-word, per-span or per-token "
            "probability of that output, 0 to 1). `mckd serve DIR` answers the same over HTTP."]
    if facts.example is not None:
        out += ["", f"Example from the test set: `{facts.example[0]}` → `{facts.example[1]}`"]
    out += ["", "## Test scores", ""]
    if len(seeds) > 1:
        out += [f"Mean ± standard deviation over {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
                f"this model is seed {facts.seed}'s student.", ""]
    out += [*score_table(results, facts.method), ""]
    subset = teacher_subset_size(results)
    if subset is not None:
        out += [f"The teacher labelled {subset} of the {results.get('test')} test sentences: its row "
                "is scored on those (results.json has every method's score on the same sentences, "
                "`teacher_subset`).", ""]
    notes = results.get("metric_names") or {}
    out += [f"- {metric_columns(results).get(k, k)}: {v}" for k, v in notes.items()]
    out += ["", "## Data", "", "| gold (labeled) | pool (unlabeled) | test |", "|---|---|---|",
            f"| {results.get('labeled', '–')} | {results.get('unlabeled', '–')} | {results.get('test', '–')} |",
            "", f"Teacher: `{results.get('teacher_model')}`. Student: `{results.get('student')}`. "
            f"Run `{name}`, made {results.get('created', '?')}."]
    if isinstance(results.get("environment"), dict):
        out += ["", "## Environment", "", "The scores above were computed with: "
                + environment_line(results["environment"]) + "."]
    if facts.runtime_checks:
        out += ["", "## Runtimes", "", "Measured by `mckd export` on the run's test set "
                "(not part of results.json):", "", *(f"- {line}" for line in facts.runtime_checks)]
    out += ["", "## Licence", "", f"Base model: {base or 'none'}. Licence: {licence}.",
            "The distilled weights inherit the base model's terms; the training data are the run's."]
    return "\n".join(out) + "\n"


def _example_input(facts: CardFacts) -> str:
    return facts.example[0] if facts.example is not None else "a sentence to label"


def read_config(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
