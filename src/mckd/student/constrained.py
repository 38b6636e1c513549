"""Decoding under a constraint: a logits processor that lets a generating student write only
what a task's `DecodingConstraint` (mckd.tasks.base) allows, for encoder-decoder and
decoder-only models, greedy or beam search. The constraints themselves belong to the tasks
(parsing: trees over the input words; slots: one valid BIO tag per word)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor


class ConstrainedLogitsProcessor(LogitsProcessor):
    """Masks every token that would leave a constraint's language (a tree, or any task's
    `DecodingConstraint`); EOS only once the output is complete.

    Works for encoder-decoder and decoder-only models, greedy or beam search: a beam's state is
    looked up from its parent prefix (beams are reordered between steps) and advanced by one token.
    """

    def __init__(self, constraints: list[Any], eos_id: int, *, num_beams: int = 1) -> None:
        self.constraints = constraints
        self.eos_id = eos_id
        self.num_beams = num_beams
        self.start: int | None = None
        self.states: dict[tuple[int, tuple[int, ...]], Any] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.start is None:
            self.start = input_ids.shape[1]
        states = self._greedy_states(input_ids) if self.num_beams == 1 else self._beam_states(input_ids)
        rows = [self.constraints[r // self.num_beams] for r in range(len(states))]
        return scores + constraint_mask(scores, rows, states, self.eos_id)

    def _greedy_states(self, input_ids: torch.LongTensor) -> list[Any]:
        """Greedy rows never reorder: advance each row's state by its last token, O(1) a step."""
        if input_ids.shape[1] == self.start:
            self.rows: list[Any] = [self.constraints[r // self.num_beams].start()
                                    for r in range(input_ids.shape[0])]
            return self.rows
        last = input_ids[:, -1].tolist()
        self.rows = [None if s is None or tok == self.eos_id else self.constraints[r].step(s, tok)
                     for r, (s, tok) in enumerate(zip(self.rows, last, strict=True))]
        return self.rows

    def _beam_states(self, input_ids: torch.LongTensor) -> list[Any]:
        """Beams are reordered between steps: find each row's parent by its prefix."""
        new_states: dict[tuple[int, tuple[int, ...]], Any] = {}
        out = []
        for r, prefix in enumerate(input_ids[:, self.start:].tolist()):
            b = r // self.num_beams
            key = (b, tuple(prefix))
            if key not in new_states:
                new_states[key] = self._state(b, prefix)
            out.append(new_states[key])
        self.states = new_states
        return out

    def _state(self, b: int, prefix: list[int]) -> Any:
        if not prefix:
            return self.constraints[b].start()
        parent = self.states.get((b, tuple(prefix[:-1])))
        if parent is None:  # parent unknown (first call after a resume) or dead: replay
            parent = self._replay(b, prefix[:-1])
        if parent is None or prefix[-1] == self.eos_id:
            return None
        return self.constraints[b].step(parent, prefix[-1])

    def _replay(self, b: int, prefix: list[int]) -> Any:
        s: Any = self.constraints[b].start()
        for tok in prefix:
            if s is None or tok == self.eos_id:
                return None
            s = self.constraints[b].step(s, tok)
        return s


def constraint_mask(scores: torch.Tensor, constraints: list[Any], states: list[Any],
                    eos: int) -> torch.Tensor:
    """0 where a row's next token keeps its output completable, -inf elsewhere (EOS once complete)."""
    mask = torch.full_like(scores, float("-inf"))
    row_idx: list[int] = []
    tok_idx: list[int] = []
    for r, (c, s) in enumerate(zip(constraints, states, strict=True)):
        allowed = c.next_tokens(s) if s is not None else set()
        if not allowed:  # complete tree, finished beam or (never expected) a dead end
            allowed = {eos}
        row_idx.extend([r] * len(allowed))
        tok_idx.extend(allowed)
    mask[row_idx, tok_idx] = 0.0
    return mask


# The names these had when trees were the only constrained output.
TreeLogitsProcessor = ConstrainedLogitsProcessor
tree_mask = constraint_mask
