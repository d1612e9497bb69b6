"""The options that say how to read a profile source and join it to images."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from iceberg_bioimage.models.options import ProfileOptions

F = TypeVar("F", bound=Callable[..., Any])


def profile_source_options(func: F) -> F:
    """Add ``--compartment --image-table --site-base --platemap``.

    The command receives them folded into one ``profile_options`` keyword: the
    :class:`~iceberg_bioimage.models.options.ProfileOptions` the API takes.
    """

    @click.option(
        "--compartment",
        help="Object table to join (cells, nuclei, cytoplasm, image); default: each one present.",
    )
    @click.option(
        "--image-table",
        type=click.Path(dir_okay=False),
        help="Image table (Image.csv…) for object rows keyed only by ImageNumber.",
    )
    @click.option(
        "--site-base",
        type=click.Choice(["0", "1"]),
        help="Where the profiles' site numbers start (CellProfiler: 1); maps sites to fields.",
    )
    @click.option(
        "--platemap",
        type=click.Path(dir_okay=False),
        help="barcode_platemap.csv (platemap/<name>.txt beside it) or one platemap file.",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        compartment: str | None,
        image_table: str | None,
        site_base: str | None,
        platemap: str | None,
        **kwargs: Any,
    ) -> Any:
        options = ProfileOptions(
            compartment=compartment,
            image_table=image_table,
            site_base=None if site_base is None else int(site_base),
            platemap=platemap,
        )
        return func(*args, profile_options=options, **kwargs)

    return wrapper  # type: ignore[return-value]
