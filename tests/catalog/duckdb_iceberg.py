"""DuckDB's own Iceberg reader, loaded offline, plus Arrow normalisation for comparisons.

DuckDB is an engine this project did not write: reading our tables back with its
``iceberg_scan`` proves they are plain, spec-following Iceberg. The ``iceberg`` and
``avro`` extensions come from the ``duckdb-extension-*`` wheels (dev group), never
from the network, so a missing or mismatched extension is an error, not a skip.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import duckdb
import pyarrow as pa

__all__ = [
    "ExtensionUnavailableError",
    "extension_file",
    "iceberg_connection",
    "local_path",
    "normalise",
    "query_arrow",
]

#: avro first: iceberg's LOAD would otherwise try to fetch avro from the network.
EXTENSIONS = ("avro", "iceberg")


class ExtensionUnavailableError(RuntimeError):
    """The DuckDB extension wheel is absent, has no file for this DuckDB, or will not LOAD."""


def extension_file(name: str) -> Path:
    """The ``<name>.duckdb_extension`` shipped by the ``duckdb-extension-<name>`` wheel."""
    package = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionUnavailableError(
            f"package {package!r} is not installed: the dev group must provide "
            f"duckdb-extension-{name}=={duckdb.__version__} (run `uv sync`)"
        )
    found: list[str] = []
    for root in spec.submodule_search_locations:
        found += glob.glob(os.path.join(root, "**", f"{name}.duckdb_extension"), recursive=True)
    if not found:
        raise ExtensionUnavailableError(f"{package} ships no {name}.duckdb_extension file")
    wanted = f"v{duckdb.__version__}"
    matching = [f for f in found if wanted in Path(f).parts]
    if not matching:
        raise ExtensionUnavailableError(
            f"{package} has no extension built for duckdb {duckdb.__version__} "
            f"(found {sorted(found)}); pin duckdb and duckdb-extension-{name} to one version"
        )
    return Path(sorted(matching)[0])


def iceberg_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with ``avro`` and ``iceberg`` loaded from local files only."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for name in EXTENSIONS:
        path = extension_file(name)
        try:
            con.execute(f"LOAD '{path.as_posix()}'")
        except duckdb.Error as exc:
            con.close()
            raise ExtensionUnavailableError(
                f"duckdb {duckdb.__version__} could not LOAD {path}: {exc}"
            ) from exc
    return con


def local_path(location: str) -> str:
    """A ``file://`` URI as a plain local path; other locations unchanged."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return location


def query_arrow(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> pa.Table:
    """Run ``sql`` and return a ``pa.Table`` (works on duckdb 1.5 and 2.x)."""
    return con.execute(sql, list(params or [])).to_arrow_table()


def _normal_type(type_: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(type_) or pa.types.is_string_view(type_):
        return pa.string()
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return pa.list_(_normal_type(type_.value_type))
    if pa.types.is_timestamp(type_) and type_.tz is not None:
        # DuckDB says "Etc/UTC", pyiceberg "UTC": one instant, two spellings
        return pa.timestamp(type_.unit, tz="UTC")
    return type_


def normalise(table: pa.Table) -> pa.Table:
    """Drop representation-only differences: string vs large_string, list vs
    large_list and the list element's name/nullability, the UTC zone's spelling,
    field nullability and metadata. Values are untouched."""
    schema = pa.schema([pa.field(f.name, _normal_type(f.type)) for f in table.schema])
    return table.cast(schema)
