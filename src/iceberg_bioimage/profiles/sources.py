"""Profile sources as CellProfiler, cytominer-database and CytoTable write them.

A source is read into a :class:`ProfileSet`: one table per compartment (``cells``,
``nuclei``, ``cytoplasm``…, or ``None`` for a single table whose compartment is not
known) and the Image table, with every object row already carrying its image's
plate/well/site (two-hop keys, :mod:`iceberg_bioimage.profiles.image_keys`).

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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from iceberg_bioimage.exceptions import ContractError, StoreNotFoundError
from iceberg_bioimage.profiles.contract import AliasMap
from iceberg_bioimage.profiles.files import TABLE_SUFFIXES, read_profile_table
from iceberg_bioimage.profiles.image_keys import attach_image_keys, needs_image_table
from iceberg_bioimage.profiles.sqlite import SqliteTable, is_sqlite, read_sqlite_table, table_names

#: Table names (file stems, SQLite tables) of per-image tables.
IMAGE_TABLES = ("image", "per_image")
#: Tables that hold neither images nor objects.
SKIPPED_TABLES = ("experiment", "per_experiment", "experiment_properties")
COMPARTMENTS = ("cells", "nuclei", "cytoplasm", "image")
_READ_THREADS = 8


@dataclass(frozen=True)
class ProfileSet:
    """The tables of a profile source, keyed by compartment (``None``: unknown)."""

    label: str
    tables: dict[str | None, pa.Table | SqliteTable]
    image: pa.Table | None = None
    warnings: tuple[str, ...] = field(default=())
    #: Whether the source holds several tables (a folder or SQLite), not one table.
    multi_table: bool = False

    @property
    def compartments(self) -> tuple[str | None, ...]:
        """Object compartments present, in name order (``None`` for a single table)."""
        return tuple(sorted(self.tables, key=lambda c: (c is not None, c or "")))

    def select(self, compartment: str | None) -> tuple[str | None, pa.Table | SqliteTable]:
        """The table of ``compartment`` (``image`` = the Image table); the only one if None.

        Raises :class:`ContractError` naming the compartments present when the choice
        is missing or ambiguous.
        """
        present = ", ".join(c or "(one table)" for c in self.compartments) or "none"
        if compartment is None:
            if len(self.tables) == 1:
                return next(iter(self.tables.items()))
            raise ContractError(
                self.label,
                f"holds several compartments ({present}); choose one with compartment= "
                "(CLI --compartment)",
            )
        wanted = compartment.lower()
        if wanted == "image" and self.image is not None:
            return "image", self.image
        if wanted in self.tables:
            return wanted, self.tables[wanted]
        raise ContractError(self.label, f"has no {compartment!r} table; present: {present}")


@dataclass(frozen=True)
class _RawSource:
    """One source before the hop: object tables by compartment and its Image table."""

    label: str
    objects: dict[str | None, tuple[str, pa.Table | SqliteTable]]
    image: tuple[str, pa.Table] | None
    multi_table: bool = True


def read_profile_set(
    source: Any,
    *,
    image_table: str | os.PathLike[str] | pa.Table | None = None,
    alias_map: AliasMap | None = None,
) -> ProfileSet:
    """Read every table of a profile source, object rows keyed to their images.

    ``image_table`` names the Image table when the source has none of its own.
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
    for raw in raw_sources:
        image = raw.image or extra_image
        if raw.image is not None:
            images.append(raw.image[1])
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
    if extra_image is not None and image is None:
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


def _raw_sources(source: Any) -> list[_RawSource]:
    if not isinstance(source, str | os.PathLike):
        table, label = read_profile_table(source)
        return [_RawSource(label, {None: (label, table)}, None, multi_table=False)]
    label = os.fspath(source)
    path = Path(label)
    if not path.exists():
        raise StoreNotFoundError(label, "no such file or folder")
    if path.is_file() and is_sqlite(path):
        return [_sqlite_source(path, label)]
    if path.is_dir():
        return _folder_sources(path, label)
    return [_file_source(path, label)]


def _compartment_of(name: str) -> str | None:
    """``Nuclei`` / ``Per_Nuclei`` / ``nuclei`` → ``nuclei``; ``Image`` → ``image``."""
    lowered = name.lower()
    return lowered[len("per_") :] if lowered.startswith("per_") else lowered


def _sqlite_source(path: Path, label: str) -> _RawSource:
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
        compartment = None if name.lower() == "per_object" else _compartment_of(name)
        objects[compartment] = (f"{label}:{name}", SqliteTable(path, name))
    image = None
    if image_names:
        image = (f"{label}:{image_names[0]}", read_sqlite_table(path, image_names[0]))
    return _RawSource(label, objects, image)


def _table_files(folder: Path) -> dict[str, Path]:
    """Tables directly in ``folder`` by lower-case stem (``Nuclei.csv`` → ``nuclei``)."""
    found: dict[str, Path] = {}
    for child in sorted(folder.iterdir()):
        lowered = child.name.lower()
        if child.name.startswith((".", "_")) or not child.is_file():
            continue
        suffix = next((s for s in TABLE_SUFFIXES if lowered.endswith(s)), None)
        if suffix is not None:
            found.setdefault(lowered[: -len(suffix)], child)
    return found


def _is_cellprofiler_folder(files: Mapping[str, Path]) -> bool:
    """Tables named as CellProfiler / CytoTable name them (``Image.csv``, ``nuclei.parquet``)."""
    return any(stem in IMAGE_TABLES or stem in COMPARTMENTS for stem in files)


def _folder_sources(folder: Path, label: str) -> list[_RawSource]:
    files = _table_files(folder)
    if files and _is_cellprofiler_folder(files):
        return [_tables_source(files, label)]
    if files:
        return [_file_source(folder, label)]  # one table in parts (a Parquet folder)
    children = [c for c in sorted(folder.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    table_folders = {
        c.name.lower(): c
        for c in children
        if c.name.lower() in IMAGE_TABLES + COMPARTMENTS and any(c.glob("*.parquet"))
    }
    if table_folders:  # CytoTable with join=False: <root>/<table>/<table>.parquet
        return [_tables_source(table_folders, label)]
    sites = [(c, _table_files(c)) for c in children]
    sites = [(c, f) for c, f in sites if _is_cellprofiler_folder(f)]
    if not sites:
        return [_file_source(folder, label)]  # names what the folder lacks
    return _map_threads(lambda site: _tables_source(site[1], os.fspath(site[0])), sites)


def _tables_source(files: Mapping[str, Path], label: str) -> _RawSource:
    image_stem = next((s for s in IMAGE_TABLES if s in files), None)
    wanted = {s: p for s, p in files.items() if s not in IMAGE_TABLES + SKIPPED_TABLES}
    tables = _map_threads(lambda item: read_profile_table(item[1]), list(wanted.items()))
    objects = {
        _compartment_of(stem): (table_label, table)
        for stem, (table, table_label) in zip(wanted, tables, strict=True)
    }
    image = None
    if image_stem is not None:
        table, table_label = read_profile_table(files[image_stem])
        image = (table_label, table)
    return _RawSource(label, objects, image)


def _file_source(path: Path, label: str) -> _RawSource:
    table, table_label = read_profile_table(path)
    stem = _stem(path)
    compartment = _compartment_of(stem) if _compartment_of(stem) in COMPARTMENTS else None
    if compartment == "image":
        return _RawSource(label, {}, (table_label, table), multi_table=False)
    image = None
    if path.is_file() and needs_image_table(table):
        sibling = _table_files(path.parent)
        image_path = next((sibling[s] for s in IMAGE_TABLES if s in sibling), None)
        if image_path is not None:
            image_table, image_label = read_profile_table(image_path)
            image = (image_label, image_table)
    return _RawSource(label, {compartment: (table_label, table)}, image, multi_table=False)


def _stem(path: Path) -> str:
    lowered = path.name.lower()
    suffix = next((s for s in TABLE_SUFFIXES if lowered.endswith(s)), "")
    return lowered[: -len(suffix)] if suffix else lowered


def _map_threads(function: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``function`` over ``items`` on threads (CSV/Parquet readers release the GIL)."""
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(min(_READ_THREADS, len(items))) as pool:
        return list(pool.map(function, items))
