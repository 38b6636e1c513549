"""Batched generation: greedy or beam search over length-sorted batches, with per-sequence
mean token log-probability, an optional decoding constraint (the task's: with none, nothing is
constrained), and the input's words restored where outputs copy them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm
from transformers import LogitsProcessor, LogitsProcessorList, SuppressTokensLogitsProcessor
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from mckd.student.base import Prediction
from mckd.student.config import GenerateConfig
from mckd.student.constrained import ConstrainedLogitsProcessor, constraint_mask
from mckd.student.model import StudentModel

log = logging.getLogger(__name__)
BRACKETS = ("(", ")")


class LogprobRecorder(LogitsProcessor):
    """Keeps the model's own log-probability of each token greedy search picks.

    It sees the raw scores first (before any constraint), and at the next step reads which
    token was picked. Greedy rows never reorder, so row r is always sequence r.
    """

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None
        self.picked: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.last is not None:
            self.picked.append(self.last.gather(1, input_ids[:, -1:]).squeeze(1))
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """(rows, steps) log-probabilities, given the tokens picked at the final step."""
        if self.last is not None:
            self.picked.append(self.last.gather(1, last_tokens[:, None]).squeeze(1))
        return torch.stack(self.picked, dim=1) if self.picked else torch.zeros((len(last_tokens), 0))


def encode_prompts(sm: StudentModel, sources: list[str], max_len: int, separator: str) -> list[list[int]]:
    """Source token ids as training saw them (decoder-only: the source and the separator)."""
    texts = [s + separator for s in sources] if sm.kind == "causal" else sources
    enc = sm.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_len)
    return [list(ids) for ids in enc["input_ids"]]


def restore_words(text: str, words: list[str], *, force: bool) -> str:
    """Put the input's words back in place of the emitted ones (placeholders, lower-cased
    WordPiece, unknown tokens): always when `force`, else only when the counts agree."""
    tokens = text.split()
    slots = [k for k, t in enumerate(tokens) if t not in BRACKETS]
    if not force and len(slots) != len(words):
        return text
    for k, w in zip(slots, words, strict=False):
        tokens[k] = w
    return " ".join(tokens)


def _pad(seqs: list[list[int]], pad: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        sl = slice(width - len(s), width) if left else slice(0, len(s))
        ids[r, sl] = torch.tensor(s)
        mask[r, sl] = 1
    return ids, mask


def _cut(tokens: list[int], eos: int) -> list[int]:
    """Generated tokens up to and including the first EOS (what follows is padding)."""
    for k, t in enumerate(tokens):
        if t == eos:
            return tokens[:k + 1]
    return tokens


@torch.inference_mode()
def rescore(sm: StudentModel, ids: torch.Tensor, mask: torch.Tensor, outs: list[list[int]]) -> list[float]:
    """Mean token log-probability of given outputs under the model (teacher forcing)."""
    out_ids, _ = _pad([o or [sm.eos_id] for o in outs], sm.pad_id, left=False)
    lengths = torch.tensor([max(1, len(o)) for o in outs])
    valid = torch.arange(out_ids.shape[1])[None, :] < lengths[:, None]
    labels = out_ids.masked_fill(~valid, -100).to(ids.device)
    if sm.kind == "causal":
        full = torch.cat([ids, out_ids.to(ids.device)], 1)
        full_mask = torch.cat([mask, valid.long().to(ids.device)], 1)
        logits = sm.model(input_ids=full, attention_mask=full_mask).logits[:, ids.shape[1] - 1:-1]
    else:
        dec_in = sm.model.prepare_decoder_input_ids_from_labels(labels=labels)
        logits = sm.model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_in).logits
    lp = torch.log_softmax(logits.float(), -1).gather(2, labels.clamp(min=0)[..., None]).squeeze(2)
    lp = lp.masked_fill(labels == -100, 0.0)
    return (lp.sum(1) / lengths.to(lp.device)).tolist()


@torch.inference_mode()
def generate(sm: StudentModel, sources: list[str], cfg: GenerateConfig, *, max_source_len: int = 1024,
             default_max_new_tokens: int = 256, placeholder: str | None = None,
             separator: str = " =>", progress: bool = False,
             constraint: Callable[[str], Any] | None = None,
             copies_words: bool = True) -> list[Prediction]:
    """Predictions for `sources`, in their order; batches are sorted by length to cut padding.

    With `cfg.constrained`, `constraint(source)` (a task's decoding constraint) restricts each
    output; with no constraint, or one that returns None for every input of a batch, outputs
    are not constrained. `copies_words` False leaves outputs as decoded (no input words
    restored: the targets do not contain them)."""
    make = constraint if cfg.constrained else None  # None (not yet resolved by a task) counts as off
    if cfg.constrained and constraint is None:
        log.debug("constrained decoding asked for, but no constraint given: decoding unconstrained")
    model = sm.model
    model.eval()
    device = next(model.parameters()).device
    prompts = encode_prompts(sm, sources, max_source_len, separator)
    order = sorted(range(len(sources)), key=lambda k: -len(prompts[k]))
    results: list[Prediction | None] = [None] * len(sources)
    batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    for batch in tqdm(batches, disable=not progress, unit="batch", leave=False):
        batch_sources = [sources[k] for k in batch]
        constraints = _constraints(make, batch_sources)
        for k, pred in zip(batch, _generate_batch(sm, batch_sources, [prompts[k] for k in batch], cfg,
                                                  default_max_new_tokens, placeholder, device, constraints,
                                                  copies_words),
                           strict=True):
            results[k] = pred
    return [r for r in results if r is not None]


def _constraints(make: Callable[[str], Any] | None, sources: list[str]) -> list[Any] | None:
    """Each source's constraint, or None when there is none for any of them."""
    if make is None:
        return None
    constraints = [make(s) for s in sources]
    if all(c is None for c in constraints):
        return None
    if any(c is None for c in constraints):
        missing = next(s for s, c in zip(sources, constraints, strict=True) if c is None)
        raise ValueError(f"the decoding constraint has no constraint for {missing!r} but has for "
                         "other inputs: it must give one for every input or for none")
    return constraints


def _generate_batch(sm: StudentModel, sources: list[str], prompts: list[list[int]], cfg: GenerateConfig,
                    default_max_new: int, placeholder: str | None, device: torch.device,
                    constraints: list[Any] | None, copies_words: bool) -> list[Prediction]:
    causal = sm.kind == "causal"
    ids, mask = _pad(prompts, sm.pad_id, left=causal)  # decoder-only models continue on the right
    ids, mask = ids.to(device), mask.to(device)
    words = [s.split() for s in sources]
    max_new = cfg.max_new_tokens or default_max_new
    if constraints is not None:
        max_new = max(c.max_tokens() for c in constraints)  # never cut an output short
    if not causal and cfg.num_beams == 1:
        outs, scores = greedy_seq2seq(sm, ids, mask, max_new, constraints)
        return _predictions(sm, outs, scores, constraints, words, placeholder, copies_words)
    processors = LogitsProcessorList()
    recorder = LogprobRecorder() if cfg.num_beams == 1 else None
    if recorder is not None:
        processors.append(recorder)
    if sm.pad_id != sm.eos_id:  # a generated pad could not be told from the fill after EOS
        processors.append(SuppressTokensLogitsProcessor([sm.pad_id], device=device))
    if constraints is not None:
        processors.append(ConstrainedLogitsProcessor(constraints, sm.eos_id, num_beams=cfg.num_beams))
    out = sm.model.generate(
        input_ids=ids, attention_mask=mask, num_beams=cfg.num_beams, do_sample=False,
        max_new_tokens=max_new, logits_processor=processors, eos_token_id=sm.eos_id,
        pad_token_id=sm.pad_id, return_dict_in_generate=True, length_penalty=1.0,
        **({} if causal else {"decoder_start_token_id": sm.model.config.decoder_start_token_id}))
    gen = out.sequences[:, ids.shape[1]:] if causal else out.sequences[:, 1:]
    outs = [_cut(row, sm.eos_id) for row in gen.tolist()]
    if recorder is not None:
        lp = recorder.finish(gen[:, -1]) if gen.shape[1] else torch.zeros((len(outs), 0))
        scores = [float(lp[r, :len(o)].mean()) if o else float("nan") for r, o in enumerate(outs)]
    else:
        scores = rescore(sm, ids, mask, outs)
    return _predictions(sm, outs, scores, constraints, words, placeholder, copies_words)


def _predictions(sm: StudentModel, outs: list[list[int]], scores: list[float],
                 constraints: list[Any] | None, words: list[list[str]],
                 placeholder: str | None, copies_words: bool = True) -> list[Prediction]:
    preds = []
    for r, o in enumerate(outs):
        if constraints is not None:
            text, complete = constraints[r].decode(o, sm.eos_id)
            meta = {"complete": complete}
        else:
            text = decode_text(sm, o)
            if copies_words and (placeholder or sm.meta.get("bert")):
                text = restore_words(text, words[r], force=bool(placeholder))
            meta = {}
        preds.append(Prediction(text, scores[r], meta))
    return preds


def greedy_seq2seq(sm: StudentModel, ids: torch.Tensor, mask: torch.Tensor, max_new: int,
                   constraints: list[Any] | None) -> tuple[list[list[int]], list[float]]:
    """Greedy decoding of an encoder-decoder batch, the same tokens as `model.generate` picks,
    but a row leaves the batch (and its KV cache) as soon as it writes EOS, so the batch does
    not keep decoding padding for its finished rows. Returns each row's tokens (EOS included)
    and their mean log-probability under the model, read before any constraint applies."""
    model, eos, pad = sm.model, sm.eos_id, sm.pad_id
    hidden = model.get_encoder()(input_ids=ids, attention_mask=mask, return_dict=True).last_hidden_state
    n = ids.shape[0]
    rows = list(range(n))  # the original row of each row still decoding
    states: list[Any] = [c.start() for c in constraints] if constraints is not None else [None] * n
    outs: list[list[int]] = [[] for _ in range(n)]
    logps: list[list[float]] = [[] for _ in range(n)]
    last = torch.full((n, 1), model.config.decoder_start_token_id, dtype=torch.long, device=ids.device)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    for _ in range(max_new):
        logits = model(encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=last,
                       past_key_values=cache, use_cache=True).logits[:, -1].float()
        logp = torch.log_softmax(logits, dim=-1)
        if pad != eos:  # a generated pad could not be told from the fill after EOS
            logits[:, pad] = float("-inf")
        if constraints is not None:
            logits = logits + constraint_mask(logits, [constraints[r] for r in rows], [states[r] for r in rows], eos)
        tok = logits.argmax(dim=-1)
        picked = logp.gather(1, tok[:, None]).squeeze(1).tolist()
        keep = []
        for b, (r, t) in enumerate(zip(rows, tok.tolist(), strict=True)):
            outs[r].append(t)
            logps[r].append(picked[b])
            if t == eos:
                continue
            if constraints is not None and states[r] is not None:
                states[r] = constraints[r].step(states[r], t)
            keep.append(b)
        if not keep:
            break
        if len(keep) < len(rows):
            idx = torch.tensor(keep, device=ids.device)
            cache.batch_select_indices(idx)
            hidden, mask, tok = hidden[idx], mask[idx], tok[idx]
            rows = [rows[b] for b in keep]
        last = tok[:, None]
    return outs, [sum(lp) / len(lp) if lp else float("nan") for lp in logps]


def decode_text(sm: StudentModel, tokens: list[int]) -> str:
    """Token ids to text, keeping unknown tokens (the input's word is restored later) but no
    padding, EOS or other markers."""
    tok = sm.tokenizer
    drop = set(tok.all_special_ids) - {tok.unk_token_id}
    text = tok.decode([t for t in tokens if t not in drop], skip_special_tokens=False,
                      clean_up_tokenization_spaces=False)
    return " ".join(text.split())
