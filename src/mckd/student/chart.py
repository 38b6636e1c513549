"""A span-chart student for constituency parsing: a pretrained encoder scores every span, CKY
picks the best tree, so every output is a valid tree over exactly the input words.

Each word is represented by its first subword; [CLS] and [SEP] stand for the sentence
boundaries. Span `[i, j)` is scored by an MLP over its endpoints,
`w · relu(LN(A·h_i + C·h_{i-1} + B·h_{j-1} + E·h_j))`, trained with binary cross-entropy
against the spans of the target tree (gold or pseudolabel, any valid tree). Unlike a seq2seq
student it cannot emit a malformed tree or change the words, which is what lets it learn from
a few hundred trees offline (docs/STUDENTS.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mckd.errors import InputError, MckdError
from mckd.examples import Example
from mckd.student.base import Prediction, TrainReport
from mckd.student.cky import Span, candidate_spans, decode_spans
from mckd.student.config import MINILM, ChartConfig
from mckd.student.encoder import (
    Encoded,
    collate_words,
    encode_words,
    length_batches,
    load_encoder,
    load_weights,
    open_student,
    pick_device,
    resolve_encoder,
    save_student,
    split_words,
)

log = logging.getLogger(__name__)


class SpanScorer(nn.Module):
    """Encoder plus the endpoint span MLP; returns one log-odds per requested span."""

    def __init__(self, encoder: nn.Module, hidden: int) -> None:
        super().__init__()
        d = encoder.config.hidden_size
        self.encoder = encoder
        self.first = nn.Linear(d, hidden)  # A: the span's first word
        self.before = nn.Linear(d, hidden, bias=False)  # C: the word before it (or [CLS])
        self.last = nn.Linear(d, hidden, bias=False)  # B: the span's last word
        self.after = nn.Linear(d, hidden, bias=False)  # E: the word after it (or [SEP])
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        pos = batch["word_pos"]  # (B, N+2): [CLS], first subword of each word, [SEP], padding
        hw = torch.gather(h, 1, pos.unsqueeze(-1).expand(-1, -1, h.size(-1)))
        left = self.first(hw[:, 1:]) + self.before(hw[:, :-1])  # left[i]: span starts at word i
        right = self.last(hw[:, :-1]) + self.after(hw[:, 1:])  # right[j]: span ends before word j
        x = left[batch["span_b"], batch["span_i"]] + right[batch["span_b"], batch["span_j"]]
        return self.out(torch.relu(self.norm(x))).squeeze(-1)


class ChartStudent:
    """The span-chart student (Student protocol: fit, predict, save; `load` to reopen one)."""

    def __init__(self, cfg: ChartConfig | None = None, task: Any = None) -> None:
        cfg = cfg or ChartConfig()
        encoder, tokenizer = load_encoder(cfg.encoder)
        self._setup(cfg, task, encoder, tokenizer)

    def _setup(self, cfg: ChartConfig, task: Any, encoder: nn.Module, tokenizer: Any) -> None:
        self.cfg, self.task, self.tokenizer = cfg, task, tokenizer
        self.device = pick_device(cfg.device)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)  # the span MLP's initial weights
        self.model = SpanScorer(encoder, cfg.span_hidden).to(self.device)

    # ---- saving -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write config, encoder config, tokenizer and weights (safetensors) to a directory,
        replacing it atomically."""
        config = self.cfg.model_dump_json(indent=2) + "\n"
        save_student(path, self.model, self.tokenizer, {"chart_config.json": config})

    @classmethod
    def load(cls, path: Path, task: Any = None, *, device: str | None = None) -> ChartStudent:
        """Reopen a student written by `save` (no network, no pretrained download)."""
        cfg, encoder, tokenizer = open_student(
            path, "chart_config.json", ChartConfig, "chart", device
        )
        self = cls.__new__(cls)
        self._setup(cfg, task, encoder, tokenizer)
        load_weights(self.model, path, self.device)
        return self

    # ---- encoding -----------------------------------------------------------------------
    def _encode(self, words: list[str]) -> Encoded | None:
        """Subword ids with [CLS]/[SEP] and each word's first-subword position (encoder.py);
        None when the sentence cannot fit the encoder even at one subword per word."""
        return encode_words(self.tokenizer, words, self.cfg.max_subwords)

    def _collate(self, encoded: list[Encoded]) -> dict[str, torch.Tensor]:
        batch = collate_words(encoded, self.tokenizer.pad_token_id)
        sb, si, sj = [], [], []
        for b, (_, pos) in enumerate(encoded):
            starts, ends = candidate_spans(len(pos) - 2)
            sb.append(np.full(len(starts), b))
            si.append(starts)
            sj.append(ends)
        for key, parts in (("span_b", sb), ("span_i", si), ("span_j", sj)):
            batch[key] = torch.from_numpy(np.concatenate(parts).astype(np.int64))
        return {k: v.to(self.device) for k, v in batch.items()}

    # ---- prediction ---------------------------------------------------------------------
    def predict(self, sources: list[str]) -> list[Prediction]:
        """One tree per source (space-separated words), in the task's unlabeled form."""
        words = [split_words(s, k) for k, s in enumerate(sources)]
        spans, confidence = self._predict_spans(words)
        out = []
        for w, sp, conf in zip(words, spans, confidence, strict=True):
            if sp is None:  # more words than encoder positions: no model output at all
                right = [(i, len(w)) for i in range(len(w) - 1)]
                meta = {"fallback": "too long for the encoder: right-branching"}
                # -inf, not None: the self-distillation filter ranks it last instead of failing
                out.append(Prediction(render_tree(w, right), float("-inf"), meta))
            else:
                out.append(Prediction(render_tree(w, sp), conf))
        return out

    @torch.inference_mode()
    def _predict_spans(
        self, words: list[list[str]]
    ) -> tuple[list[list[Span] | None], list[float | None]]:
        was_training = self.model.training
        self.model.eval()
        spans: list[list[Span] | None] = [None] * len(words)
        confidence: list[float | None] = [None] * len(words)
        encoded = [self._encode(w) for w in words]
        for chunk in length_batches(encoded, self.cfg.predict_batch_size):
            logits = self.model(self._collate([encoded[k] for k in chunk])).float().cpu().numpy()
            offset = 0
            for k in chunk:
                n = len(words[k])
                starts, ends = candidate_spans(n)
                scores = np.zeros((n + 1, n + 1))
                scores[starts, ends] = logits[offset : offset + len(starts)]
                offset += len(starts)
                spans[k] = decode_spans(scores, n, self.cfg.span_threshold)
                confidence[k] = self._confidence(scores, spans[k], n)
        self.model.train(was_training)
        return spans, confidence

    def _confidence(self, scores: np.ndarray, spans: list[Span], n: int) -> float:
        """Mean log-probability of the output under the span model (self-distillation ranks by it)."""
        if n < 2:
            return 0.0
        chosen = np.array([scores[i, j] for i, j in spans])
        logp = -np.logaddexp(0.0, -chosen)  # log sigmoid
        if self.cfg.confidence == "chosen":
            return float(logp.mean())
        starts, ends = candidate_spans(n)
        total = -np.logaddexp(0.0, scores[starts, ends]).sum()  # every span rejected
        total += (logp + np.logaddexp(0.0, chosen)).sum()  # swap in the chosen ones
        return float(total / len(starts))

    # ---- training -----------------------------------------------------------------------
    def fit(self, train: list[Example], out_dir: Path) -> TrainReport:
        from mckd.student.chart_train import train_chart

        return train_chart(self, train, Path(out_dir))


def render_tree(words: list[str], spans: list[Span]) -> str:
    """The unlabeled bracketing `( ( ( The ) ( cat ) ) ( sat ) )` of `words` with `spans`."""
    from mckd.tasks.constituency import trees

    return trees.to_unlabeled(trees.tree_from_spans(words, spans))


def target_spans(ex: Example) -> set[Span]:
    """Spans (length >= 2) of an example's target tree; its words must be the source's."""
    from mckd.tasks.constituency import trees

    if ex.target is None:
        raise InputError(
            None, None, f"example {ex.id!r} has no target: a student trains on labeled examples"
        )
    try:
        tree = trees.parse_tree(ex.target)
    except MckdError as e:
        raise InputError(None, None, f"example {ex.id!r}: bad target tree: {e}") from None
    words = ex.source.split()
    if trees.tree_words(tree) != words:
        raise InputError(
            None, None, f"example {ex.id!r}: the target tree's words differ from the source"
        )
    return {s for s in trees.unlabeled_spans(tree) if s[1] - s[0] >= 2}


__all__ = [
    "MINILM",
    "ChartConfig",
    "ChartStudent",
    "render_tree",
    "resolve_encoder",
    "target_spans",
]
