"""The ``pesflow`` Typer application object and the CLI's error convention.

Command modules (``flows/cmd_*.py``) register their commands on :data:`app`; ``flows.cli`` imports
them all. Errors that a user can fix are raised as :class:`UserError` (or a ValueError /
FileNotFoundError from lower layers) and shown as one clear line with exit code 2. The root callback applies
:func:`flows.server.configure_environment` before every command (Prefect reads its settings at import).
"""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="pesflow",
    help="Learn potential energy surfaces: HMC exploration, uncertainty selection, PySCF labels, MTP fits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


class UserError(Exception):
    """An error in the user's input: printed as one line, exit code 2."""


@app.callback()
def _root() -> None:
    """pesflow: launch, watch and schedule potential-energy-surface learning."""
    from flows.server import configure_environment

    configure_environment()  # before any command imports Prefect: no telemetry, patience for server starts
