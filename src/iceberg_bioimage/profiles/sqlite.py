"""Read CellProfiler / cytominer-database SQLite files table by table, as Arrow.

Nothing is ever written beside the file: ``sqlite3`` opens it with the URI
``file:PATH?mode=ro&immutable=1`` (no ``-shm``, ``-wal`` or journal, no locks), and
DuckDB's ``sqlite_scanner`` (much faster on wide tables, used when it can be loaded:
the ``duckdb-extension-sqlite-scanner`` wheel matching the installed DuckDB, or an
extension DuckDB already installed) reads only files in rollback-journal mode with no
``-wal`` or ``-journal`` beside them, since it cannot open a file immutable. Tables with
generated columns (computed on every read, e.g. 400 MB per row) are refused; the
``sqlite3`` connection's ``SQLITE_LIMIT_LENGTH`` is ``ICEBERG_BIOIMAGE_MAX_FIELD_BYTES``,
so a stored value or row larger than that is refused too.
DuckDB runs under ``SET memory_limit`` (``ICEBERG_BIOIMAGE_MAX_SQLITE_MEMORY``).

Each column's Arrow type is chosen once per table (see
:mod:`~iceberg_bioimage.profiles.sqlite_values`): text ``'nan'`` in a ``FLOAT``
column is read as NaN, and a ``TEXT`` column holding only numbers as numbers.
Every failure (not a database, damaged, locked, too large) is a
:class:`ContractError` naming the file (and table).
"""

from __future__ import annotations

import functools
import glob
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.models.limits import Limits
from iceberg_bioimage.profiles.sqlite_values import (
    NULL,
    TextCounts,
    column_as,
    is_identifier,
    text_column_type,
    value_kind,
)

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
SQLITE_MAGIC = b"SQLite format 3\x00"
_BATCH_ROWS = 131_072


def is_sqlite(path: Path) -> bool:
    """Whether ``path`` is a regular file that starts with the SQLite header."""
    if not path.is_file():  # never open a FIFO (it would block) or a device
        return False
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def table_names(path: Path) -> list[str]:
    """The user tables of the database, in the order SQLite lists them."""
    rows = _query(
        path,
        os.fspath(path),
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    return [name for (name,) in rows]


@dataclass(frozen=True)
class SqliteTable:
    """One table of a SQLite file, read batch by batch each time it is iterated.

    Large CellProfiler databases (a JUMP plate is several GiB) never sit in memory
    whole: :meth:`batches` streams them, and :func:`read_sqlite_table` collects
    small tables such as ``Image``. Text values read into numeric columns are
    counted; :meth:`text_warning` says how many.
    """

    path: Path
    name: str
    _counts: TextCounts = field(default_factory=TextCounts, compare=False, repr=False)

    @property
    def label(self) -> str:
        """``<file>:<table>`` for messages."""
        return f"{self.path}:{self.name}"

    @functools.cached_property
    def num_rows(self) -> int:
        """Rows in the table (one ``count(*)``)."""
        rows = _query(self.path, self.label, f"SELECT count(*) FROM {_quoted(self.name)}")
        return int(rows[0][0])

    @functools.cached_property
    def schema(self) -> pa.Schema:
        """The Arrow schema every batch has."""
        return _plan(self.path, self.name).schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows in table order, ``_BATCH_ROWS`` at a time (each pass recounts)."""
        self._counts.counts.clear()
        yield from _batches(self.path, self.name, self._counts)

    def text_warning(self) -> str | None:
        """How many text values were read into numeric columns so far, or None."""
        return self._counts.warning(self.label)


def read_sqlite_table(path: Path, table: str) -> pa.Table:
    """Read one table whole (DuckDB's scanner when it may, else ``sqlite3``)."""
    return _batches(path, table, TextCounts()).read_all()


def _quoted(name: str) -> str:
    """A table or column name, quoted as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Plan:
    """How a table is read: its Arrow schema and whether DuckDB may read it."""

    schema: pa.Schema
    duckdb: bool


def _plan(path: Path, table: str) -> _Plan:
    _refuse_pending_writes(path)
    stat = path.stat()
    return _cached_plan(path, path.resolve(), table, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _cached_plan(path: Path, _real: Path, table: str, _size: int, _mtime: int) -> _Plan:
    """The plan of ``path`` (named as the user named it; cached by its real path)."""
    label = f"{path}:{table}"
    info = _query(path, label, f"PRAGMA table_xinfo({_quoted(table)})")
    if not info:
        raise ContractError(label, "no such table")
    generated = [row[1] for row in info if row[6] in (2, 3)]
    if generated:  # computed on every read, without bound; CellProfiler never writes them
        raise ContractError(
            label,
            f"has generated column(s) {', '.join(map(repr, generated[:3]))}: computed when "
            "read, not stored data; refused",
        )
    use_duckdb = _rollback_mode(path) and _duckdb_scanner() is not None
    fields = _duckdb_schema(path, table) if use_duckdb else None
    if fields is None:
        use_duckdb = False
        fields = [pa.field(row[1], _declared_type(row[2])) for row in info]
    fields = [f.with_type(pa.string()) if pa.types.is_binary(f.type) else f for f in fields]
    candidates = [
        f.name for f in fields if pa.types.is_string(f.type) and not is_identifier(f.name)
    ]
    kinds = _column_kinds(path, label, table, candidates)
    fields = [
        f.with_type(text_column_type(kinds[f.name])) if f.name in kinds else f for f in fields
    ]
    return _Plan(pa.schema(fields), use_duckdb)


def _declared_type(declared: str) -> pa.DataType:
    """The Arrow type of a declared SQLite type, by SQLite's affinity rules."""
    upper = (declared or "").upper()
    if "INT" in upper:
        return pa.int64()
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")) or not upper or "BLOB" in upper:
        return pa.string()
    return pa.float64()  # REAL, FLOAT, DOUBLE, NUMERIC, DECIMAL...


def _rollback_mode(path: Path) -> bool:
    """Whether the header says rollback-journal mode (DuckDB reads it without side files)."""
    with path.open("rb") as handle:
        header = handle.read(20)
    return header[18:20] == b"\x01\x01"


def _refuse_pending_writes(path: Path) -> None:
    """Refuse a file with a non-empty ``-wal`` or ``-journal`` beside it.

    Read immutable, its committed rows in the WAL would be missed and a half-written
    transaction read as if whole; recovering it would write beside the input.
    """
    for suffix, what in (("-wal", "changes not yet checkpointed"), ("-journal", "a write "
                         "that was interrupted or is in progress")):  # fmt: skip
        side = Path(f"{path}{suffix}")
        if side.is_file() and side.stat().st_size:
            raise ContractError(
                os.fspath(path),
                f"{side.name} beside it holds {what}; refused (open the file once with "
                "sqlite3, or let the writer finish, then retry)",
            )


def _column_kinds(path: Path, label: str, table: str, names: list[str]) -> dict[str, int]:
    """The largest :func:`value_kind` of each named column, over every row (one pass)."""
    if not names:
        return {}
    columns = ", ".join(f"max(kind({_quoted(n)}))" for n in names)
    (row,) = _query(path, label, f"SELECT {columns} FROM {_quoted(table)}", kinds=True)
    return {n: (k or NULL) for n, k in zip(names, row, strict=True)}


def _batches(path: Path, table: str, counts: TextCounts) -> pa.RecordBatchReader:
    """A reader of the table's rows in the planned schema (DuckDB first when it may)."""
    plan = _plan(path, table)
    label = f"{path}:{table}"

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        if plan.duckdb:
            try:
                for batch in _duckdb_batches(path, table, label):
                    yield _conform(batch, plan.schema, label, counts)
                    done += batch.num_rows
                return
            except _TypeMismatch:  # text in a typed column: sqlite3 reads the rest
                pass
        yield from _sqlite3_batches(path, table, plan.schema, counts, offset=done)

    return pa.RecordBatchReader.from_batches(plan.schema, batches())


class _TypeMismatch(Exception):
    """DuckDB met a value whose type differs from its column's declared type."""


def _conform(
    batch: pa.RecordBatch, schema: pa.Schema, label: str, counts: TextCounts
) -> pa.RecordBatch:
    if batch.schema == schema:
        return batch
    try:
        columns = [
            column_as(column, f.type, f.name, counts)
            for column, f in zip(batch.columns, schema, strict=True)
        ]
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise ContractError(
            label, f"a column without a type holds non-UTF-8 bytes: {error}"
        ) from error
    return pa.record_batch(columns, schema=schema)


def _duckdb_schema(path: Path, table: str) -> list[pa.Field] | None:
    scanner = _duckdb_scanner()
    if scanner is None:
        return None
    try:
        result = scanner.execute(
            "SELECT * FROM sqlite_scan(?, ?) LIMIT 0", [os.fspath(path), table]
        )
        return list(result.arrow().schema)
    except Exception as error:  # duckdb raises its own error hierarchy
        raise ContractError(f"{path}:{table}", _reason(error)) from error
    finally:
        scanner.close()


def _duckdb_batches(path: Path, table: str, label: str) -> Iterator[pa.RecordBatch]:
    scanner = _duckdb_scanner()
    if scanner is None:  # the plan found it; it cannot vanish but in a broken install
        raise ContractError(label, "DuckDB's sqlite_scanner could not be loaded")
    try:  # execute() streams; a relation (con.sql) would materialise every column first
        result = scanner.execute("SELECT * FROM sqlite_scan(?, ?)", [os.fspath(path), table])
        reader = (
            result.to_arrow_reader(_BATCH_ROWS)
            if hasattr(result, "to_arrow_reader")
            else result.fetch_record_batch(_BATCH_ROWS)
        )
        yield from reader
    except Exception as error:  # duckdb raises its own error hierarchy
        if "Mismatch Type Error" in str(error):
            raise _TypeMismatch(str(error)) from error
        raise ContractError(label, _reason(error)) from error
    finally:
        scanner.close()


def _connect(path: Path, label: str) -> sqlite3.Connection:
    """An immutable read-only connection: no side files, no locks, values bounded."""
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as error:
        raise ContractError(label, _reason(error)) from error
    con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, Limits.from_env().max_field_bytes)
    return con


def _query(path: Path, label: str, sql: str, *, kinds: bool = False) -> list[Any]:
    con = _connect(path, label)
    try:
        if kinds:
            con.create_function("kind", 1, value_kind, deterministic=True)
        return con.execute(sql).fetchall()
    except sqlite3.Error as error:
        raise ContractError(label, _reason(error)) from error
    finally:
        con.close()


def _sqlite3_batches(
    path: Path, table: str, schema: pa.Schema, counts: TextCounts, offset: int = 0
) -> Iterator[pa.RecordBatch]:
    label = f"{path}:{table}"
    con = _connect(path, label)
    try:
        suffix = f" LIMIT -1 OFFSET {int(offset)}" if offset else ""
        cursor = con.execute(f"SELECT * FROM {_quoted(table)}{suffix}")
        while rows := cursor.fetchmany(_BATCH_ROWS):
            columns = list(zip(*rows, strict=True))
            arrays = [
                column_as(c, f.type, f.name, counts) for c, f in zip(columns, schema, strict=True)
            ]
            yield pa.record_batch(arrays, schema=schema)
    except sqlite3.Error as error:
        raise ContractError(label, _reason(error)) from error
    except (pa.ArrowException, UnicodeDecodeError) as error:
        raise ContractError(label, f"cannot read the table: {error}") from error
    finally:
        con.close()


def _reason(error: BaseException) -> str:
    """What went wrong, in words a user can act on."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    lowered = text.lower()
    if "not a database" in lowered:
        return f"not a SQLite database ({text})"
    if "malformed" in lowered or "disk i/o" in lowered:
        return f"the SQLite file is damaged or truncated ({text})"
    if "too big" in lowered or "out of memory" in lowered:
        limit = Limits.from_env().max_field_bytes
        return (
            f"a value or row is over the {limit:,}-byte limit "
            f"(ICEBERG_BIOIMAGE_MAX_FIELD_BYTES) or memory ran out: {text}"
        )
    if "locked" in lowered or "busy" in lowered:
        return f"the SQLite file is locked by another process ({text}); retry when it is done"
    return f"cannot read the SQLite file: {text}"


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
            con.execute(f"SET memory_limit = '{Limits.from_env().max_sqlite_memory}B'")
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
