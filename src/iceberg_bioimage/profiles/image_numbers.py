"""Two-hop keys: object rows reach their image's plate, well and site through the Image table.

CellProfiler object tables (``Nuclei.csv``, SQLite ``Nuclei``) carry only
``ImageNumber`` (cytominer-database adds ``TableNumber``; CytoTable renames both to
``Metadata_ImageNumber``/``Metadata_TableNumber``). The Image table of the same run
maps each image number to ``Metadata_Plate/Well/Site`` (``Image_Metadata_*`` in
SQLite). :func:`attach_image_keys` copies those key columns onto the object rows,
named without the ``Image_`` prefix (``Image_Metadata_Well`` → ``Metadata_Well``), so
the join contract resolves them like any other profile column. CellProfiler's own
columns are kept unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.profiles.contract import (
    AliasMap,
    _alias_candidates,
    _resolve_columns,
)

IMAGE_NUMBER = ("ImageNumber", "Metadata_ImageNumber")
TABLE_NUMBER = ("TableNumber", "Metadata_TableNumber")
#: Keys an Image table hands to its objects, most specific first.
HOPPED_KEYS = ("dataset_id", "image_id", "plate_id", "well_id", "site_id")
_ROW = "__ib_object_row"
_LEFT = "__ib_left"
#: Prefix of the shared key column names of :func:`image_key_table`.
KEY_PREFIX = "__ib_key_"


@dataclass(frozen=True)
class HopReport:
    """What a hop did: the columns it added and the object rows no image number matched."""

    added_columns: tuple[str, ...]
    unmatched_rows: int


def find_column(names: Sequence[str], candidates: Sequence[str]) -> str | None:
    """The first column whose name matches one of ``candidates`` (case-insensitive)."""
    lowered = {name.lower(): name for name in names}
    return next((lowered[c.lower()] for c in candidates if c.lower() in lowered), None)


def needs_keys(table: pa.Table, alias_map: AliasMap | None = None) -> bool:
    """Whether a table has neither a well nor an image key column."""
    resolved, _errors = _resolve_columns(table.column_names, _alias_candidates(alias_map))
    return "well_id" not in resolved and "image_id" not in resolved


def needs_image_table(table: pa.Table, alias_map: AliasMap | None = None) -> bool:
    """Whether object rows lack plate/well/image keys but carry an image number."""
    resolved, _errors = _resolve_columns(table.column_names, _alias_candidates(alias_map))
    has_keys = "well_id" in resolved or "image_id" in resolved
    return not has_keys and find_column(table.column_names, IMAGE_NUMBER) is not None


def attach_image_keys(
    objects: pa.Table,
    image: pa.Table,
    *,
    label: str,
    image_label: str,
    alias_map: AliasMap | None = None,
) -> tuple[pa.Table, HopReport]:
    """Copy the Image table's key columns onto ``objects`` by image (and table) number.

    Rows keep their count and order. ``TableNumber`` takes part when both tables
    carry it. Raises :class:`ContractError` naming the tables when either lacks an
    image number, the Image table has no plate/well/image key, or one image number
    names several Image rows.
    """
    object_keys, image_keys = key_columns(
        objects.column_names, image.column_names, label=label, image_label=image_label
    )
    resolved, errors = _resolve_columns(image.column_names, _alias_candidates(alias_map))
    if errors:
        raise ContractError(image_label, "; ".join(errors))
    copied = {resolved[key]: target_name(resolved[key]) for key in HOPPED_KEYS if key in resolved}
    if not ({"well_id", "image_id"} & resolved.keys()):
        raise ContractError(
            image_label,
            "the Image table has no well or image key (Image_Metadata_Well, Metadata_Well …)",
        )
    clashes = [target for target in copied.values() if target in objects.column_names]
    if clashes:
        raise ContractError(label, f"already has column(s) {', '.join(clashes)}")
    rows = image_rows_of(objects, object_keys, unique_key_table(image, image_keys, image_label))
    out = objects
    for source, target in copied.items():
        out = out.append_column(target, image[source].take(rows))
    return out, HopReport(added_columns=tuple(copied.values()), unmatched_rows=rows.null_count)


def target_name(column: str) -> str:
    """``Image_Metadata_Well`` → ``Metadata_Well``; other names unchanged."""
    return column[len("Image_") :] if column.lower().startswith("image_metadata_") else column


def image_key_table(table: pa.Table, columns: Sequence[str], prefix: str) -> pa.Table:
    """Key columns under shared names: image numbers as int64, table numbers as strings."""
    keys = {}
    for index, name in enumerate(columns):
        column = table[name]
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        target = pa.int64() if index == 0 else pa.string()
        try:
            keys[f"{prefix}{index}"] = column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise ContractError(name, f"cannot use {name!r} as an image key: {error}") from error
    return pa.table(keys)


def key_columns(
    object_names: Sequence[str], image_names: Sequence[str], *, label: str, image_label: str
) -> tuple[list[str], list[str]]:
    """The columns pairing object rows with Image rows: image number [+ table number].

    ``TableNumber`` takes part when both tables carry it. Raises
    :class:`ContractError` naming the table that lacks an image number.
    """
    object_number = find_column(object_names, IMAGE_NUMBER)
    image_number = find_column(image_names, IMAGE_NUMBER)
    if object_number is None:
        raise ContractError(
            label, "no ImageNumber (or Metadata_ImageNumber) column to reach images"
        )
    if image_number is None:
        raise ContractError(image_label, "the Image table has no ImageNumber column")
    object_keys, image_keys = [object_number], [image_number]
    object_table = find_column(object_names, TABLE_NUMBER)
    image_table = find_column(image_names, TABLE_NUMBER)
    if object_table is not None and image_table is not None:
        object_keys.append(object_table)
        image_keys.append(image_table)
    return object_keys, image_keys


def unique_key_table(image: pa.Table, image_keys: Sequence[str], image_label: str) -> pa.Table:
    """The Image table's key columns (:func:`image_key_table`), each key naming one row.

    Raises :class:`ContractError` when an image number names several Image rows.
    """
    keys = image_key_table(image, image_keys, KEY_PREFIX)
    counts = keys.group_by(keys.column_names).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    if repeated.num_rows:
        example = ", ".join(str(repeated[k][0].as_py()) for k in keys.column_names)
        raise ContractError(
            image_label,
            f"{repeated.num_rows} image numbers name several Image rows (e.g. {example}); "
            "each ImageNumber (+ TableNumber) must be one image",
        )
    return keys


def image_rows_of(objects: pa.Table, object_keys: Sequence[str], keys: pa.Table) -> pa.Array:
    """For each object row, in order, the index of its row in ``keys`` (null: none)."""
    left = image_key_table(objects, object_keys, KEY_PREFIX)
    left = left.append_column(_LEFT, pa.array(np.arange(objects.num_rows, dtype=np.int64)))
    right = keys.select([c for c in keys.column_names if c.startswith(KEY_PREFIX)])
    right = right.append_column(_ROW, pa.array(np.arange(keys.num_rows, dtype=np.int64)))
    matched = left.join(right, keys=list(left.column_names[:-1]), join_type="left outer")
    return matched.sort_by(_LEFT)[_ROW].combine_chunks()
