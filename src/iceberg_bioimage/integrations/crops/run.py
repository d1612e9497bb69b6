"""From a table of objects (image_id, object_id, box columns) to their crops."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError, MissingDependencyError
from iceberg_bioimage.integrations.crops.boxes import BoxColumns, compute_boxes
from iceberg_bioimage.integrations.crops.fetch import ReadStats
from iceberg_bioimage.integrations.crops.plan import ArrayLayout, ChunkSources, level_factors
from iceberg_bioimage.integrations.crops.reader import CropReader, ImageRequest


@dataclass(frozen=True, kw_only=True)
class CropOptions:
    """What to cut: boxes, channels and pyramid level."""

    box_columns: BoxColumns
    channels: tuple[str | int, ...] | None = None
    level: int = 0


@dataclass(frozen=True)
class ImageCrops:
    """Crops of profile rows, in the order of the rows they come from.

    ``table`` has one row per crop: ``dataset_id``, ``image_id``, ``object_id``,
    ``source_bbox_*`` (at the level read, x/y max exclusive), ``multiscale_level``,
    ``axes``, ``channel_names`` and ``profile_row`` (the row of the input profiles).
    ``crops[i]`` is the pixel array of row ``i``, laid out along ``axes``.
    """

    table: pa.Table
    crops: list[np.ndarray]
    stats: ReadStats
    skipped: int = 0
    unmatched: int = 0
    warnings: tuple[str, ...] = field(default=())

    def to_xarray(self) -> list[Any]:
        """The crops as ``xarray.DataArray`` with the image's axes as dims.

        Raises :class:`MissingDependencyError` without xarray.
        """
        try:
            import xarray
        except ImportError:
            raise MissingDependencyError("crops as xarray", requirement="xarray") from None
        rows = self.table.to_pylist()
        out = []
        for row, crop in zip(rows, self.crops, strict=True):
            dims = list(row["axes"])
            coords: dict[str, Any] = {
                "y": np.arange(row["source_bbox_y_min"], row["source_bbox_y_max"]),
                "x": np.arange(row["source_bbox_x_min"], row["source_bbox_x_max"]),
            }
            if "c" in dims and row["channel_names"]:
                coords["c"] = row["channel_names"]
            attrs = {k: row[k] for k in ("dataset_id", "image_id", "object_id", "multiscale_level")}
            out.append(xarray.DataArray(crop, dims=dims, coords=coords, attrs=attrs))
        return out


def _arrays_by_image(image_assets: pa.Table) -> dict[tuple[str, int], ArrayLayout]:
    return {
        (row["image_id"], int(row["multiscale_level"] or 0)): ArrayLayout.from_row(row)
        for row in image_assets.to_pylist()
    }


def _chunk_rows(chunk_index: pa.Table, arrays: Sequence[ArrayLayout]) -> dict[str, pa.Table]:
    """``chunk_index`` rows of each array, keyed by ``image_id`` + array path."""
    if not arrays:
        return {}
    keys = pc.binary_join_element_wise(chunk_index["image_id"], chunk_index["array_path"], "\x1f")
    wanted = pa.array(sorted({f"{a.image_id}\x1f{a.array_path}" for a in arrays}))
    mask = pc.is_in(keys, value_set=wanted)
    rows = chunk_index.filter(mask)
    keys = keys.filter(mask)
    order = pc.sort_indices(keys)
    rows, keys = rows.take(order), keys.take(order)
    values = keys.to_numpy(zero_copy_only=False)
    if len(values) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    stops = np.r_[starts[1:], len(values)]
    return {str(values[s]): rows.slice(s, e - s) for s, e in zip(starts, stops, strict=True)}


def crop_objects(
    objects: pa.Table,
    image_assets: pa.Table,
    chunk_index: pa.Table,
    options: CropOptions,
    *,
    storage_options: Mapping[str, Any] | None = None,
    label: str = "<profiles>",
) -> ImageCrops:
    """Cut the box of every object with an image; see :class:`ImageCrops`."""
    boxes = compute_boxes(objects, options.box_columns)
    image_ids = objects["image_id"]
    unmatched = image_ids.null_count
    encoded = pc.dictionary_encode(pc.fill_null(image_ids, "")).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names = encoded.dictionary.to_pylist()
    arrays = _arrays_by_image(image_assets)
    requests, skipped, missing_level = [], 0, []
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
    levels = []
    for start, stop in itertools.pairwise(bounds if len(codes) else []):
        rows = order[start:stop]
        image_id = names[codes[rows[0]]]
        if not image_id:
            continue
        layout = arrays.get((image_id, options.level))
        base = arrays.get((image_id, 0))
        if layout is None or base is None:
            missing_level.append(image_id)
            continue
        fx, fy = level_factors(base, layout)
        level_boxes = boxes.take(rows).scaled(fx, fy).clipped(layout.width, layout.height)
        keep = level_boxes.valid
        skipped += int((~keep).sum())
        if not keep.any():
            continue
        levels.append(layout)
        requests.append((layout, level_boxes.take(np.flatnonzero(keep)), rows[keep]))
    if missing_level:
        raise ContractError(
            label,
            f"{len(missing_level)} images have no array at level {options.level} "
            f"(e.g. {missing_level[0]})",
        )
    chunk_rows = _chunk_rows(chunk_index, levels)
    image_requests = []
    for layout, level_boxes, rows in requests:
        key = f"{layout.image_id}\x1f{layout.array_path}"
        if key not in chunk_rows:
            raise ContractError(
                label, f"chunk_index has no rows for {layout.image_id} array {layout.array_path!r}"
            )
        sources = ChunkSources.from_rows(layout, chunk_rows[key])
        image_requests.append(
            ImageRequest(
                layout, sources, level_boxes, rows, layout.channel_indices(options.channels)
            )
        )
    reader = CropReader(storage_options)
    crops: dict[int, np.ndarray] = {}
    columns: dict[str, list[Any]] = {k: [] for k in _COLUMNS}
    for request, cut in reader.read(image_requests):
        layout, b = request.layout, request.boxes
        names_c = _channel_names(layout, request.channels)
        for i, row in enumerate(request.rows.tolist()):
            crops[row] = cut[i]
            columns["profile_row"].append(row)
            columns["image_id"].append(layout.image_id)
            columns["dataset_id"].append(layout.dataset_id)
            columns["source_bbox_x_min"].append(int(b.x_min[i]))
            columns["source_bbox_x_max"].append(int(b.x_max[i]))
            columns["source_bbox_y_min"].append(int(b.y_min[i]))
            columns["source_bbox_y_max"].append(int(b.y_max[i]))
            columns["multiscale_level"].append(layout.multiscale_level)
            columns["axes"].append(layout.axes)
            columns["channel_names"].append(names_c)
    table = pa.table(
        {
            k: pa.array(v, type=t)
            for (k, t), v in zip(_COLUMNS.items(), columns.values(), strict=True)
        }
    )
    table = table.take(pc.sort_indices(table["profile_row"]))
    object_col = objects["object_id"].take(table["profile_row"])
    table = table.add_column(2, "object_id", object_col)
    warnings = []
    if objects.num_rows == 0:
        warnings.append(f"{label}: no profile rows to crop (after filtering); nothing read")
    if skipped:
        warnings.append(f"{label}: {skipped} boxes are empty after clipping (or null); skipped")
    if unmatched:
        warnings.append(f"{label}: {unmatched} rows match no image; skipped")
    return ImageCrops(
        table=table,
        crops=[crops[r] for r in table["profile_row"].to_pylist()],
        stats=reader.stats,
        skipped=skipped,
        unmatched=unmatched,
        warnings=tuple(warnings),
    )


_COLUMNS = {
    "dataset_id": pa.string(),
    "image_id": pa.string(),
    "source_bbox_x_min": pa.int64(),
    "source_bbox_x_max": pa.int64(),
    "source_bbox_y_min": pa.int64(),
    "source_bbox_y_max": pa.int64(),
    "multiscale_level": pa.int32(),
    "axes": pa.string(),
    "channel_names": pa.list_(pa.string()),
    "profile_row": pa.int64(),
}


def _channel_names(layout: ArrayLayout, channels: np.ndarray) -> list[str]:
    names = list(layout.channel_names or ())
    return [names[i] if i < len(names) else str(i) for i in channels.tolist()]
