"""Field thumbnails read through the chunk index with the crop reader.

For each image, the array read is the lowest-resolution pyramid level whose longer
side still gives at least the thumbnail size (level 0 when no level does, or when
there is no pyramid). The whole array is one box for
:class:`~iceberg_bioimage.crops.reader.CropReader`, so every chunk it needs is
fetched and decoded once, absent chunks are reported, and every byte is counted.
The array is then reduced to ``(c, y, x)`` (maximum over z, first time point) and
block-averaged by the integer factor that brings its longer side to at most the
thumbnail size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from iceberg_bioimage.crops.boxes import Boxes
from iceberg_bioimage.crops.plan import ArrayLayout, ChunkSources
from iceberg_bioimage.crops.reader import CropReader, ImageRequest
from iceberg_bioimage.crops.run import _chunk_rows
from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.models.crops import ReadStats

#: Pixels per channel the percentiles are taken from (an even sample beyond that).
PERCENTILE_SAMPLE = 4_000_000
#: Colours of channels whose metadata names none (blue, green, red, magenta, cyan, yellow).
PALETTE = ("0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00")


@dataclass(frozen=True)
class Thumbnail:
    """One field's thumbnail: float pixels ``(c, h, w)`` before contrast, and its marks."""

    dataset_id: str
    image_id: str
    well_id: str | None
    site_id: str | None
    level: int
    pixels: np.ndarray
    absent: np.ndarray | None  # (h, w) bool: pixels from chunks that are not stored
    absent_chunks: int


@dataclass(frozen=True)
class ThumbnailSet:
    """Every field's thumbnail, the channels shown and what was read."""

    thumbnails: list[Thumbnail]
    channel_names: list[str]
    channel_colors: list[str]
    stats: ReadStats


def choose_level(layouts: Sequence[ArrayLayout], size: int) -> ArrayLayout:
    """The lowest-resolution level whose longer side is at least ``size`` (else level 0)."""
    ordered = sorted(layouts, key=lambda a: a.multiscale_level)
    chosen = ordered[0]
    for layout in ordered[1:]:
        if max(layout.width, layout.height) >= size:
            chosen = layout
    return chosen


def block_mean(plane: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` × ``factor`` blocks of the last two axes (partial edge blocks too)."""
    if factor <= 1:
        return plane.astype(np.float64)
    h, w = plane.shape[-2:]
    ys, xs = np.arange(0, h, factor), np.arange(0, w, factor)
    sums = np.add.reduceat(np.add.reduceat(plane.astype(np.float64), ys, axis=-2), xs, axis=-1)
    counts = np.outer(np.diff(np.r_[ys, h]), np.diff(np.r_[xs, w]))
    return sums / counts


def reduction_factor(height: int, width: int, size: int) -> int:
    """The integer factor that brings the longer side to at most ``size``."""
    return max(1, -(-max(height, width) // size))


def _to_cyx(block: np.ndarray, layout: ArrayLayout) -> np.ndarray:
    """Reduce a block along the layout's axes to ``(c, y, x)``: max over z, first t."""
    axes = layout.axes
    for name in reversed(axes):
        axis = axes.index(name)
        if name == "z":
            block = block.max(axis=axis)
        elif name not in "cyx":
            block = np.take(block, 0, axis=axis)
        axes = axes.replace(name, "") if name not in "cyx" else axes
    if "c" not in axes:
        block, axes = block[None], "c" + axes
    order = [axes.index(a) for a in "cyx"]
    return np.transpose(block, order)


def _absent_mask(layout: ArrayLayout, ids: np.ndarray, factor: int) -> np.ndarray | None:
    if len(ids) == 0:
        return None
    mask = np.zeros((layout.height, layout.width), dtype=bool)
    coords = np.unravel_index(ids, layout.grid)
    cy, cx = layout.chunks[layout.y_axis], layout.chunks[layout.x_axis]
    for y, x in zip(coords[layout.y_axis].tolist(), coords[layout.x_axis].tolist(), strict=True):
        mask[y * cy : (y + 1) * cy, x * cx : (x + 1) * cx] = True
    return block_mean(mask, factor) > 0


def _colors(layout: ArrayLayout, channels: np.ndarray) -> list[str]:
    colors: dict[int, str] = {}
    try:
        attrs = json.loads(layout.metadata_json or "{}")
    except ValueError:
        attrs = {}
    attrs = attrs.get("ome", attrs) if isinstance(attrs, dict) else {}
    omero = attrs.get("omero") if isinstance(attrs, dict) else None
    for index, channel in enumerate((omero or {}).get("channels") or []):
        color = str(channel.get("color") or "") if isinstance(channel, dict) else ""
        if len(color) == 6 and all(ch in "0123456789abcdefABCDEF" for ch in color):
            colors[index] = color.upper()
    return [colors.get(int(c), PALETTE[i % len(PALETTE)]) for i, c in enumerate(channels)]


def _layouts(image_assets: pa.Table) -> dict[str, list[ArrayLayout]]:
    """Each image's arrays (without their metadata documents: the geometry is enough)."""
    columns = [n for n in image_assets.column_names if n != "metadata_json"]
    out: dict[str, list[ArrayLayout]] = {}
    for row in image_assets.select(columns).to_pylist():
        out.setdefault(row["image_id"], []).append(ArrayLayout.from_row(row))
    return out


def _with_metadata(layout: ArrayLayout, image_assets: pa.Table) -> ArrayLayout:
    import dataclasses

    import pyarrow.compute as pc

    mask = pc.and_(
        pc.equal(image_assets["image_id"], layout.image_id),
        pc.equal(image_assets["array_path"], layout.array_path),
    )
    found = image_assets.filter(mask)["metadata_json"].to_pylist()
    return dataclasses.replace(layout, metadata_json=found[0] if found else None)


def read_thumbnails(
    image_assets: pa.Table,
    chunk_index: pa.Table,
    *,
    size: int,
    channels: Sequence[str | int] | None,
    storage_options: Mapping[str, Any] | None,
    label: str,
) -> ThumbnailSet:
    """Read one thumbnail per image of ``image_assets`` (see the module docstring)."""
    wells = {
        r["image_id"]: r
        for r in image_assets.select(["image_id", "well_id", "site_id"]).to_pylist()
    }
    chosen = [choose_level(layouts, size) for layouts in _layouts(image_assets).values()]
    rows = _chunk_rows(chunk_index, chosen)
    requests = []
    for layout in chosen:
        key = f"{layout.image_id}\x1f{layout.array_path}"
        if key not in rows:
            raise ContractError(
                label, f"chunk_index has no rows for {layout.image_id} array {layout.array_path!r}"
            )
        whole = Boxes(
            x_min=np.array([0]),
            x_max=np.array([layout.width]),
            y_min=np.array([0]),
            y_max=np.array([layout.height]),
            valid=np.array([True]),
        )
        sources = ChunkSources.from_rows(layout, rows[key])
        picked = layout.channel_indices(channels)
        requests.append(ImageRequest(layout, sources, whole, np.array([0]), picked))
    reader = CropReader(storage_options)
    thumbnails = []
    names: list[str] = []
    colors: list[str] = []
    for request, (block,) in reader.read(requests):
        layout = request.layout
        if not names:
            known = list(layout.channel_names or ())
            names = [known[i] if i < len(known) else str(i) for i in request.channels.tolist()]
            colors = _colors(_with_metadata(layout, image_assets), request.channels)
        factor = reduction_factor(layout.height, layout.width, size)
        pixels = block_mean(_to_cyx(block, layout), factor)
        absent_ids = reader.absent.get((layout.uri, layout.array_path), np.empty(0, np.int64))
        facts = wells.get(layout.image_id, {})
        thumbnails.append(
            Thumbnail(
                dataset_id=layout.dataset_id,
                image_id=layout.image_id,
                well_id=facts.get("well_id"),
                site_id=facts.get("site_id"),
                level=layout.multiscale_level,
                pixels=pixels,
                absent=_absent_mask(layout, absent_ids, factor),
                absent_chunks=len(absent_ids),
            )
        )
    return ThumbnailSet(thumbnails, names, colors, reader.stats)


def contrast_limits(
    thumbnails: Sequence[Thumbnail], percentiles: tuple[float, float]
) -> list[tuple[float, float]]:
    """Plate-wide ``(low, high)`` of each channel: the percentiles of its stored pixels.

    Pixels of absent chunks are left out; beyond :data:`PERCENTILE_SAMPLE` pixels, an
    evenly strided sample of them is used.
    """
    if not thumbnails:
        return []
    out = []
    for channel in range(thumbnails[0].pixels.shape[0]):
        values = np.concatenate(
            [
                t.pixels[channel][~t.absent].ravel()
                if t.absent is not None
                else t.pixels[channel].ravel()
                for t in thumbnails
            ]
        )
        if values.size > PERCENTILE_SAMPLE:  # an even, deterministic sample of the plate
            values = values[:: -(-values.size // PERCENTILE_SAMPLE)]
        if values.size == 0:
            out.append((0.0, 1.0))
            continue
        low, high = np.percentile(values, percentiles)
        out.append((float(low), float(high) if high > low else float(low) + 1.0))
    return out


def stretch(pixels: np.ndarray, limits: Sequence[tuple[float, float]]) -> np.ndarray:
    """``(c, h, w)`` values mapped to ``uint8`` by each channel's ``(low, high)``."""
    low = np.array([lo for lo, _ in limits])[:, None, None]
    high = np.array([hi for _, hi in limits])[:, None, None]
    scaled = (pixels - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
