"""A Zarr plate streamed a few wells at a time keeps its whole-store limits."""

from __future__ import annotations

import pytest

from iceberg_bioimage import MetadataError, scan_store
from iceberg_bioimage.formats.registry import ROOT_FILES
from iceberg_bioimage.formats.zarr.store import stream_zarr
from iceberg_bioimage.io.storage import open_store
from iceberg_bioimage.models import ScanOptions


def test_the_chunk_row_limit_holds_for_the_whole_plate_not_each_batch(datasets, monkeypatch):
    path = datasets["plate04"].path
    total = scan_store(path).chunk_count
    monkeypatch.setenv("ICEBERG_BIOIMAGE_MAX_CHUNK_ROWS", str(total - 1))
    store = open_store(path)
    docs = dict(zip(ROOT_FILES, store.read_many(ROOT_FILES), strict=True))
    stream = stream_zarr(store, docs, "plate04", ScanOptions(stat_chunks=True), batch_wells=1)
    batches = stream.batches()
    next(batches)  # one well is within the limit
    with pytest.raises(MetadataError, match="over the limit"):
        list(batches)
