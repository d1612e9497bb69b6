"""Read a LoadData table, CSV or Parquet, in bounded batches of string columns.

CellProfiler writes LoadData tables as CSV; JUMP ships them as Parquet too. Both are
read here without ever holding the whole table: a CSV through :mod:`csv` over lines
read at most :attr:`Limits.max_line_bytes` at a time (a longer line is refused, so a
3 GiB file without a newline costs one bounded read), a Parquet file in batches through
:meth:`pyarrow.parquet.ParquetFile.iter_batches`. Only the columns the scan uses are
converted, each to strings. Rows are counted as they stream and refused past
:attr:`Limits.max_table_rows`. Every failure is a :class:`MetadataError` naming the
table: non-UTF-8 text, a short or long row, a line over the limit, a damaged file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.io.storage import Store
from iceberg_bioimage.models.limits import Limits

PARQUET_MAGIC = b"PAR1"
#: Rows per Parquet batch (a batch holds only the columns the scan uses).
PARQUET_BATCH_ROWS = 8192
#: Rows per CSV batch.
CSV_BATCH_ROWS = 8192
_BOM = "\ufeff"


@dataclass(frozen=True)
class TableBatch:
    """Consecutive rows of a LoadData table: ``columns`` name → values (``None``: null)."""

    first_row: int  # 1-based number of the batch's first data row
    num_rows: int
    columns: dict[str, list[str | None]]


def is_parquet(head: bytes) -> bool:
    """Whether a file starts like Parquet (its magic number)."""
    return head[:4] == PARQUET_MAGIC


def _short(error: BaseException) -> str:
    """The first line of an Arrow error, at most 200 characters."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def csv_header(store: Store, head: bytes, limits: Limits) -> list[str] | None:
    """The column names of a CSV's first line (``None``: not UTF-8 text or no line)."""
    if b"\n" not in head and len(head) < limits.max_line_bytes:
        head = store.read_ranges([("", 0, limits.max_line_bytes)])[0] or b""
    line, newline, _ = head.partition(b"\n")
    if not newline and len(head) >= limits.max_line_bytes:
        return None  # no line end within the limit: not a table we read
    try:
        text = line.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    try:
        return next(csv.reader([text.rstrip("\r")]), [])
    except csv.Error:
        return None


def parquet_columns(store: Store) -> list[str] | None:
    """The column names of a Parquet file (``None``: not a readable Parquet file)."""
    try:
        with store.open("") as handle:
            return list(pq.ParquetFile(handle).schema_arrow.names)
    except (pa.ArrowException, OSError, ValueError):
        return None


def iter_table(
    store: Store, columns: Sequence[str], *, parquet: bool, limits: Limits
) -> Iterator[TableBatch]:
    """The rows of the table ``store``, ``columns`` only, as strings, batch by batch."""
    handle = store.open("")
    try:
        batches = _parquet_batches if parquet else _csv_batches
        row = 1
        for num_rows, values in batches(store.uri, handle, columns, limits):
            if row - 1 + num_rows > limits.max_table_rows:
                raise MetadataError(
                    store.uri,
                    f"more than {limits.max_table_rows:,} rows: over the LoadData row limit "
                    "(ICEBERG_BIOIMAGE_MAX_TABLE_ROWS)",
                )
            yield TableBatch(first_row=row, num_rows=num_rows, columns=values)
            row += num_rows
    finally:
        handle.close()


Columns = dict[str, list[str | None]]


def _lines(uri: str, handle: BinaryIO, limits: Limits) -> Iterator[str]:
    """The lines of a UTF-8 text file, each at most ``max_line_bytes`` (else refused)."""
    limit = limits.max_line_bytes
    number = 0
    if not isinstance(handle, io.BufferedReader):  # fsspec files: readline() takes no size
        handle = io.BufferedReader(cast(Any, handle), buffer_size=2**16)
    while line := handle.readline(limit + 1):
        number += 1
        if len(line) > limit:
            raise MetadataError(
                f"{uri} line {number}",
                f"longer than {limit:,} bytes (ICEBERG_BIOIMAGE_MAX_LINE_BYTES); refused",
            )
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MetadataError(
                f"{uri} line {number}", f"not UTF-8 text (byte {error.start + 1} of the line)"
            ) from None
        yield text.removeprefix(_BOM) if number == 1 else text


def _csv_batches(
    uri: str, handle: BinaryIO, columns: Sequence[str], limits: Limits
) -> Iterator[tuple[int, Columns]]:
    """Rows of a CSV in batches, through :mod:`csv` over bounded lines."""
    previous = csv.field_size_limit(limits.max_line_bytes)
    reader = csv.reader(_lines(uri, handle, limits), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise MetadataError(uri, "empty: no header line")
        where = {name: header.index(name) for name in columns}
        width = len(header)
        values: Columns = {name: [] for name in columns}
        count = 0
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != width:
                raise MetadataError(
                    f"{uri} line {reader.line_num}",
                    f"{len(row)} fields where the header has {width}",
                )
            for name, index in where.items():
                values[name].append(row[index])
            count += 1
            if count == CSV_BATCH_ROWS:
                yield count, values
                values, count = {name: [] for name in columns}, 0
        if count:
            yield count, values
    except csv.Error as error:
        raise MetadataError(
            f"{uri} line {reader.line_num}", f"not a readable CSV row: {error}"
        ) from None
    finally:
        csv.field_size_limit(previous)


def _parquet_batches(
    uri: str, handle: BinaryIO, columns: Sequence[str], limits: Limits
) -> Iterator[tuple[int, Columns]]:
    try:
        parquet = pq.ParquetFile(handle, pre_buffer=False)
        meta = parquet.metadata
        if meta.num_rows > limits.max_table_rows:
            raise MetadataError(
                uri,
                f"{meta.num_rows:,} rows is over the LoadData row limit of "
                f"{limits.max_table_rows:,} (ICEBERG_BIOIMAGE_MAX_TABLE_ROWS)",
            )
        _check_row_groups(uri, meta, columns, limits)
        batches = parquet.iter_batches(
            batch_size=PARQUET_BATCH_ROWS, columns=list(columns), use_threads=False
        )
        for batch in batches:
            yield (
                batch.num_rows,
                {name: _as_strings(uri, batch.column(name), name).to_pylist() for name in columns},
            )
    except (pa.ArrowException, OSError) as error:
        raise MetadataError(uri, f"not a readable Parquet table: {_short(error)}") from None


def _check_row_groups(
    uri: str, meta: pq.FileMetaData, columns: Sequence[str], limits: Limits
) -> None:
    """Refuse a row group whose used columns would take more than the metadata limit."""
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    used = [i for i, name in enumerate(names) if name in set(columns)]
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        size = sum(row_group.column(i).total_uncompressed_size for i in used)
        if size > limits.max_metadata_bytes:
            raise MetadataError(
                uri,
                f"row group {group} holds {size:,} bytes of LoadData columns, over the "
                f"{limits.max_metadata_bytes:,}-byte limit (ICEBERG_BIOIMAGE_MAX_METADATA_BYTES)",
            )


def _as_strings(uri: str, column: pa.Array, name: str) -> pa.Array:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if pa.types.is_dictionary(column.type):
        return _as_strings(uri, column.dictionary_decode(), name)
    if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
        return pc.cast(column, pa.string())
    raise MetadataError(uri, f"column {name} holds {column.type} values, not text")
