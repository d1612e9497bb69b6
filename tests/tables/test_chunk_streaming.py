"""Streamed ``chunk_index``: batches equal the whole table; writers keep every row."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from iceberg_bioimage import scan_result_as_arrow_table, scan_store
from iceberg_bioimage.catalog.sink import replace_datasets
from iceberg_bioimage.tables import build as arrow_tables
from iceberg_bioimage.tables.build import ChunkIndexRows, chunk_index_rows
from iceberg_bioimage.warehouse.export import image_requests
from iceberg_bioimage.warehouse.write import load_manifest, read_table, write_tables

pytestmark = pytest.mark.usefixtures("written_warehouses")  # every warehouse written validates

ZARR = ("plate04", "plate05", "image05", "sharded", "slash", "v2enc")
TIFF = ("pyramid", "strips", "hyper")


def _scan(datasets, name, facts=False):
    options = {"stat_chunks": True, "read_shard_index": True} if facts else {}
    return scan_store(datasets[name].path, **options)


@pytest.mark.parametrize("facts", [False, True], ids=["plain", "byte-facts"])
@pytest.mark.parametrize("name", ZARR + TIFF)
def test_batches_concatenated_equal_the_whole_table(datasets, name, facts):
    result = _scan(datasets, name, facts)
    whole = scan_result_as_arrow_table(result, table="chunk_index")
    assert whole.num_rows == result.chunk_count
    assets = chunk_index_rows(result).assets
    for batch_rows in (1, 7, 64, 10**9):
        rows = ChunkIndexRows(assets, batch_rows)
        batches = list(rows.batches())
        assert all(0 < b.num_rows <= batch_rows for b in batches)
        assert rows.num_rows == sum(b.num_rows for b in batches) == whole.num_rows
        assert pa.Table.from_batches(batches, schema=rows.schema).equals(whole)


@pytest.mark.parametrize("name", ["plate04", "sharded", "pyramid"])
def test_large_grids_expanded_slice_by_slice_give_the_same_rows(datasets, name, monkeypatch):
    result = _scan(datasets, name, facts=True)
    whole = scan_result_as_arrow_table(result, table="chunk_index")
    monkeypatch.setattr(arrow_tables, "_CACHED_GRID_ROWS", 0)  # every grid counts as huge
    rows = ChunkIndexRows(chunk_index_rows(result).assets, 5)
    assert rows.to_table().equals(whole)


def test_several_datasets_split_per_dataset(datasets):
    results = [_scan(datasets, "plate04"), _scan(datasets, "pyramid")]
    rows = chunk_index_rows(results)
    assert rows.dataset_ids == sorted(r.dataset_id for r in results)
    for result in results:
        part = rows.for_dataset(result.dataset_id)
        assert part.to_table().equals(scan_result_as_arrow_table(result, table="chunk_index"))


def test_warehouse_export_streams_every_row(datasets, tmp_path):
    results = [_scan(datasets, "plate04"), _scan(datasets, "sharded", facts=True)]
    whole = arrow_tables.chunk_index_table(results)
    streamed = ChunkIndexRows(chunk_index_rows(results).assets, 7)
    images = arrow_tables.image_assets_table(results)
    _, writes = write_tables(
        tmp_path, image_requests(images, streamed, ["x"]), mode="overwrite", layout="namespaced"
    )
    assert {w.role: w.rows_written for w in writes}["chunk_index"] == whole.num_rows
    entry = next(t for t in load_manifest(tmp_path).tables if t.role == "chunk_index")
    assert len(entry.files) == 2  # one file per dataset
    for file in entry.files:
        metadata = pq.ParquetFile(tmp_path / entry.path / file.path).metadata
        assert metadata.num_rows == file.rows
        assert metadata.num_row_groups == -(-file.rows // 7)  # one row group per batch
    back = read_table(tmp_path, entry)
    keys = ["dataset_id", "chunk_key"]
    assert back.sort_by([(k, "ascending") for k in keys]).equals(
        whole.sort_by([(k, "ascending") for k in keys])
    )


def test_iceberg_data_files_stream_every_row(datasets, tmp_path):
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=tmp_path.as_uri())
    results = [_scan(datasets, "plate05"), _scan(datasets, "pyramid", facts=True)]
    whole = arrow_tables.chunk_index_table(results)
    streamed = ChunkIndexRows(chunk_index_rows(results).assets, 9)
    ids = [r.dataset_id for r in results]
    write = replace_datasets(catalog, ("ns",), "chunk_index", streamed, ids)
    assert write.rows_written == whole.num_rows
    table = catalog.load_table(("ns", "chunk_index"))
    files = table.inspect.files()
    assert files.num_rows == 2  # one data file per dataset
    assert sum(files["record_count"].to_pylist()) == whole.num_rows
    back = table.scan().to_arrow().select(whole.column_names)
    keys = [("dataset_id", "ascending"), ("chunk_key", "ascending")]
    assert back.cast(whole.schema).sort_by(keys).equals(whole.sort_by(keys))
