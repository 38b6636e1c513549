from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run on small CPU machines next to other work: keep each one on few threads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TESTS = Path(__file__).parent
TEST_DATA = TESTS / "data"
SHARED = TESTS.parent.parent / "shared"


@pytest.fixture
def test_data() -> Path:
    return TEST_DATA


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer, 32-wide random BERT with MiniLM's real WordPiece tokenizer, saved locally."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from mckd.student.encoder import resolve_encoder

    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder("minilm"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def torch_threads():
    """Restores torch's thread count after a test whose students set their own."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
