"""Read canonical tables back from a catalog: listing, filters, time travel."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
    NotEqualTo,
    NotIn,
    NotNull,
    StartsWith,
)

from iceberg_bioimage.exceptions import FilterError, InvalidNameError, TableNotFoundError
from iceberg_bioimage.models.filters import RowFilter, parse_filters
from iceberg_bioimage.models.schemas import TABLES
from iceberg_bioimage.tables.schema import arrow_schema

_BINARY = {
    "=": EqualTo,
    "!=": NotEqualTo,
    "<": LessThan,
    "<=": LessThanOrEqual,
    ">": GreaterThan,
    ">=": GreaterThanOrEqual,
}


def _expression(item: RowFilter) -> BooleanExpression:
    if item.op in _BINARY:
        return _BINARY[item.op](item.column, item.value)
    if item.op == "in":
        return In(item.column, list(item.value))
    if item.op == "not in":
        return NotIn(item.column, list(item.value))
    if item.op == "is null":
        return IsNull(item.column)
    if item.op == "is not null":
        return NotNull(item.column)
    pattern = item.value
    prefix = pattern[:-1]
    if pattern.endswith("%") and not any(ch in prefix for ch in "%_"):
        return StartsWith(item.column, prefix)
    raise FilterError(
        "filters",
        f"filter ({item.column!r}, 'like', {pattern!r}): catalog reads support "
        "prefix patterns such as 'A/1%' only",
    )


def filter_expression(
    filters: BooleanExpression | Iterable[Sequence[Any]] | None,
) -> BooleanExpression:
    """Turn ``(column, op, value)`` tuples (or an expression) into one expression."""
    if filters is None:
        return AlwaysTrue()
    if isinstance(filters, BooleanExpression):
        return filters
    expression: BooleanExpression = AlwaysTrue()
    for item in parse_filters(filters):
        expression = And(expression, _expression(item))
    return expression


def list_tables(catalog: Catalog, namespace: tuple[str, ...]) -> list[str]:
    """Table names in a namespace (empty if the namespace does not exist)."""
    try:
        return sorted(ident[-1] for ident in catalog.list_tables(namespace))
    except NoSuchNamespaceError:
        return []


def load_table_arrow(
    catalog: Catalog,
    namespace: tuple[str, ...],
    table: str,
    *,
    columns: Sequence[str] | None = None,
    filters: BooleanExpression | Iterable[Sequence[Any]] | None = None,
    snapshot_id: int | None = None,
) -> pa.Table:
    """Read a table (optionally some columns, filtered, as of a snapshot) into Arrow."""
    dotted = ".".join((*namespace, table))
    try:
        iceberg_table = catalog.load_table((*namespace, table))
    except (NoSuchTableError, NoSuchNamespaceError) as error:
        raise TableNotFoundError(
            f"table {dotted}", "does not exist (check the catalog, namespace and table name)"
        ) from error
    known = {field.name for field in iceberg_table.schema().fields}
    unknown = [c for c in columns or () if c not in known]
    unknown += (
        [f[0] for f in filters if isinstance(f, list | tuple) and f[0] not in known]
        if (filters is not None and not isinstance(filters, BooleanExpression))
        else []
    )
    if unknown:
        raise InvalidNameError(f"table {dotted}", f"no column(s) {', '.join(map(repr, unknown))}")
    if snapshot_id is not None and iceberg_table.snapshot_by_id(snapshot_id) is None:
        raise TableNotFoundError(f"table {dotted}", f"has no snapshot {snapshot_id}")
    scan = iceberg_table.scan(
        row_filter=filter_expression(filters),
        selected_fields=tuple(columns) if columns else ("*",),
        snapshot_id=snapshot_id,
    )
    return canonical_types(scan.to_arrow(), table)


def canonical_types(data: pa.Table, table: str) -> pa.Table:
    """Give a canonical table read from Iceberg the same Arrow types a scan builds.

    pyiceberg reads strings and lists as ``large_string``/``large_list``; casting
    back lets catalog rows and freshly scanned rows be combined directly.
    """
    if table not in TABLES:
        return data
    canonical = arrow_schema(table)
    fields = [
        canonical.field(name) if name in canonical.names else data.schema.field(name)
        for name in data.column_names
    ]
    return data.cast(pa.schema(fields))


def load_named_table(
    catalog: str | Catalog,
    namespace: str,
    table: str,
    *,
    columns: Sequence[str] | None = None,
    filters: BooleanExpression | Iterable[Sequence[Any]] | None = None,
    snapshot_id: int | None = None,
) -> pa.Table:
    """:func:`load_table_arrow` of a catalog given by name (or object) and a dotted namespace."""
    from iceberg_bioimage.catalog.resolve import namespace_parts, resolve_catalog

    return load_table_arrow(
        resolve_catalog(catalog).catalog,
        namespace_parts(namespace),
        table,
        columns=columns,
        filters=filters,
        snapshot_id=snapshot_id,
    )
