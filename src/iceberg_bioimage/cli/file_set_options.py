"""The options that say how to read a folder of single-image TIFFs as a plate."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.instruments import PRESETS

F = TypeVar("F", bound=Callable[..., Any])


def file_set_options(func: F) -> F:
    """Add ``--instrument --pattern --plate-id --channel-names --plate-columns``.

    The command receives them folded into one ``file_set`` keyword
    (:class:`FileSetOptions`, or ``None`` when none is given).
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
