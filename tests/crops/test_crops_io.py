"""I/O economy of crop reads, measured by counting reads and decodes.

The intersecting chunks and their stored sizes are computed here from the files
(chunk objects' sizes, TIFF tile byte counts, shard indexes read by the scan) and
compared with what the reader counted: bytes fetched (payloads plus the metadata
that decoding needs) ≤ 1.05 × the bytes of the intersecting chunks, and each chunk
decoded once even when boxes share chunks.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tifffile

from fixtures import crop_stores
from iceberg_bioimage import scan_as_arrow_table
from iceberg_bioimage.api import read_image_crops
from s3_server import upload

# sparse boxes, two of them sharing chunks: (x_min, x_max, y_min, y_max) at level 0
BOXES = [
    (10, 50, 10, 40),
    (30, 60, 20, 70),
    (500, 540, 600, 630),
    (1000, 1030, 1010, 1024),
    (250, 260, 120, 140),
    (700, 790, 300, 310),
]


def profiles(image_id: str) -> pa.Table:
    x0, x1, y0, y1 = (np.array(v) for v in zip(*BOXES, strict=True))
    return pa.table(
        {
            "image_id": [image_id] * len(BOXES),
            "ObjectNumber": np.arange(1, len(BOXES) + 1),
            "Cells_AreaShape_BoundingBoxMinimum_X": x0,
            "Cells_AreaShape_BoundingBoxMaximum_X": x1,
            "Cells_AreaShape_BoundingBoxMinimum_Y": y0,
            "Cells_AreaShape_BoundingBoxMaximum_Y": y1,
        }
    )


def touched(chunk: int, channels: int = 2, size: int = 1024) -> set[tuple[int, int, int]]:
    """(channel, chunk row, chunk column) of every chunk a box (clipped) intersects."""
    out = set()
    for x0, x1, y0, y1 in BOXES:
        x1, y1 = min(x1, size), min(y1, size)
        rows = range(y0 // chunk, (y1 - 1) // chunk + 1)
        cols = range(x0 // chunk, (x1 - 1) // chunk + 1)
        out.update(itertools.product(range(channels), rows, cols))
    return out


@pytest.fixture(scope="module")
def io_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crops_io")


@pytest.fixture(scope="module")
def io_zarr(io_root):
    return crop_stores.write_io_zarr(io_root)


@pytest.fixture(scope="module")
def io_tiff(io_root):
    return crop_stores.write_io_tiff(io_root)


@pytest.fixture(scope="module")
def io_sharded(io_root):
    return crop_stores.write_io_sharded(io_root)


def zarr_bytes(store: Path) -> int:
    return sum(os.path.getsize(store / "0" / f"{c}.0.{y}.{x}") for c, y, x in touched(128))


def tiff_bytes(path: Path) -> int:
    with tifffile.TiffFile(path) as tif:
        pages = tif.series[0].pages
        across = -(-pages[0].imagewidth // 128)
        return sum(pages[c].databytecounts[y * across + x] for c, y, x in touched(128))


def check(result, expected_chunks: int, expected_bytes: int) -> float:
    stats = result.stats
    assert stats.chunks_fetched == expected_chunks
    assert stats.chunk_bytes == expected_bytes
    assert stats.decodes == expected_chunks
    assert stats.max_decodes_per_chunk == 1
    ratio = stats.bytes_fetched / expected_bytes
    assert ratio <= 1.05, stats.to_dict()
    return ratio


def test_zarr_reads_only_intersecting_chunks(io_zarr):
    store, image_id, _data = io_zarr
    result = read_image_crops(str(store), profiles(image_id))
    check(result, len(touched(128)), zarr_bytes(store))


def test_tiled_tiff_reads_only_intersecting_tiles(io_tiff):
    path, image_id, _data = io_tiff
    result = read_image_crops(str(path), profiles(image_id))
    check(result, len(touched(128)), tiff_bytes(path))


def test_shards_read_only_intersecting_inner_chunks(io_sharded):
    store, image_id, _data = io_sharded
    boxes = profiles(image_id)
    chunks = scan_as_arrow_table(store, table="chunk_index", read_shard_index=True)
    rows = chunks.to_pylist()
    wanted = touched(128)
    sizes = {(r["chunk_coords"][0], *r["chunk_coords"][2:]): r["byte_length"] for r in rows}
    result = read_image_crops(str(store), boxes)
    check(result, len(wanted), sum(sizes[k] for k in wanted))


def test_s3_reads_only_intersecting_tiles(io_tiff, io_zarr, s3_endpoint, s3_options):
    path, image_id, _data = io_tiff
    uri = upload(s3_endpoint, path, "crops-io/io_tiled.ome.tiff")
    result = read_image_crops(uri, profiles(image_id), storage_options=s3_options)
    check(result, len(touched(128)), tiff_bytes(path))
    store, zarr_id, _ = io_zarr
    uri = upload(s3_endpoint, store, "crops-io/io.ome.zarr")
    result = read_image_crops(uri, profiles(zarr_id), storage_options=s3_options)
    check(result, len(touched(128)), zarr_bytes(store))
