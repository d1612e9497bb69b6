"""Stable object ids: ``<image_id>:<compartment>:<ObjectNumber>``.

CellProfiler numbers objects from 1 within each image and object type, so the image
id, the compartment (lower case) and the object number name one object everywhere:
``plate1:A/1/0:nuclei:17``. A table without a known compartment uses ``object``.
Columns that already hold ids (``object_id``, ``Metadata_object_id``) are kept.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

#: Columns whose values are already object ids, not object numbers.
ID_COLUMNS = ("object_id", "metadata_object_id")
UNKNOWN_COMPARTMENT = "object"


def is_object_number(column_name: str | None) -> bool:
    """Whether the resolved object column holds CellProfiler object numbers."""
    return column_name is not None and column_name.lower() not in ID_COLUMNS


def object_ids(
    image_ids: pa.ChunkedArray | pa.Array,
    numbers: pa.ChunkedArray | pa.Array,
    compartment: str | None,
) -> pa.ChunkedArray | pa.Array:
    """``<image_id>:<compartment>:<number>`` per row; null where either part is null."""
    prefix = f":{(compartment or UNKNOWN_COMPARTMENT).lower()}:"
    return pc.binary_join_element_wise(image_ids, pa.scalar(prefix), numbers, "")


def duplicate_count(ids: pa.ChunkedArray | pa.Array) -> int:
    """How many non-null ids repeat an earlier one."""
    present = pc.drop_null(ids)
    return len(present) - len(pc.unique(present))
