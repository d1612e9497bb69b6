"""Stable object ids: ``<image_id>:<compartment>:<ObjectNumber>``.

CellProfiler numbers objects from 1 within each image and object type, so the image
id, the compartment (lower case) and the object number name one object everywhere:
``plate1:A/1/0:nuclei:17``. :func:`resolve_compartment` is the one place the
compartment of a table's rows is decided, for every command (joins, exports, crops),
so that a crop's ``object_id`` is its profile row's. A table without a known
compartment uses ``object``. Columns that already hold ids (``object_id``,
``Metadata_object_id``) are kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

#: Columns whose values are already object ids, not object numbers.
ID_COLUMNS = ("object_id", "metadata_object_id")
UNKNOWN_COMPARTMENT = "object"
#: ``<Compartment>_Number_Object_Number`` or ``<Compartment>_ObjectNumber`` (after ``Metadata_``).
_NUMBER_PREFIX = re.compile(
    r"^(?:Metadata_)?(?P<compartment>[A-Za-z][A-Za-z0-9]*)_(?:Number_Object_Number|ObjectNumber)$",
    re.IGNORECASE,
)
#: A CellProfiler measurement of one compartment: ``Nuclei_AreaShape_Area``.
_MEASUREMENT = re.compile(
    r"^(?P<compartment>[A-Za-z][A-Za-z0-9]*)_(?:AreaShape|Location|Intensity|Texture|Granularity|"
    r"RadialDistribution|Correlation|Neighbors|Children|Parent|Number)_"
)
_NOT_COMPARTMENTS = {"metadata", "image"}


def resolve_compartment(
    compartment: str | None, column_names: Sequence[str], object_column: str | None
) -> str | None:
    """The compartment of a table's rows, lower case; ``None`` when nothing says.

    In order: the source's own name for the table (``Nuclei.csv``, the SQLite table,
    ``compartment=``); the prefix of its object number column
    (``Nuclei_Number_Object_Number``); the one compartment its measurement columns
    name (``Nuclei_AreaShape_*`` and no other). A table measuring several
    compartments (CytoTable's joined rows) has none.
    """
    if compartment:
        return compartment.lower()
    match = _NUMBER_PREFIX.match(object_column or "")
    if match and match["compartment"].lower() not in _NOT_COMPARTMENTS:
        return match["compartment"].lower()
    found = {
        m["compartment"].lower()
        for name in column_names
        if (m := _MEASUREMENT.match(name)) is not None
    } - _NOT_COMPARTMENTS
    return found.pop() if len(found) == 1 else None


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
