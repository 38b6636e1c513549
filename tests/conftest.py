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
