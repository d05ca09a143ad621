"""Entry point of the ``pesflow`` command: imports every command module, turns errors into one line."""

from __future__ import annotations

import sys

from rich.markup import escape

import flows.cmd_campaign  # noqa: F401  (registers run, label, fit, status, plot, ui, deploy)
import flows.cmd_free_energy  # noqa: F401  (registers free-energy)
import flows.cmd_phase  # noqa: F401  (registers melt, seed)
import flows.cmd_sampling  # noqa: F401  (registers temper)
from flows import cmd_sample  # noqa: F401  (registers commands)
from flows.app import UserError, app, console


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print ``error: …`` on one line and exit with status 2."""
    try:
        app(args=argv, standalone_mode=False)
    except SystemExit as exc:  # typer/click exits (help, usage errors)
        return int(exc.code or 0)
    except (UserError, ValueError, FileNotFoundError, KeyError) as exc:
        message = str(exc).strip()
        if isinstance(exc, KeyError) and len(message) > 1 and message[0] == message[-1] and message[0] in "'\"":
            message = message[1:-1]  # KeyError's repr quotes its message
        message = message or type(exc).__name__
        console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        return 2
    except Exception as exc:  # the (vendored) click's usage errors carry show() and exit_code
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return int(exc.exit_code)
        if type(exc).__name__ == "Abort":
            console.print("aborted")
            return 130
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
