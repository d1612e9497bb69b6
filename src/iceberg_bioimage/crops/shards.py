"""Byte ranges of inner chunks from their shards' indexes, when the chunk index lacks them.

A chunk index published without ``read_shard_index`` names each inner chunk's shard but
not where in the shard it lies. The reader then reads the index of each shard it needs
(one ranged read per shard, counted as metadata) and decodes it as the scanner does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from iceberg_bioimage.crops.fetch import Fetcher
from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.formats.zarr.metadata import (
    parse_v3_array,
    shard_index_ranges,
    shard_index_slice,
)


def inner_chunk_ranges(
    fetcher: Fetcher,
    document: dict[str, Any],
    shard_keys: Sequence[str],
    coords: np.ndarray,
    where: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, lengths)`` of the inner chunks at ``coords`` (-1 where absent)."""
    spec = parse_v3_array(document).shard_index
    if spec is None:
        raise MetadataError(where, "shard index codecs not supported; cannot locate inner chunks")
    per_shard = np.asarray(spec.chunks_per_shard, dtype=np.int64)
    position = np.ravel_multi_index(tuple((coords % per_shard).T), spec.chunks_per_shard)
    keys = list(dict.fromkeys(shard_keys))
    start, end = shard_index_slice(spec)
    found = fetcher.metadata_ranges([(key, start, end) for key in keys])
    indexes = {
        key: shard_index_ranges(data, spec)
        if data is not None and len(data) == spec.nbytes
        else None
        for key, data in zip(keys, found, strict=True)
    }
    offsets = np.full(len(shard_keys), -1, dtype=np.int64)
    lengths = np.full(len(shard_keys), -1, dtype=np.int64)
    for i, (key, at) in enumerate(zip(shard_keys, position.tolist(), strict=True)):
        index = indexes[key]
        if index is not None:
            offsets[i], lengths[i] = index[0][at], index[1][at]
    return offsets, lengths
