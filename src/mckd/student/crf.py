"""A linear-chain CRF over BIO tags for the tagging student (`crf: true`): learned start and
transition scores on top of the per-word scores, trained by the sequence's negative
log-likelihood. Transitions the BIO constraints forbid get no score and no probability mass,
so the CRF's distribution covers valid sequences only, exactly what Viterbi decodes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mckd.student.bio import bio_constraints

BLOCKED = -1e4  # a forbidden transition: far below any real score, yet finite for autograd


class BioCrf(nn.Module):
    def __init__(self, tags: list[str]) -> None:
        super().__init__()
        start_ok, trans_ok = bio_constraints(tags)
        self.start = nn.Parameter(torch.zeros(len(tags)))
        self.transitions = nn.Parameter(torch.zeros(len(tags), len(tags)))
        # Derived from the tag list, so not saved with the weights.
        self.register_buffer("start_ok", torch.from_numpy(start_ok), persistent=False)
        self.register_buffer("trans_ok", torch.from_numpy(trans_ok), persistent=False)

    def extend_from(self, old: BioCrf) -> None:
        """Keep the scores `old` learned for the tags it knew (they come first)."""
        n = old.start.numel()
        with torch.no_grad():
            self.start[:n] = old.start
            self.transitions[:n, :n] = old.transitions

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.start.masked_fill(~self.start_ok, BLOCKED)
        return start, self.transitions.masked_fill(~self.trans_ok, BLOCKED)

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per sentence: (batch, words, tags) scores, (batch, words) word mask."""
        start, trans = self._scores()
        alpha = start + emissions[:, 0]
        for i in range(1, emissions.size(1)):
            step = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, i]
            alpha = torch.where(mask[:, i : i + 1], step, alpha)
        return torch.logsumexp(alpha, dim=1)

    def path_score(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Unnormalised score of each sentence's tag path (padding positions may hold any tag)."""
        start, trans = self._scores()
        tags = tags.masked_fill(~mask, 0)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        score = start[tags[:, 0]] + (emitted * mask).sum(1)
        steps = trans[tags[:, :-1], tags[:, 1:]] * mask[:, 1:]
        return score + steps.sum(1)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood summed over the batch's sentences."""
        return (self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)).sum()

    def numpy_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and transition scores for the decoder (forbidden ones are masked there)."""
        return self.start.detach().cpu().numpy(), self.transitions.detach().cpu().numpy()
