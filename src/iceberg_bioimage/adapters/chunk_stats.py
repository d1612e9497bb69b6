"""Opt-in chunk facts: stored object sizes and shard-index byte ranges.

``stat_chunks`` lists each array's folder/prefix once; ``read_shard_index``
reads the index of every shard (one batched ranged read). Both produce flat
row-major tuples on the :class:`ImageAsset`, expanded later column-wise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from iceberg_bioimage.adapters.storage import Store
from iceberg_bioimage.adapters.zarr_metadata import (
    ArrayMetadata,
    shard_index_ranges,
    shard_index_slice,
)
from iceberg_bioimage.models import ImageAsset, ScanOptions, chunk_grid_shape

_LISTING_WORKERS = 8


def object_grid(asset: ImageAsset) -> tuple[int, ...]:
    """Grid of stored objects: shards when sharded, chunks otherwise."""
    return chunk_grid_shape(asset.shape, asset.shards or asset.chunks)


def object_sizes_from_listing(asset: ImageAsset, listing: dict[str, int]) -> tuple[int, ...]:
    """Per stored object (row-major), its size from ``listing``; -1 when absent."""
    grid = object_grid(asset)
    encoding = asset.chunk_key_encoding
    if not grid:
        key = encoding.encode(asset.array_path, ())
        return (listing.get(key, -1),)
    prefix, separator, ndim = (
        encoding.prefix(asset.array_path),
        encoding.separator,
        len(grid),
    )
    coords: list[list[str]] = []
    sizes: list[int] = []
    for key, size in listing.items():
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix) :].split(separator)
        if len(parts) == ndim and all(part.isdigit() for part in parts):
            coords.append(parts)
            sizes.append(size)
    out = np.full(math.prod(grid), -1, dtype=np.int64)
    if coords:
        points = np.asarray(coords, dtype=np.int64)
        inside = (points < np.asarray(grid)).all(axis=1)
        flat = np.ravel_multi_index(tuple(points[inside].T), grid)
        out[flat] = np.asarray(sizes, dtype=np.int64)[inside]
    return tuple(out.tolist())


def _stat(store: Store, assets: Sequence[ImageAsset]) -> list[ImageAsset]:
    def listing(asset: ImageAsset) -> dict[str, int]:
        return store.list_objects(asset.array_path)

    with ThreadPoolExecutor(_LISTING_WORKERS) as pool:
        listings = list(pool.map(listing, assets))
    return [
        replace(asset, object_sizes=object_sizes_from_listing(asset, found))
        for asset, found in zip(assets, listings, strict=True)
    ]


def _shard_ranges(
    store: Store, asset: ImageAsset, array: ArrayMetadata
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    spec = array.shard_index
    assert spec is not None and asset.shards is not None
    shard_grid = object_grid(asset)
    inner_grid = asset.chunk_grid
    cps = np.asarray(spec.chunks_per_shard)
    shard_coords = np.indices(shard_grid).reshape(len(shard_grid), -1).T
    if asset.object_sizes is not None:
        shard_coords = shard_coords[np.asarray(asset.object_sizes) >= 0]
    start, end = shard_index_slice(spec)
    keys = [asset.chunk_key_encoding.encode(asset.array_path, c) for c in shard_coords.tolist()]
    indexes = store.read_ranges([(key, start, end) for key in keys])
    offsets = np.full(asset.chunk_count, -1, dtype=np.int64)
    lengths = np.full(asset.chunk_count, -1, dtype=np.int64)
    local = np.indices(spec.chunks_per_shard).reshape(len(cps), -1).T
    for coords, index in zip(shard_coords, indexes, strict=True):
        if index is None or len(index) < spec.nbytes:
            continue
        shard_offsets, shard_lengths = shard_index_ranges(index, spec)
        inner = coords * cps + local
        inside = (inner < np.asarray(inner_grid)).all(axis=1)
        flat = np.ravel_multi_index(tuple(inner[inside].T), inner_grid)
        offsets[flat] = shard_offsets[inside]
        lengths[flat] = shard_lengths[inside]
    return tuple(offsets.tolist()), tuple(lengths.tolist())


def add_chunk_facts(
    store: Store,
    assets: Sequence[ImageAsset],
    arrays: Sequence[ArrayMetadata],
    options: ScanOptions,
) -> tuple[list[ImageAsset], list[str]]:
    """Return assets with the chunk facts ``options`` ask for, plus warnings."""
    out = _stat(store, assets) if options.stat_chunks else list(assets)
    notes: list[str] = []
    if options.read_shard_index:
        for index, (asset, array) in enumerate(zip(out, arrays, strict=True)):
            if asset.shards is None:
                continue
            if array.shard_index is None:
                notes.append(
                    f"{store.location(asset.array_path)}: shard index codecs not supported; "
                    "inner byte ranges left empty"
                )
                continue
            offsets, lengths = _shard_ranges(store, asset, array)
            out[index] = replace(asset, chunk_byte_offsets=offsets, chunk_byte_lengths=lengths)
    return out, notes
