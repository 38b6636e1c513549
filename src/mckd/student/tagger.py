"""A word-tagging student for slot filling (and any BIO task: NER, chunking): a pretrained
encoder, one vector per word, a linear layer over the tag set, and Viterbi decoding under the
BIO constraints, so every output is a valid tag sequence over exactly the input words.

A word's vector is its first subword's (or the mean of its subwords'); the layer is trained
with cross-entropy per word against the target tags (gold or pseudolabel). The tag set is
fixed when the student is first trained: every tag of its training targets, `O`, and the
B-/I- partner of each (tagger_train.py). Source: words joined by spaces; target: one tag per
word joined by spaces.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mckd.errors import MckdError
from mckd.examples import Example
from mckd.student.base import TrainReport
from mckd.student.bio import bio_constraints, viterbi
from mckd.student.config import TaggerConfig
from mckd.student.crf import BioCrf
from mckd.student.encoder import Encoded, EncoderStudent
from mckd.student.tagger_train import target_tags, train_tagger
from mckd.tasks.slots.tags import OUTSIDE

log = logging.getLogger(__name__)


class WordTagger(nn.Module):
    """Encoder plus a linear layer; returns (batch, words, tags) logits. The layer exists once
    the tag set is known (`TaggerStudent.set_tags`)."""

    def __init__(self, encoder: nn.Module, pooling: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.out: nn.Linear | None = None
        self.crf: BioCrf | None = None  # with `crf: true`

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        if self.pooling == "mean":
            # piece_word[b, l]: the word subword l belongs to, -1 for [CLS], [SEP], padding
            n = batch["word_mask"].size(1)
            words = torch.arange(n, device=h.device).view(1, n, 1)
            member = (batch["piece_word"].unsqueeze(1) == words).to(h.dtype)  # (B, N, L)
            hw = member @ h / member.sum(-1, keepdim=True).clamp(min=1)
        else:
            pos = batch["word_pos"][:, 1:-1]  # first subword of each word (padding: [CLS])
            hw = torch.gather(h, 1, pos.unsqueeze(-1).expand(-1, -1, h.size(-1)))
        if self.out is None:
            raise MckdError("the tagger has no tag set yet: train it first")
        return self.out(hw)


class TaggerStudent(EncoderStudent):
    """The BIO tagging student (Student protocol: fit, predict, save; `load` to reopen one)."""

    kind = "tagger"
    config_file = "tagger_config.json"
    config_cls = TaggerConfig

    def _build(self, encoder: nn.Module, saved: Path | None) -> None:
        tags = json.loads((saved / "tags.json").read_text()) if saved is not None else []
        self.tags: list[str] = []
        self.model = WordTagger(encoder, self.cfg.pooling).to(self.device)
        self.set_tags(tags)

    def set_tags(self, tags: list[str]) -> None:
        """Give the output layer one row per tag. Tags already known keep their rows (a
        student trained further, e.g. from sft, keeps what it learned); new rows start from
        weights seeded by `cfg.seed`."""
        if tags[: len(self.tags)] != self.tags:
            raise MckdError(f"tag set {tags} does not extend the student's {self.tags}")
        if tags == self.tags:
            return
        old = self.model.out
        torch.manual_seed(self.cfg.seed)
        new = nn.Linear(self.model.encoder.config.hidden_size, len(tags)).to(self.device)
        if old is not None:
            with torch.no_grad():
                new.weight[: len(self.tags)] = old.weight
                new.bias[: len(self.tags)] = old.bias
        self.model.out = new
        if self.cfg.crf:
            crf = BioCrf(list(tags)).to(self.device)
            if self.model.crf is not None:
                crf.extend_from(self.model.crf)
            self.model.crf = crf
        self.tags = list(tags)
        self._start_ok, self._trans_ok = bio_constraints(self.tags)

    def _files(self) -> dict[str, str]:
        return {"tags.json": json.dumps(self.tags, indent=0) + "\n"}

    def _add_to_batch(self, batch: dict[str, torch.Tensor], encoded: list[Encoded]) -> None:
        lengths = torch.tensor([len(pos) - 2 for _, pos in encoded])
        batch["word_mask"] = torch.arange(int(lengths.max()))[None] < lengths[:, None]
        if self.cfg.pooling == "mean":
            piece_word = torch.full(batch["input_ids"].shape, -1, dtype=torch.long)
            for b, (_, pos) in enumerate(encoded):
                for k in range(len(pos) - 2):
                    piece_word[b, pos[k + 1] : pos[k + 2]] = k
            batch["piece_word"] = piece_word

    # ---- prediction ---------------------------------------------------------------------
    def _predict(self, words: list[list[str]]) -> tuple[list[str | None], list[float | None]]:
        """One BIO tag per word, joined by spaces."""
        paths, confidence = self._predict_tags(words)
        return [None if p is None else " ".join(self.tags[t] for t in p) for p in paths], confidence

    def _fallback(self, words: list[str]) -> tuple[str, str]:
        return " ".join([OUTSIDE] * len(words)), "every word O"

    def _predict_tags(
        self, words: list[list[str]]
    ) -> tuple[list[list[int] | None], list[float | None]]:
        """Tag indices of the best valid path and its mean per-word log-probability."""
        if not self.tags:
            raise MckdError("the tagger has no tag set yet: train it before predicting")

        def decode(chunk: list[int], batch: dict[str, torch.Tensor]) -> list[tuple[list[int], float]]:
            logits = self.model(batch).float()
            lengths = [len(words[k]) for k in chunk]
            if self.model.crf is None:
                logp = torch.log_softmax(logits, dim=-1).cpu().numpy()
                found = viterbi(logp, lengths, self._start_ok, self._trans_ok)
                means = [float(np.mean(logp[row, np.arange(len(p)), p])) for row, p in
                         enumerate(found)]
            else:
                found, means = self._crf_decode(logits, batch["word_mask"], lengths)
            return list(zip(found, means, strict=True))

        results = self._in_batches(words, decode)
        return [None if r is None else r[0] for r in results], [None if r is None else r[1] for r in results]

    def _crf_decode(
        self, logits: torch.Tensor, mask: torch.Tensor, lengths: list[int]
    ) -> tuple[list[list[int]], list[float]]:
        """Best valid paths under the CRF, and each one's log-probability per word."""
        crf = self.model.crf
        assert crf is not None
        start, transitions = crf.numpy_scores()
        found = viterbi(logits.cpu().numpy(), lengths, self._start_ok, self._trans_ok,
                        transitions, start)
        chosen = torch.zeros(mask.shape, dtype=torch.long)
        for row, path in enumerate(found):
            chosen[row, : len(path)] = torch.tensor(path)
        chosen = chosen.to(logits.device)
        logp = crf.path_score(logits, chosen, mask) - crf.log_partition(logits, mask)
        return found, (logp.cpu() / torch.tensor(lengths)).tolist()

    # ---- training -----------------------------------------------------------------------
    def fit(self, train: list[Example], out_dir: Path) -> TrainReport:
        return train_tagger(self, train, Path(out_dir))


__all__ = ["TaggerConfig", "TaggerStudent", "WordTagger", "target_tags"]
