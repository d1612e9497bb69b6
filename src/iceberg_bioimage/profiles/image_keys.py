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


@dataclass(frozen=True)
class HopReport:
    """What a hop did: the columns it added and the object rows no image number matched."""

    added_columns: tuple[str, ...]
    unmatched_rows: int


def find_column(names: Sequence[str], candidates: Sequence[str]) -> str | None:
    """The first column whose name matches one of ``candidates`` (case-insensitive)."""
    lowered = {name.lower(): name for name in names}
    return next((lowered[c.lower()] for c in candidates if c.lower() in lowered), None)


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
    object_number = find_column(objects.column_names, IMAGE_NUMBER)
    image_number = find_column(image.column_names, IMAGE_NUMBER)
    if object_number is None:
        raise ContractError(
            label, "no ImageNumber (or Metadata_ImageNumber) column to reach images"
        )
    if image_number is None:
        raise ContractError(image_label, "the Image table has no ImageNumber column")
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
    on = [(object_number, image_number)]
    object_table = find_column(objects.column_names, TABLE_NUMBER)
    image_table = find_column(image.column_names, TABLE_NUMBER)
    if object_table is not None and image_table is not None:
        on.append((object_table, image_table))
    right = image_key_table(image, [i for _o, i in on], "__ib_key_")
    _check_unique(right, image_label)
    right = right.append_column(_ROW, pa.array(np.arange(image.num_rows, dtype=np.int64)))
    left = image_key_table(objects, [o for o, _i in on], "__ib_key_")
    left = left.append_column("__ib_left", pa.array(np.arange(objects.num_rows, dtype=np.int64)))
    matched = left.join(right, keys=list(left.column_names[:-1]), join_type="left outer")
    matched = matched.sort_by("__ib_left")
    rows = matched[_ROW]
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


def _check_unique(keys: pa.Table, image_label: str) -> None:
    counts = keys.group_by(keys.column_names).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    if repeated.num_rows:
        example = ", ".join(str(repeated[k][0].as_py()) for k in keys.column_names)
        raise ContractError(
            image_label,
            f"{repeated.num_rows} image numbers name several Image rows (e.g. {example}); "
            "each ImageNumber (+ TableNumber) must be one image",
        )
