"""Iceberg schema, partition spec and sort order derived from the canonical columns."""

from __future__ import annotations

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from iceberg_bioimage.models.schemas import Column, TableSchema

_SCALARS: dict[str, IcebergType] = {
    "string": StringType(),
    "int32": IntegerType(),
    "int64": LongType(),
    "double": DoubleType(),
    "boolean": BooleanType(),
    "timestamp": TimestamptzType(),
}

_ELEMENT_ID_OFFSET = 500
_PARTITION_FIELD_ID = 1000


def iceberg_type(column: Column) -> IcebergType:
    """Iceberg type of a canonical column (list elements required)."""
    if column.type.startswith("list<"):
        return ListType(
            element_id=_ELEMENT_ID_OFFSET + column.field_id,
            element_type=_SCALARS[column.type[5:-1]],
            element_required=True,
        )
    return _SCALARS[column.type]


def iceberg_schema(table: TableSchema) -> Schema:
    """The Iceberg schema of a canonical table, with stable field ids."""
    return Schema(
        *[
            NestedField(
                field_id=column.field_id,
                name=column.name,
                field_type=iceberg_type(column),
                required=column.required,
                doc=column.doc,
            )
            for column in table.columns
        ]
    )


def partition_spec(table: TableSchema) -> PartitionSpec:
    """identity(partition column), by default ``dataset_id``."""
    source = next(c for c in table.columns if c.name == table.partition_column)
    return PartitionSpec(
        PartitionField(
            source_id=source.field_id,
            field_id=_PARTITION_FIELD_ID,
            transform=IdentityTransform(),
            name=table.partition_column,
        )
    )


def sort_order(table: TableSchema) -> SortOrder:
    """Sort by the table's sort columns (``image_id, array_path``)."""
    ids = {c.name: c.field_id for c in table.columns}
    return SortOrder(
        *[
            SortField(source_id=ids[name], transform=IdentityTransform())
            for name in table.sort_columns
        ]
    )
