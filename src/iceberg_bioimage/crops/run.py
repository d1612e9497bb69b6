"""From a table of objects (image_id, object_id, box columns) to their crops."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.crops.boxes import BoxColumns, Boxes, compute_boxes
from iceberg_bioimage.crops.labels import KINDS, LabelSpec, label_arrays, pick_label
from iceberg_bioimage.crops.plan import ArrayLayout, ChunkSources, level_factors
from iceberg_bioimage.crops.reader import CropReader, ImageRequest
from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.models.crops import ImageCrops


@dataclass(frozen=True, kw_only=True)
class CropPlan:
    """What to cut: boxes, channels and pyramid level."""

    box_columns: BoxColumns
    channels: tuple[str | int, ...] | None = None
    level: int = 0
    whole_images: bool = False
    labels: LabelSpec | None = None


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


def _by_image(
    objects: pa.Table, boxes: Boxes, image_assets: pa.Table, options: CropPlan, label: str
) -> tuple[list[tuple[ArrayLayout, Boxes, np.ndarray]], int]:
    """Each image's array at the level, its clipped boxes and their rows; boxes skipped.

    With ``options.whole_images``, each image also gets a box covering it whole, on row
    ``-(k + 1)`` for the ``k``-th image (its chunks are then all read, each once).
    """
    encoded = pc.dictionary_encode(pc.fill_null(objects["image_id"], "")).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names = encoded.dictionary.to_pylist()
    arrays = _arrays_by_image(image_assets)
    out, skipped, missing = [], 0, []
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
    for start, stop in itertools.pairwise(bounds if len(codes) else []):
        rows = order[start:stop]
        image_id = names[codes[rows[0]]]
        if not image_id:
            continue
        layout = arrays.get((image_id, options.level))
        base = arrays.get((image_id, 0))
        if layout is None or base is None:
            missing.append(image_id)
            continue
        fx, fy = level_factors(base, layout)
        level_boxes = boxes.take(rows).scaled(fx, fy).clipped(layout.width, layout.height)
        keep = level_boxes.valid
        skipped += int((~keep).sum())
        if not keep.any():
            continue
        kept, rows = level_boxes.take(np.flatnonzero(keep)), rows[keep]
        if options.whole_images:
            kept = kept.with_box(0, layout.width, 0, layout.height)
            rows = np.r_[rows, -(len(out) + 1)]
        out.append((layout, kept, rows))
    if missing:
        raise ContractError(
            label,
            f"{len(missing)} images have no array at level {options.level} (e.g. {missing[0]})",
        )
    return out, skipped


def _requests(
    grouped: list[tuple[ArrayLayout, Boxes, np.ndarray]],
    chunk_index: pa.Table,
    options: CropPlan,
    label: str,
) -> list[ImageRequest]:
    chunk_rows = _chunk_rows(chunk_index, [layout for layout, _, _ in grouped])
    requests = []
    for layout, boxes, rows in grouped:
        key = f"{layout.image_id}\x1f{layout.array_path}"
        if key not in chunk_rows:
            raise ContractError(
                label, f"chunk_index has no rows for {layout.image_id} array {layout.array_path!r}"
            )
        sources = ChunkSources.from_rows(layout, chunk_rows[key])
        channels = layout.channel_indices(options.channels)
        requests.append(ImageRequest(layout, sources, boxes, rows, channels))
    return requests


Grouped = list[tuple[ArrayLayout, Boxes, np.ndarray]]


def _label_groups(
    grouped: Grouped, objects: pa.Table, image_assets: pa.Table
) -> list[tuple[ArrayLayout, Boxes, np.ndarray, str]]:
    """The label (and outline) arrays of each group's image, with the same object boxes."""
    arrays = label_arrays(image_assets)
    out = []
    for layout, boxes, rows in grouped:
        objects_only = np.flatnonzero(rows >= 0)
        if layout.image_id not in arrays or len(objects_only) == 0:
            continue
        compartment = _compartment(objects["object_id"][int(rows[objects_only[0]])].as_py())
        for kind in KINDS:
            found = pick_label(arrays[layout.image_id], compartment, kind, layout)
            if found is not None:
                out.append((found, boxes.take(objects_only), rows[objects_only], kind))
    return out


def _compartment(object_id: str | None) -> str:
    parts = str(object_id).rsplit(":", 2)
    return parts[-2].lower() if len(parts) == 3 else ""


def crop_objects(
    objects: pa.Table,
    image_assets: pa.Table,
    chunk_index: pa.Table,
    options: CropPlan,
    *,
    storage_options: Mapping[str, Any] | None = None,
    label: str = "<profiles>",
) -> ImageCrops:
    """Cut the box of every object with an image; see :class:`ImageCrops`."""
    boxes = compute_boxes(objects, options.box_columns)
    grouped, skipped = _by_image(objects, boxes, image_assets, options, label)
    requests = _requests(grouped, chunk_index, options, label)
    if options.labels is not None:
        labelled = _label_groups(grouped, objects, image_assets)
        requests += _label_requests(labelled, chunk_index, label)
    reader = CropReader(storage_options)
    crops: dict[int, np.ndarray] = {}
    segmentations: dict[str, dict[int, np.ndarray]] = {kind: {} for kind in KINDS}
    columns: dict[str, list[Any]] = {k: [] for k in _COLUMNS}
    whole: dict[str, list[Any]] = {k: [] for k in _SOURCE_COLUMNS}
    pixels = []
    for request, cut in reader.read(requests):
        layout, b = request.layout, request.boxes
        if request.kind != "image":
            planes = [_zyx(c, layout) for c in cut]
            segmentations[request.kind].update(zip(request.rows.tolist(), planes, strict=True))
            continue
        names_c = _channel_names(layout, request.channels)
        for i, row in enumerate(request.rows.tolist()):
            facts = {
                "dataset_id": layout.dataset_id,
                "image_id": layout.image_id,
                "multiscale_level": layout.multiscale_level,
                "axes": layout.axes,
                "channel_names": names_c,
            }
            if row < 0:
                pixels.append(cut[i])
                for key, value in facts.items():
                    whole[key].append(value)
                continue
            crops[row] = cut[i]
            facts.update(
                profile_row=row,
                source_bbox_x_min=int(b.x_min[i]),
                source_bbox_x_max=int(b.x_max[i]),
                source_bbox_y_min=int(b.y_min[i]),
                source_bbox_y_max=int(b.y_max[i]),
            )
            for key, value in facts.items():
                columns[key].append(value)
    table = _table(columns, _COLUMNS)
    table = table.take(pc.sort_indices(table["profile_row"]))
    table = table.add_column(2, "object_id", objects["object_id"].take(table["profile_row"]))
    unmatched = objects["image_id"].null_count
    warnings = []
    if objects.num_rows == 0:
        warnings.append(f"{label}: no profile rows to crop (after filtering); nothing read")
    if skipped:
        warnings.append(f"{label}: {skipped} boxes are empty after clipping (or null); skipped")
    if unmatched:
        warnings.append(f"{label}: {unmatched} rows match no image; skipped")
    order = table["profile_row"].to_pylist()
    found = {kind: [segmentations[kind].get(r) for r in order] for kind in KINDS}
    if options.labels is not None:
        missing = sum(1 for m in found["mask"] if m is None)
        if missing:
            warnings.append(f"{label}: {missing} crops have no label image; their mask is empty")
    return ImageCrops(
        table=table,
        crops=[crops[r] for r in order],
        labels=found["mask"] if options.labels is not None else None,
        outlines=found["outline"] if options.labels is not None else None,
        stats=reader.stats,
        skipped=skipped,
        unmatched=unmatched,
        warnings=tuple(warnings),
        source_images=_table(whole, _SOURCE_COLUMNS) if options.whole_images else None,
        source_pixels=tuple(pixels),
    )


def _zyx(cut: np.ndarray, layout: ArrayLayout) -> np.ndarray:
    """A label crop as ``(z, y, x)``: its other axes must have one element."""
    extra = [i for i, a in enumerate(layout.axes) if a not in "zyx"]
    if any(cut.shape[i] != 1 for i in extra):
        raise ContractError(
            f"{layout.uri} array {layout.array_path!r}",
            f"a label image has one plane per z; its axes {layout.axes!r} have shape {cut.shape}",
        )
    plane = cut[tuple(0 if i in extra else slice(None) for i in range(cut.ndim))]
    kept = "".join(a for a in layout.axes if a in "zyx")
    if "z" not in kept:
        plane, kept = plane[np.newaxis], "z" + kept
    return np.transpose(plane, [kept.index(a) for a in "zyx"])


def _label_requests(
    labelled: list[tuple[ArrayLayout, Boxes, np.ndarray, str]], chunk_index: pa.Table, label: str
) -> list[ImageRequest]:
    chunk_rows = _chunk_rows(chunk_index, [layout for layout, _, _, _ in labelled])
    out = []
    for layout, boxes, rows, kind in labelled:
        key = f"{layout.image_id}\x1f{layout.array_path}"
        if key not in chunk_rows:
            raise ContractError(
                label, f"chunk_index has no rows for label {layout.image_id} {layout.array_path!r}"
            )
        sources = ChunkSources.from_rows(layout, chunk_rows[key])
        out.append(ImageRequest(layout, sources, boxes, rows, layout.channel_indices(None), kind))
    return out


def _table(columns: dict[str, list[Any]], types: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({k: pa.array(columns[k], type=t) for k, t in types.items()})


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
_SOURCE_COLUMNS = {
    "dataset_id": pa.string(),
    "image_id": pa.string(),
    "multiscale_level": pa.int32(),
    "axes": pa.string(),
    "channel_names": pa.list_(pa.string()),
}


def _channel_names(layout: ArrayLayout, channels: np.ndarray) -> list[str]:
    names = list(layout.channel_names or ())
    return [names[i] if i < len(names) else str(i) for i in channels.tolist()]
