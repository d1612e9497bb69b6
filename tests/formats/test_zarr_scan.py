"""Zarr v2/v3 scanning against stores written by zarr and ome-zarr."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import zarr
from numcodecs import Zstd

from iceberg_bioimage import scan_result_as_arrow_table, scan_store


def _by_path(result):
    return {asset.array_path: asset for asset in result.image_assets}


def _keys_of(chunks, array_path):
    mask = pc.equal(chunks["array_path"], array_path)
    return chunks.filter(mask)


@pytest.mark.parametrize("name", ["plate04", "plate05"])
def test_hcs_plate_images_wells_sites_and_levels(datasets, name):
    fixture = datasets[name]
    expected = fixture.expected
    result = scan_store(fixture.path)

    assert result.dataset_id == expected["dataset_id"]
    assert result.storage_variant == f"zarr-v{expected['zarr_format']}"
    assert sorted(result.image_ids) == expected["image_ids"]
    assert sorted(_by_path(result)) == expected["array_paths"]
    assert result.image_count == 8
    assert result.array_count == 16
    for image_id, image in expected["images"].items():
        for level, array_path in enumerate(image["array_paths"]):
            asset = _by_path(result)[array_path]
            truth = expected["arrays"][array_path]
            assert asset.image_id == image_id
            assert asset.multiscale_level == level
            assert asset.plate_id == expected["plate_id"]
            assert asset.well_id == image["well_id"]
            assert asset.site_id == image["site_id"]
            assert asset.well_row + asset.well_column == image["well_id"]
            assert asset.shape == tuple(truth["shape"])
            assert asset.chunks == tuple(truth["chunks"])
            assert asset.chunk_count == truth["chunk_count"]
            assert asset.dtype == expected["dtype"]
            assert asset.axes == expected["axes"]
            assert list(asset.channel_names) == expected["channel_names"]
            assert asset.physical_size_x == pytest.approx(truth["physical_size"]["x"])
            assert asset.physical_size_y == pytest.approx(truth["physical_size"]["y"])
            assert asset.physical_size_z == pytest.approx(truth["physical_size"]["z"])
            assert asset.physical_unit == expected["unit"]
    assert {a.well_id for a in result.image_assets} == set(expected["wells"].values())
    assert {a.site_id for a in result.image_assets} == set(expected["sites"])


@pytest.mark.parametrize("name", ["plate04", "plate05", "image05"])
def test_chunk_keys_match_the_objects_on_disk(datasets, name):
    fixture = datasets[name]
    result = scan_store(fixture.path, stat_chunks=True)
    chunks = scan_result_as_arrow_table(result, table="chunk_index")
    assert chunks.num_rows == sum(a.chunk_count for a in result.image_assets)
    for array_path, on_disk in fixture.expected["chunk_keys"].items():
        rows = _keys_of(chunks, array_path)
        keys = rows["chunk_key"].to_pylist()
        assert set(on_disk) <= set(keys), array_path
        present = {k for k, p in zip(keys, rows["present"].to_pylist(), strict=True) if p}
        assert present == set(on_disk)
        for key, length in zip(keys, rows["byte_length"].to_pylist(), strict=True):
            if key in present:
                assert length == (fixture.path / key).stat().st_size


def test_chunk_index_without_stat_has_unknown_presence(datasets):
    result = scan_store(datasets["plate04"].path)
    chunks = scan_result_as_arrow_table(result, table="chunk_index")
    assert chunks["present"].null_count == chunks.num_rows
    assert chunks["byte_length"].null_count == chunks.num_rows
    first = chunks.slice(0, 1).to_pylist()[0]
    assert first["chunk_key"] == "A/1/0/s0/0/0/0/0"
    assert first["chunk_coords"] == [0, 0, 0, 0]


def test_ngff05_image_at_root(datasets):
    fixture = datasets["image05"]
    expected = fixture.expected
    result = scan_store(fixture.path)
    assert result.image_ids == (expected["dataset_id"],)
    assert [a.array_path for a in result.image_assets] == expected["level_paths"]
    assert [list(a.shape) for a in result.image_assets] == [list(s) for s in expected["shapes"]]
    assert [a.chunk_count for a in result.image_assets] == expected["chunk_counts"]
    assert result.image_assets[0].axes == "tczyx"
    assert list(result.image_assets[0].channel_names) == expected["channel_names"]
    assert result.image_assets[0].dimension_names == tuple("tczyx")


def test_sharded_array_inner_chunks_and_shard_keys(datasets):
    fixture = datasets["sharded"]
    expected = fixture.expected
    result = scan_store(fixture.path, stat_chunks=True, read_shard_index=True)
    (asset,) = result.image_assets
    assert asset.shape == tuple(expected["shape"])
    assert asset.chunks == tuple(expected["chunks"])
    assert asset.shards == tuple(expected["shards"])
    assert asset.dimension_names == tuple(expected["dimension_names"])
    assert asset.chunk_count == expected["chunk_count"]
    chunks = scan_result_as_arrow_table(result, table="chunk_index")
    assert chunks.num_rows == expected["chunk_count"]
    keys = chunks["chunk_key"].to_pylist()
    assert set(keys) == set(expected["all_shard_keys"])
    assert max(keys.count(k) for k in set(keys)) == expected["inner_chunks_per_shard"]

    array = zarr.open_array(fixture.path, mode="r")
    inner = np.asarray(asset.chunks)
    present = 0
    for row in chunks.to_pylist():
        if not row["present"]:
            assert row["byte_offset"] is None
            continue
        present += 1
        assert row["chunk_key"] in expected["shard_keys"]
        with open(fixture.path / row["chunk_key"], "rb") as handle:
            handle.seek(row["byte_offset"])
            raw = Zstd().decode(handle.read(row["byte_length"]))
        decoded = np.frombuffer(raw, dtype=asset.dtype).reshape(asset.chunks)
        start = np.asarray(row["chunk_coords"]) * inner
        region = tuple(
            slice(s, min(s + c, n)) for s, c, n in zip(start, inner, asset.shape, strict=True)
        )
        truth = array[region]
        np.testing.assert_array_equal(decoded[tuple(slice(0, s) for s in truth.shape)], truth)
    assert present == expected["written_inner_chunks"]


def test_plain_v2_group_walk_and_separators(datasets):
    fixture = datasets["slash"]
    expected = fixture.expected
    result = scan_store(fixture.path, stat_chunks=True)
    assert sorted(result.image_ids) == sorted(expected["image_ids"])
    chunks = scan_result_as_arrow_table(result, table="chunk_index")
    for array_path, truth in expected["arrays"].items():
        asset = _by_path(result)[array_path]
        assert asset.shape == tuple(truth["shape"])
        assert asset.chunk_count == truth["chunk_count"]
        rows = _keys_of(chunks, array_path)
        present = [
            k
            for k, p in zip(rows["chunk_key"].to_pylist(), rows["present"].to_pylist(), strict=True)
            if p
        ]
        assert sorted(present) == sorted(truth["chunk_keys"])
    assert "raw/2/2" in chunks["chunk_key"].to_pylist()
    assert "labels/seg/0.0" in chunks["chunk_key"].to_pylist()


def test_v3_array_with_v2_key_encoding(datasets):
    fixture = datasets["v2enc"]
    result = scan_store(fixture.path, stat_chunks=True)
    chunks = scan_result_as_arrow_table(result, table="chunk_index")
    assert sorted(chunks["chunk_key"].to_pylist()) == sorted(fixture.expected["chunk_keys"])
    assert all(chunks["present"].to_pylist())


def test_consolidated_metadata_is_used(datasets, tmp_path):
    source = datasets["plate04"]
    store = tmp_path / "plate04.ome.zarr"
    shutil.copytree(source.path, store)
    zarr.consolidate_metadata(str(store))
    for zattrs in store.glob("*/*/.zattrs"):  # well metadata now only in .zmetadata
        zattrs.unlink()
    consolidated = scan_result_as_arrow_table(scan_store(store), table="image_assets")
    plain = scan_result_as_arrow_table(scan_store(source.path), table="image_assets")
    columns = ["image_id", "array_path", "shape", "well_id", "site_id", "channel_names"]
    assert consolidated.select(columns).to_pylist() == plain.select(columns).to_pylist()


def test_dataset_id_override(datasets):
    result = scan_store(datasets["plate04"].path, dataset_id="run-7")
    assert result.dataset_id == "run-7"
    assert result.image_assets[0].image_id.startswith("run-7:")


def test_file_uri_is_accepted(datasets):
    path = Path(datasets["v2enc"].path)
    assert scan_store(path.as_uri()).array_count == 1
