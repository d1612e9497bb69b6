"""Iceberg warehouses other tools wrote (CytoTable's ``catalog.json`` registry), checked.

CytoTable's Iceberg warehouse (``cytotable[iceberg-images]``) is a folder with a
``catalog.json`` registry (``tables``: dotted name → ``metadata.json`` location) and
one Iceberg table folder per table (pyiceberg's default location, with ``metadata/``
and ``data/``). It
has no ``warehouse_manifest.json``. :func:`registry_tables` reads what it holds
(schemas and live data files through pyiceberg, never outside the root) so that
``validate_warehouse`` can say exactly what the specification still needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from iceberg_bioimage.exceptions import IcebergBioimageError
from iceberg_bioimage.models.limits import Limits, load_json
from iceberg_bioimage.models.paths import read_inside, resolve_inside

REGISTRY_NAMES = ("catalog.json", "warehouse/catalog.json")
#: Roles of the tables CytoTable names, by their table name.
ROLE_OF_NAME = {
    "joined_profiles": "joined_profiles",
    "image_crops": "image_crops",
    "source_images": "source_images",
    "image_assets": "image_assets",
    "chunk_index": "chunk_index",
}


@dataclass(frozen=True)
class ForeignTable:
    """One table of a registry: its name, folder, columns, live data files and rows."""

    table_name: str
    role: str
    folder: str
    columns: tuple[str, ...]
    data_files: tuple[str, ...]
    rows: int
    problem: str | None = None


def find_registry(base: Path) -> Path | None:
    """The ``catalog.json`` registry of an Iceberg warehouse at ``base``, if there is one."""
    return next((base / name for name in REGISTRY_NAMES if (base / name).is_file()), None)


def registry_tables(base: Path, registry: Path) -> tuple[list[ForeignTable], list[str], str | None]:
    """The registry's tables, its views, and a problem reading the registry itself (or None)."""
    limits = Limits.from_env()
    try:
        raw = read_inside(str(base.resolve()), str(registry), limits.max_metadata_bytes)
        doc = load_json(raw or b"", str(registry), limits)
    except IcebergBioimageError as error:
        return [], [], f"{registry}: unreadable registry: {error}"
    if not isinstance(doc, dict) or not isinstance(doc.get("tables", {}), dict):
        return [], [], f"{registry}: not a catalog registry (no 'tables' object)"
    views = sorted(doc.get("views") or {}) if isinstance(doc.get("views"), dict) else []
    tables = [_table(base, name, location) for name, location in sorted(doc["tables"].items())]
    return tables, views, None


def role_of(table_name: str) -> str:
    """The role a table's name gives it (``*_profiles`` → ``profiles``)."""
    name = table_name.rsplit(".", 1)[-1]
    if name in ROLE_OF_NAME:
        return ROLE_OF_NAME[name]
    return "profiles" if name.endswith("_profiles") else "reports"


def _table(base: Path, table_name: str, location: Any) -> ForeignTable:
    role = role_of(table_name)
    try:
        metadata = _local_path(base, location, table_name)
        table = _static_table(metadata)
        files = [task.file for task in table.scan().plan_files()]
        folder = metadata.parent.parent.relative_to(base.resolve()).as_posix()
        data_files = tuple(
            _local_path(base, f.file_path, table_name).relative_to(base.resolve()).as_posix()
            for f in files
        )
        columns = tuple(field.name for field in table.schema().fields)
        rows = sum(f.record_count for f in files)
    except (IcebergBioimageError, OSError, ValueError) as error:
        return ForeignTable(table_name, role, "", (), (), 0, problem=str(error))
    return ForeignTable(table_name, role, folder, columns, data_files, rows)


def _static_table(metadata: Path) -> Any:
    from pyiceberg.table import StaticTable

    try:
        return StaticTable.from_metadata(str(metadata))
    except Exception as error:  # pyiceberg raises many kinds for a bad file
        raise ValueError(f"{metadata}: not readable Iceberg metadata ({error})") from error


def _local_path(base: Path, location: Any, table_name: str) -> Path:
    """A ``file://`` or plain location as a path inside ``base`` (refused otherwise)."""
    if not isinstance(location, str) or not location:
        raise ValueError(f"table {table_name}: no metadata location")
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"table {table_name}: {location} is not a local file")
    path = Path(unquote(parsed.path)).resolve()
    root = base.resolve()
    relative = path.relative_to(root) if path.is_relative_to(root) else None
    if relative is None:
        raise ValueError(f"table {table_name}: {location} lies outside the warehouse root")
    return resolve_inside(root, relative.as_posix(), what=f"file of table {table_name}")


def folder_tables(base: Path) -> list[ForeignTable]:
    """Iceberg table folders without a registry: ``<ns>/<table>/data/*.parquet``.

    CytoTable's warehouse copied without ``catalog.json`` (or its ``metadata/``) still
    holds its tables' data files; they are found here (also under ``warehouse/``, where
    CytoTable puts them) so that the validator can name them and what they lack.
    """
    tables = []
    for top in (base, base / "warehouse"):
        if not top.is_dir() or top.is_symlink():
            continue
        for namespace in sorted(_subfolders(top)):
            for folder in sorted(_subfolders(namespace)):
                data = folder / "data"
                files = sorted(data.glob("*.parquet")) if data.is_dir() else []
                if files and not data.is_symlink():
                    tables.append(_folder_table(base, f"{namespace.name}.{folder.name}", files))
    return tables


def _subfolders(folder: Path) -> list[Path]:
    return [
        child
        for child in folder.iterdir()
        if child.is_dir() and not child.is_symlink() and not child.name.startswith(".")
    ]


def _folder_table(base: Path, table_name: str, files: list[Path]) -> ForeignTable:
    """One table from its data files' footers (columns: their union, by name)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = base.resolve()
    columns: dict[str, None] = {}
    rows = 0
    folder = files[0].parent.parent.resolve().relative_to(root).as_posix()
    try:
        for file in files:
            footer = pq.read_metadata(file)
            rows += footer.num_rows
            columns.update(dict.fromkeys(footer.schema.to_arrow_schema().names))
    except (pa.ArrowException, OSError) as error:
        return ForeignTable(table_name, role_of(table_name), folder, (), (), 0, problem=str(error))
    data_files = tuple(f.resolve().relative_to(root).as_posix() for f in files)
    return ForeignTable(table_name, role_of(table_name), folder, tuple(columns), data_files, rows)


def describe(tables: list[ForeignTable]) -> str:
    """``profiles.joined_profiles (1,234 rows), …`` for messages."""
    return ", ".join(f"{t.table_name} ({t.rows:,} rows)" for t in tables) or "no tables"
