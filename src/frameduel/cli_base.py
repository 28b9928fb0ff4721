"""What every command module shares: the typer app, the consoles, the one-line user errors, the common
options and output helpers. cli.py and cli_serving.py register their commands on this app."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from frameduel import cli_help
from frameduel.errors import FrameduelError

# Help texts are plain text: a URL pattern such as NAME[/versions/V] is not rich markup.
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, rich_markup_mode=None,
                  help="PyTorch vs TensorFlow, measured side by side on this machine.")
# Piped output (CI logs) is laid out for 100 columns, what the default tables fit, unless $COLUMNS says.
PIPED_WIDTH = 100
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH)
USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130

F = TypeVar("F", bound=Callable[..., object])
DbOption = typer.Option(None, "--db", help="results database (default: $FRAMEDUEL_DB or the user data dir)")
WideOption = typer.Option(False, "--wide", help="every column of the cell table (wider than 100 characters)")
SpeedupsOption = typer.Option(False, "--speedups", help="also print every pairwise speedup with its CI")
LoraRankOption = typer.Option(8, "--lora-rank", help="LoRA rank r of the finetune task's adapters")
LoraAlphaOption = typer.Option(16.0, "--lora-alpha", help=cli_help.LORA_ALPHA)
LoraTargetsOption = typer.Option(None, "--lora-targets", help=cli_help.LORA_TARGETS)
FrameworksOption = typer.Option("torch,tf", help=cli_help.FRAMEWORKS)
ExecutorOption = typer.Option("local", help=cli_help.EXECUTOR)
AddressOption = typer.Option(None, "--address", help=cli_help.ADDRESS)
CheckpointOption = typer.Option(None, "--checkpoint", help=cli_help.CHECKPOINT)


def user_errors(command: F) -> F:
    """Turn a FrameduelError into one line on stderr and exit code 2; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except FrameduelError as exc:
            # escape: messages quote user input and paths, which may hold [brackets] rich reads as markup
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(USER_ERROR_EXIT) from None

    return wrapper  # type: ignore[return-value]


def output(as_json: bool, to_json: Callable[..., Any], draw: Callable[..., None], *results: Any) -> None:
    """--json: to_json(*results) on stdout (dict: results that are JSON already); else draw(console, *results)."""
    if as_json:
        print(json.dumps(to_json(*results), indent=2))
    else:
        draw(console, *results)


def exit_unless(passed: bool) -> None:
    """Exit 1 (after the output) where the command's check failed: a parity mismatch, no run that finished."""
    if not passed:
        raise typer.Exit(1)


def to_stderr(line: Callable[..., str], *args: Any) -> Callable[[Any], None]:
    """A progress callback: the line of each run, trial or artefact as it ends, on stderr (stdout stays JSON)."""
    return lambda finished: err_console.print(line(finished, *args), highlight=False, soft_wrap=True)


def interrupted(what: str, resume: str) -> typer.Exit:
    """Ctrl-C during a run: what finished is stored, and this says how to finish the rest."""
    err_console.print(f"interrupted; finished {what} are stored. Resume with: frameduel {resume}", soft_wrap=True,
                      highlight=False)
    return typer.Exit(INTERRUPTED_EXIT)


