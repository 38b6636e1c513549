"""`mckd.load`: an exported student (`mckd export`) as a model that predicts.

    model = mckd.load("my-model")               # a directory, or a Hugging Face hub repo id
    model.predict(["book a flight to boston"])  # [Output(output="O O O O B-toloc", confidence=...)]

The directory holds the student as the run saved it (weights as safetensors, tokenizer,
configs), `mckd_model.json` (task, labels, kind, method, runtimes) and the model card. With
ONNX files present the encoder runs in ONNX Runtime (`runtime="torch"` forces torch).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mckd.errors import ConfigError, InputError, MckdError
from mckd.student import load_trained_student
from mckd.tasks import get_task

log = logging.getLogger(__name__)

MANIFEST = "mckd_model.json"
FORMAT = 1
RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass
class Output:
    """One prediction: the output in the task's target form and the student's confidence in it
    (the geometric mean of its per-word, per-span or per-token probability, 0 to 1; 0 where it
    fell back to a fixed output). `meta` holds the student's flags (`fallback`, `complete`)."""

    output: str
    confidence: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output, "confidence": self.confidence}


def confidence(mean_logprob: float | None) -> float:
    """exp(mean log-probability), in [0, 1]; 0 when the student gave none or -inf."""
    if mean_logprob is None or not math.isfinite(mean_logprob):
        return 0.0
    return min(1.0, math.exp(mean_logprob))


class ShippedModel:
    """A loaded export: `predict` turns input sentences into `Output`s."""

    def __init__(self, path: Path, manifest: dict[str, Any], student: Any, runtime: str,
                 task: Any) -> None:
        self.path, self.manifest, self.student, self.runtime = path, manifest, student, runtime
        self.task = task

    @property
    def name(self) -> str:
        return f"{self.manifest.get('run', '?')}/{self.manifest.get('method', '?')}"

    def predict(self, inputs: list[str]) -> list[Output]:
        """One output per input (words separated by spaces); an input that is not a string or
        has no words is an InputError naming its index."""
        if isinstance(inputs, str):
            raise InputError(None, None, "predict takes a list of strings, not one string")
        for k, text in enumerate(inputs):
            if not isinstance(text, str):
                raise InputError(None, None, f"input {k} is {type(text).__name__}, not a string")
            if not text.split():
                raise InputError(None, None, f"input {k} is empty: it has no words")
        if not inputs:
            return []
        preds = self.student.predict(list(inputs))
        return [Output(p.text, confidence(p.mean_logprob), dict(p.meta)) for p in preds]


def read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if not file.exists():
        raise InputError(path, None, f"not an mckd model directory (no {MANIFEST}): "
                                     "make one with `mckd export RUN --out DIR`")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(file, e.lineno, f"invalid JSON ({e.msg})") from None
    if manifest.get("format") != FORMAT:
        raise InputError(file, None, f"format {manifest.get('format')!r} is not {FORMAT}: "
                                     "export it again with this mckd version")
    return manifest


def resolve(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local directory, or a hub repo id downloaded with huggingface_hub (cached by it)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    name = str(name_or_path)
    if not _REPO_ID.fullmatch(name):
        raise InputError(path, None, "no such model directory")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MckdError(f"{name}: not a local directory, and loading from the Hugging Face hub "
                        "needs huggingface_hub (pip install huggingface_hub)") from None
    try:
        return Path(snapshot_download(repo_id=name, revision=revision))
    except Exception as e:  # the hub client's errors have no common base we can name
        raise MckdError(f"{name}: cannot download from the Hugging Face hub: {e}") from e


def pick_runtime(manifest: dict[str, Any], path: Path, runtime: str) -> str:
    """`auto`: the runtime the export chose (the ONNX file when there is one) if it can run
    here, else torch; an explicit runtime must exist."""
    from mckd.ship.onnxrt import FILES  # onnxrt imports torch (seconds): loaded on use

    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime {runtime!r}: must be one of {', '.join(RUNTIMES)}")
    if runtime == "auto":
        runtime = manifest.get("runtime", "torch")
        if runtime != "torch":
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                log.info("onnxruntime is not installed: running %s with torch", path)
                return "torch"
    if runtime != "torch" and not (path / FILES[runtime]).exists():
        raise InputError(path, None, f"no {FILES[runtime]}: export with --format onnx"
                                     f"{' --quantize int8' if runtime == 'onnx-int8' else ''}")
    return runtime


def load(name_or_path: str | Path, *, runtime: str = "auto", device: str | None = None,
         threads: int | None = None, revision: str | None = None) -> ShippedModel:
    """Open an exported student. `runtime`: auto (ONNX when the export has it), torch, onnx,
    onnx-int8. `device`: the torch device (default: the student's own, `auto`); ONNX runs on
    the CPU. `threads`: CPU threads for ONNX Runtime or torch (default: theirs). `revision`:
    a hub revision."""
    path = resolve(name_or_path, revision)
    manifest = read_manifest(path)
    chosen = pick_runtime(manifest, path, runtime)
    task = get_task(manifest["task"])
    if chosen != "torch":
        device = "cpu"  # the graph runs on the CPU; batches are built there
    elif threads is not None:
        import torch  # seconds to import: only to set its threads

        torch.set_num_threads(threads)
    student = load_trained_student(path, task, device=device)
    if chosen != "torch":
        from mckd.ship.onnxrt import FILES, use_onnx  # torch and ONNX Runtime: on use

        use_onnx(student, manifest["kind"], path / FILES[chosen], threads)
    log.info("loaded %s (%s student, %s task) with %s", path, manifest["kind"], manifest["task"], chosen)
    return ShippedModel(path, manifest, student, chosen, task)
