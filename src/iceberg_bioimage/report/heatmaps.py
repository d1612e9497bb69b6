"""Per-well values drawn over the plate grid: cell counts, features, QC flags, platemaps."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.models.keys import normalize_well_id
from iceberg_bioimage.models.warehouse import MANIFEST_NAME, QC_PASS_COLUMNS
from iceberg_bioimage.report.cells import Cells

#: A heatmap: ``{"name", "group", "kind": "numeric"|"categorical", "values": {well: v}}``.
Heatmap = dict[str, Any]

_WELL_COLUMNS = ("well_id", "Metadata_Well", "Metadata_well_id", "Image_Metadata_Well")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def cell_heatmaps(cells: Cells) -> list[Heatmap]:
    """Cell count per well, then the mean of each feature per well."""
    wells = cells.wells
    names = sorted({w for w in wells.tolist() if w})
    counts = {w: int((wells == w).sum()) for w in names}
    out: list[Heatmap] = [
        {"name": "Cell count", "group": "cells", "kind": "numeric", "values": counts}
    ]
    for feature in cells.features:
        values = pc.cast(cells.objects[feature], pa.float64()).to_numpy(zero_copy_only=False)
        means = {}
        for well in names:
            picked = values[wells == well]
            picked = picked[np.isfinite(picked)]
            means[well] = float(picked.mean()) if picked.size else None
        out.append({"name": feature, "group": "feature", "kind": "numeric", "values": means})
    return out


def _is_flag(name: str, kind: pa.DataType) -> bool:
    lowered = name.lower()
    if lowered in {c.lower() for c in QC_PASS_COLUMNS}:
        return True
    return pa.types.is_boolean(kind) and (
        lowered.startswith(("cqc.", "metadata_cqc", "cqc_"))
        or "outlier" in lowered
        or "qc" in lowered
    )


def _row_wells(table: pa.Table, cells: Cells | None, images: pa.Table) -> np.ndarray | None:
    if "object_id" in table.column_names and cells is not None:
        by_object = dict(
            zip(cells.objects["object_id"].to_pylist(), cells.wells.tolist(), strict=True)
        )
        found = [by_object.get(o) for o in table["object_id"].to_pylist()]
        if any(found):
            return np.array(found, dtype=object)
    if "image_id" in table.column_names:
        by_image = dict(
            zip(images["image_id"].to_pylist(), images["well_id"].to_pylist(), strict=True)
        )
        return np.array([by_image.get(i) for i in table["image_id"].to_pylist()], dtype=object)
    for column in _WELL_COLUMNS:
        if column in table.column_names:
            return np.array(
                [normalize_well_id(str(w)) if w else None for w in table[column].to_pylist()],
                dtype=object,
            )
    return None


def qc_heatmaps(
    warehouse_root: str | os.PathLike[str], cells: Cells | None, images: pa.Table
) -> tuple[list[Heatmap], list[str]]:
    """For each QC flag of each ``quality_control`` table: the share of a well's rows flagged.

    ``qc_pass`` counts the rows that do *not* pass; other flags (coSMicQC's ``cqc.*``
    outlier columns) count the rows that are true.
    """
    from iceberg_bioimage.warehouse.write import load_manifest, read_table

    if not (Path(warehouse_root) / MANIFEST_NAME).is_file():
        return [], []
    manifest = load_manifest(warehouse_root)
    datasets = set(pc.unique(images["dataset_id"]).to_pylist())
    out: list[Heatmap] = []
    warnings: list[str] = []
    for entry in manifest.tables:
        if entry.role != "quality_control":
            continue
        table = read_table(warehouse_root, entry)
        if "dataset_id" in table.column_names:
            table = table.filter(pc.is_in(table["dataset_id"], pa.array(sorted(datasets))))
        wells = _row_wells(table, cells, images)
        if wells is None or table.num_rows == 0:
            warnings.append(f"{entry.table_name}: no rows of this plate's wells; no QC heatmap")
            continue
        for name in table.column_names:
            if not _is_flag(name, table.schema.field(name).type):
                continue
            flags = pc.fill_null(pc.cast(table[name], pa.bool_()), False).to_numpy(
                zero_copy_only=False
            )
            if name.lower() in {c.lower() for c in QC_PASS_COLUMNS}:
                flags = ~flags
                title = f"{entry.table_name}: failing {name}"
            else:
                title = f"{entry.table_name}: {name}"
            values = {}
            for well in sorted({w for w in wells.tolist() if w}):
                mine = flags[wells == well]
                values[well] = float(mine.mean()) if mine.size else None
            out.append({"name": title, "group": "qc", "kind": "numeric", "values": values})
    return out, warnings


def platemap_heatmaps(path: str | os.PathLike[str], plates: Sequence[str]) -> list[Heatmap]:
    """One categorical heatmap per platemap column (``Metadata_pert_type`` …)."""
    from iceberg_bioimage.profiles.platemap import read_platemap

    table = read_platemap(path)
    if "Metadata_Plate" in table.column_names:
        plates_in_map = set(table["Metadata_Plate"].to_pylist())
        mine = [p for p in plates if p in plates_in_map]
        if not mine:  # a barcode platemap of other plates says nothing about this one
            return []
        table = table.filter(pc.is_in(table["Metadata_Plate"], pa.array(mine)))
    wells = table["well_id"].to_pylist()
    out = []
    for name in table.column_names:
        if name in ("Metadata_Plate", "Metadata_well_position", "well_id"):
            continue
        column = table[name]
        numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        values = {
            w: (_finite(v) if numeric else (str(v) if v is not None else None))
            for w, v in zip(wells, column.to_pylist(), strict=True)
        }
        out.append(
            {
                "name": name,
                "group": "platemap",
                "kind": "numeric" if numeric else "categorical",
                "values": values,
            }
        )
    return out
