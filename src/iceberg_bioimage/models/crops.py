"""What a crop run returns: the crops, their rows and what was read to cut them."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from iceberg_bioimage.exceptions import MissingDependencyError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


@dataclass
class ReadStats:
    """What a crop run read and decoded."""

    requests: int = 0
    chunk_bytes: int = 0
    metadata_bytes: int = 0
    chunks_fetched: int = 0
    decoded: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def bytes_fetched(self) -> int:
        """Every byte read: chunk payloads plus metadata."""
        return self.chunk_bytes + self.metadata_bytes

    @property
    def decodes(self) -> int:
        """Chunks decoded in all."""
        return sum(self.decoded.values())

    @property
    def max_decodes_per_chunk(self) -> int:
        """How often the most-decoded chunk was decoded (1 when nothing is decoded twice)."""
        return max(self.decoded.values(), default=0)

    def count_metadata(self, size: int, requests: int = 1) -> None:
        """Record a metadata read."""
        with self._lock:
            self.metadata_bytes += size
            self.requests += requests

    def count_decodes(self, uri: str, array_path: str, chunk_ids: Sequence[int]) -> None:
        """Record chunks decoded."""
        with self._lock:
            self.decoded.update((uri, array_path, int(i)) for i in chunk_ids)

    def to_dict(self) -> dict[str, int]:
        """JSON-safe counts."""
        return {
            "requests": self.requests,
            "chunks_fetched": self.chunks_fetched,
            "chunk_bytes": self.chunk_bytes,
            "metadata_bytes": self.metadata_bytes,
            "bytes_fetched": self.bytes_fetched,
            "decodes": self.decodes,
            "max_decodes_per_chunk": self.max_decodes_per_chunk,
        }


@dataclass(frozen=True)
class ImageCrops:
    """Crops of profile rows, in the order of the rows they come from.

    ``table`` has one row per crop: ``dataset_id``, ``image_id``, ``object_id``,
    ``source_bbox_*`` (at the level read, x/y max exclusive), ``multiscale_level``,
    ``axes``, ``channel_names`` and ``profile_row`` (the row of the input profiles).
    ``crops[i]`` is the pixel array of row ``i``, laid out along ``axes``. When whole
    images were asked for, ``source_images`` has one row per image (``dataset_id``,
    ``image_id``, ``multiscale_level``, ``axes``, ``channel_names``) and
    ``source_pixels[i]`` its pixels, cut from the same decoded chunks as the crops.
    With labels, ``labels[i]`` is the label image cut with the same box (``None`` when
    the image has none), ``outlines[i]`` the outline image, and :meth:`object_masks`
    the object's own pixels (``label == ObjectNumber``). ``image_assets`` and
    ``chunk_index`` are the rows the run read (label images found in folders too),
    ``objects`` the profile rows (``table["profile_row"]`` indexes them).
    """

    table: pa.Table
    crops: list[np.ndarray]
    stats: ReadStats
    skipped: int = 0
    unmatched: int = 0
    warnings: tuple[str, ...] = field(default=())
    source_images: pa.Table | None = None
    source_pixels: tuple[np.ndarray, ...] = ()
    labels: list[np.ndarray | None] | None = None
    outlines: list[np.ndarray | None] | None = None
    image_assets: pa.Table | None = None
    chunk_index: pa.Table | None = None
    objects: pa.Table | None = None

    def object_masks(self) -> list[np.ndarray | None]:
        """Each crop's own pixels: its label plane equals its ``ObjectNumber`` (``None``
        where the crop has no label image). Needs ``labels=True``."""
        if self.labels is None:
            raise ValueError("crops were read without labels (CropOptions(labels=True))")
        numbers = [int(str(o).rsplit(":", 1)[-1]) for o in self.table["object_id"].to_pylist()]
        return [
            None if plane is None else plane == number
            for plane, number in zip(self.labels, numbers, strict=True)
        ]

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
                "y": list(range(row["source_bbox_y_min"], row["source_bbox_y_max"])),
                "x": list(range(row["source_bbox_x_min"], row["source_bbox_x_max"])),
            }
            if "c" in dims and row["channel_names"]:
                coords["c"] = row["channel_names"]
            attrs = {k: row[k] for k in ("dataset_id", "image_id", "object_id", "multiscale_level")}
            out.append(xarray.DataArray(crop, dims=dims, coords=coords, attrs=attrs))
        return out
