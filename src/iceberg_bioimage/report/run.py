"""From a plate's image tables (and optional profiles, platemap, QC) to the report page."""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.models.keys import split_well_id
from iceberg_bioimage.models.options import ProfileOptions, ReportOptions
from iceberg_bioimage.report.cells import Cells, read_cells
from iceberg_bioimage.report.heatmaps import (
    Heatmap,
    cell_heatmaps,
    platemap_heatmaps,
    qc_heatmaps,
)
from iceberg_bioimage.report.html import render_page
from iceberg_bioimage.report.png import encode_png
from iceberg_bioimage.report.thumbnails import (
    ThumbnailSet,
    contrast_limits,
    read_thumbnails,
    stretch,
)

#: Threads encoding PNGs.
ENCODERS = 2


@dataclass
class PlateReport:
    """What the page shows, and the facts a result reports."""

    data: dict[str, Any]
    thumbnails: ThumbnailSet
    limits: list[tuple[float, float]]
    cells: Cells | None
    warnings: list[str] = field(default_factory=list)


def _b64(pixels: np.ndarray) -> str:
    return base64.b64encode(encode_png(pixels)).decode("ascii")


def _planes(pixels: np.ndarray, limits: Sequence[tuple[float, float]]) -> list[str]:
    return [_b64(plane) for plane in stretch(pixels, limits)]


def _row_index(letters: str) -> int:
    value = 0
    for ch in letters:
        value = value * 26 + (ord(ch) - 64)
    return value - 1


def _row_name(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def plate_grid(wells: Sequence[str]) -> tuple[list[str], list[int]]:
    """Rows ``A..`` and columns ``1..`` spanning every well named (A01 up to the last)."""
    rows, columns = [], []
    for well in wells:
        letters, digits = split_well_id(well)
        rows.append(_row_index(letters))
        columns.append(int(digits))
    if not rows:
        return [], []
    return [_row_name(i) for i in range(max(rows) + 1)], list(range(1, max(columns) + 1))


def _sort_site(site: str) -> tuple[int, Any]:
    return (0, int(site)) if site.isdigit() else (1, site)


def build_report(
    images: pa.Table,
    chunk_index: pa.Table,
    *,
    options: ReportOptions,
    profiles: Any = None,
    profile_options: ProfileOptions | None = None,
    profile_dataset_id: str | None = None,
    warehouse_root: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    label: str,
) -> PlateReport:
    """Read the thumbnails (and cells) and assemble the page's data."""
    images = images.filter(pc.invert(pc.is_null(images["well_id"])))
    if images.num_rows == 0:
        raise ContractError(label, "no image belongs to a well: a report needs a plate")
    thumbs = read_thumbnails(
        images,
        chunk_index,
        size=options.thumbnail_size,
        channels=options.channels,
        storage_options=storage_options,
        label=label,
    )
    limits = contrast_limits(thumbs.thumbnails, options.percentiles)
    warnings: list[str] = []
    cells = None
    if profiles is not None:
        cells = read_cells(
            images,
            chunk_index,
            profiles,
            options=profile_options or ProfileOptions(),
            profile_dataset_id=profile_dataset_id,
            features=options.features,
            max_features=options.max_features,
            per_well=options.cells_per_well,
            crop_size=options.crop_size,
            channels=options.channels,
            storage_options=storage_options,
        )
        warnings.extend(cells.warnings)
    heatmaps: list[Heatmap] = cell_heatmaps(cells) if cells is not None else []
    if warehouse_root is not None:
        qc, qc_warnings = qc_heatmaps(warehouse_root, cells, images)
        heatmaps.extend(qc)
        warnings.extend(qc_warnings)
    platemap = (profile_options or ProfileOptions()).platemap
    if platemap is not None:
        plates = sorted(v for v in pc.unique(images["plate_id"]).to_pylist() if v)
        plates += sorted(v for v in pc.unique(images["dataset_id"]).to_pylist() if v)
        found = platemap_heatmaps(platemap, plates)
        if not found:
            warnings.append(f"{platemap}: names none of the plates {plates}; no platemap heatmap")
        heatmaps.extend(found)

    wells: dict[str, dict[str, Any]] = {}
    sites: set[str] = set()
    with ThreadPoolExecutor(ENCODERS) as pool:  # zlib releases the GIL
        encoded = list(pool.map(lambda t: _planes(t.pixels, limits), thumbs.thumbnails))
    for thumb, planes in zip(thumbs.thumbnails, encoded, strict=True):
        well = wells.setdefault(str(thumb.well_id), {"fields": [], "cells": [], "cell_count": 0})
        site = str(thumb.site_id if thumb.site_id is not None else "0")
        sites.add(site)
        height, width = thumb.pixels.shape[1:]
        well["fields"].append(
            {
                "image_id": thumb.image_id,
                "site_id": site,
                "level": thumb.level,
                "width": int(width),
                "height": int(height),
                "planes": planes,
                "mask": _b64(thumb.absent.astype(np.uint8) * 255)
                if thumb.absent is not None
                else None,
                "absent_chunks": thumb.absent_chunks,
            }
        )
    ordered_sites = sorted(sites, key=_sort_site)
    for well in wells.values():
        well["fields"].sort(key=lambda f: _sort_site(f["site_id"]))
        own = {f["site_id"] for f in well["fields"]}
        well["missing_fields"] = [s for s in ordered_sites if s not in own]
    if cells is not None:
        _add_cells(wells, cells, limits)
    grid_wells = list(wells)
    for heatmap in heatmaps:
        if heatmap["group"] == "platemap":
            grid_wells.extend(w for w in heatmap["values"] if w)
    rows, columns = plate_grid(grid_wells)
    dataset_ids = sorted(v for v in pc.unique(images["dataset_id"]).to_pylist() if v)
    data = {
        "dataset_id": ", ".join(dataset_ids),
        "rows": rows,
        "columns": columns,
        "sites": ordered_sites,
        "channels": [
            {"name": name, "color": color, "low": low, "high": high}
            for name, color, (low, high) in zip(
                thumbs.channel_names, thumbs.channel_colors, limits, strict=True
            )
        ],
        "percentiles": list(options.percentiles),
        "wells": wells,
        "heatmaps": heatmaps,
        "features": cells.features if cells is not None else [],
    }
    return PlateReport(data, thumbs, limits, cells, warnings)


def _add_cells(
    wells: dict[str, dict[str, Any]], cells: Cells, limits: list[tuple[float, float]]
) -> None:
    values = {
        f: pc.cast(cells.objects[f], pa.float64()).to_numpy(zero_copy_only=False)
        for f in cells.features
    }
    object_ids = cells.objects["object_id"].to_pylist()
    image_ids = cells.objects["image_id"].to_pylist()
    site_of = {f["image_id"]: f["site_id"] for w in wells.values() for f in w["fields"]}
    for name, well in wells.items():
        well["cell_count"] = int((cells.wells == name).sum())
    for name, rows in cells.gallery.items():
        if name not in wells:
            continue
        for row in rows:
            crop = cells.crops.get(row)
            entry: dict[str, Any] = {
                "object_id": object_ids[row],
                "image_id": image_ids[row],
                "site_id": site_of.get(image_ids[row]),
                "values": [
                    float(values[f][row]) if np.isfinite(values[f][row]) else None
                    for f in cells.features
                ],
                "planes": None,
                "mask": None,
            }
            if crop is not None and crop.shape[1] and crop.shape[2]:
                entry.update(
                    planes=_planes(crop, limits),
                    width=int(crop.shape[2]),
                    height=int(crop.shape[1]),
                )
            wells[name]["cells"].append(entry)


def write_page(report: PlateReport, output: str | os.PathLike[str], *, title: str) -> int:
    """Write the page atomically (a temporary file renamed over ``output``); its size."""
    data = report.data
    fields = sum(len(w["fields"]) for w in data["wells"].values())
    subtitle = (
        f"{len(data['wells'])} wells · {fields} fields · channels "
        + ", ".join(c["name"] for c in data["channels"])
        + f" · contrast {data['percentiles'][0]}–{data['percentiles'][1]} percentile per channel"
    )
    text = render_page(
        data, title=title, subtitle=subtitle, footer="iceberg-bioimage plate report (offline page)"
    )
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    encoded = text.encode("utf-8")
    handle, temporary = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(encoded)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(encoded)


def thumbnails_table(report: PlateReport) -> pa.Table:
    """``images.thumbnails`` rows: each field's composite as an RGB PNG (RGBA with holes)."""
    colors = np.array(
        [[int(c["color"][i : i + 2], 16) / 255 for i in (0, 2, 4)] for c in report.data["channels"]]
    )
    names = [c["name"] for c in report.data["channels"]]
    columns: dict[str, list[Any]] = {
        k: []
        for k in (
            "dataset_id",
            "image_id",
            "well_id",
            "site_id",
            "level",
            "channels",
            "png",
            "width",
            "height",
        )
    }
    for thumb in report.thumbnails.thumbnails:
        gray = stretch(thumb.pixels, report.limits).astype(np.float64)
        rgb = np.clip(np.rint(np.einsum("chw,ck->hwk", gray, colors)), 0, 255).astype(np.uint8)
        if thumb.absent is not None:  # pixels of absent chunks are transparent, not black
            alpha = np.where(thumb.absent, 0, 255).astype(np.uint8)
            rgb = np.concatenate([rgb, alpha[..., None]], axis=-1)
        columns["dataset_id"].append(thumb.dataset_id)
        columns["image_id"].append(thumb.image_id)
        columns["well_id"].append(thumb.well_id)
        columns["site_id"].append(thumb.site_id)
        columns["level"].append(thumb.level)
        columns["channels"].append(names)
        columns["png"].append(encode_png(rgb))
        columns["height"].append(int(rgb.shape[0]))
        columns["width"].append(int(rgb.shape[1]))
    return pa.table(
        {
            "dataset_id": pa.array(columns["dataset_id"], pa.string()),
            "image_id": pa.array(columns["image_id"], pa.string()),
            "well_id": pa.array(columns["well_id"], pa.string()),
            "site_id": pa.array(columns["site_id"], pa.string()),
            "level": pa.array(columns["level"], pa.int32()),
            "channels": pa.array(columns["channels"], pa.list_(pa.string())),
            "png": pa.array(columns["png"], pa.binary()),
            "width": pa.array(columns["width"], pa.int32()),
            "height": pa.array(columns["height"], pa.int32()),
        }
    )
