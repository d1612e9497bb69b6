"""Limits checked before anything is allocated, read or parsed without bound.

Every limit has a default that a real plate stays far below and can be moved
with an environment variable (documented in ``docs/safety.md``):

========================================  ==============================  =============
variable                                  limit                           default
========================================  ==============================  =============
``ICEBERG_BIOIMAGE_MAX_METADATA_BYTES``   size of one metadata document   64 MiB
``ICEBERG_BIOIMAGE_MAX_JSON_DEPTH``       nesting of one JSON document    64
``ICEBERG_BIOIMAGE_MAX_CHUNK_ROWS``       ``chunk_index`` rows per run    20,000,000
``ICEBERG_BIOIMAGE_MAX_TIFF_PAGES``       IFDs (pages) in one TIFF file   1,000,000
``ICEBERG_BIOIMAGE_MAX_FIELD_BYTES``      one value of a profile source   16 MiB
                                          (a SQLite value or row, a
                                          platemap line)
``ICEBERG_BIOIMAGE_MAX_PLATEMAP_BYTES``   one platemap file               64 MiB
``ICEBERG_BIOIMAGE_MAX_PLATEMAP_ROWS``    rows of one platemap file       1,000,000
``ICEBERG_BIOIMAGE_MAX_SQLITE_MEMORY``    DuckDB's ``memory_limit`` when  4 GiB
                                          it reads a SQLite file
``ICEBERG_BIOIMAGE_MAX_TABLE_ROWS``       rows of one LoadData table      200,000
``ICEBERG_BIOIMAGE_MAX_LINE_BYTES``       one line of a LoadData CSV      1 MiB
``ICEBERG_BIOIMAGE_MAX_VALUE_CHARS``      one key, path or file name      4,096
========================================  ==============================  =============

Profile sources: a CellProfiler SQLite row is a few KiB (600 floats) and a platemap
(1536 wells × 20 columns) a few hundred KiB, so the field, platemap and row limits stop
a hostile file (a 400 MB generated column, a 3 GiB line without a newline) at once.

A LoadData table (CSV or Parquet) is read in batches: a CSV in blocks of
``MAX_LINE_BYTES`` (a line longer than that is refused, so a 3 GiB file without a
newline costs one block), a Parquet file one row group's columns at a time. Rows are
counted as they stream and the table is refused at row ``MAX_TABLE_ROWS + 1``
(200,000 rows is about fourteen 1536-well plates with 9 fields; JUMP writes one
plate, 3,456 rows, per table).

Export and registration build and write ``chunk_index`` in record batches of 262,144
rows, so their memory does not grow with the row count; the chunk-row limit bounds the
work and output of one run instead (20,000,000 rows is about six 1536-well plates with 9
fields and 3 levels, ~1 minute). A store whose metadata claims more (a hostile 10^8-chunk
grid) is refused at once rather than streamed for minutes. Callers that ask for the whole
table in memory (``scan_result_as_arrow_table``) pay ~150 bytes a row.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from iceberg_bioimage.exceptions import MetadataError

#: Largest value an int64 column (shape, chunk count, byte count) can hold.
INT64_MAX = 2**63 - 1
#: Largest crop side (``--size N``) in pixels: boxes are clipped to the image, so no
#: larger crop exists, and box arithmetic stays far inside int64.
MAX_CROP_SIZE = 2**31 - 1
#: Largest box coordinate read from a profile table; a row beyond it has no box.
MAX_BOX_COORDINATE = 2**53

_ENV = {
    "max_metadata_bytes": "ICEBERG_BIOIMAGE_MAX_METADATA_BYTES",
    "max_json_depth": "ICEBERG_BIOIMAGE_MAX_JSON_DEPTH",
    "max_chunk_rows": "ICEBERG_BIOIMAGE_MAX_CHUNK_ROWS",
    "max_tiff_pages": "ICEBERG_BIOIMAGE_MAX_TIFF_PAGES",
    "max_field_bytes": "ICEBERG_BIOIMAGE_MAX_FIELD_BYTES",
    "max_platemap_bytes": "ICEBERG_BIOIMAGE_MAX_PLATEMAP_BYTES",
    "max_platemap_rows": "ICEBERG_BIOIMAGE_MAX_PLATEMAP_ROWS",
    "max_sqlite_memory": "ICEBERG_BIOIMAGE_MAX_SQLITE_MEMORY",
    "max_table_rows": "ICEBERG_BIOIMAGE_MAX_TABLE_ROWS",
    "max_line_bytes": "ICEBERG_BIOIMAGE_MAX_LINE_BYTES",
    "max_value_chars": "ICEBERG_BIOIMAGE_MAX_VALUE_CHARS",
}
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds on untrusted input (see the module docs for the variables)."""

    max_metadata_bytes: int = 64 * 2**20
    max_json_depth: int = 64
    max_chunk_rows: int = 20_000_000
    max_tiff_pages: int = 1_000_000
    max_field_bytes: int = 16 * 2**20
    max_platemap_bytes: int = 64 * 2**20
    max_platemap_rows: int = 1_000_000
    max_sqlite_memory: int = 4 * 2**30
    max_table_rows: int = 200_000
    max_line_bytes: int = 2**20
    max_value_chars: int = 4096

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults, overridden by ``ICEBERG_BIOIMAGE_MAX_*`` environment variables."""
        values: dict[str, int] = {}
        for field, variable in _ENV.items():
            text = os.environ.get(variable)
            if text is None:
                continue
            try:
                values[field] = int(text.replace("_", ""))
            except ValueError:
                raise MetadataError(variable, f"must be an integer, got {text!r}") from None
            if values[field] <= 0:
                raise MetadataError(variable, f"must be positive, got {text!r}")
        return cls(**values)


def json_depth(data: bytes) -> int:
    """Deepest nesting of arrays/objects in a JSON document (strings ignored)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", data)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def load_json(data: bytes, where: str, limits: Limits) -> Any:
    """Parse one metadata document within ``limits``; :class:`MetadataError` otherwise."""
    if len(data) > limits.max_metadata_bytes:
        raise MetadataError(
            where,
            f"{len(data):,} bytes is over the {limits.max_metadata_bytes:,}-byte metadata "
            "limit (ICEBERG_BIOIMAGE_MAX_METADATA_BYTES)",
        )
    opened = data.count(b"[") + data.count(b"{")
    if opened > limits.max_json_depth and json_depth(data) > limits.max_json_depth:
        raise MetadataError(
            where,
            f"JSON nested deeper than {limits.max_json_depth} levels "
            "(ICEBERG_BIOIMAGE_MAX_JSON_DEPTH)",
        )
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MetadataError(where, f"invalid JSON (truncated or corrupt?): {error}") from error
    except (RecursionError, ValueError) as error:
        raise MetadataError(where, f"JSON cannot be parsed: {error}") from error
    if b"\\ud" in data or b"\\uD" in data:  # only escapes can make a lone surrogate
        _check_surrogates(doc, where)
    return doc


def _check_surrogates(doc: Any, where: str) -> None:
    """Refuse strings holding a lone UTF-16 surrogate (JSON ``"\\ud800"``): not text."""
    if isinstance(doc, str):
        try:
            doc.encode("utf-8")
        except UnicodeEncodeError:
            raise MetadataError(
                where, f"invalid JSON: string {doc!r:.60} holds an unpaired UTF-16 surrogate"
            ) from None
    elif isinstance(doc, dict):
        for key, value in doc.items():
            _check_surrogates(key, where)
            _check_surrogates(value, where)
    elif isinstance(doc, list):
        for value in doc:
            _check_surrogates(value, where)


def check_chunk_rows(total: int, subject: str, limits: Limits | None = None) -> None:
    """Refuse to build a ``chunk_index`` of more than ``max_chunk_rows`` rows."""
    limit = (limits or Limits.from_env()).max_chunk_rows
    if total > limit:
        raise MetadataError(
            subject,
            f"{total:,} chunks is over the limit of {limit:,} chunk_index rows; catalogue the "
            "images without their chunks (export --no-chunks, or register without "
            "--publish-chunks) or raise ICEBERG_BIOIMAGE_MAX_CHUNK_ROWS",
        )
