"""Output for the CLI: consoles, JSON, warnings, errors, progress. Nothing else prints."""

from __future__ import annotations

import errno
import functools
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from iceberg_bioimage.exceptions import IcebergBioimageError
from iceberg_bioimage.models.paths import os_reason

F = TypeVar("F", bound=Callable[..., Any])

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

#: Work that finishes sooner than this shows no activity bar.
ACTIVITY_DELAY_SECONDS = 1.0
_QUIET_KEY = "iceberg_bioimage.quiet"


def fail(message: str, code: int, debug: bool) -> None:
    """Print ``error: <message>`` on one line of stderr (traceback with ``--debug``) and exit."""
    if debug:
        stderr.print_exception()
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


def one_line(message: str, limit: int = 2000) -> str:
    """``message`` on one line: control characters (from file contents) escaped, length capped."""
    text = "".join(
        c if c.isprintable() else " " if c in "\r\n\t" else repr(c)[1:-1] for c in message
    )
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


#: OS errors that are about the user's files or machine, not a bug: exit 2.
USER_OS_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ELOOP,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.EMFILE,
    }
)


USER_OS_ERRORS = (
    FileExistsError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def error_line(error: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for an error (the CLI's single mapping).

    Our own errors and the OS errors a user can fix (permission, missing folder,
    no space, symlink loop...) exit 2 with ``<path>: <problem>``; anything else
    is a bug: exit 1 with a hint to re-run with ``--debug``.
    """
    if isinstance(error, IcebergBioimageError):
        return str(error), 2
    if isinstance(error, USER_OS_ERRORS) or (
        isinstance(error, OSError) and error.errno in USER_OS_ERRNOS
    ):
        reason = os_reason(error)
        return (f"{error.filename}: {reason}" if error.filename else reason), 2
    if isinstance(error, MemoryError):
        return "out of memory (see the limits in docs/safety.md)", 2
    return (
        f"unexpected {type(error).__name__}: {error} (re-run with --debug for a traceback)",
        1,
    )


def is_quiet() -> bool:
    """Whether ``--quiet`` was given (to the group or the command)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().meta.get(_QUIET_KEY))


def command_options(func: F) -> F:
    """Give a command ``--json``, ``--quiet`` and ``--debug`` and one-line error handling."""

    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bars or notes.")
    @click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
    @click.pass_context
    @functools.wraps(func)
    def wrapper(ctx: click.Context, *args: Any, debug: bool, quiet: bool, **kwargs: Any) -> Any:
        root = ctx.find_root()
        debug = debug or bool(root.meta.get("iceberg_bioimage.debug"))
        root.meta[_QUIET_KEY] = quiet or bool(root.meta.get(_QUIET_KEY))
        try:
            return func(*args, **kwargs)
        except click.ClickException:  # a usage error found in the body: click reports it
            raise
        except Exception as error:
            message, code = error_line(error)
            fail(message, code, debug)

    return wrapper  # type: ignore[return-value]


def emit_json(payload: Any) -> None:
    """Write JSON to stdout, nothing else."""
    click.echo(json.dumps(payload, indent=2, default=str))


def print_warnings(warnings: tuple[str, ...] | list[str]) -> None:
    """Show warnings on stderr (always: they are about the data, not chatter)."""
    for warning in warnings:
        stderr.print(f"[yellow]warning:[/] {warning}", markup=True, highlight=False)


def note(message: str) -> None:
    """A one-line note on stderr, hidden by ``--quiet``."""
    if not is_quiet():
        click.echo(f"note: {message}", err=True)


def _interactive() -> bool:
    return stderr.is_terminal and not is_quiet()


@contextmanager
def working(message: str) -> Iterator[None]:
    """An activity bar on stderr for work taking over a second (TTY only, not --quiet)."""
    if not _interactive():
        yield
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(),
        TextColumn(message),
        BarColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    )
    progress.add_task(message, total=None)
    timer = threading.Timer(ACTIVITY_DELAY_SECONDS, progress.start)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        progress.stop()


@contextmanager
def counted_progress(total: int, label: str) -> Iterator[Callable[[str], None] | None]:
    """A bar advanced once per finished item (TTY only, not --quiet); stays when done."""
    if not _interactive():
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
    ) as progress:
        task = progress.add_task(label, total=total)

        def advance(name: str) -> None:
            progress.update(task, advance=1, description=f"{label} {name}")

        yield advance
        progress.update(task, description=label)


def facts_table(title: str, facts: list[tuple[str, str]]) -> Table:
    """A two-column name/value table."""
    table = Table(title=title, title_justify="left", box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in facts:
        table.add_row(name, value)
    return table
