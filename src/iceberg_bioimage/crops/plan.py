"""The read plan: which chunks of an array the boxes touch, and where each is stored.

An array's geometry (:class:`ArrayLayout`) comes from its ``image_assets`` row; where each
chunk lives (:class:`ChunkSources`) from its ``chunk_index`` rows. Chunk sets are computed
column-wise with numpy: a chunk is named by its linear id in the array's chunk grid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from iceberg_bioimage.crops.boxes import Boxes
from iceberg_bioimage.exceptions import ContractError, MetadataError


@dataclass(frozen=True, kw_only=True)
class ArrayLayout:
    """Geometry of one stored array (one image at one pyramid level)."""

    dataset_id: str
    image_id: str
    array_path: str
    uri: str
    storage_variant: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    sharded: bool
    dtype: np.dtype
    axes: str
    channel_names: tuple[str, ...] | None
    multiscale_level: int
    metadata_json: str | None
    #: Per-plane layouts of a file-set image whose files differ (else ``None``).
    planes: PlaneGrid | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ArrayLayout:
        """Build from an ``image_assets`` row (as a Python dict)."""
        axes = (row.get("axes") or "").lower()
        where = f"{row['uri']} array {row['array_path']!r}"
        if "y" not in axes or "x" not in axes or len(axes) != len(row["shape"]):
            raise MetadataError(where, f"axes {axes!r} do not name y and x of shape {row['shape']}")
        return cls(
            dataset_id=row["dataset_id"],
            image_id=row["image_id"],
            array_path=row["array_path"],
            uri=row["uri"],
            storage_variant=row["storage_variant"],
            shape=tuple(int(v) for v in row["shape"]),
            chunks=tuple(int(v) for v in row["chunks"]),
            sharded=row.get("shards") is not None,
            dtype=np.dtype(row["dtype"]),
            axes=axes,
            channel_names=tuple(row["channel_names"]) if row.get("channel_names") else None,
            multiscale_level=int(row.get("multiscale_level") or 0),
            metadata_json=row.get("metadata_json"),
            planes=PlaneGrid.from_row(row, where),
        )

    @property
    def y_axis(self) -> int:
        """Index of the y dimension."""
        return self.axes.index("y")

    @property
    def x_axis(self) -> int:
        """Index of the x dimension."""
        return self.axes.index("x")

    @property
    def c_axis(self) -> int | None:
        """Index of the channel dimension, if any."""
        return self.axes.index("c") if "c" in self.axes else None

    @property
    def grid(self) -> tuple[int, ...]:
        """Number of chunks along each dimension."""
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))

    @property
    def is_tiff(self) -> bool:
        """Whether chunks are TIFF strips or tiles."""
        return self.storage_variant not in ("zarr-v2", "zarr-v3")

    @property
    def chunk_total(self) -> int:
        """Number of chunks of the array."""
        return self.planes.total if self.planes is not None else math.prod(self.grid)

    def chunk_region(self, chunk_id: int) -> tuple[slice, ...]:
        """The region of the array that chunk ``chunk_id`` covers (clipped to the shape)."""
        if self.planes is not None:
            return self.planes.region(chunk_id, self.shape)
        coords = np.unravel_index(chunk_id, self.grid)
        return tuple(
            slice(int(c) * k, min(int(c) * k + k, s))
            for c, k, s in zip(coords, self.chunks, self.shape, strict=True)
        )

    @property
    def height(self) -> int:
        """Size along y."""
        return self.shape[self.y_axis]

    @property
    def width(self) -> int:
        """Size along x."""
        return self.shape[self.x_axis]

    def channel_indices(self, channels: Sequence[str | int] | None) -> np.ndarray:
        """Indices of ``channels`` (names or indices) along c; every channel when ``None``."""
        count = self.shape[self.c_axis] if self.c_axis is not None else 1
        if channels is None:
            return np.arange(count, dtype=np.int64)
        names = list(self.channel_names or ())
        out = []
        for channel in channels:
            if isinstance(channel, str) and channel in names:
                out.append(names.index(channel))
            elif isinstance(channel, int) or (isinstance(channel, str) and channel.isdigit()):
                index = int(channel)
                if not 0 <= index < count:
                    raise ContractError(
                        self.image_id, f"channel index {index} not in 0..{count - 1}"
                    )
                out.append(index)
            else:
                raise ContractError(
                    self.image_id, f"no channel named {channel!r}; channels are {names or count}"
                )
        return np.asarray(out, dtype=np.int64)


def _ngff_scale(layout: ArrayLayout) -> list[float] | None:
    """The NGFF ``scale`` of this array's multiscales dataset, if the metadata has one."""
    if not layout.metadata_json:
        return None
    try:
        attrs = json.loads(layout.metadata_json)
    except ValueError:
        return None
    attrs = attrs.get("ome", attrs) if isinstance(attrs, dict) else {}
    for multiscale in attrs.get("multiscales") or []:
        for dataset in multiscale.get("datasets") or []:
            path = str(dataset.get("path", ""))
            if layout.array_path == path or layout.array_path.endswith(f"/{path}"):
                for transform in dataset.get("coordinateTransformations") or []:
                    if transform.get("type") == "scale":
                        return [float(v) for v in transform.get("scale", [])]
    return None


def level_factors(base: ArrayLayout, level: ArrayLayout) -> tuple[float, float]:
    """How many level-0 pixels one pixel of ``level`` spans, along x and y.

    From the NGFF coordinate transformations when both arrays have one, else from
    the shapes (TIFF pyramids).
    """
    if base.array_path == level.array_path:
        return 1.0, 1.0
    scale0, scale = _ngff_scale(base), _ngff_scale(level)
    if scale0 and scale and len(scale0) == len(scale) == len(base.axes):
        return (
            scale[level.x_axis] / scale0[base.x_axis],
            scale[level.y_axis] / scale0[base.y_axis],
        )
    return base.width / level.width, base.height / level.height


def box_chunk_ranges(layout: ArrayLayout, boxes: Boxes) -> tuple[np.ndarray, ...]:
    """First and last (inclusive) chunk row/column of each box: ``y0, y1, x0, x1``."""
    cy, cx = layout.chunks[layout.y_axis], layout.chunks[layout.x_axis]
    return (boxes.y_min // cy, (boxes.y_max - 1) // cy, boxes.x_min // cx, (boxes.x_max - 1) // cx)


@dataclass(frozen=True)
class PlaneGrid:
    """Chunk ids of an image whose planes (files) keep their own strip/tile layouts.

    A file-set image's ``metadata_json`` lists each plane's file, chunk shape and
    codec (``planes``) when its files differ. Planes are the row-major positions of
    the dimensions before y and x; the chunks of plane ``p`` have the ids
    ``base[p] + row * nx[p] + column``, which is their order in ``chunk_index``.
    (When every plane has one layout, these are the row-major ids of the grid.)
    """

    lead: tuple[int, ...]
    files: tuple[str | None, ...]
    codecs: tuple[str | None, ...]
    cy: np.ndarray
    cx: np.ndarray
    ny: np.ndarray
    nx: np.ndarray
    base: np.ndarray

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str) -> PlaneGrid | None:
        """From an ``image_assets`` row; ``None`` unless its metadata lists planes."""
        if row.get("storage_variant") != "tiff-files" or not row.get("metadata_json"):
            return None
        try:
            planes = json.loads(row["metadata_json"]).get("planes")
        except (ValueError, AttributeError):
            return None
        if planes is None:
            return None
        shape = tuple(int(v) for v in row["shape"])
        lead, (height, width) = shape[:-2], shape[-2:]
        chunks = tuple(int(v) for v in row["chunks"][-2:])
        if not isinstance(planes, list) or len(planes) != math.prod(lead):
            raise MetadataError(where, f"metadata_json planes do not match the shape {shape}")
        try:
            sizes = np.array(
                [p["chunks"] if p is not None else chunks for p in planes], dtype=np.int64
            ).reshape(-1, 2)
        except (KeyError, TypeError, ValueError) as error:
            raise MetadataError(where, f"metadata_json planes are malformed: {error}") from None
        if (sizes <= 0).any():
            raise MetadataError(where, "metadata_json planes hold a chunk size <= 0")
        ny, nx = -(-height // sizes[:, 0]), -(-width // sizes[:, 1])
        counts = ny * nx
        return cls(
            lead=lead,
            files=tuple(p.get("file") if isinstance(p, dict) else None for p in planes),
            codecs=tuple(p.get("codec") if isinstance(p, dict) else None for p in planes),
            cy=sizes[:, 0],
            cx=sizes[:, 1],
            ny=ny,
            nx=nx,
            base=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
        )

    @property
    def total(self) -> int:
        """Number of chunks over every plane."""
        return int((self.ny * self.nx).sum())

    def locate(self, chunk_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(plane, row, column)`` of each chunk id."""
        ids = np.asarray(chunk_ids, dtype=np.int64)
        plane = np.searchsorted(self.base, ids, side="right") - 1
        within = ids - self.base[plane]
        return plane, within // self.nx[plane], within % self.nx[plane]

    def ids_of(self, coords: np.ndarray) -> np.ndarray:
        """Chunk ids of ``chunk_coords`` rows (leading coordinates, then row, column)."""
        plane = np.ravel_multi_index(tuple(coords[:, :-2].T), self.lead, mode="clip")
        row = np.minimum(coords[:, -2], self.ny[plane] - 1)
        column = np.minimum(coords[:, -1], self.nx[plane] - 1)
        return self.base[plane] + row * self.nx[plane] + column

    def region(self, chunk_id: int, shape: Sequence[int]) -> tuple[slice, ...]:
        """The region of the array chunk ``chunk_id`` covers."""
        plane, row, column = (int(v[0]) for v in self.locate(np.array([chunk_id])))
        where = np.unravel_index(plane, self.lead)
        cy, cx = int(self.cy[plane]), int(self.cx[plane])
        return (
            *(slice(int(i), int(i) + 1) for i in where),
            slice(row * cy, min(row * cy + cy, shape[-2])),
            slice(column * cx, min(column * cx + cx, shape[-1])),
        )

    def needed(self, layout: ArrayLayout, boxes: Boxes, channels: np.ndarray) -> np.ndarray:
        """Sorted ids of the chunks the boxes intersect, plane by plane."""
        c_axis = layout.c_axis
        wanted = []
        for plane in range(len(self.base)):
            where = np.unravel_index(plane, self.lead)
            if c_axis is not None and int(where[c_axis]) not in channels:
                continue
            cy, cx, nx = int(self.cy[plane]), int(self.cx[plane]), int(self.nx[plane])
            y0, y1 = boxes.y_min // cy, (boxes.y_max - 1) // cy
            x0, x1 = boxes.x_min // cx, (boxes.x_max - 1) // cx
            for a, b, c, d in zip(y0.tolist(), y1.tolist(), x0.tolist(), x1.tolist(), strict=True):
                rows, cols = np.meshgrid(np.arange(a, b + 1), np.arange(c, d + 1), indexing="ij")
                wanted.append(self.base[plane] + (rows * nx + cols).ravel())
        if not wanted:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(wanted)).astype(np.int64)


def needed_chunk_ids(layout: ArrayLayout, boxes: Boxes, channels: np.ndarray) -> np.ndarray:
    """Sorted linear ids of every chunk the (clipped, valid) ``boxes`` intersect."""
    if len(boxes.x_min) == 0:
        return np.empty(0, dtype=np.int64)
    if layout.planes is not None:
        return layout.planes.needed(layout, boxes, channels)
    y0, y1, x0, x1 = box_chunk_ranges(layout, boxes)
    ny, nx = y1 - y0 + 1, x1 - x0 + 1
    counts = ny * nx
    owner = np.repeat(np.arange(len(counts)), counts)
    step = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = y0[owner] + step // nx[owner]
    cols = x0[owner] + step % nx[owner]
    grid = layout.grid
    yx = np.unique(rows * grid[layout.x_axis] + cols)
    per_dim: list[np.ndarray] = []
    for axis, size in enumerate(grid):
        if axis == layout.c_axis:
            per_dim.append(np.unique(channels // layout.chunks[axis]))
        elif axis not in (layout.y_axis, layout.x_axis):
            per_dim.append(np.arange(size))
    others = (
        np.stack(np.meshgrid(*per_dim, indexing="ij"), -1).reshape(-1, len(per_dim))
        if per_dim
        else np.zeros((1, 0), dtype=np.int64)
    )
    coords = np.empty((len(others) * len(yx), len(grid)), dtype=np.int64)
    other_axes = [a for a in range(len(grid)) if a not in (layout.y_axis, layout.x_axis)]
    coords[:, other_axes] = np.repeat(others, len(yx), axis=0)
    coords[:, layout.y_axis] = np.tile(yx // grid[layout.x_axis], len(others))
    coords[:, layout.x_axis] = np.tile(yx % grid[layout.x_axis], len(others))
    return np.sort(np.ravel_multi_index(coords.T, grid))


@dataclass(frozen=True)
class ChunkSources:
    """Where each chunk of one array is stored, indexed by linear chunk id.

    ``row[id]`` is the chunk's position in the arrays below, ``-1`` when the chunk
    index has no row for it (an absent chunk: read as the fill value). ``present`` is
    false only for chunks known to be absent; ``known`` tells whether the index knew.
    """

    row: np.ndarray
    keys: list[str]
    offsets: np.ndarray
    lengths: np.ndarray
    present: np.ndarray
    known: np.ndarray

    @classmethod
    def from_rows(cls, layout: ArrayLayout, rows: pa.Table) -> ChunkSources:
        """Index one array's ``chunk_index`` rows by linear chunk id."""
        grid = layout.grid
        coords = rows["chunk_coords"].combine_chunks()
        flat = coords.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
        if len(flat) != rows.num_rows * len(grid):
            raise MetadataError(
                f"chunk_index of {layout.image_id} {layout.array_path!r}",
                f"chunk_coords do not have {len(grid)} dimensions",
            )
        if layout.planes is not None:  # each plane's coordinates are in its file's grid
            ids = layout.planes.ids_of(flat.reshape(-1, len(grid)))
        else:
            ids = np.ravel_multi_index(flat.reshape(-1, len(grid)).T, grid, mode="clip")
        row = np.full(layout.chunk_total, -1, dtype=np.int64)
        row[ids] = np.arange(rows.num_rows)
        offsets = rows["byte_offset"].to_numpy(zero_copy_only=False)
        lengths = rows["byte_length"].to_numpy(zero_copy_only=False)
        present = rows["present"].to_numpy(zero_copy_only=False)
        return cls(
            row=row,
            keys=rows["chunk_key"].to_pylist(),
            offsets=np.nan_to_num(offsets.astype(np.float64), nan=-1).astype(np.int64),
            lengths=np.nan_to_num(lengths.astype(np.float64), nan=-1).astype(np.int64),
            present=np.array([p is not False for p in present], dtype=bool),
            known=np.array([p is not None for p in present], dtype=bool),
        )
