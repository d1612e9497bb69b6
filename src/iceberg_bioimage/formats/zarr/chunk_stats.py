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

from iceberg_bioimage.formats.zarr.metadata import (
    ArrayMetadata,
    shard_index_ranges,
    shard_index_slice,
)
from iceberg_bioimage.io.storage import Store
from iceberg_bioimage.models import ImageAsset, ScanOptions, chunk_grid_shape
from iceberg_bioimage.models.limits import check_chunk_rows

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
    coords: list[list[int]] = []
    sizes: list[int] = []
    for key, size in listing.items():
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix) :].split(separator)
        if len(parts) != ndim or not all(part.isascii() and part.isdigit() for part in parts):
            continue
        point = [int(part) for part in parts]
        if all(c < g for c, g in zip(point, grid, strict=True)):
            coords.append(point)
            sizes.append(size)
    out = np.full(math.prod(grid), -1, dtype=np.int64)
    if coords:
        flat = np.ravel_multi_index(tuple(np.asarray(coords, dtype=np.int64).T), grid)
        out[flat] = np.asarray(sizes, dtype=np.int64)
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
    cps = np.asarray(spec.chunks_per_shard, dtype=np.int64)
    shard_coords = np.indices(shard_grid).reshape(len(shard_grid), -1).T
    if asset.object_sizes is not None:
        shard_coords = shard_coords[np.asarray(asset.object_sizes) >= 0]
    start, end = shard_index_slice(spec)
    keys = [asset.chunk_key_encoding.encode(asset.array_path, c) for c in shard_coords.tolist()]
    indexes = store.read_ranges([(key, start, end) for key in keys])
    offsets = np.full(asset.chunk_count, -1, dtype=np.int64)
    lengths = np.full(asset.chunk_count, -1, dtype=np.int64)
    # Inner chunks of a shard that can lie inside the array (a shard may be far
    # larger than the array), and where each sits in the shard's row-major index.
    reach = tuple(min(c, g) for c, g in zip(spec.chunks_per_shard, inner_grid, strict=True))
    local = np.indices(reach, dtype=np.int64).reshape(len(reach), -1).T
    position = np.ravel_multi_index(tuple(local.T), spec.chunks_per_shard)
    for coords, index in zip(shard_coords, indexes, strict=True):
        if index is None or len(index) < spec.nbytes:
            continue
        shard_offsets, shard_lengths = shard_index_ranges(index, spec)
        inner = coords * cps + local
        inside = (inner < np.asarray(inner_grid)).all(axis=1)
        flat = np.ravel_multi_index(tuple(inner[inside].T), inner_grid)
        offsets[flat] = shard_offsets[position[inside]]
        lengths[flat] = shard_lengths[position[inside]]
    return tuple(offsets.tolist()), tuple(lengths.tolist())


def add_chunk_facts(
    store: Store,
    assets: Sequence[ImageAsset],
    arrays: Sequence[ArrayMetadata],
    options: ScanOptions,
) -> tuple[list[ImageAsset], list[str]]:
    """Return assets with the chunk facts ``options`` ask for, plus warnings."""
    check_chunk_rows(sum(a.chunk_count for a in assets), store.uri, store.limits)
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
            if array.shard_index.nbytes > store.limits.max_metadata_bytes:
                notes.append(
                    f"{store.location(asset.array_path)}: a shard index of "
                    f"{array.shard_index.nbytes:,} bytes is over the metadata limit "
                    "(ICEBERG_BIOIMAGE_MAX_METADATA_BYTES); inner byte ranges left empty"
                )
                continue
            offsets, lengths = _shard_ranges(store, asset, array)
            out[index] = replace(asset, chunk_byte_offsets=offsets, chunk_byte_lengths=lengths)
    return out, notes
