"""Teacher backends: one protocol (base.py), one module per way of reaching an LLM.

Each backend module is imported only when chosen, so `mckd --help` never loads aiohttp,
llama.cpp or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mckd.teacher.backends.base import Backend, BackendError, Completion, TeacherRequest, complete

if TYPE_CHECKING:  # config imports prompts, which imports backends.base: no cycle at run time
    from mckd.teacher.config import TeacherConfig

# backend kind -> (module, class); the class takes the TeacherConfig.
BACKENDS: dict[str, tuple[str, str]] = {
    "openai": ("mckd.teacher.backends.openai", "OpenAIBackend"),
    "llamacpp": ("mckd.teacher.backends.llamacpp", "LlamaCppBackend"),
    "transformers": ("mckd.teacher.backends.hf", "TransformersBackend"),
}


def build_backend(cfg: TeacherConfig) -> Backend:
    """The backend `cfg.backend` names, built from the config. The fake backend is for unit
    tests, which build it directly."""
    if cfg.backend == "fake":  # imported when chosen, as every backend module (docstring)
        from mckd.teacher.backends.fake import FakeBackend

        return FakeBackend(model=cfg.model or "fake", context_size=cfg.context_size)
    module, name = BACKENDS[cfg.backend]
    return getattr(importlib.import_module(module), name)(cfg)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "Completion",
    "TeacherRequest",
    "build_backend",
    "complete",
]
