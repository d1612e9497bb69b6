"""The report's cells: profile rows per well, their numeric features and their crops.

Profiles are joined to the store's images exactly as the crop export joins them (the
same ``image_id`` and ``object_id`` for every row), and the cells shown in a well's
gallery are cut by the crop reader through the chunk index.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.crops.boxes import BoxColumns, resolve_box_columns
from iceberg_bioimage.crops.objects import identified
from iceberg_bioimage.crops.plan import ArrayLayout
from iceberg_bioimage.crops.run import CropPlan, crop_objects
from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.models.options import ProfileOptions
from iceberg_bioimage.profiles.read_and_join import join_profile_source

#: Columns that identify rows rather than measure cells.
#: Compartment shown when a source has several and none is chosen (cells are counted).
_PREFERRED = ("cells", "nuclei", "cytoplasm")
_ID_COLUMNS = {"imagenumber", "objectnumber", "tablenumber", "parent_cells", "parent_nuclei"}


@dataclass
class Cells:
    """Profile rows with their wells, the features shown, and the gallery's crops."""

    objects: pa.Table  # image_id, object_id, well_id + features
    features: list[str]
    wells: np.ndarray  # well_id per object row (object dtype)
    gallery: dict[str, list[int]] = field(default_factory=dict)  # well → object rows shown
    crops: dict[int, np.ndarray] = field(default_factory=dict)  # object row → (c, h, w)
    warnings: list[str] = field(default_factory=list)


def numeric_features(table: pa.Table, wanted: Sequence[str] | None, limit: int) -> list[str]:
    """Numeric measurement columns: ``wanted`` (checked), else the first ``limit`` found."""
    if wanted is not None:
        missing = [name for name in wanted if name not in table.column_names]
        if missing:
            raise ContractError("<profiles>", f"no feature column {missing[0]!r}")
        return list(wanted)
    out = []
    for name in table.column_names:
        kind = table.schema.field(name).type
        if name.startswith("Metadata_") or name.lower() in _ID_COLUMNS:
            continue
        if (pa.types.is_integer(kind) or pa.types.is_floating(kind)) and not name.endswith("_id"):
            out.append(name)
    return out[:limit]


def _box_columns(
    names: Sequence[str], crop_size: int, compartment: str | None
) -> BoxColumns | None:
    for size in (None, crop_size):
        try:
            return resolve_box_columns(
                names, size=size, bbox_columns=None, compartment=compartment, label="<profiles>"
            )
        except ContractError:
            continue
    return None


def _joined(
    images: pa.Table,
    profiles: Any,
    options: ProfileOptions,
    profile_dataset_id: str | None,
    warnings: list[str],
) -> tuple[pa.Table, str | None, str]:
    """The profile rows joined to the images (one compartment), that compartment, a label."""
    label = os.fspath(profiles) if isinstance(profiles, str | os.PathLike) else "<profiles>"
    joined = join_profile_source(
        images,
        profiles,
        options=replace(options, platemap=None),
        profile_dataset_id=profile_dataset_id,
    )
    if not joined:
        raise ContractError(label, "no profile rows to show")
    by_name = {(j.compartment or "").lower(): j for j in joined}
    chosen = joined[0]
    if options.compartment is None and len(joined) > 1:
        chosen = next((by_name[c] for c in _PREFERRED if c in by_name), joined[0])
        warnings.append(
            f"{label}: compartments {sorted(by_name)}; showing {chosen.compartment} "
            "(--compartment chooses)"
        )
    rows = chosen.to_table()
    return rows, chosen.compartment, label


def _gallery(wells: np.ndarray, per_well: int) -> dict[str, list[int]]:
    """Up to ``per_well`` rows of each well, evenly spread over its rows."""
    out: dict[str, list[int]] = {}
    for well in sorted({w for w in wells.tolist() if w}):
        rows = np.flatnonzero(wells == well)
        if len(rows) > per_well:
            rows = rows[np.linspace(0, len(rows) - 1, per_well).round().astype(int)]
        out[well] = rows.tolist()
    return out


def read_cells(
    images: pa.Table,
    chunk_index: pa.Table,
    profiles: Any,
    *,
    options: ProfileOptions,
    profile_dataset_id: str | None,
    features: Sequence[str] | None,
    max_features: int,
    per_well: int,
    crop_size: int,
    channels: np.ndarray | Sequence[str | int] | None,
    storage_options: Mapping[str, Any] | None,
) -> Cells:
    """Join ``profiles`` to ``images``, pick the features and cut the gallery's crops."""
    warnings: list[str] = []
    table, joined_compartment, label = _joined(
        images, profiles, options, profile_dataset_id, warnings
    )
    boxes = _box_columns(table.column_names, crop_size, options.compartment)
    if boxes is None and joined_compartment:
        boxes = _box_columns(table.column_names, crop_size, joined_compartment)
    compartment = boxes.compartment if boxes is not None else joined_compartment
    if boxes is not None and "object_id" in table.column_names:
        # the crop export's identity: object_id from the compartment whose boxes are cut
        table = table.drop_columns(["object_id"])
    try:
        table = identified(table, compartment, label)
    except ContractError as error:
        warnings.append(f"{label}: cells shown without object_id ({error.problem})")
        ids = pa.array([f"row:{i}" for i in range(table.num_rows)])
        table = identified(table.append_column("object_id", ids), compartment, label)
    well_of = dict(zip(images["image_id"].to_pylist(), images["well_id"].to_pylist(), strict=True))
    wells = np.array([well_of.get(i) for i in table["image_id"].to_pylist()], dtype=object)
    unmatched = int(sum(w is None for w in wells.tolist()))
    if unmatched:
        warnings.append(f"{label}: {unmatched} profile rows match no image; not counted")
    chosen = numeric_features(table, features, max_features)
    cells = Cells(objects=table, features=chosen, wells=wells, warnings=warnings)
    cells.gallery = _gallery(wells, per_well)
    if boxes is None:
        warnings.append(f"{label}: no bounding-box or Location_Center columns; no cell crops")
        return cells
    shown = sorted(r for rows in cells.gallery.values() for r in rows)
    if shown:
        _cut(cells, shown, boxes, images, chunk_index, channels, storage_options, label)
    return cells


def _cut(
    cells: Cells,
    shown: list[int],
    boxes: BoxColumns,
    images: pa.Table,
    chunk_index: pa.Table,
    channels: np.ndarray | Sequence[str | int] | None,
    storage_options: Mapping[str, Any] | None,
    label: str,
) -> None:
    from iceberg_bioimage.report.thumbnails import _to_cyx

    picked = list(channels.tolist()) if isinstance(channels, np.ndarray) else channels
    plan = CropPlan(box_columns=boxes, channels=tuple(picked) if picked is not None else None)
    subset = cells.objects.take(pa.array(shown))
    subset = subset.append_column("_report_row", pa.array(shown, pa.int64()))
    crops = crop_objects(
        subset, images, chunk_index, plan, storage_options=storage_options, label=label
    )
    cells.warnings.extend(crops.warnings)
    rows = subset["_report_row"].to_numpy()
    layouts = {
        r["image_id"]: ArrayLayout.from_row(r)
        for r in images.filter(pc.equal(images["multiscale_level"], 0)).to_pylist()
    }
    for profile_row, image_id, crop in zip(
        crops.table["profile_row"].to_pylist(),
        crops.table["image_id"].to_pylist(),
        crops.crops,
        strict=True,
    ):
        cells.crops[int(rows[profile_row])] = _to_cyx(crop, layouts[image_id]).astype(np.float64)
