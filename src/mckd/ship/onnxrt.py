"""ONNX for the students on a pretrained encoder (span chart, tagger): the encoder and its
scoring head go to an ONNX graph (`model.onnx`, optionally dynamically quantized to
`model.int8.onnx`); tokenisation, batching and decoding (Viterbi, CKY, the CRF) stay the
student's own Python/numpy code. At prediction time the student's torch model is swapped for
an ONNX Runtime session that takes the same batch and returns the same scores, so everything
after the scores is the code the torch student runs.

Generating students (seq2seq, causal) are not exported: their output comes from a decoding
loop (greedy or beam search, with the task's constraint as a logits processor) around a
decoder called once per token with its key/value cache, which an ONNX graph of the forward pass
does not include (docs/SHIPPING.md).

Needs the `onnx` extra: `pip install 'mckd[onnx]'` (onnx, onnxscript for torch's exporter,
onnxruntime).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mckd.errors import ConfigError, MckdError

log = logging.getLogger(__name__)

ONNX_KINDS = ("chart", "tagger")
FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
# Traced once with these: two sentences whose batch, subword, word and span counts all differ,
# so no two dynamic dimensions are mistaken for one.
TRACE_SENTENCES = [
    ["the", "unbelievably", "quick", "brown", "fox", "jumped", "over", "sixteen", "lazy", "dogs"],
    ["colourless", "green", "ideas"],
]
CHECK_SENTENCES = [
    ["a"],
    ["one", "more", "sentence", "with", "several", "words", "in", "it", ",", "to", "check"],
    ["she", "sells", "seashells", "by", "the", "seashore"],
]
TOLERANCE = 1e-3  # largest score difference between torch and ONNX Runtime fp32 accepted


def require_onnx() -> None:
    """A one-line error when the `onnx` extra is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise MckdError(f"ONNX needs the onnx extra: pip install 'mckd[onnx]' ({e})") from None


class _Recording(dict):
    """A batch that records which of its tensors the model reads."""

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        super().__init__(batch)
        self.used: list[str] = []

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.used:
            self.used.append(key)
        return super().__getitem__(key)


class _Positional(nn.Module):
    """The student's model with its batch tensors as positional inputs (the exporter's form)."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors, strict=True)))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep the exporter's and quantizer's chatter (per-node INFO lines on the root logger,
    warnings about optional packages) out of the user's log; errors still raise."""
    root = logging.getLogger()
    names = ("torch.onnx", "torch.export", "onnx_ir", "onnxscript")
    before = [root.level, *(logging.getLogger(n).level for n in names)]
    root.setLevel(logging.ERROR)
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(None):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(before[0])
        for name, level in zip(names, before[1:], strict=True):
            logging.getLogger(name).setLevel(level)


def model_inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> list[str]:
    """The names of the batch tensors the model's forward reads, in the order it reads them."""
    recording = _Recording(batch)
    with torch.inference_mode():
        model(recording)
    return recording.used


def export_onnx(student: Any, path: Path) -> None:
    """Write the student's encoder and head as an ONNX graph with dynamic batch and lengths,
    then check it against the torch model on sentences of other shapes."""
    require_onnx()
    model = student.model.eval()
    sample = student.batch(TRACE_SENTENCES)
    names = model_inputs(model, sample)
    # one entry for the *tensors parameter, holding one per tensor
    dims = tuple({d: torch.export.Dim.DYNAMIC for d in range(sample[n].dim())} for n in names)
    path.parent.mkdir(parents=True, exist_ok=True)
    with quiet():
        program = torch.onnx.export(_Positional(model, names).eval(),
                                    tuple(sample[n] for n in names), dynamo=True,
                                    input_names=names, output_names=["scores"],
                                    dynamic_shapes=(dims,), verbose=False)
    if program is None:
        raise MckdError("torch.onnx.export returned no program")
    program.save(str(path))
    check_onnx(student, path)


def check_onnx(student: Any, path: Path) -> float:
    """The largest score difference between the torch model and the ONNX graph on sentences of
    shapes the export did not see; raises when it is above `TOLERANCE`."""
    batch = student.batch(CHECK_SENTENCES)
    with torch.inference_mode():
        expected = student.model.eval()(batch).float().cpu().numpy()
    got = OnnxModel(path, threads=None)(batch).numpy()
    diff = float(np.abs(expected - got).max()) if expected.size else 0.0
    if expected.shape != got.shape or not diff <= TOLERANCE:
        raise MckdError(f"{path}: the ONNX graph does not reproduce the torch model "
                        f"(shapes {expected.shape} vs {got.shape}, largest difference {diff:.2e})")
    log.info("%s: ONNX matches torch within %.1e on %d check sentences", path.name, diff,
             len(CHECK_SENTENCES))
    return diff


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the graph's weights (ONNX Runtime's `quantize_dynamic`):
    activations stay float and are quantized on the fly, no calibration data needed."""
    require_onnx()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The exporter records intermediate shapes that ONNX's own shape inference, which the
    # quantizer runs, can contradict (the span gather of the chart student); the quantizer
    # infers them again from the graph alone.
    graph = onnx.load(str(src))
    del graph.graph.value_info[:]
    bare = dst.with_name(f".{dst.name}.bare")
    onnx.save(graph, str(bare))
    try:
        with quiet():  # it suggests shape pre-processing, which fails on dynamic shapes
            quantize_dynamic(str(bare), str(dst), weight_type=QuantType.QInt8)
    finally:
        bare.unlink(missing_ok=True)


class OnnxModel:
    """Stands in for a student's torch model: takes the same batch dict, returns the same
    scores (as a CPU tensor) from an ONNX Runtime session. `crf` keeps the tagger's CRF layer
    (a few hundred numbers, decoded by the student as before)."""

    training = False

    def __init__(self, path: Path, *, threads: int | None, crf: nn.Module | None = None) -> None:
        require_onnx()
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.crf = crf

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: batch[name].detach().cpu().numpy() for name in self.inputs}
        return torch.from_numpy(self.session.run(None, feeds)[0])

    def eval(self) -> OnnxModel:
        return self

    def train(self, mode: bool = True) -> OnnxModel:
        return self


def use_onnx(student: Any, kind: str, path: Path, threads: int | None) -> None:
    """Swap a loaded chart or tagger student's torch model for the ONNX graph at `path`."""
    if kind not in ONNX_KINDS:
        raise ConfigError(f"ONNX covers the {' and '.join(ONNX_KINDS)} students, not {kind}")
    student.model = OnnxModel(path, threads=threads, crf=getattr(student.model, "crf", None))
