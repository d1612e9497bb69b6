"""A plate scanned a few wells at a time gives the tables of a whole-plate scan.

The plates' batches are made small (one or three wells, chunk batches of seven
rows) so a four-well fixture spans several batches and every boundary case.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from iceberg_bioimage import scan_store
from iceberg_bioimage.formats import scan_stream
from iceberg_bioimage.formats.registry import ROOT_FILES
from iceberg_bioimage.formats.zarr.store import stream_zarr
from iceberg_bioimage.io.storage import open_store
from iceberg_bioimage.models import ScanOptions, ScanStream
from iceberg_bioimage.tables.build import (
    ChunkIndexBuilder,
    ChunkIndexRows,
    chunk_index_table,
    image_assets_table,
)
from iceberg_bioimage.tables.stream import CanonicalStream

PLATES = ["plate04", "plate05"]


def _stream(path, batch_wells: int) -> ScanStream:
    store = open_store(path)
    docs = dict(zip(ROOT_FILES, store.read_many(ROOT_FILES), strict=True))
    return stream_zarr(store, docs, path.name.split(".")[0], ScanOptions(), batch_wells)


@pytest.mark.parametrize("name", PLATES)
@pytest.mark.parametrize("batch_wells", [1, 3])
def test_batches_of_wells_are_the_whole_scan_in_order(datasets, name, batch_wells):
    path = datasets[name].path
    whole = scan_store(path)
    stream = _stream(path, batch_wells)
    batches = list(stream.batches())
    assert len(batches) == -(-4 // batch_wells)  # four wells
    assets = [asset for batch in batches for asset in batch]
    assert [a.to_dict() for a in assets] == [a.to_dict() for a in whole.image_assets]
    assert stream.exhausted
    assert stream.warnings == whole.warnings
    assert (stream.image_count, stream.array_count, stream.chunk_count) == (
        whole.image_count,
        whole.array_count,
        whole.chunk_count,
    )


def test_a_stream_is_read_once(datasets):
    stream = _stream(datasets["plate04"].path, 1)
    list(stream.batches())
    with pytest.raises(RuntimeError, match="read once"):
        list(stream.batches())


def test_a_whole_scan_streams_as_one_batch(datasets):
    whole = scan_store(datasets["image05"].path)
    stream = scan_stream(datasets["image05"].path)
    assert [a.to_dict() for a in stream.collect().image_assets] == [
        a.to_dict() for a in whole.image_assets
    ]
    one = ScanStream.of(whole)
    assert len(list(one.batches())) == 1
    assert one.image_count == whole.image_count


@pytest.mark.parametrize("name", PLATES)
def test_streamed_tables_equal_the_whole_scan_tables(datasets, name):
    path = datasets[name].path
    whole = scan_store(path)
    stream = _stream(path, 1)
    canonical = CanonicalStream(stream, ("image_assets", "chunk_index"), batch_rows=7)
    parts: dict[str, list[pa.Table]] = {"image_assets": [], "chunk_index": []}
    for table, rows in canonical.batches():
        parts[table].append(rows)
    assert len(parts["image_assets"]) == 4  # one per well
    assets = pa.concat_tables(parts["image_assets"])
    expected = image_assets_table(whole)
    assert assets.drop_columns(["scanned_at"]).equals(expected.drop_columns(["scanned_at"]))
    assert set(assets["scanned_at"].to_pylist()) == {stream.scanned_at}
    # chunk batches: the same rows, cut at the same places as the whole-scan build
    expected_batches = list(ChunkIndexRows(whole.image_assets, 7).batches())
    assert [t.num_rows for t in parts["chunk_index"]] == [b.num_rows for b in expected_batches]
    assert pa.concat_tables(parts["chunk_index"]).equals(chunk_index_table(whole))
    assert canonical.rows == {
        "image_assets": whole.array_count,
        "chunk_index": whole.chunk_count,
    }
    assert canonical.part("chunk_index").num_rows == whole.chunk_count


def test_the_chunk_builder_checks_the_running_total(datasets, monkeypatch):
    from iceberg_bioimage.exceptions import MetadataError

    whole = scan_store(datasets["plate04"].path)
    monkeypatch.setenv("ICEBERG_BIOIMAGE_MAX_CHUNK_ROWS", str(whole.chunk_count - 1))
    builder = ChunkIndexBuilder(whole.uri, 7)
    half = len(whole.image_assets) // 2
    list(builder.add(whole.image_assets[:half]))
    with pytest.raises(MetadataError, match="over the limit"):
        list(builder.add(whole.image_assets[half:]))
