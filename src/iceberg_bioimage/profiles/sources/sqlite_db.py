"""CellProfiler / cytominer-database SQLite: ``Image``/``Per_Image`` and object tables.

Object tables are streamed when joined (they can be GiBs): each is a
:class:`~iceberg_bioimage.profiles.sqlite.SqliteTable` keyed through the Image table.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.profiles.sources.base import (
    IMAGE_TABLES,
    SKIPPED_TABLES,
    RawSource,
    SourceReader,
    compartment_of,
)
from iceberg_bioimage.profiles.sqlite import SqliteTable, is_sqlite, read_sqlite_table, table_names


def _read(path: Path, label: str) -> list[RawSource]:
    names = table_names(path)
    image_names = [n for n in names if n.lower() in IMAGE_TABLES]
    object_names = [
        n
        for n in names
        if n.lower() not in IMAGE_TABLES + SKIPPED_TABLES and not n.lower().startswith("__")
    ]
    if not image_names and not object_names:
        raise ContractError(label, "the SQLite file holds no Image or object tables")
    objects: dict[str | None, tuple[str, pa.Table | SqliteTable]] = {}
    for name in object_names:  # streamed when joined: object tables can be GiBs
        compartment = None if name.lower() == "per_object" else compartment_of(name)
        objects[compartment] = (f"{label}:{name}", SqliteTable(path, name))
    image = None
    if image_names:
        image = (f"{label}:{image_names[0]}", read_sqlite_table(path, image_names[0]))
    return [RawSource(label, objects, image)]


SQLITE = SourceReader(
    name="sqlite", order=10, can_read=lambda path: path.is_file() and is_sqlite(path), read=_read
)
