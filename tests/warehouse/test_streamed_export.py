"""Export of a plate streamed a well at a time: the same warehouse, and atomic mid-plate."""

from __future__ import annotations

import hashlib
import shutil

import pyarrow.parquet as pq
import pytest

from iceberg_bioimage import (
    MetadataError,
    export_store_to_cytomining_warehouse,
    load_warehouse_manifest,
    scan_store,
    validate_warehouse,
)
from iceberg_bioimage.formats.zarr import store as zarr_store
from iceberg_bioimage.tables.build import chunk_index_table, image_assets_table


@pytest.fixture
def one_well_batches(monkeypatch):
    """Every plate is scanned (and written) one well at a time."""
    monkeypatch.setattr(zarr_store, "PLATE_BATCH_WELLS", 1)


def _files(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _table(root, name):
    manifest = load_warehouse_manifest(root)
    entry = manifest.table(f"images.{name}")
    assert entry is not None and len(entry.files) == 1
    return pq.read_table(root / entry.path / entry.files[0].path), entry


@pytest.mark.parametrize("name", ["plate04", "plate05"])
def test_a_streamed_export_writes_the_whole_scan_tables(datasets, tmp_path, one_well_batches, name):
    path = datasets[name].path
    whole = scan_store(path)
    result = export_store_to_cytomining_warehouse(path, tmp_path / "wh")
    assets, assets_entry = _table(tmp_path / "wh", "image_assets")
    chunks, chunks_entry = _table(tmp_path / "wh", "chunk_index")
    expected = image_assets_table(whole).drop_columns(["scanned_at"])
    assert assets.drop_columns(["scanned_at"]).replace_schema_metadata(None).equals(expected)
    assert chunks.replace_schema_metadata(None).equals(chunk_index_table(whole))
    assert assets_entry.files[0].rows == whole.array_count
    assert chunks_entry.files[0].rows == whole.chunk_count
    written = {t.table_name: t.rows_written for t in result.tables}
    assert written == {
        "images.image_assets": whole.array_count,
        "images.chunk_index": whole.chunk_count,
    }
    assert result.warnings == whole.warnings
    assert validate_warehouse(tmp_path / "wh").is_valid


def test_without_chunks_only_image_assets_is_written(datasets, tmp_path, one_well_batches):
    result = export_store_to_cytomining_warehouse(
        datasets["plate04"].path, tmp_path / "wh", include_chunks=False
    )
    assert [t.table_name for t in result.tables] == ["images.image_assets"]
    assert [t.table_name for t in load_warehouse_manifest(tmp_path / "wh").tables] == [
        "images.image_assets"
    ]


def test_a_failure_mid_plate_leaves_the_warehouse_as_it_was(datasets, tmp_path, one_well_batches):
    plate = tmp_path / "plate04.ome.zarr"
    shutil.copytree(datasets["plate04"].path, plate)
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(plate, root)
    before = _files(root)
    # the last well's first field: read after three wells were written
    (plate / "B" / "3" / "1" / "s0" / ".zarray").write_text("{not json")
    with pytest.raises(MetadataError, match="B/3/1/s0"):
        export_store_to_cytomining_warehouse(plate, root)
    after = _files(root)
    assert after == before
    assert validate_warehouse(root).is_valid
