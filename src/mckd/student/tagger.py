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
from typing import Any

import numpy as np
import torch
from torch import nn

from mckd.errors import InputError, MckdError
from mckd.examples import Example
from mckd.student.base import Prediction, TrainReport
from mckd.student.bio import bio_constraints, viterbi
from mckd.student.config import TaggerConfig
from mckd.student.crf import BioCrf
from mckd.student.encoder import (
    Encoded,
    collate_words,
    encode_words,
    length_batches,
    load_encoder,
    load_weights,
    open_student,
    pick_device,
    save_student,
    split_words,
)
from mckd.tasks.slots import OUTSIDE, tag_problem

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


class TaggerStudent:
    """The BIO tagging student (Student protocol: fit, predict, save; `load` to reopen one)."""

    def __init__(self, cfg: TaggerConfig | None = None, task: Any = None) -> None:
        cfg = cfg or TaggerConfig()
        encoder, tokenizer = load_encoder(cfg.encoder)
        self._setup(cfg, task, encoder, tokenizer, [])

    def _setup(
        self, cfg: TaggerConfig, task: Any, encoder: nn.Module, tokenizer: Any, tags: list[str]
    ) -> None:
        self.cfg, self.task, self.tokenizer = cfg, task, tokenizer
        self.device = pick_device(cfg.device)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.tags: list[str] = []
        self.model = WordTagger(encoder, cfg.pooling).to(self.device)
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

    # ---- saving -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write config, tag set, encoder config, tokenizer and weights (safetensors) to a
        directory, replacing it atomically."""
        files = {
            "tagger_config.json": self.cfg.model_dump_json(indent=2) + "\n",
            "tags.json": json.dumps(self.tags, indent=0) + "\n",
        }
        save_student(path, self.model, self.tokenizer, files)

    @classmethod
    def load(cls, path: Path, task: Any = None, *, device: str | None = None) -> TaggerStudent:
        """Reopen a student written by `save` (no network, no pretrained download)."""
        cfg, encoder, tokenizer = open_student(
            path, "tagger_config.json", TaggerConfig, "tagger", device
        )
        tags = json.loads((Path(path) / "tags.json").read_text())
        self = cls.__new__(cls)
        self._setup(cfg, task, encoder, tokenizer, tags)
        load_weights(self.model, path, self.device)
        return self

    # ---- encoding -----------------------------------------------------------------------
    def _encode(self, words: list[str]) -> Encoded | None:
        return encode_words(self.tokenizer, words, self.cfg.max_subwords)

    def _collate(self, encoded: list[Encoded]) -> dict[str, torch.Tensor]:
        batch = collate_words(encoded, self.tokenizer.pad_token_id)
        lengths = torch.tensor([len(pos) - 2 for _, pos in encoded])
        batch["word_mask"] = torch.arange(int(lengths.max()))[None] < lengths[:, None]
        if self.cfg.pooling == "mean":
            piece_word = torch.full(batch["input_ids"].shape, -1, dtype=torch.long)
            for b, (_, pos) in enumerate(encoded):
                for k in range(len(pos) - 2):
                    piece_word[b, pos[k + 1] : pos[k + 2]] = k
            batch["piece_word"] = piece_word
        return {k: v.to(self.device) for k, v in batch.items()}

    def batch(self, sentences: list[list[str]]) -> dict[str, torch.Tensor]:
        """The model's input for sentences (lists of words) that fit the encoder, as `predict`
        builds it (the ONNX export traces the model on one)."""
        encoded = [self._encode(words) for words in sentences]
        if any(e is None for e in encoded):
            raise MckdError("a sentence is too long for the encoder")
        return self._collate(encoded)  # type: ignore[arg-type]

    # ---- prediction ---------------------------------------------------------------------
    def predict(self, sources: list[str]) -> list[Prediction]:
        """One BIO tag per word of each source (space-separated words), joined by spaces."""
        words = [split_words(s, k) for k, s in enumerate(sources)]
        paths, confidence = self._predict_tags(words)
        out = []
        for w, path, conf in zip(words, paths, confidence, strict=True):
            if path is None:  # more words than encoder positions: no model output at all
                meta = {"fallback": "too long for the encoder: every word O"}
                # -inf, not None: the self-distillation filter ranks it last instead of failing
                out.append(Prediction(" ".join([OUTSIDE] * len(w)), float("-inf"), meta))
            else:
                out.append(Prediction(" ".join(self.tags[t] for t in path), conf))
        return out

    @torch.inference_mode()
    def _predict_tags(
        self, words: list[list[str]]
    ) -> tuple[list[list[int] | None], list[float | None]]:
        """Tag indices of the best valid path and its mean per-word log-probability."""
        if not self.tags:
            raise MckdError("the tagger has no tag set yet: train it before predicting")
        was_training = self.model.training
        self.model.eval()
        paths: list[list[int] | None] = [None] * len(words)
        confidence: list[float | None] = [None] * len(words)
        encoded = [self._encode(w) for w in words]
        for chunk in length_batches(encoded, self.cfg.predict_batch_size):
            batch = self._collate([encoded[k] for k in chunk])
            logits = self.model(batch).float()
            lengths = [len(words[k]) for k in chunk]
            if self.model.crf is None:
                logp = torch.log_softmax(logits, dim=-1).cpu().numpy()
                found = viterbi(logp, lengths, self._start_ok, self._trans_ok)
                means = [float(np.mean(logp[row, np.arange(len(p)), p])) for row, p in
                         enumerate(found)]
            else:
                found, means = self._crf_decode(logits, batch["word_mask"], lengths)
            for k, path, mean in zip(chunk, found, means, strict=True):
                paths[k], confidence[k] = path, mean
        self.model.train(was_training)
        return paths, confidence

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
        from mckd.student.tagger_train import train_tagger

        return train_tagger(self, train, Path(out_dir))


def target_tags(ex: Example) -> list[str]:
    """An example's target tags, one per source word; a bad target is an error naming it."""
    if ex.target is None:
        raise InputError(
            None, None, f"example {ex.id!r} has no target: a student trains on labeled examples"
        )
    tags, n_words = ex.target.split(), len(ex.source.split())
    if len(tags) != n_words:
        raise InputError(
            None, None, f"example {ex.id!r}: {len(tags)} tags for {n_words} words"
        )
    for tag in tags:
        problem = tag_problem(tag)
        if problem is not None:
            raise InputError(None, None, f"example {ex.id!r}: {problem}")
    return tags


__all__ = ["TaggerConfig", "TaggerStudent", "WordTagger", "target_tags"]
