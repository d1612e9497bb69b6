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
import itertools
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from iceberg_bioimage.exceptions import ContractError

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
SQLITE_MAGIC = b"SQLite format 3\x00"
_BATCH_ROWS = 131_072


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


@dataclass(frozen=True)
class SqliteTable:
    """One table of a SQLite file, read batch by batch each time it is iterated.

    Large CellProfiler databases (a JUMP plate is several GiB) never sit in memory
    whole: :meth:`batches` streams them, and :func:`read_sqlite_table` collects
    small tables such as ``Image``.
    """

    path: Path
    name: str

    @property
    def label(self) -> str:
        """``<file>:<table>`` for messages."""
        return f"{self.path}:{self.name}"

    @functools.cached_property
    def num_rows(self) -> int:
        """Rows in the table (one ``count(*)``)."""
        with _connect(self.path) as con:
            return int(con.execute(f"SELECT count(*) FROM {_quoted(self.name)}").fetchone()[0])

    @functools.cached_property
    def schema(self) -> pa.Schema:
        """The Arrow schema the batches have (read from the first row)."""
        return self._reader(limit=1).read_all().schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows in table order, ``_BATCH_ROWS`` at a time."""
        yield from self._reader()

    def _reader(self, limit: int | None = None) -> pa.RecordBatchReader:
        return _batches(self.path, self.name, limit)


def read_sqlite_table(path: Path, table: str) -> pa.Table:
    """Read one table whole (DuckDB's scanner when available, else ``sqlite3``)."""
    return _batches(path, table).read_all()


def _quoted(name: str) -> str:
    """A table name from ``sqlite_master``, quoted as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _batches(path: Path, table: str, limit: int | None = None) -> pa.RecordBatchReader:
    """A reader of the table's rows (DuckDB's scanner when available, else ``sqlite3``)."""
    suffix = "" if limit is None else f" LIMIT {int(limit)}"
    scanner = _duckdb_scanner()
    if scanner is not None:
        try:  # execute() streams; a relation (con.sql) would materialise every column first
            result = scanner.execute(
                f"SELECT * FROM sqlite_scan(?, ?){suffix}", [os.fspath(path), table]
            )
            reader = (
                result.to_arrow_reader(_BATCH_ROWS)
                if hasattr(result, "to_arrow_reader")
                else result.fetch_record_batch(_BATCH_ROWS)
            )
        except Exception as error:  # duckdb raises its own error hierarchy
            raise ContractError(f"{path}:{table}", f"cannot read the table: {error}") from error
        return _closing(reader, scanner, f"{path}:{table}")
    return _sqlite3_reader(path, table, suffix)


def _closing(reader: pa.RecordBatchReader, con: Any, label: str) -> pa.RecordBatchReader:
    """``reader``, closing ``con`` once it is exhausted; read errors name the table.

    Columns SQLite stores without a declared type come back as BLOB; they hold
    text here (CellProfiler's metadata), so they are read as UTF-8 strings.
    """
    schema = pa.schema(
        [f.with_type(pa.string()) if pa.types.is_binary(f.type) else f for f in reader.schema]
    )

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in reader:
                yield batch if batch.schema == schema else _as_text(batch, schema, label)
        except ContractError:
            raise
        except Exception as error:  # duckdb raises its own error hierarchy
            raise ContractError(label, f"cannot read the table: {error}") from error
        finally:
            con.close()

    return pa.RecordBatchReader.from_batches(schema, batches())


def _as_text(batch: pa.RecordBatch, schema: pa.Schema, label: str) -> pa.RecordBatch:
    try:
        return batch.cast(schema)
    except pa.ArrowInvalid as error:
        raise ContractError(
            label, f"a column without a type holds non-UTF-8 bytes: {error}"
        ) from error


def _sqlite3_reader(path: Path, table: str, suffix: str) -> pa.RecordBatchReader:
    batches = _sqlite3_batches(path, table, suffix)
    first = next(batches, None)
    if first is None:
        return pa.RecordBatchReader.from_batches(pa.schema([]), iter(()))
    return pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))


def _connect(path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ContractError(os.fspath(path), f"cannot open the SQLite file: {error}") from error


def _sqlite3_batches(path: Path, table: str, suffix: str = "") -> Iterator[pa.RecordBatch]:
    con = _connect(path)
    try:
        cursor = con.execute(f"SELECT * FROM {_quoted(table)}{suffix}")
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
