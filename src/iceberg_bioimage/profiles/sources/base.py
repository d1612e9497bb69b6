"""What every profile source reader returns, and the helpers the readers share."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.models.paths import is_inside
from iceberg_bioimage.profiles.files import TABLE_SUFFIXES, read_profile_table
from iceberg_bioimage.profiles.image_numbers import needs_image_table
from iceberg_bioimage.profiles.sqlite import SqliteTable

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
class RawSource:
    """One source before the hop: object tables by compartment and its Image table."""

    label: str
    objects: dict[str | None, tuple[str, pa.Table | SqliteTable]]
    image: tuple[str, pa.Table] | None
    multi_table: bool = True


@dataclass(frozen=True)
class SourceReader:
    """A layout of profile tables on disk: whether a path has it, and how to read it.

    ``read`` returns one :class:`RawSource` per independent source (a folder of
    per-site folders is one per site: its image numbers restart at 1 in each).
    """

    name: str
    #: Where it is asked, lowest first (a SQLite file before any table file).
    order: int
    can_read: Callable[[Path], bool]
    read: Callable[[Path, str], list[RawSource]]


def compartment_of(name: str) -> str | None:
    """``Nuclei`` / ``Per_Nuclei`` / ``nuclei`` → ``nuclei``; ``Image`` → ``image``."""
    lowered = name.lower()
    return lowered[len("per_") :] if lowered.startswith("per_") else lowered


def inside(root: Path, child: Path) -> Path:
    """``child``, refused by name when it (a symlink) resolves outside ``root``.

    A folder walk never leaves the folder the user named: a table file or a site
    folder that is a symlink pointing out of it raises :class:`ContractError`
    (refused, not skipped: a plate with a missing site must not export as complete).
    """
    base, real = os.path.realpath(root), os.path.realpath(child)
    if not is_inside(base, real):
        raise ContractError(os.fspath(child), f"resolves to {real}, outside {base}; refused")
    return child


def table_files(folder: Path, root: Path | None = None) -> dict[str, Path]:
    """Tables directly in ``folder`` by lower-case stem (``Nuclei.csv`` → ``nuclei``).

    Each must resolve inside ``root`` (default: ``folder``), see :func:`inside`.
    """
    found: dict[str, Path] = {}
    for child in sorted(folder.iterdir()):
        lowered = child.name.lower()
        if child.name.startswith((".", "_")) or not child.is_file():
            continue
        suffix = next((s for s in TABLE_SUFFIXES if lowered.endswith(s)), None)
        if suffix is not None:
            found.setdefault(lowered[: -len(suffix)], inside(root or folder, child))
    return found


def is_cellprofiler_folder(files: Mapping[str, Path]) -> bool:
    """Tables named as CellProfiler / CytoTable name them (``Image.csv``, ``nuclei.parquet``)."""
    return any(stem in IMAGE_TABLES or stem in COMPARTMENTS for stem in files)


def tables_source(files: Mapping[str, Path], label: str) -> RawSource:
    image_stem = next((s for s in IMAGE_TABLES if s in files), None)
    wanted = {s: p for s, p in files.items() if s not in IMAGE_TABLES + SKIPPED_TABLES}
    tables = map_threads(lambda item: read_profile_table(item[1]), list(wanted.items()))
    objects = {
        compartment_of(stem): (table_label, table)
        for stem, (table, table_label) in zip(wanted, tables, strict=True)
    }
    image = None
    if image_stem is not None:
        table, table_label = read_profile_table(files[image_stem])
        image = (table_label, table)
    return RawSource(label, objects, image)


def file_source(path: Path, label: str) -> RawSource:
    table, table_label = read_profile_table(path)
    stem = _stem(path)
    compartment = compartment_of(stem) if compartment_of(stem) in COMPARTMENTS else None
    if compartment == "image":
        return RawSource(label, {}, (table_label, table), multi_table=False)
    image = None
    if path.is_file() and needs_image_table(table):
        sibling = table_files(path.parent)
        image_path = next((sibling[s] for s in IMAGE_TABLES if s in sibling), None)
        if image_path is not None:
            image_table, image_label = read_profile_table(image_path)
            image = (image_label, image_table)
    return RawSource(label, {compartment: (table_label, table)}, image, multi_table=False)


def _stem(path: Path) -> str:
    lowered = path.name.lower()
    suffix = next((s for s in TABLE_SUFFIXES if lowered.endswith(s)), "")
    return lowered[: -len(suffix)] if suffix else lowered


def map_threads(function: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``function`` over ``items`` on threads (CSV/Parquet readers release the GIL)."""
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(min(_READ_THREADS, len(items))) as pool:
        return list(pool.map(function, items))
