"""TIFF scanning against files written by tifffile; byte ranges proved by decoding."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import tifffile

from iceberg_bioimage import scan_result_as_arrow_table, scan_store


def test_pyramidal_ome_tiff_series_and_levels(datasets):
    fixture = datasets["pyramid"]
    expected = fixture.expected
    result = scan_store(fixture.path)
    assert result.format == "ome-tiff"
    assert sorted(result.image_ids) == expected["image_ids"]
    assets = {a.array_path: a for a in result.image_assets}
    assert sorted(assets) == expected["array_paths"]
    for array_path, truth in expected["arrays"].items():
        asset = assets[array_path]
        assert asset.image_id == truth["image_id"]
        assert asset.multiscale_level == truth["level"]
        assert asset.shape == truth["shape_unsqueezed"]
        assert asset.axes == truth["axes_unsqueezed"]
        assert asset.dtype == truth["dtype"]
        assert asset.chunk_count == truth["tiles"]
        assert list(asset.channel_names) == expected["images"][truth["image_id"]]["channel_names"]
        assert asset.physical_size_x == pytest.approx(truth["physical_size"]["x"])
        assert asset.physical_size_y == pytest.approx(truth["physical_size"]["y"])
        assert asset.physical_unit == "micrometer"
    chunks = scan_result_as_arrow_table(result, table="chunk_index")
    assert chunks.num_rows == sum(t["tiles"] for t in expected["arrays"].values())
    assert set(chunks["chunk_key"].to_pylist()) == {expected["chunk_key"]}
    assert chunks["byte_offset"].null_count == 0
    assert all(chunks["present"].to_pylist())


def test_tile_byte_ranges_decode_to_the_pixels_tifffile_reads(datasets):
    fixture = datasets["pyramid"]
    result = scan_store(fixture.path)
    chunks = scan_result_as_arrow_table(result, table="chunk_index").to_pylist()
    asset = next(a for a in result.image_assets if a.array_path == "1/0")
    with tifffile.TiffFile(fixture.path) as tif:
        pixels = tif.series[1].levels[0].asarray()  # (c, y, x)
    raw = fixture.path.read_bytes()
    tile_y, tile_x = asset.chunks[3], asset.chunks[4]
    checked = 0
    for row in chunks:
        if row["array_path"] != "1/0":
            continue
        _, _, c, ty, tx, _ = row["chunk_coords"]
        data = zlib.decompress(raw[row["byte_offset"] : row["byte_offset"] + row["byte_length"]])
        tile = np.frombuffer(data, dtype="<u2").reshape(tile_y, tile_x)
        truth = pixels[c, ty * tile_y : (ty + 1) * tile_y, tx * tile_x : (tx + 1) * tile_x]
        np.testing.assert_array_equal(tile[: truth.shape[0], : truth.shape[1]], truth)
        checked += 1
    assert checked == asset.chunk_count == 24


def test_stripped_plain_tiff(datasets):
    fixture = datasets["strips"]
    expected = fixture.expected
    result = scan_store(fixture.path)
    (asset,) = result.image_assets
    assert asset.image_id == expected["image_id"]
    assert asset.array_path == expected["array_path"]
    assert asset.shape == tuple(expected["shape_unsqueezed"])
    assert asset.chunks == tuple(expected["chunks"])
    assert asset.chunk_count == expected["strips"] == 7
    chunks = scan_result_as_arrow_table(result, table="chunk_index").to_pylist()
    pixels = tifffile.imread(fixture.path)
    raw = fixture.path.read_bytes()
    rows_per_strip = expected["rows_per_strip"]
    for row in chunks:
        strip = row["chunk_coords"][0]
        data = raw[row["byte_offset"] : row["byte_offset"] + row["byte_length"]]
        truth = pixels[strip * rows_per_strip : (strip + 1) * rows_per_strip]
        assert data == truth.tobytes()


def test_imagej_hyperstack(datasets):
    fixture = datasets["hyper"]
    expected = fixture.expected
    (asset,) = scan_store(fixture.path).image_assets
    assert asset.shape == tuple(expected["shape_unsqueezed"])
    assert asset.axes == expected["axes_unsqueezed"]
    assert asset.chunk_count == expected["strips"]
    assert asset.physical_size_x == pytest.approx(expected["physical_size"]["x"])
    assert asset.physical_size_z == pytest.approx(expected["physical_size"]["z"])
    assert asset.physical_unit == "micrometer"


def test_tiff_is_detected_by_content_not_extension(datasets, tmp_path):
    renamed = tmp_path / "pyramid.bin"
    renamed.write_bytes(datasets["pyramid"].path.read_bytes())
    assert scan_store(renamed).array_count == 6
