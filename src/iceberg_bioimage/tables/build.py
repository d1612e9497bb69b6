"""Build the canonical ``image_assets`` and ``chunk_index`` Arrow tables.

Tables are built column by column. Chunk rows are never materialised as Python
objects: each distinct chunk grid is expanded once with :func:`numpy.indices`,
reused by every array that shares it, and keys are assembled with
``pyarrow.compute`` string joins. ``chunk_index`` is built in record batches of
at most :data:`CHUNK_BATCH_ROWS` rows (:class:`ChunkIndexRows`), which the
writers stream into their files, so its memory does not grow with the plate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.models import ImageAsset, ScanResult, chunk_grid_shape
from iceberg_bioimage.models.keys import split_well_id
from iceberg_bioimage.models.limits import check_chunk_rows
from iceberg_bioimage.runtime import gc_paused
from iceberg_bioimage.tables.schema import arrow_schema


def _assets(results: ScanResult | Iterable[ScanResult]) -> list[tuple[ImageAsset, Any]]:
    items = [results] if isinstance(results, ScanResult) else list(results)
    return [(asset, result.scanned_at) for result in items for asset in result.image_assets]


def image_assets_table(results: ScanResult | Iterable[ScanResult]) -> pa.Table:
    """One row per array, in the canonical ``image_assets`` schema."""
    with gc_paused():
        return _image_assets_table(_assets(results))


def image_assets_rows(assets: Sequence[ImageAsset], scanned_at: Any) -> pa.Table:
    """The ``image_assets`` rows of some arrays of one scan (a batch of a streamed scan)."""
    with gc_paused():
        return _image_assets_table([(asset, scanned_at) for asset in assets])


def _image_assets_table(pairs: Sequence[tuple[ImageAsset, Any]]) -> pa.Table:
    assets = [asset for asset, _ in pairs]
    schema = arrow_schema("image_assets")
    split = {w: split_well_id(w) for w in {a.well_id for a in assets} if w}
    wells = [
        (a.well_row, a.well_column)
        if a.row_name is not None or a.column_name is not None
        else split.get(a.well_id or "", (None, None))
        for a in assets
    ]
    computed = {
        "chunk_count": [a.chunk_count for a in assets],
        "nbytes": [a.nbytes for a in assets],
        "well_row": [row for row, _ in wells],
        "well_column": [column for _, column in wells],
        "scanned_at": [scanned for _, scanned in pairs],
        "shape": [list(a.shape) for a in assets],
        "chunks": [list(a.chunks) for a in assets],
        "shards": [list(a.shards) if a.shards is not None else None for a in assets],
        "dimension_names": [
            list(a.dimension_names) if a.dimension_names is not None else None for a in assets
        ],
        "channel_names": [
            list(a.channel_names) if a.channel_names is not None else None for a in assets
        ],
    }
    columns = []
    for field in schema:
        if field.name == "metadata_json":
            columns.append(_shared_strings([a.metadata_json for a in assets]))
            continue
        values = computed.get(field.name)
        if values is None:
            values = [getattr(a, field.name) for a in assets]
        columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _shared_strings(values: Sequence[str | None]) -> pa.Array:
    """A string column whose values are few shared objects (one document per image kind).

    Each distinct object is converted once and repeated by index.
    """
    positions: dict[int, int] = {}
    distinct: list[str | None] = []
    indices = np.empty(len(values), dtype=np.int64)
    for row, value in enumerate(values):
        index = positions.get(id(value))
        if index is None:
            index = positions[id(value)] = len(distinct)
            distinct.append(value)
        indices[row] = index
    return pa.array(distinct, type=pa.string()).take(pa.array(indices))


#: Rows per ``chunk_index`` record batch. A batch of the benchmark plate costs
#: ~150 bytes per row in Arrow, so ~40 MiB: the streamed build stays that size
#: whatever the plate, and Parquet row groups stay large enough to scan well.
CHUNK_BATCH_ROWS = 1 << 18
#: Distinct grids up to this many chunks keep their coordinates and keys cached.
_CACHED_GRID_ROWS = 1 << 20


class _GridCache:
    """Expanded coordinates and key suffixes, computed once per distinct (small) grid.

    Grids of more than :data:`_CACHED_GRID_ROWS` chunks are expanded slice by slice
    instead, so one huge array never holds its whole grid in memory.
    """

    def __init__(self) -> None:
        self._coords: dict[tuple[int, ...], np.ndarray] = {}
        self._suffixes: dict[tuple[tuple[int, ...], tuple[int, ...], str], pa.Array] = {}

    def coords(self, grid: tuple[int, ...], start: int, stop: int) -> np.ndarray:
        """Row-major chunk coordinates ``start:stop``, shape ``(stop - start, ndim)``."""
        if not grid:
            return np.zeros((stop - start, 0), dtype=np.int64)
        if math.prod(grid) > _CACHED_GRID_ROWS:
            flat = np.arange(start, stop, dtype=np.int64)
            return np.stack(np.unravel_index(flat, grid), axis=1).astype(np.int64, copy=False)
        found = self._coords.get(grid)
        if found is None:
            found = np.indices(grid, dtype=np.int64).reshape(len(grid), -1).T
            found = np.ascontiguousarray(found)
            self._coords[grid] = found
        return found[start:stop]

    def suffixes(
        self, grid: tuple[int, ...], factor: tuple[int, ...], separator: str, start: int, stop: int
    ) -> pa.Array:
        """Joined coordinates (of the shard when ``factor`` > 1) of chunks ``start:stop``."""
        if math.prod(grid) > _CACHED_GRID_ROWS:
            return self._join(self.coords(grid, start, stop), factor, separator)
        key = (grid, factor, separator)
        found = self._suffixes.get(key)
        if found is None:
            found = self._join(self.coords(grid, 0, math.prod(grid)), factor, separator)
            self._suffixes[key] = found
        return found.slice(start, stop - start)

    @staticmethod
    def _join(coords: np.ndarray, factor: tuple[int, ...], separator: str) -> pa.Array:
        coords = coords // np.asarray(factor, dtype=np.int64)
        parts = [pc.cast(pa.array(coords[:, d]), pa.string()) for d in range(coords.shape[1])]
        return pc.binary_join_element_wise(*parts, separator) if len(parts) > 1 else parts[0]


def _key_parts(
    asset: ImageAsset, cache: _GridCache, start: int, stop: int
) -> tuple[str, pa.Array | None]:
    """The key prefix of an array and its chunks' key suffixes (``None``: constant key)."""
    if asset.chunk_keys is not None:
        return "", pa.array(asset.chunk_keys[start:stop], pa.string())
    keys = getattr(asset, "chunk_keys", None)  # per-chunk keys (a plate of TIFF files)
    if keys is not None:
        return "", pa.array(keys[start:stop], pa.string())
    encoding = asset.chunk_key_encoding
    grid = asset.chunk_grid
    if encoding.name == "fixed" or not grid:
        return encoding.encode(asset.array_path, ()), None
    factor = (
        tuple(s // c for s, c in zip(asset.shards, asset.chunks, strict=True))
        if asset.shards
        else (1,) * len(grid)
    )
    suffixes = cache.suffixes(grid, factor, encoding.separator, start, stop)
    return encoding.prefix(asset.array_path), suffixes


def _byte_facts(
    asset: ImageAsset, cache: _GridCache, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per chunk ``start:stop`` ``(offset, length, present)``; -1 = null (present: -1, 0, 1)."""
    if asset.chunk_byte_lengths is not None and asset.chunk_byte_offsets is not None:
        lengths = np.asarray(asset.chunk_byte_lengths[start:stop], dtype=np.int64)
        offsets = np.asarray(asset.chunk_byte_offsets[start:stop], dtype=np.int64)
        return offsets, lengths, (lengths >= 0).astype(np.int8)
    unknown = np.full(stop - start, -1, dtype=np.int64)
    if asset.object_sizes is None:
        return unknown, unknown, unknown.astype(np.int8)
    sizes = np.asarray(asset.object_sizes, dtype=np.int64)
    if asset.shards is None:
        sizes = sizes[start:stop]
        return np.where(sizes >= 0, 0, -1), sizes, (sizes >= 0).astype(np.int8)
    grid = asset.chunk_grid
    factor = np.asarray([s // c for s, c in zip(asset.shards, asset.chunks, strict=True)])
    shard_grid = chunk_grid_shape(asset.shape, asset.shards)
    shard_of = np.ravel_multi_index(
        tuple((cache.coords(grid, start, stop) // factor).T), shard_grid
    )
    present = np.where(sizes[shard_of] >= 0, -1, 0).astype(np.int8)
    return unknown, unknown, present


def _plane_coords(asset: ImageAsset) -> np.ndarray:
    """Coordinates of every chunk of an image whose planes have their own layouts.

    Each plane (one file) contributes its own strip/tile grid, in plane order: the
    leading coordinates place the plane, the last two are in that file's grid.
    """
    lead = tuple(asset.shape[:-2])
    height, width = asset.shape[-2], asset.shape[-1]
    blocks = []
    for plane, (cy, cx) in enumerate(asset.plane_chunks or ()):
        ny, nx = -(-height // cy), -(-width // cx)
        yx = np.indices((ny, nx)).reshape(2, -1).T
        where = np.asarray(np.unravel_index(plane, lead), dtype=np.int64)
        blocks.append(np.hstack([np.broadcast_to(where, (len(yx), len(lead))), yx]))
    return np.vstack(blocks).astype(np.int64)


def _coords(asset: ImageAsset, cache: _GridCache, start: int, stop: int) -> np.ndarray:
    """Chunk coordinates of chunks ``start:stop`` of one array, one row each."""
    if asset.plane_chunks is None:
        return cache.coords(asset.chunk_grid, start, stop)
    return _plane_coords(asset)[start:stop]


def _nullable_int(values: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.int64(), mask=values < 0)


#: One slice of one array's chunks: ``(asset, first chunk, end)``.
_Piece = tuple[ImageAsset, int, int]


def _pieces(assets: Iterable[ImageAsset], batch_rows: int) -> Iterator[list[_Piece]]:
    """Group the arrays' chunks into runs of at most ``batch_rows`` rows, in order."""
    grouper = _PieceGrouper(batch_rows)
    yield from grouper.add(assets)
    yield from grouper.finish()


class _PieceGrouper:
    """:func:`_pieces` fed a few arrays at a time (a streamed scan's batches).

    Holds only the arrays of the run not yet full, so the runs (and the
    ``chunk_index`` batches built from them) are the same whether the arrays come
    at once or in batches.
    """

    def __init__(self, batch_rows: int) -> None:
        self.batch_rows = batch_rows
        self.group: list[_Piece] = []
        self.rows = 0

    def add(self, assets: Iterable[ImageAsset]) -> Iterator[list[_Piece]]:
        """The runs that ``assets`` complete."""
        for asset in assets:
            count = asset.chunk_count
            start = 0
            while start < count:
                stop = min(count, start + self.batch_rows - self.rows)
                self.group.append((asset, start, stop))
                self.rows += stop - start
                start = stop
                if self.rows >= self.batch_rows:
                    group, self.group, self.rows = self.group, [], 0
                    yield group

    def finish(self) -> Iterator[list[_Piece]]:
        """The last run, not full."""
        if self.group:
            group, self.group, self.rows = self.group, [], 0
            yield group


def _chained(pieces: Sequence[_Piece], name: str) -> Iterator[Any]:
    """One per-chunk attribute (``chunk_keys``...) of every piece, end to end."""
    return itertools.chain.from_iterable(
        getattr(asset, name)[start:stop] for asset, start, stop in pieces
    )


def _chunk_batch(pieces: Sequence[_Piece], cache: _GridCache, schema: pa.Schema) -> pa.RecordBatch:
    """The ``chunk_index`` rows of ``pieces`` as one record batch."""
    assets = [asset for asset, _, _ in pieces]
    counts = np.fromiter((stop - start for _, start, stop in pieces), np.int64, len(pieces))
    owner = np.repeat(np.arange(len(pieces), dtype=np.int64), counts)
    total = int(counts.sum())

    def per_array(values: Sequence[str]) -> pa.Array:
        # One value per array, repeated per chunk by index (no Python string per row).
        return pa.array(values, type=pa.string()).take(owner)

    listed = all(a.chunk_keys is not None for a in assets)  # file-set plates: a key per chunk
    if listed:
        keys = pa.array(_chained(pieces, "chunk_keys"), pa.string())
    else:
        prefixes, suffixes = [], []
        for asset, start, stop in pieces:
            prefix, suffix = _key_parts(asset, cache, start, stop)
            prefixes.append(prefix)
            suffixes.append(suffix if suffix is not None else pa.array([""] * (stop - start)))
        keys = pc.binary_join_element_wise(per_array(prefixes), pa.concat_arrays(suffixes), "")

    coords_values = np.concatenate(
        [_coords(a, cache, start, stop).ravel() for a, start, stop in pieces]
    )
    ndims = np.fromiter((len(a.shape) for a in assets), dtype=np.int64, count=len(assets))
    offsets = np.zeros(total + 1, dtype=np.int32)
    np.cumsum(np.repeat(ndims, counts), out=offsets[1:])
    coords = pa.ListArray.from_arrays(
        pa.array(offsets),
        pa.array(coords_values, pa.int64()),
        type=schema.field("chunk_coords").type,
    )

    if listed and all(
        a.chunk_byte_lengths is not None and a.chunk_byte_offsets is not None for a in assets
    ):
        offsets_all = np.fromiter(_chained(pieces, "chunk_byte_offsets"), np.int64, total)
        lengths_all = np.fromiter(_chained(pieces, "chunk_byte_lengths"), np.int64, total)
        byte_offset, byte_length = _nullable_int(offsets_all), _nullable_int(lengths_all)
        present = pa.array(lengths_all >= 0, type=pa.bool_())
    elif any(a.object_sizes is not None or a.chunk_byte_lengths is not None for a in assets):
        facts = [_byte_facts(a, cache, start, stop) for a, start, stop in pieces]
        byte_offset = _nullable_int(np.concatenate([f[0] for f in facts]))
        byte_length = _nullable_int(np.concatenate([f[1] for f in facts]))
        state = np.concatenate([f[2] for f in facts])
        present = pa.array(state == 1, type=pa.bool_(), mask=state < 0)
    else:
        byte_offset = byte_length = pa.nulls(total, pa.int64())
        present = pa.nulls(total, pa.bool_())

    columns = [
        per_array([a.dataset_id for a in assets]),
        per_array([a.image_id for a in assets]),
        per_array([a.array_path for a in assets]),
        per_array([a.uri for a in assets]),
        keys,
        coords,
        byte_offset,
        byte_length,
        present,
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


@dataclass(frozen=True)
class ChunkIndexRows:
    """The ``chunk_index`` rows of scanned arrays, built batch by batch when iterated.

    Holds only the arrays (one :class:`ImageAsset` each); :meth:`batches` builds
    at most ``batch_rows`` rows at a time, so writing a plate's chunk index to a
    Parquet or Iceberg data file needs one batch of memory, whatever the plate's
    size. Iterating twice builds the rows twice (a retried commit rewrites them).
    """

    assets: tuple[ImageAsset, ...]
    batch_rows: int = CHUNK_BATCH_ROWS

    @property
    def schema(self) -> pa.Schema:
        """The canonical ``chunk_index`` Arrow schema."""
        return arrow_schema("chunk_index")

    @property
    def column_names(self) -> list[str]:
        """Column names, as :attr:`pyarrow.Table.column_names`."""
        return self.schema.names

    @property
    def num_rows(self) -> int:
        """Number of rows (inner chunks over every array)."""
        return sum(asset.chunk_count for asset in self.assets)

    @property
    def dataset_ids(self) -> list[str]:
        """Distinct dataset ids, sorted."""
        return sorted({asset.dataset_id for asset in self.assets})

    def for_dataset(self, dataset_id: str) -> ChunkIndexRows:
        """The rows of one dataset."""
        kept = tuple(a for a in self.assets if a.dataset_id == dataset_id)
        return ChunkIndexRows(kept, self.batch_rows)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows as record batches of at most ``batch_rows`` rows, in array order."""
        cache = _GridCache()
        schema = self.schema
        for pieces in _pieces(self.assets, self.batch_rows):
            yield _chunk_batch(pieces, cache, schema)

    def to_table(self) -> pa.Table:
        """Every row in one table (memory grows with the row count)."""
        return pa.Table.from_batches(self.batches(), schema=self.schema)


class ChunkIndexBuilder:
    """``chunk_index`` record batches of arrays fed a few at a time (a streamed scan).

    The batches are those :meth:`ChunkIndexRows.batches` gives for the same arrays
    in one piece (same rows, same boundaries), and only the arrays of the batch
    being filled are held. The row limit is checked on the running total.
    """

    def __init__(self, subject: str, batch_rows: int = CHUNK_BATCH_ROWS) -> None:
        self.subject = subject
        self.rows = 0
        self._grouper = _PieceGrouper(batch_rows)
        self._cache = _GridCache()
        self._schema = arrow_schema("chunk_index")

    def add(self, assets: Sequence[ImageAsset]) -> Iterator[pa.RecordBatch]:
        """The batches that ``assets`` complete."""
        self.rows += sum(asset.chunk_count for asset in assets)
        check_chunk_rows(self.rows, self.subject)
        for pieces in self._grouper.add(assets):
            yield _chunk_batch(pieces, self._cache, self._schema)

    def finish(self) -> Iterator[pa.RecordBatch]:
        """The last batch."""
        for pieces in self._grouper.finish():
            yield _chunk_batch(pieces, self._cache, self._schema)


def chunk_index_rows(
    results: ScanResult | Iterable[ScanResult], batch_rows: int = CHUNK_BATCH_ROWS
) -> ChunkIndexRows:
    """The ``chunk_index`` of scans, to stream batch by batch (row limit checked first)."""
    assets = tuple(asset for asset, _ in _assets(results))
    uris = sorted({a.uri for a in assets})
    subject = uris[0] if len(uris) == 1 else f"{len(uris)} stores ({', '.join(uris[:3])}...)"
    rows = ChunkIndexRows(assets, batch_rows)
    check_chunk_rows(rows.num_rows, subject)
    return rows


def chunk_index_table(results: ScanResult | Iterable[ScanResult]) -> pa.Table:
    """One row per inner chunk, in the canonical ``chunk_index`` schema (all in memory)."""
    return chunk_index_rows(results).to_table()


def canonical_table(results: ScanResult | Iterable[ScanResult], table: str) -> pa.Table:
    """Build the canonical table named ``table`` (``image_assets`` or ``chunk_index``)."""
    builders = {"image_assets": image_assets_table, "chunk_index": chunk_index_table}
    if table not in builders:
        raise ValueError(f"unknown table {table!r}; expected one of {sorted(builders)}")
    return builders[table](results)
