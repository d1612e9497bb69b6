"""A real NGFF plate registered through the streamed scan, counted by an independent reader.

ome-zarr-py's bioformats2raw plate (tests/data/real, see PROVENANCE.md): the rows of
both tables must match the arrays its JSON documents declare and the chunk files it holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog

from fixtures.ngff_counts import zarr_arrays, zarr_chunk_files
from iceberg_bioimage import load_catalog_table, register_store
from iceberg_bioimage.formats.zarr import store as zarr_store

REAL = Path(__file__).parents[1] / "data" / "real"
BF2RAW = REAL / "ome-zarr-py" / "bf2raw" / "plate-rows-2.zarr"


@pytest.mark.parametrize("batch_wells", [64, 1])
def test_a_real_plate_registers_every_array_and_chunk(tmp_path, monkeypatch, batch_wells) -> None:
    monkeypatch.setattr(zarr_store, "PLATE_BATCH_WELLS", batch_wells)  # 1: two batches
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=tmp_path.as_uri())
    register_store(BF2RAW, catalog, "bioimage.real", publish_chunks=True)
    assets = load_catalog_table(catalog, "bioimage.real", "image_assets")
    chunks = load_catalog_table(catalog, "bioimage.real", "chunk_index")
    assert assets.num_rows == zarr_arrays(BF2RAW)
    assert chunks.num_rows == zarr_chunk_files(BF2RAW)
