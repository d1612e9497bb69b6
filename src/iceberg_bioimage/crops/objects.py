"""Object identity of profile rows: ``object_id`` and the deterministic crop hashes.

``object_id`` is ``<image_id>:<compartment>:<ObjectNumber>`` with the compartment in
lower case (``plate1:A/1/0:nuclei:17``). ``Metadata_ObjectID`` hashes (dataset, image,
object); ``Metadata_ImageCropID`` hashes (dataset, image, object, box, level, channels).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.profiles.contract import resolve_object_column
from iceberg_bioimage.profiles.object_ids import is_object_number, resolve_compartment
from iceberg_bioimage.profiles.object_ids import object_ids as profile_object_ids

_NUMBER_COLUMNS = ("{}_Number_Object_Number", "{}_ObjectNumber")
_PLAIN_NUMBER_COLUMNS = ("ObjectNumber", "Number_Object_Number", "Metadata_ObjectNumber")


def object_number_column(names: Sequence[str], compartment: str | None, label: str) -> str:
    """The column holding CellProfiler's ``ObjectNumber``: the join's choice first.

    :func:`~iceberg_bioimage.profiles.contract.resolve_object_column` is what every
    join and export reads; the box compartment's ``<Compartment>_Number_Object_Number``
    is the fallback.
    """
    resolved = resolve_object_column(names)
    if resolved is not None and is_object_number(resolved):
        return resolved
    candidates = [p.format(compartment) for p in _NUMBER_COLUMNS] if compartment else []
    for name in (*candidates, *_PLAIN_NUMBER_COLUMNS):
        if name in names:
            return name
    raise ContractError(
        label,
        "no object number column (ObjectNumber, <Compartment>_Number_Object_Number) to build "
        "object_id from; add object_id, or the ObjectNumber column",
    )


def object_ids(
    table: pa.Table,
    compartment: str | None,
    label: str,
    *,
    image_ids: pa.ChunkedArray,
    box_compartment: str | None = None,
) -> pa.ChunkedArray:
    """``<image_id>:<compartment>:<ObjectNumber>`` for every row (null without an image).

    ``compartment`` is the source's name for the table (``None`` for a single table);
    the compartment written is :func:`~iceberg_bioimage.profiles.object_ids.resolve_compartment`'s,
    as every other command writes it.
    """
    name = object_number_column(table.column_names, compartment or box_compartment, label)
    column = table[name]
    if pa.types.is_floating(column.type):
        column = pc.cast(column, pa.int64())
    resolved = resolve_compartment(compartment, table.column_names, name)
    return profile_object_ids(image_ids, pc.cast(column, pa.string()), resolved)


def has_image_ids(table: pa.Table) -> bool:
    """Whether the rows already name their images (an ``image_id`` with values)."""
    return "image_id" in table.column_names and table["image_id"].null_count < table.num_rows


def dataset_ids_of(image_ids: pa.Array | pa.ChunkedArray) -> list[str]:
    """The distinct datasets of ``<dataset_id>:<path>`` image ids.

    Split at the last ``:``: a dataset id may hold ``:`` (any real name is legal),
    an image path does not.
    """
    parts = pc.list_element(pc.split_pattern(image_ids, ":", max_splits=1, reverse=True), 0)
    return sorted(v for v in pc.unique(parts).to_pylist() if v)


def identified(
    table: pa.Table, compartment: str | None, label: str, *, box_compartment: str | None = None
) -> pa.Table:
    """``table`` with ``dataset_id`` (from ``image_id``) and ``object_id`` when missing."""
    if "dataset_id" not in table.column_names:
        parts = pc.split_pattern(table["image_id"], ":", max_splits=1)
        table = table.append_column("dataset_id", pc.list_element(parts, 0))
    if "object_id" not in table.column_names:
        ids = object_ids(
            table,
            compartment,
            label,
            image_ids=table["image_id"],
            box_compartment=box_compartment,
        )
        table = table.append_column("object_id", ids)
    return table


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def metadata_object_ids(
    dataset_ids: Sequence[str], image_ids: Sequence[str], objects: Sequence[str]
) -> list[str]:
    """Deterministic ``Metadata_ObjectID`` of each (dataset, image, object)."""
    return [_digest(p) for p in zip(dataset_ids, image_ids, objects, strict=True)]


def image_crop_ids(table: pa.Table, level: int, channels: Sequence[str]) -> list[str]:
    """Deterministic ``Metadata_ImageCropID`` of each row of a crop table."""
    tail = [f"level={level}", "channels=" + ",".join(channels)]
    columns = [
        table[name].to_pylist()
        for name in (
            "dataset_id",
            "image_id",
            "object_id",
            "source_bbox_x_min",
            "source_bbox_x_max",
            "source_bbox_y_min",
            "source_bbox_y_max",
        )
    ]
    return [_digest([*(str(v) for v in row), *tail]) for row in zip(*columns, strict=True)]
