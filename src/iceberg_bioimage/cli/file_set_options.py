"""The options that say how to read a folder of single-image TIFFs as a plate.

``--load-data load_data.csv`` stands in place of a command's store argument (SPEC §9):
the CSV is the store. A command whose store argument is followed by another
positional argument (``join-profiles URI PROFILES``) takes that one alone with
``--load-data``: ``join-profiles --load-data load_data.csv profiles.parquet``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.instruments import PRESETS

F = TypeVar("F", bound=Callable[..., Any])


def _place_load_data(kwargs: dict[str, Any], load_data: str | None) -> dict[str, Any]:
    """Put ``--load-data`` where the store argument goes; refuse a missing or doubled store."""
    if "uris" in kwargs:  # ingest: one more store
        uris = (*kwargs["uris"], *((load_data,) if load_data else ()))
        if not uris:
            raise click.UsageError("Missing argument 'URIS...' (or --load-data CSV).")
        return {**kwargs, "uris": uris}
    out = dict(kwargs)
    # positional arguments after the store (join-profiles: PROFILES), declared optional
    following = [
        p.name
        for p in click.get_current_context().command.params
        if isinstance(p, click.Argument) and p.name not in (None, "uri")
    ]
    if load_data is not None:
        if out.get("uri") is not None:
            free = [name for name in following if out.get(name) is None]
            if not free:
                raise click.UsageError("Pass the store argument or --load-data, not both.")
            out[free[0]] = out["uri"]
        out["uri"] = load_data
    for name in ("uri", *following):
        if out.get(name) is None:
            extra = " (or --load-data CSV)" if name == "uri" else ""
            raise click.UsageError(f"Missing argument '{name.upper()}'{extra}.")
    return out


def load_data_option(func: F) -> F:
    """Add ``--load-data CSV``, which stands in place of the store argument.

    The command's store argument (``uri``, or ``uris`` for ingest) must be declared
    with ``required=False``: the check that one is given happens here.
    """

    @click.option(
        "--load-data",
        "load_data",
        metavar="CSV",
        help="A CellProfiler LoadData table (CSV or Parquet), in place of the store argument.",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, load_data: str | None, **kwargs: Any) -> Any:
        return func(*args, **_place_load_data(kwargs, load_data))

    return wrapper  # type: ignore[return-value]


def file_set_options(func: F) -> F:
    """Add ``--instrument --pattern --plate-id --channel-names --plate-columns --load-data``.

    The command receives the first five folded into one ``file_set`` keyword
    (:class:`FileSetOptions`, or ``None`` when none is given); ``--load-data`` fills
    the store argument (:func:`load_data_option`).
    """
    return load_data_option(file_naming_options(func))


def file_naming_options(func: F) -> F:
    """Add ``--instrument --pattern --plate-id --channel-names --plate-columns`` only.

    For commands whose store argument may be absent (``report`` from a catalog).
    """

    @click.option(
        "--instrument",
        type=click.Choice(list(PRESETS), case_sensitive=False),
        help="File-naming convention of a TIFF folder (default: detected).",
    )
    @click.option("--pattern", help="Custom file-name regex with named groups (well, site...).")
    @click.option("--plate-id", help="Plate of a TIFF folder (default: from names or folder).")
    @click.option("--channel-names", help="Channel names in channel order, comma-separated.")
    @click.option(
        "--plate-columns",
        type=click.IntRange(1, 100),
        help="Plate columns, for wells numbered row-major (scan^R).",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        instrument: str | None,
        pattern: str | None,
        plate_id: str | None,
        channel_names: str | None,
        plate_columns: int | None,
        **kwargs: Any,
    ) -> Any:
        options = FileSetOptions.build(
            instrument=instrument,
            pattern=pattern,
            plate_id=plate_id,
            channel_names=channel_names,
            plate_columns=plate_columns,
        )
        return func(*args, file_set=None if options.is_default else options, **kwargs)

    return wrapper  # type: ignore[return-value]
