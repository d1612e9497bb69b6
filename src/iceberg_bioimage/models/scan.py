"""Scan results: one :class:`ImageAsset` per array, grouped in a :class:`ScanResult`.

These models are plain frozen dataclasses (no pyarrow inside). Per-chunk facts
are never stored as one object per chunk: an array's chunk grid is described by
its shape, chunk shape and key encoding, plus optional flat tuples of byte
ranges in row-major chunk order, and expanded column-wise when tables are built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.keys import split_well_id

KeyEncodingName = Literal["default", "v2", "fixed"]


@dataclass(frozen=True, kw_only=True)
class ChunkKeyEncoding:
    """How chunk coordinates become stored object keys.

    ``default`` is the Zarr v3 default (``c/0/1``), ``v2`` the Zarr v2 scheme
    (``0.1`` or ``0/1``); ``fixed`` means every chunk lives in one object named
    ``fixed_key`` (a TIFF file, whose tiles are byte ranges).
    """

    name: KeyEncodingName
    separator: str = "/"
    fixed_key: str | None = None

    def prefix(self, array_path: str) -> str:
        """Return the part of every chunk key that precedes the joined coordinates."""
        if self.name == "fixed":
            return self.fixed_key or ""
        base = f"{array_path}/" if array_path else ""
        return base + "c" + self.separator if self.name == "default" else base

    def encode(self, array_path: str, coords: Sequence[int]) -> str:
        """Return the key, relative to the store root, of the chunk at ``coords``."""
        if self.name == "fixed":
            return self.fixed_key or ""
        if not coords:
            base = f"{array_path}/" if array_path else ""
            return base + ("c" if self.name == "default" else "0")
        return self.prefix(array_path) + self.separator.join(str(int(c)) for c in coords)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe description."""
        return {
            "name": self.name,
            "separator": self.separator,
            "fixed_key": self.fixed_key,
        }


def chunk_grid_shape(shape: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    """Return the number of chunks along each dimension (ceil division)."""
    return tuple(-(-int(s) // int(c)) if c else 0 for s, c in zip(shape, chunks, strict=True))


@lru_cache(maxsize=4096)
def _grid_facts(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """``(chunk grid, chunk count)``, computed once per distinct shape and chunks.

    A plate repeats a few shapes over thousands of arrays, and table builders ask
    each array several times. (A ``cached_property`` on the instance would cost
    ~1.5 KB per asset: it unshares the instance dictionaries.)
    """
    grid = chunk_grid_shape(shape, chunks)
    return grid, math.prod(grid)


@dataclass(frozen=True, kw_only=True)
class ImageAsset:
    """One array of one image, with everything the ``image_assets`` row holds.

    ``object_sizes`` (per stored object: chunk, or shard when sharded, in
    row-major order; ``-1`` when absent) comes from ``stat_chunks=True``.
    ``chunk_byte_offsets``/``chunk_byte_lengths`` (per inner chunk, row-major;
    ``-1`` when absent) come from TIFF tile tables or Zarr shard indexes.
    ``chunk_keys`` (per inner chunk, row-major) overrides ``chunk_key_encoding``
    when an array's chunks live in different objects (a plate of TIFF files).
    ``plane_chunks`` (a file-set image whose files differ in strip/tile layout: per
    plane, in row-major order of the dimensions before y and x, the ``(y, x)`` chunk
    shape of the file that holds it) makes each plane's chunks its own file's strips
    or tiles: ``chunk_count`` sums them and ``chunk_coords`` are in each file's grid;
    ``chunks`` is then the first file's layout.
    ``row_name``/``column_name`` hold a plate's row and column names as written
    when they are not the well id's letters and digits (numbered rows); the
    ``well_row``/``well_column`` columns then keep them. ``is_label`` marks an
    OME-NGFF label image.
    """

    dataset_id: str
    image_id: str
    array_path: str
    uri: str
    format: Literal["zarr", "ome-tiff", "tiff"]
    storage_variant: Literal["zarr-v2", "zarr-v3", "ome-tiff", "tiff", "tiff-files"]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None = None
    dtype: str
    dimension_names: tuple[str, ...] | None = None
    axes: str | None = None
    channel_names: tuple[str, ...] | None = None
    multiscale_level: int = 0
    plate_id: str | None = None
    well_id: str | None = None
    row_name: str | None = None
    column_name: str | None = None
    site_id: str | None = None
    is_label: bool = False
    physical_size_x: float | None = None
    physical_size_y: float | None = None
    physical_size_z: float | None = None
    physical_unit: str | None = None
    codecs: str | None = None
    itemsize: int = 0
    metadata_json: str | None = None
    chunk_key_encoding: ChunkKeyEncoding
    object_sizes: tuple[int, ...] | None = field(default=None, repr=False)
    chunk_byte_offsets: tuple[int, ...] | None = field(default=None, repr=False)
    chunk_byte_lengths: tuple[int, ...] | None = field(default=None, repr=False)
    chunk_keys: tuple[str, ...] | None = field(default=None, repr=False)
    plane_chunks: tuple[tuple[int, int], ...] | None = field(default=None, repr=False)

    @property
    def chunk_grid(self) -> tuple[int, ...]:
        """Chunks per dimension of the inner-chunk grid (of ``chunks``)."""
        return _grid_facts(tuple(self.shape), tuple(self.chunks))[0]

    @property
    def chunk_count(self) -> int:
        """Number of inner chunks (the smallest decodable units)."""
        if self.plane_chunks is not None:
            return sum(self.plane_chunk_counts)
        return _grid_facts(tuple(self.shape), tuple(self.chunks))[1]

    @property
    def plane_chunk_counts(self) -> tuple[int, ...]:
        """Chunks of each plane, when planes have their own layouts (else empty)."""
        height, width = self.shape[-2], self.shape[-1]
        return tuple(-(-height // cy) * -(-width // cx) for cy, cx in (self.plane_chunks or ()))

    @property
    def nbytes(self) -> int:
        """Uncompressed size of the array in bytes."""
        return math.prod(self.shape) * self.itemsize

    @property
    def well_row(self) -> str | None:
        """Row of the well: letters (``A``), or the plate's row name when numbered."""
        if self.row_name is not None:
            return self.row_name
        return split_well_id(self.well_id)[0] if self.well_id else None

    @property
    def well_column(self) -> str | None:
        """Column of the well: two digits (``01``), or the plate's name when rows are numbered."""
        if self.column_name is not None:
            return self.column_name
        return split_well_id(self.well_id)[1] if self.well_id else None

    def to_dict(self) -> dict[str, Any]:
        """Return the row as JSON-safe values (per-chunk byte ranges omitted)."""
        return {
            "dataset_id": self.dataset_id,
            "image_id": self.image_id,
            "array_path": self.array_path,
            "uri": self.uri,
            "format": self.format,
            "storage_variant": self.storage_variant,
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "shards": list(self.shards) if self.shards is not None else None,
            "dtype": self.dtype,
            "dimension_names": _optional_list(self.dimension_names),
            "axes": self.axes,
            "channel_names": _optional_list(self.channel_names),
            "multiscale_level": self.multiscale_level,
            "plate_id": self.plate_id,
            "well_id": self.well_id,
            "well_row": self.well_row,
            "well_column": self.well_column,
            "site_id": self.site_id,
            "is_label": self.is_label,
            "physical_size_x": self.physical_size_x,
            "physical_size_y": self.physical_size_y,
            "physical_size_z": self.physical_size_z,
            "physical_unit": self.physical_unit,
            "codecs": self.codecs,
            "chunk_count": self.chunk_count,
            "nbytes": self.nbytes,
            "chunk_key_encoding": self.chunk_key_encoding.to_dict(),
        }


def _optional_list(values: Sequence[str] | None) -> list[str] | None:
    return list(values) if values is not None else None


@dataclass(frozen=True, kw_only=True)
class ScanResult:
    """Everything one scan found in one store."""

    dataset_id: str
    uri: str
    format: Literal["zarr", "ome-tiff", "tiff"]
    storage_variant: Literal["zarr-v2", "zarr-v3", "ome-tiff", "tiff", "tiff-files"]
    image_assets: tuple[ImageAsset, ...]
    scanned_at: datetime
    warnings: tuple[str, ...] = ()

    @property
    def image_ids(self) -> tuple[str, ...]:
        """Distinct image ids in scan order."""
        return tuple(dict.fromkeys(asset.image_id for asset in self.image_assets))

    @property
    def image_count(self) -> int:
        """Number of distinct images."""
        return len(self.image_ids)

    @property
    def array_count(self) -> int:
        """Number of arrays (one per multiscale level per image)."""
        return len(self.image_assets)

    @property
    def chunk_count(self) -> int:
        """Total number of inner chunks over every array."""
        return sum(asset.chunk_count for asset in self.image_assets)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-safe values."""
        return {
            "dataset_id": self.dataset_id,
            "uri": self.uri,
            "format": self.format,
            "storage_variant": self.storage_variant,
            "scanned_at": self.scanned_at.isoformat(),
            "image_count": self.image_count,
            "array_count": self.array_count,
            "chunk_count": self.chunk_count,
            "warnings": list(self.warnings),
            "image_assets": [asset.to_dict() for asset in self.image_assets],
        }


class ScanStream:
    """A scan delivered in batches of arrays, so a large plate is never held at once.

    A plate of thousands of wells holds hundreds of thousands of arrays (~2 KB of
    Python objects each); writers that take its arrays a few wells at a time and
    drop them keep their memory flat in the plate size. :meth:`batches` yields the
    arrays in scan order and can be iterated once. The counts and :attr:`warnings`
    are complete once it is exhausted: they are kept as the batches pass, and are
    all that stays of them. :meth:`collect` gives the whole :class:`ScanResult`.
    """

    def __init__(
        self,
        *,
        dataset_id: str,
        uri: str,
        format: Literal["zarr", "ome-tiff", "tiff"],
        storage_variant: Literal["zarr-v2", "zarr-v3", "ome-tiff", "tiff", "tiff-files"],
        scanned_at: datetime,
        source: Iterable[Sequence[ImageAsset]],
        warnings: Callable[[], Sequence[str]],
    ) -> None:
        self.dataset_id = dataset_id
        self.uri = uri
        self.format: Literal["zarr", "ome-tiff", "tiff"] = format
        self.storage_variant: Literal["zarr-v2", "zarr-v3", "ome-tiff", "tiff", "tiff-files"] = (
            storage_variant
        )
        self.scanned_at = scanned_at
        self._source = source
        self._warnings = warnings
        self._started = False
        self._done = False
        self._last_image: str | None = None
        self.image_count = 0
        self.array_count = 0
        self.chunk_count = 0

    @classmethod
    def of(cls, result: ScanResult) -> ScanStream:
        """A whole scan as a stream of one batch (stores small enough to hold)."""
        return cls(
            dataset_id=result.dataset_id,
            uri=result.uri,
            format=result.format,
            storage_variant=result.storage_variant,
            scanned_at=result.scanned_at,
            source=[result.image_assets] if result.image_assets else [],
            warnings=lambda: result.warnings,
        )

    @property
    def warnings(self) -> tuple[str, ...]:
        """The scan's warnings (complete once :meth:`batches` is exhausted)."""
        return tuple(self._warnings())

    @property
    def exhausted(self) -> bool:
        """Whether every batch was yielded (the counts are final)."""
        return self._done

    def batches(self) -> Iterator[tuple[ImageAsset, ...]]:
        """The arrays, a batch at a time, in scan order (one pass only)."""
        if self._started:
            raise RuntimeError(f"{self.uri}: a scan stream can be read once")
        self._started = True
        for batch in self._source:
            assets = tuple(batch)
            if assets:
                self._count(assets)
                yield assets
        self._done = True

    def _count(self, assets: Sequence[ImageAsset]) -> None:
        """Add a batch to the counts.

        Distinct images are counted within the batch, and across batches by
        comparing with the previous batch's last image: a scan yields each image's
        arrays together, so no set of every image id is kept.
        """
        ids = dict.fromkeys(asset.image_id for asset in assets)
        self.image_count += len(ids) - (self._last_image in ids)
        self._last_image = assets[-1].image_id
        self.array_count += len(assets)
        self.chunk_count += sum(asset.chunk_count for asset in assets)

    def collect(self) -> ScanResult:
        """Every batch in one :class:`ScanResult` (memory grows with the store)."""
        assets = tuple(asset for batch in self.batches() for asset in batch)
        return ScanResult(
            dataset_id=self.dataset_id,
            uri=self.uri,
            format=self.format,
            storage_variant=self.storage_variant,
            image_assets=assets,
            scanned_at=self.scanned_at,
            warnings=self.warnings,
        )


@dataclass(frozen=True, kw_only=True)
class ScanOptions:
    """Opt-in work a scan may do beyond reading metadata.

    ``stat_chunks`` lists each array's stored objects once (sizes, and which
    chunks are absent); ``read_shard_index`` reads each shard's index to give
    inner chunks their byte ranges. ``file_set`` says how to read a folder of
    single-image TIFFs (instrument preset, plate, channel names).
    """

    stat_chunks: bool = False
    read_shard_index: bool = False
    file_set: FileSetOptions | None = None
