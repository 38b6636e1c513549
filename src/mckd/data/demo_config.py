"""The built-in demo corpus's settings, apart from the code that builds it (which needs nltk,
seconds to import): loading a config must not pay for it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MIN_LEN, MAX_LEN = 5, 40  # tokens, punctuation included, like PTB sentence lengths


class DemoCorpusConfig(BaseModel):
    """Sizes and seed of the task's built-in corpus, which a run with `data.source: demo` uses
    (`Task.builtin_corpus`: parsing, the synthetic treebank; slots, generated assistant
    requests). The field names are the treebank's; `n_unlabeled` is the pool for any task."""

    model_config = ConfigDict(extra="forbid")

    n_labeled: int = Field(50, ge=1, description="Gold pairs (prompt demonstrations).")
    n_unlabeled: int = Field(1000, ge=1, description="Pool of sentences for the teacher to label.")
    n_test: int = Field(500, ge=1, description="Held-out test sentences.")
    seed: int = Field(0, description="Seed of the generator and of the split.")
    max_len: int = Field(
        MAX_LEN,
        ge=MIN_LEN,
        le=MAX_LEN,
        description="Longest sentence, in tokens (punctuation counted).",
    )
