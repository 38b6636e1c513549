"""mckd: multistage collaborative knowledge distillation from LLMs."""

from os import PathLike
from typing import Any

from mckd.errors import InputError, MckdError
from mckd.examples import Example, read_examples, write_examples

__version__ = "0.1.0"
__all__ = ["Example", "InputError", "MckdError", "load", "read_examples", "write_examples"]


def load(name_or_path: str | PathLike[str], **options: Any) -> Any:
    """An exported student (`mckd export`) from a directory or a Hugging Face hub repo id, ready
    to `predict`; `options` as for `mckd.ship.load` (runtime, device, threads, revision)."""
    # `import mckd` stays light: the loader (tasks, students, then torch) comes on first use
    from mckd.ship.model import load as load_model

    return load_model(name_or_path, **options)
