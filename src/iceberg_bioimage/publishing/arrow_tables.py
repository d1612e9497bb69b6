"""Build the canonical ``image_assets`` and ``chunk_index`` Arrow tables.

Tables are built column by column. Chunk rows are never materialised as Python
objects: each distinct chunk grid is expanded once with :func:`numpy.indices`,
reused by every array that shares it, and keys are assembled with
``pyarrow.compute`` string joins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.models import ImageAsset, ScanResult, chunk_grid_shape
from iceberg_bioimage.models.limits import check_chunk_rows
from iceberg_bioimage.publishing.arrow_schema import arrow_schema


def _assets(results: ScanResult | Iterable[ScanResult]) -> list[tuple[ImageAsset, Any]]:
    items = [results] if isinstance(results, ScanResult) else list(results)
    return [(asset, result.scanned_at) for result in items for asset in result.image_assets]


def image_assets_table(results: ScanResult | Iterable[ScanResult]) -> pa.Table:
    """One row per array, in the canonical ``image_assets`` schema."""
    pairs = _assets(results)
    assets = [asset for asset, _ in pairs]
    schema = arrow_schema("image_assets")
    computed = {
        "chunk_count": [a.chunk_count for a in assets],
        "nbytes": [a.nbytes for a in assets],
        "well_row": [a.well_row for a in assets],
        "well_column": [a.well_column for a in assets],
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
        values = computed.get(field.name)
        if values is None:
            values = [getattr(a, field.name) for a in assets]
        columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


class _GridCache:
    """Expanded coordinates and key suffixes, computed once per distinct grid."""

    def __init__(self) -> None:
        self._coords: dict[tuple[int, ...], np.ndarray] = {}
        self._suffixes: dict[tuple[tuple[int, ...], tuple[int, ...], str], pa.Array] = {}

    def coords(self, grid: tuple[int, ...]) -> np.ndarray:
        """Row-major chunk coordinates, shape ``(prod(grid), ndim)``."""
        found = self._coords.get(grid)
        if found is None:
            if not grid:
                found = np.zeros((1, 0), dtype=np.int64)
            else:
                found = np.indices(grid, dtype=np.int64).reshape(len(grid), -1).T
                found = np.ascontiguousarray(found)
            self._coords[grid] = found
        return found

    def suffixes(self, grid: tuple[int, ...], factor: tuple[int, ...], separator: str) -> pa.Array:
        """Joined coordinates (of the shard when ``factor`` > 1) per chunk."""
        key = (grid, factor, separator)
        found = self._suffixes.get(key)
        if found is None:
            coords = self.coords(grid) // np.asarray(factor, dtype=np.int64)
            parts = [pc.cast(pa.array(coords[:, d]), pa.string()) for d in range(len(grid))]
            found = pc.binary_join_element_wise(*parts, separator) if len(parts) > 1 else parts[0]
            self._suffixes[key] = found
        return found


def _key_parts(asset: ImageAsset, cache: _GridCache) -> tuple[str, pa.Array | None]:
    """The key prefix of an array and its per-chunk suffixes (``None``: constant key)."""
    encoding = asset.chunk_key_encoding
    grid = asset.chunk_grid
    if encoding.name == "fixed" or not grid:
        return encoding.encode(asset.array_path, ()), None
    factor = (
        tuple(s // c for s, c in zip(asset.shards, asset.chunks, strict=True))
        if asset.shards
        else (1,) * len(grid)
    )
    return encoding.prefix(asset.array_path), cache.suffixes(grid, factor, encoding.separator)


def _byte_facts(asset: ImageAsset, cache: _GridCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per chunk ``(offset, length, present)``; -1 = null (present: -1 unknown, 0, 1)."""
    count = asset.chunk_count
    if asset.chunk_byte_lengths is not None and asset.chunk_byte_offsets is not None:
        lengths = np.asarray(asset.chunk_byte_lengths, dtype=np.int64)
        offsets = np.asarray(asset.chunk_byte_offsets, dtype=np.int64)
        return offsets, lengths, (lengths >= 0).astype(np.int8)
    unknown = np.full(count, -1, dtype=np.int64)
    if asset.object_sizes is None:
        return unknown, unknown, unknown.astype(np.int8)
    sizes = np.asarray(asset.object_sizes, dtype=np.int64)
    if asset.shards is None:
        return np.where(sizes >= 0, 0, -1), sizes, (sizes >= 0).astype(np.int8)
    grid = asset.chunk_grid
    factor = np.asarray([s // c for s, c in zip(asset.shards, asset.chunks, strict=True)])
    shard_grid = chunk_grid_shape(asset.shape, asset.shards)
    shard_of = np.ravel_multi_index(tuple((cache.coords(grid) // factor).T), shard_grid)
    present = np.where(sizes[shard_of] >= 0, -1, 0).astype(np.int8)
    return unknown, unknown, present


def _nullable_int(values: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.int64(), mask=values < 0)


def chunk_index_table(results: ScanResult | Iterable[ScanResult]) -> pa.Table:
    """One row per inner chunk, in the canonical ``chunk_index`` schema."""
    assets = [asset for asset, _ in _assets(results)]
    uris = sorted({a.uri for a in assets})
    subject = uris[0] if len(uris) == 1 else f"{len(uris)} stores ({', '.join(uris[:3])}...)"
    check_chunk_rows(sum(a.chunk_count for a in assets), subject)
    schema = arrow_schema("chunk_index")
    cache = _GridCache()
    counts = np.fromiter((a.chunk_count for a in assets), dtype=np.int64, count=len(assets))
    owner = np.repeat(np.arange(len(assets), dtype=np.int64), counts)
    total = int(counts.sum())

    def per_array(values: Sequence[str]) -> pa.Array:
        return pa.array(values, type=pa.string()).take(owner)

    prefixes, suffixes = [], []
    for asset in assets:
        prefix, suffix = _key_parts(asset, cache)
        prefixes.append(prefix)
        suffixes.append(
            suffix if suffix is not None else pa.array([""] * asset.chunk_count, pa.string())
        )
    keys = pc.binary_join_element_wise(
        per_array(prefixes),
        pa.concat_arrays(suffixes) if suffixes else pa.array([], pa.string()),
        "",
    )

    coords_values = (
        np.concatenate([cache.coords(a.chunk_grid).ravel() for a in assets])
        if assets
        else np.empty(0, np.int64)
    )
    ndims = np.fromiter((len(a.shape) for a in assets), dtype=np.int64, count=len(assets))
    offsets = np.zeros(total + 1, dtype=np.int32)
    np.cumsum(np.repeat(ndims, counts), out=offsets[1:])
    coords = pa.ListArray.from_arrays(
        pa.array(offsets),
        pa.array(coords_values, pa.int64()),
        type=schema.field("chunk_coords").type,
    )

    if any(a.object_sizes is not None or a.chunk_byte_lengths is not None for a in assets):
        facts = [_byte_facts(a, cache) for a in assets]
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
    return pa.Table.from_arrays(columns, schema=schema)


def canonical_table(results: ScanResult | Iterable[ScanResult], table: str) -> pa.Table:
    """Build the canonical table named ``table`` (``image_assets`` or ``chunk_index``)."""
    builders = {"image_assets": image_assets_table, "chunk_index": chunk_index_table}
    if table not in builders:
        raise ValueError(f"unknown table {table!r}; expected one of {sorted(builders)}")
    return builders[table](results)
