"""Registration of a plate streamed a well at a time: same rows and commits, atomic mid-plate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog

from iceberg_bioimage import (
    MetadataError,
    load_catalog_table,
    publish_chunk_index,
    register_store,
    scan_store,
)
from iceberg_bioimage.formats.zarr import store as zarr_store
from iceberg_bioimage.tables.build import chunk_index_table, image_assets_table

NS = "bio"


@pytest.fixture
def catalog(tmp_path):
    return SqlCatalog("test", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=tmp_path.as_uri())


@pytest.fixture
def one_well_batches(monkeypatch):
    """Every plate is scanned (and written) one well at a time."""
    monkeypatch.setattr(zarr_store, "PLATE_BATCH_WELLS", 1)


def _data_files(catalog, table: str) -> set[Path]:
    location = catalog.load_table((NS, table)).location().removeprefix("file://")
    return set((Path(location) / "data").rglob("*.parquet"))


def _snapshots(catalog) -> dict[str, int | None]:
    out = {}
    for table in ("image_assets", "chunk_index"):
        snapshot = catalog.load_table((NS, table)).current_snapshot()
        out[table] = snapshot.snapshot_id if snapshot else None
    return out


@pytest.mark.parametrize("name", ["plate04", "plate05"])
def test_a_streamed_registration_commits_the_whole_scan_rows(
    datasets, catalog, one_well_batches, name
):
    path = datasets[name].path
    whole = scan_store(path)
    result = register_store(path, catalog, NS, publish_chunks=True)
    assert (
        result.dataset.image_count,
        result.dataset.array_count,
        result.dataset.chunk_count,
    ) == (whole.image_count, whole.array_count, whole.chunk_count)
    assert result.dataset.warnings == whole.warnings
    expected = image_assets_table(whole).drop_columns(["scanned_at"])
    assets = load_catalog_table(catalog, NS, "image_assets").drop_columns(["scanned_at"])
    assert assets.cast(expected.schema).equals(expected)
    chunks = load_catalog_table(catalog, NS, "chunk_index")
    expected_chunks = chunk_index_table(whole)
    assert chunks.cast(expected_chunks.schema).equals(expected_chunks)
    # one commit per table, one data file each
    for table in ("image_assets", "chunk_index"):
        assert len(catalog.load_table((NS, table)).snapshots()) == 1
        assert len(_data_files(catalog, table)) == 1
    rows = {w.table: w.rows_written for w in result.tables}
    assert rows == {f"{NS}.image_assets": whole.array_count, f"{NS}.chunk_index": whole.chunk_count}


def test_re_registering_replaces_the_rows(datasets, catalog, one_well_batches):
    path = datasets["plate04"].path
    register_store(path, catalog, NS, publish_chunks=True)
    register_store(path, catalog, NS, publish_chunks=True)
    whole = scan_store(path)
    assert load_catalog_table(catalog, NS, "image_assets").num_rows == whole.array_count
    assert load_catalog_table(catalog, NS, "chunk_index").num_rows == whole.chunk_count
    publish_chunk_index(path, catalog, NS)
    assert load_catalog_table(catalog, NS, "chunk_index").num_rows == whole.chunk_count


def test_a_failure_mid_plate_commits_nothing_and_leaves_no_file(
    datasets, catalog, tmp_path, one_well_batches
):
    plate = tmp_path / "plate04.ome.zarr"
    shutil.copytree(datasets["plate04"].path, plate)
    whole = scan_store(plate)
    register_store(plate, catalog, NS, publish_chunks=True)
    snapshots = _snapshots(catalog)
    files = {t: _data_files(catalog, t) for t in ("image_assets", "chunk_index")}
    # the last well's first field: read after three wells were written
    (plate / "B" / "3" / "1" / "s0" / ".zarray").write_text("{not json")
    with pytest.raises(MetadataError, match="B/3/1/s0"):
        register_store(plate, catalog, NS, publish_chunks=True)
    assert _snapshots(catalog) == snapshots
    assert {t: _data_files(catalog, t) for t in files} == files
    assert load_catalog_table(catalog, NS, "image_assets").num_rows == whole.array_count
