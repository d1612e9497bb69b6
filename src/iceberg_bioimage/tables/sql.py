"""A DuckDB connection and identifier quoting, shared by the join and the query helpers.

Values are always bound as parameters, never formatted into SQL. Works with duckdb
1.x and 2.x: ``con.sql(query, params=...).to_arrow_table()`` returns a ``pa.Table``
in both without the extra copy that DB-API cursors make in 2.x.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iceberg_bioimage.exceptions import MissingDependencyError

if TYPE_CHECKING:
    import duckdb


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection; a clear error if the extra is missing."""
    try:
        import duckdb
    except ImportError as error:
        raise MissingDependencyError("DuckDB helpers", "duckdb") from error
    return duckdb.connect()


def quote_identifier(name: str) -> str:
    """Quote a column name for SQL (double quotes, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'
