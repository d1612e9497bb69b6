"""Profile sources as CellProfiler, cytominer-database and CytoTable write them.

A source is read into a :class:`ProfileSet`: one table per compartment (``cells``,
``nuclei``, ``cytoplasm``…, or ``None`` for a single table whose compartment is not
known) and the Image table, with every object row already carrying its image's
plate/well/site (two-hop keys, :mod:`iceberg_bioimage.profiles.image_numbers`).

Accepted sources:

* an Arrow table, record batch reader or pandas DataFrame; a ``.parquet``,
  ``.csv``/``.csv.gz`` or ``.tsv``/``.tsv.gz`` file (``Nuclei.csv`` is the ``nuclei``
  compartment; an object file without plate/well keys uses the ``Image`` file beside
  it, or ``image_table=``);
* a folder of ``.parquet`` files (one table), or of tables named by compartment,
  as files or folders (CytoTable with ``join=False``: ``image/image.parquet``,
  ``nuclei/nuclei.parquet``…);
* a CellProfiler ExportToSpreadsheet folder (``Image.csv``, ``Nuclei.csv``…);
* a folder of per-site output folders (``<plate>-<well>-<site>/Image.csv``…), each its
  own source (image numbers restart at 1 in each);
* a CellProfiler / cytominer-database SQLite (``Image``/``Per_Image`` and object
  tables, keyed by ``ImageNumber`` [+ ``TableNumber``]).

Each layout is one module of this package defining :class:`~.base.SourceReader`
objects; :data:`READERS` holds every reader the package's modules define, in their
``order`` (one signature: a path in, raw sources out), and the first that recognises
the path reads it. Adding a source, streamed or not, is one module.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from iceberg_bioimage.exceptions import ContractError, StoreNotFoundError
from iceberg_bioimage.profiles.contract import AliasMap
from iceberg_bioimage.profiles.files import read_profile_table
from iceberg_bioimage.profiles.image_files import key_by_files, unmatched_rows
from iceberg_bioimage.profiles.image_numbers import (
    attach_image_keys,
    needs_image_table,
    needs_keys,
)
from iceberg_bioimage.profiles.sources.base import (
    ProfileSet,
    RawSource,
    SourceReader,
    file_source,
)
from iceberg_bioimage.profiles.sqlite import SqliteTable, read_sqlite_table


def _discover() -> list[SourceReader]:
    """Every :class:`SourceReader` the modules of this package define, in their order."""
    found: dict[str, SourceReader] = {}
    for module in pkgutil.iter_modules(__path__):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        for value in vars(loaded).values():
            if isinstance(value, SourceReader):
                found[value.name] = value
    return sorted(found.values(), key=lambda reader: reader.order)


#: The layouts, in the order they are asked.
READERS: list[SourceReader] = _discover()


def read_profile_set(
    source: Any,
    *,
    image_table: str | os.PathLike[str] | pa.Table | None = None,
    alias_map: AliasMap | None = None,
    image_assets: pa.Table | None = None,
) -> ProfileSet:
    """Read every table of a profile source, object rows keyed to their images.

    ``image_table`` names the Image table; it wins over an Image table found beside
    the objects (SPEC §9). ``image_assets`` (the images the rows will be joined to)
    lets an Image table without well/site keys be matched to them by the files it
    names (``FileName_<Ch>`` + ``PathName_<Ch>``, or ``URL_<Ch>``).
    Raises :class:`StoreNotFoundError` for a missing path and :class:`ContractError`
    naming the file or table for anything unreadable.
    """
    if isinstance(source, ProfileSet):
        return source
    raw_sources = _raw_sources(source)
    extra_image = None
    if image_table is not None:
        table, label = read_profile_table(image_table)
        extra_image = (label, table)
    label = raw_sources[0].label if len(raw_sources) == 1 else _label(source)
    parts: dict[str | None, list[pa.Table | SqliteTable]] = {}
    images: list[pa.Table] = []
    warnings: list[str] = []
    keyed: dict[int, tuple[str, pa.Table]] = {}

    def by_files(found: tuple[str, pa.Table] | None) -> tuple[str, pa.Table] | None:
        # An Image table without well/image keys: its rows are matched by their files.
        if found is None or image_assets is None or not needs_keys(found[1], alias_map):
            return found
        if id(found[1]) not in keyed:
            table = key_by_files(found[1], image_assets, found[0])
            if table is not None and (missing := unmatched_rows(table)):
                warnings.append(
                    f"{found[0]}: {missing:,} Image rows name no file of the store's images"
                )
            keyed[id(found[1])] = (found[0], table) if table is not None else found
        return keyed[id(found[1])]

    extra_image = by_files(extra_image)
    for raw in raw_sources:
        own = by_files(raw.image) if extra_image is None or not raw.objects else None
        image = extra_image or own
        if own is not None:
            images.append(own[1])
        for compartment, (table_label, table) in raw.objects.items():
            if isinstance(table, SqliteTable):  # keyed through the Image table when joined
                parts.setdefault(compartment, []).append(table)
                continue
            if image is not None and needs_image_table(table, alias_map):
                table, report = attach_image_keys(
                    table, image[1], label=table_label, image_label=image[0], alias_map=alias_map
                )
                if report.unmatched_rows:
                    warnings.append(
                        f"{table_label}: {report.unmatched_rows:,} object rows have an image "
                        f"number that {image[0]} does not list"
                    )
            parts.setdefault(compartment, []).append(table)
    if not parts and images:
        parts["image"] = images
    tables = {c: _concat(tables, label) for c, tables in parts.items()}
    image = _concat(images, label) if images else None
    if extra_image is not None:  # an explicit Image table wins (SPEC §9)
        image = extra_image[1]
    multi_table = len(raw_sources) > 1 or any(r.multi_table for r in raw_sources)
    return ProfileSet(
        label=label, tables=tables, image=image, warnings=tuple(warnings), multi_table=multi_table
    )


def _label(source: Any) -> str:
    return os.fspath(source) if isinstance(source, str | os.PathLike) else "<profiles>"


def _concat(tables: Sequence[pa.Table | SqliteTable], label: str) -> pa.Table | SqliteTable:
    if len(tables) == 1:
        return tables[0]
    tables = [t if isinstance(t, pa.Table) else read_sqlite_table(t.path, t.name) for t in tables]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as error:
        raise ContractError(label, f"its tables do not share a schema: {error}") from error


def _raw_sources(source: Any) -> list[RawSource]:
    if not isinstance(source, str | os.PathLike):
        table, label = read_profile_table(source)
        return [RawSource(label, {None: (label, table)}, None, multi_table=False)]
    label = os.fspath(source)
    path = Path(label)
    if not path.exists():
        raise StoreNotFoundError(label, "no such file or folder")
    for reader in READERS:
        if reader.can_read(path):
            return reader.read(path, label)
    return [file_source(path, label)]  # names what the folder lacks


__all__ = ["READERS", "ProfileSet", "SourceReader", "read_profile_set"]
