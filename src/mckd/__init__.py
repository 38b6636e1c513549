"""mckd: multistage collaborative knowledge distillation from LLMs."""

from mckd.errors import InputError, MckdError
from mckd.examples import Example, read_examples, write_examples

__version__ = "0.1.0"
__all__ = ["Example", "InputError", "MckdError", "read_examples", "write_examples"]
