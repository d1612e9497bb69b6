"""Arrow schemas derived from the canonical column declarations."""

from __future__ import annotations

from functools import cache

import pyarrow as pa

from iceberg_bioimage.models.schemas import TABLES, Column, TableSchema

_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_type(column: Column) -> pa.DataType:
    """Arrow type of a canonical column (list elements are non-null)."""
    if column.type.startswith("list<"):
        element = _SCALARS[column.type[5:-1]]
        return pa.list_(pa.field("element", element, nullable=False))
    return _SCALARS[column.type]


@cache
def arrow_schema(table: str | TableSchema) -> pa.Schema:
    """Arrow schema of a canonical table, with Parquet field ids as metadata."""
    schema = TABLES[table] if isinstance(table, str) else table
    return pa.schema(
        [
            pa.field(
                column.name,
                arrow_type(column),
                nullable=not column.required,
                metadata={"PARQUET:field_id": str(column.field_id)},
            )
            for column in schema.columns
        ]
    )
