"""DuckDB query helpers: filter metadata tables safely.

Identifiers are checked against the table's columns and quoted; values are always
bound as parameters, never formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from iceberg_bioimage.exceptions import ContractError, InvalidNameError
from iceberg_bioimage.models.filters import RowFilter, parse_filters
from iceberg_bioimage.tables.sql import connect, quote_identifier


def _check_columns(table: pa.Table, names: Iterable[str], label: str) -> None:
    unknown = [name for name in names if name not in table.column_names]
    if unknown:
        raise InvalidNameError(
            label,
            f"no column(s) {', '.join(map(repr, unknown))}; columns are "
            f"{', '.join(table.column_names[:20])}{' …' if table.num_columns > 20 else ''}",
        )


def _condition(item: RowFilter, params: list[Any]) -> str:
    column = quote_identifier(item.column)
    if item.op in ("is null", "is not null"):
        return f"{column} {item.op.upper()}"
    if item.op in ("in", "not in"):
        values = list(item.value)
        if not values:
            return "FALSE" if item.op == "in" else "TRUE"
        params.extend(values)
        marks = ", ".join("?" for _ in values)
        return f"{column} {'IN' if item.op == 'in' else 'NOT IN'} ({marks})"
    params.append(item.value)
    return f"{column} {'LIKE' if item.op == 'like' else item.op} ?"


def query_metadata_table(
    table: pa.Table,
    *,
    columns: Sequence[str] | None = None,
    filters: Iterable[Sequence[Any]] | None = None,
    label: str = "<table>",
) -> pa.Table:
    """Select ``columns`` of ``table`` where every ``(column, op, value)`` filter holds.

    Ops: ``= == != < <= > >= in not in like is null is not null``. Unknown columns
    raise :class:`InvalidNameError`; a value that cannot be compared with its column
    (``ObjectNumber < 'abc'``) raises :class:`ContractError`; both name ``label``.
    Values are bound as parameters.
    """
    import duckdb

    parsed = parse_filters(filters)
    _check_columns(table, list(columns or ()) + [f.column for f in parsed], label)
    params: list[Any] = []
    where = " AND ".join(_condition(f, params) for f in parsed) or "TRUE"
    selected = ", ".join(quote_identifier(c) for c in columns) if columns else "*"
    con = connect()
    con.register("metadata_table", table)
    query = f"SELECT {selected} FROM metadata_table WHERE {where}"
    try:
        return con.sql(query, params=params).to_arrow_table()
    except (duckdb.Error, OverflowError) as error:
        shown = "; ".join(_shown(f, table) for f in parsed)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ContractError(label, f"filter {shown} cannot be applied: {reason}") from None


def _shown(item: RowFilter, table: pa.Table) -> str:
    """``ObjectNumber (int64) < 'abc'`` for messages."""
    kind = table.schema.field(item.column).type
    value = "" if item.op in ("is null", "is not null") else f" {item.value!r}"
    return f"{item.column} ({kind}) {item.op}{value}"
