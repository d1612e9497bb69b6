"""``--storage-option KEY=VALUE``: fsspec options for the commands that read stores."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def parse_storage_options(pairs: Iterable[str]) -> dict[str, Any] | None:
    """``KEY=VALUE`` pairs as a dict; a value that parses as JSON is taken as JSON.

    ``anon=true`` gives ``True``, ``client_kwargs={"region_name": "us-east-1"}`` a
    dict, ``endpoint_url=http://...`` stays a string. ``None`` when no pair is given.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="'--storage-option'")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        options[key] = value
    return options or None


def _callback(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> Any:
    return parse_storage_options(value)


def storage_option(func: F) -> F:
    """Add a repeatable ``--storage-option KEY=VALUE``.

    The command receives the parsed pairs as one ``storage_options`` keyword
    (a dict for fsspec, or ``None`` when none is given); a pair without ``=`` is
    a usage error (exit 2).
    """
    return click.option(
        "--storage-option",
        "storage_options",
        multiple=True,
        metavar="KEY=VALUE",
        callback=_callback,
        help="fsspec option for remote stores (repeatable; JSON values parsed, "
        'e.g. anon=true, client_kwargs={"region_name":"us-east-1"}).',
    )(func)
