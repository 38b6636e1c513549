"""`mckd export RUN --out DIR`: a run's student as a self-contained model directory.

    DIR/
      model.safetensors, config.json, tokenizer files   the student's weights and encoder, as saved
      tagger_config.json | chart_config.json | student_config.json (+ tags.json, ...)
      mckd_model.json    task, label set, student kind, method, run, runtime, export checks
      README.md          the model card (ship/card.py)
      model.onnx, model.int8.onnx   with --format onnx [--quantize int8] (chart and tagger)

The student is the one `pick_method` names: `--method` or the best primary test score of the
run's trained students. The directory is written beside DIR and swapped in whole.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mckd.errors import ConfigError, InputError
from mckd.examples import Example, read_examples
from mckd.results_file import load_results, metric_columns, primary_key
from mckd.ship.card import CardFacts, model_card, read_config
from mckd.ship.model import FORMAT, MANIFEST
from mckd.ship.runfiles import GOLD_TEST, MODEL, pick_method, seed_folder
from mckd.student import load_trained_student, saved_student_kind
from mckd.tasks import get_task

log = logging.getLogger(__name__)

FORMATS = ("torch", "onnx")


@dataclass
class ExportSummary:
    out: Path
    method: str
    reason: str
    kind: str
    runtime: str
    checks: list[str] = field(default_factory=list)


def export_run(run_dir: str | Path, out: str | Path, *, method: str | None = None,
               fmt: str = "torch", quantize: str | None = None,
               seed: int | None = None) -> ExportSummary:
    """Export one student of a finished run to `out` (see the module docstring)."""
    # torch (seconds to import): only an export that copies a student's directory needs it
    from mckd.student.encoder import fresh_dir, replace_dir

    run_dir, out = Path(run_dir), Path(out)
    _check_options(fmt, quantize)
    results = load_results(run_dir)
    folder, seed_used = seed_folder(run_dir, results, seed)
    chosen, reason = pick_method(folder, results, method)
    log.info("exporting %s: %s", chosen, reason)
    src = folder / chosen / MODEL
    kind = saved_student_kind(src)
    if fmt == "onnx":
        from mckd.ship.onnxrt import ONNX_KINDS, require_onnx  # torch: only for ONNX

        require_onnx()
        if kind not in ONNX_KINDS:
            raise ConfigError(f"--format onnx: a {kind} student cannot be exported to ONNX (chart "
                              "and tagger students can; docs/SHIPPING.md says why)")
    _check_out(out)
    task = get_task(results["task"])
    test = read_examples(folder / GOLD_TEST)
    tmp = fresh_dir(out)
    shutil.copytree(src, tmp, dirs_exist_ok=True)
    _clear_machine_settings(tmp)
    runtime, checks, check_lines = "torch", {}, []
    if fmt == "onnx":
        checks, check_lines = _export_onnx(tmp, kind, task, test, results, quantize)
        runtime = "onnx-int8" if quantize else "onnx"
    facts = CardFacts(chosen, reason, kind, read_config(_student_config(tmp)),
                      read_config(tmp / "config.json"), seed_used, _example(folder, chosen, test),
                      check_lines)
    manifest = {"format": FORMAT, "task": results["task"], "labels": _labels(folder, task),
                "kind": kind, "method": chosen, "reason": reason, "run": results.get("name"),
                "seed": seed_used, "teacher_model": results.get("teacher_model"),
                "test": results["methods"][chosen].get("test", {}), "runtime": runtime,
                "checks": checks}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(model_card(results, facts, str(out)), encoding="utf-8")
    replace_dir(tmp, out)
    log.info("exported %s (%s student, runtime %s) to %s", chosen, kind, runtime, out)
    return ExportSummary(out, chosen, reason, kind, runtime, check_lines)


def _check_options(fmt: str, quantize: str | None) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: must be one of {', '.join(FORMATS)}")
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize {quantize!r}: only int8 is offered")
    if quantize and fmt != "onnx":
        raise ConfigError("--quantize int8 quantizes the ONNX graph: add --format onnx")


def _check_out(out: Path) -> None:
    """`out` is new, empty, or an earlier export (replaced); anything else is left alone."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).exists())):
        raise ConfigError(f"--out {out}: exists and is not an mckd export; give a new or empty "
                          "directory")


def _student_config(folder: Path) -> Path:
    for name in ("tagger_config.json", "chart_config.json", "student_config.json"):
        if (folder / name).exists():
            return folder / name
    raise InputError(folder, None, "no student config in the exported student")


def _clear_machine_settings(folder: Path) -> None:
    """An encoder student's config names the torch threads of the machine that trained it,
    which loading would impose on the user's process: the export leaves them unset."""
    path = _student_config(folder)
    cfg = json.loads(path.read_text(encoding="utf-8"))
    if cfg.get("threads") is not None:
        cfg["threads"] = None
        path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def _labels(folder: Path, task: Any) -> Any:
    """The task's label set for the run: from its gold pairs and the config's `task.labels`."""
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    section = config.get("task")
    extra = (section.get("labels") or []) if isinstance(section, dict) else []
    labeled = read_examples(folder / "data" / "labeled.jsonl")
    return _jsonable(task.label_set(labeled, extra))


def _jsonable(value: Any) -> Any:
    """Label sets are opaque to the pipeline (lists, named tuples, sets): as JSON."""
    if hasattr(value, "_asdict"):
        return {k: _jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _example(folder: Path, method: str, test: list[Example]) -> tuple[str, str] | None:
    """The first test input and this student's output for it (its test.jsonl)."""
    path = folder / method / "test.jsonl"
    if not test or not path.exists():
        return None
    preds = read_examples(path)
    return (preds[0].source, preds[0].target or "") if preds else None


def _export_onnx(folder: Path, kind: str, task: Any, test: list[Example], results: dict[str, Any],
                 quantize: str | None) -> tuple[dict[str, Any], list[str]]:
    """Write model.onnx (and model.int8.onnx) and score each runtime on the run's test set
    beside the torch student: how many outputs are identical, and the primary metric."""
    from mckd.ship.onnxrt import FILES, export_onnx, quantize_int8, use_onnx  # torch, onnx: on use

    key = primary_key(results)
    label = metric_columns(results).get(key, key)
    student = load_trained_student(folder, task, device="cpu")
    sources = [ex.source for ex in test]
    reference = [p.text for p in student.predict(sources)]
    torch_score = task.score(test, reference).get(key)
    torch_model = student.model
    export_onnx(student, folder / FILES["onnx"])
    runtimes = ["onnx"]
    if quantize:
        quantize_int8(folder / FILES["onnx"], folder / FILES["onnx-int8"])
        runtimes.append("onnx-int8")
    checks: dict[str, Any] = {"sentences": len(test), "metric": key,
                              "torch": {"test": torch_score}}
    lines = [f"torch (model.safetensors): test {label} {_num(torch_score)}"]
    for runtime in runtimes:
        student.model = torch_model
        use_onnx(student, kind, folder / FILES[runtime], threads=None)
        outputs = [p.text for p in student.predict(sources)]
        same = sum(a == b for a, b in zip(outputs, reference, strict=True))
        score = task.score(test, outputs).get(key)
        checks[runtime] = {"file": FILES[runtime], "identical_to_torch": same, "test": score}
        lines.append(f"{runtime} ({FILES[runtime]}): test {label} {_num(score)}; {same} of "
                     f"{len(test)} outputs identical to torch's")
        if runtime == "onnx" and same != len(test):
            log.warning("%s: %d of %d test outputs differ from the torch student's", FILES[runtime],
                        len(test) - same, len(test))
    return checks, lines


def _num(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "–"
