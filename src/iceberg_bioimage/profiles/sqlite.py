"""Read CellProfiler / cytominer-database SQLite files table by table, as Arrow.

DuckDB's ``sqlite_scanner`` reads the tables column-wise when it can be loaded
(the ``duckdb-extension-sqlite-scanner`` wheel matching the installed DuckDB, or an
extension DuckDB already installed); otherwise the standard library's ``sqlite3``
streams rows in batches (several times slower on wide tables). The file is opened
read-only and must be a regular file.
"""

from __future__ import annotations

import functools
import glob
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from iceberg_bioimage.exceptions import ContractError

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
SQLITE_MAGIC = b"SQLite format 3\x00"
_BATCH_ROWS = 65_536


def is_sqlite(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts with the SQLite header."""
    try:
        with path.open("rb") as handle:
            return path.is_file() and handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def table_names(path: Path) -> list[str]:
    """The user tables of the database, in the order SQLite lists them."""
    with _connect(path) as con:
        rows = con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    return [name for (name,) in rows]


def read_sqlite_table(path: Path, table: str) -> pa.Table:
    """Read one table whole (DuckDB's scanner when available, else ``sqlite3``)."""
    scanner = _duckdb_scanner()
    if scanner is not None:
        with scanner:
            try:  # execute() streams; a relation (con.sql) would materialise every column first
                result = scanner.execute(
                    "SELECT * FROM sqlite_scan(?, ?)", [os.fspath(path), table]
                )
                reader = (
                    result.to_arrow_reader(_BATCH_ROWS)
                    if hasattr(result, "to_arrow_reader")
                    else result.fetch_record_batch(_BATCH_ROWS)
                )
                return reader.read_all()
            except Exception as error:  # duckdb raises its own error hierarchy
                raise ContractError(f"{path}:{table}", f"cannot read the table: {error}") from error
    batches = list(_sqlite3_batches(path, table))
    if not batches:
        return pa.table({})
    return pa.Table.from_batches(batches)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ContractError(os.fspath(path), f"cannot open the SQLite file: {error}") from error


def _sqlite3_batches(path: Path, table: str) -> Iterator[pa.RecordBatch]:
    quoted = '"' + table.replace('"', '""') + '"'
    con = _connect(path)
    try:
        cursor = con.execute(f"SELECT * FROM {quoted}")  # a name from sqlite_master, quoted
        names = [d[0] for d in cursor.description]
        while rows := cursor.fetchmany(_BATCH_ROWS):
            columns = list(zip(*rows, strict=True))
            yield pa.record_batch([pa.array(c) for c in columns], names=names)
    except (sqlite3.Error, pa.ArrowException) as error:
        raise ContractError(f"{path}:{table}", f"cannot read the table: {error}") from error
    finally:
        con.close()


def _duckdb_scanner() -> Any:
    """A new DuckDB connection with ``sqlite_scanner`` loaded, or None when it cannot be."""
    try:
        import duckdb
    except ImportError:
        return None
    for load in _load_statements(duckdb.__version__):
        con = duckdb.connect(config={"autoinstall_known_extensions": False})
        try:
            con.execute(load)
        except duckdb.Error:
            con.close()
            continue
        return con
    return None


@functools.cache
def _load_statements(version: str) -> tuple[str, ...]:
    """``LOAD`` statements to try: the wheel's extension file for ``version``, then by name."""
    statements = []
    try:
        import duckdb_extension_sqlite_scanner as package
    except ImportError:
        package = None
    for root in getattr(package, "__path__", []):
        pattern = os.path.join(root, "extensions", f"v{version}", "sqlite_scanner.duckdb_extension")
        statements += [f"LOAD '{found}'" for found in glob.glob(pattern) if "'" not in found]
    return (*statements, "LOAD sqlite_scanner")
