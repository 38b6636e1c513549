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

import numpy as np
import torch
from torch import nn

from mckd.examples import Example
from mckd.student.base import TrainReport
from mckd.student.chart_train import target_spans, train_chart
from mckd.student.cky import Span, candidate_spans, decode_spans
from mckd.student.config import MINILM, ChartConfig
from mckd.student.encoder import Encoded, EncoderStudent, resolve_encoder
from mckd.tasks.constituency import trees

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


class ChartStudent(EncoderStudent):
    """The span-chart student (Student protocol: fit, predict, save; `load` to reopen one)."""

    kind = "chart"
    config_file = "chart_config.json"
    config_cls = ChartConfig

    def _build(self, encoder: nn.Module, saved: Path | None) -> None:
        torch.manual_seed(self.cfg.seed)  # the span MLP's initial weights
        self.model = SpanScorer(encoder, self.cfg.span_hidden).to(self.device)

    def _add_to_batch(self, batch: dict[str, torch.Tensor], encoded: list[Encoded]) -> None:
        sb, si, sj = [], [], []
        for b, (_, pos) in enumerate(encoded):
            starts, ends = candidate_spans(len(pos) - 2)
            sb.append(np.full(len(starts), b))
            si.append(starts)
            sj.append(ends)
        for key, parts in (("span_b", sb), ("span_i", si), ("span_j", sj)):
            batch[key] = torch.from_numpy(np.concatenate(parts).astype(np.int64))

    # ---- prediction ---------------------------------------------------------------------
    def _predict(self, words: list[list[str]]) -> tuple[list[str | None], list[float | None]]:
        """One tree per sentence, in the task's unlabeled form."""
        spans, confidence = self._predict_spans(words)
        return [None if sp is None else render_tree(w, sp) for w, sp in zip(words, spans, strict=True)], confidence

    def _fallback(self, words: list[str]) -> tuple[str, str]:
        return render_tree(words, [(i, len(words)) for i in range(len(words) - 1)]), "right-branching"

    def _predict_spans(
        self, words: list[list[str]]
    ) -> tuple[list[list[Span] | None], list[float | None]]:
        def decode(chunk: list[int], batch: dict[str, torch.Tensor]) -> list[tuple[list[Span], float]]:
            logits = self.model(batch).float().cpu().numpy()
            out, offset = [], 0
            for k in chunk:
                n = len(words[k])
                starts, ends = candidate_spans(n)
                scores = np.zeros((n + 1, n + 1))
                scores[starts, ends] = logits[offset : offset + len(starts)]
                offset += len(starts)
                spans = decode_spans(scores, n, self.cfg.span_threshold)
                out.append((spans, self._confidence(scores, spans, n)))
            return out

        found = self._in_batches(words, decode)
        return [None if f is None else f[0] for f in found], [None if f is None else f[1] for f in found]

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
        return train_chart(self, train, Path(out_dir))


def render_tree(words: list[str], spans: list[Span]) -> str:
    """The unlabeled bracketing `( ( ( The ) ( cat ) ) ( sat ) )` of `words` with `spans`."""
    return trees.to_unlabeled(trees.tree_from_spans(words, spans))


__all__ = [
    "MINILM",
    "ChartConfig",
    "ChartStudent",
    "render_tree",
    "resolve_encoder",
    "target_spans",
]
