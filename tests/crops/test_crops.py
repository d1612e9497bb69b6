"""Crops read through the chunk index equal the slices cut from the whole image.

Ground truth: each image read whole by zarr or tifffile, then sliced with boxes
clipped here (independently of the reader). Boxes are random, several cross the
image borders, a few lie wholly outside (skipped).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import tifffile
import zarr

from fixtures import crop_stores, instrument_plates
from iceberg_bioimage import CropOptions, scan_as_arrow_table
from iceberg_bioimage.api import read_image_crops
from s3_server import upload

PREFIX = "Nuclei_AreaShape_BoundingBox"


def random_boxes(height: int, width: int, count: int, seed: int) -> dict[str, np.ndarray]:
    """Boxes of 1..40 pixels, some over the borders; the last one wholly outside."""
    rng = np.random.default_rng(seed)
    x0 = rng.integers(-15, width, count)
    y0 = rng.integers(-15, height, count)
    x1 = x0 + rng.integers(1, 41, count)
    y1 = y0 + rng.integers(1, 41, count)
    x0[-1], x1[-1] = width + 5, width + 20
    return {"x_min": x0, "x_max": x1, "y_min": y0, "y_max": y1}


def profiles_for(image_id: str, boxes: dict[str, np.ndarray]) -> pa.Table:
    """CellProfiler-style object rows of one image (image_id given)."""
    count = len(boxes["x_min"])
    return pa.table(
        {
            "image_id": [image_id] * count,
            "ObjectNumber": np.arange(1, count + 1),
            f"{PREFIX}Minimum_X": boxes["x_min"],
            f"{PREFIX}Minimum_Y": boxes["y_min"],
            f"{PREFIX}Maximum_X": boxes["x_max"],
            f"{PREFIX}Maximum_Y": boxes["y_max"],
        }
    )


def expected_crop(
    full: np.ndarray, axes: str, box: tuple[int, int, int, int], factor: float, channels: Any
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The clipped level box and the slice of ``full`` it gives (None when empty)."""
    x0, x1, y0, y1 = box
    height, width = full.shape[axes.index("y")], full.shape[axes.index("x")]
    lx0, lx1 = max(math.floor(x0 / factor), 0), min(math.ceil(x1 / factor), width)
    ly0, ly1 = max(math.floor(y0 / factor), 0), min(math.ceil(y1 / factor), height)
    if lx1 <= lx0 or ly1 <= ly0:
        return None
    index: list[Any] = [slice(None)] * full.ndim
    index[axes.index("y")] = slice(ly0, ly1)
    index[axes.index("x")] = slice(lx0, lx1)
    if channels is not None:
        index[axes.index("c")] = channels
    return full[tuple(index)], (lx0, lx1, ly0, ly1)


def check_crops(
    store: str,
    image_id: str,
    full: np.ndarray,
    *,
    level: int = 0,
    factor: float = 1.0,
    base_shape: tuple[int, int],
    channels: list[Any] | None = None,
    channel_index: list[int] | None = None,
    storage_options: dict[str, Any] | None = None,
    seed: int = 0,
) -> Any:
    """Read random boxes of ``image_id`` and compare every crop with ``full``."""
    boxes = random_boxes(*base_shape, count=25, seed=seed)
    result = read_image_crops(
        store,
        profiles_for(image_id, boxes),
        crop=CropOptions(level=level, channels=channels),
        storage_options=storage_options,
    )
    rows = result.table.to_pylist()
    axes = rows[0]["axes"]
    expected = {}
    for i in range(len(boxes["x_min"])):
        box = tuple(int(boxes[k][i]) for k in ("x_min", "x_max", "y_min", "y_max"))
        got = expected_crop(full, axes, box, factor, channel_index)
        if got is not None:
            expected[i] = got
    assert [r["profile_row"] for r in rows] == sorted(expected)
    assert result.skipped == len(boxes["x_min"]) - len(expected) >= 1
    for row, crop in zip(rows, result.crops, strict=True):
        pixels, bbox = expected[row["profile_row"]]
        got_box = tuple(row[f"source_bbox_{k}"] for k in ("x_min", "x_max", "y_min", "y_max"))
        assert got_box == bbox
        assert row["object_id"] == f"{image_id}:nuclei:{row['profile_row'] + 1}"
        assert crop.dtype == full.dtype
        np.testing.assert_array_equal(crop, pixels)
    assert result.stats.max_decodes_per_chunk == 1
    return result


def tiff_level(path: Path, series: int, level: int) -> np.ndarray:
    """One level of a TIFF series, read whole by tifffile, with the scan's unsqueezed axes."""
    with tifffile.TiffFile(path) as tif:
        lv = tif.series[series].levels[level]
        return lv.asarray().reshape(lv.get_shape(False))


@pytest.fixture(scope="module")
def crop_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crops")


@pytest.fixture(scope="module")
def sharded05(crop_root: Path) -> tuple[Path, str, list[np.ndarray]]:
    return crop_stores.write_sharded_ngff05(crop_root)


@pytest.fixture(scope="module")
def phenix(crop_root: Path) -> Any:
    return next(iter(instrument_plates.write_phenix(crop_root).values()))


def phenix_image(fixture: Any, well: str, site: str) -> np.ndarray:
    """A Phenix (well, site) image from its per-channel files: (c, z, y, x)."""
    planes = {
        c: tifffile.imread(fixture.path / key)
        for key, (_plate, w, s, c, _z, _t) in fixture.expected["files"].items()
        if w == well and s == site
    }
    return np.stack([planes[c] for c in sorted(planes)])[:, None]


@pytest.mark.parametrize(("level", "channels", "index"), [(0, None, None), (1, ["GFP"], [1])])
def test_ngff04_plate(datasets, level, channels, index):
    fixture = datasets["plate04"]
    store = fixture.path
    base = zarr.open_array(store, path="A/1/0/s0", mode="r")
    full = zarr.open_array(store, path=f"A/1/0/s{level}", mode="r")[:]
    check_crops(
        str(store),
        "plate04:A/1/0",
        full,
        level=level,
        factor=2.0**level,
        base_shape=base.shape[-2:],
        channels=channels,
        channel_index=index,
    )


def test_ngff05_image_reordered_channels(datasets):
    store = datasets["image05"].path
    path = datasets["image05"].expected["level_paths"][0]
    full = zarr.open_array(store, path=path, mode="r")[:]
    check_crops(
        str(store),
        "image05",
        full,
        base_shape=full.shape[-2:],
        channels=["Mito", 0],
        channel_index=[2, 0],
    )


@pytest.mark.parametrize("level", [0, 1])
def test_sharded_ngff05(sharded05, level):
    store, image_id, levels = sharded05
    check_crops(
        str(store),
        image_id,
        levels[level],
        level=level,
        factor=2.0**level,
        base_shape=levels[0].shape[-2:],
    )


def test_sharded_partial_store(datasets):
    """Absent shards and inner chunks read as the fill value."""
    store = datasets["sharded"].path
    full = zarr.open_array(store, mode="r")[:]
    check_crops(str(store), "sharded", full, base_shape=full.shape[-2:], seed=3)


@pytest.mark.parametrize("level", [0, 1])
def test_tiled_ome_tiff_pyramid(datasets, level):
    path = datasets["pyramid"].path
    full = tiff_level(path, 1, level)
    base = tiff_level(path, 1, 0)
    axes = datasets["pyramid"].expected["arrays"]["1/0"]["axes_unsqueezed"]
    check_crops(
        str(path),
        "pyramid:1",
        full,
        level=level,
        factor=base.shape[axes.index("x")] / full.shape[axes.index("x")],
        base_shape=(base.shape[axes.index("y")], base.shape[axes.index("x")]),
    )


def test_stripped_tiff(datasets):
    path = datasets["strips"].path
    full = tiff_level(path, 0, 0)
    check_crops(str(path), "strips:0", full, base_shape=full.shape, seed=4)


@pytest.mark.parametrize(("well", "tiled"), [("A01", True), ("A02", False)])
def test_tiff_folder_plate(phenix, well, tiled):
    full = phenix_image(phenix, well, "2")
    plate = instrument_plates.PLATES[0]
    result = check_crops(
        str(phenix.path),
        f"{plate}:A/{int(well[1:])}/2",
        full,
        base_shape=full.shape[-2:],
        channels=["ch4", "ch2"],
        channel_index=[3, 1],
    )
    assert result.stats.chunks_fetched > 0


@pytest.fixture(scope="module")
def s3_stores(datasets, sharded05, phenix, s3_endpoint) -> dict[str, str]:
    """The local crop stores copied to the moto S3 server."""
    return {
        "plate04": upload(s3_endpoint, datasets["plate04"].path, "crops/plate04.ome.zarr"),
        "sharded05": upload(s3_endpoint, sharded05[0], "crops/sharded05.ome.zarr"),
        "pyramid": upload(s3_endpoint, datasets["pyramid"].path, "crops/pyramid.ome.tiff"),
        "strips": upload(s3_endpoint, datasets["strips"].path, "crops/strips.tif"),
        "phenix": upload(s3_endpoint, phenix.path, f"crops/{phenix.path.name}"),
    }


def test_crops_on_s3(s3_stores, s3_options, datasets, sharded05, phenix):
    """Every format, read from S3 through ranged requests, gives the same exact crops."""
    plate04 = zarr.open_array(datasets["plate04"].path, path="A/1/0/s0", mode="r")[:]
    check_crops(
        s3_stores["plate04"],
        "plate04:A/1/0",
        plate04,
        base_shape=plate04.shape[-2:],
        storage_options=s3_options,
    )
    _store, image_id, levels = sharded05
    check_crops(
        s3_stores["sharded05"],
        image_id,
        levels[1],
        level=1,
        factor=2.0,
        base_shape=levels[0].shape[-2:],
        storage_options=s3_options,
    )
    pyramid = tiff_level(datasets["pyramid"].path, 0, 0)
    check_crops(
        s3_stores["pyramid"],
        "pyramid:0",
        pyramid,
        base_shape=pyramid.shape[3:5],
        storage_options=s3_options,
    )
    strips = tiff_level(datasets["strips"].path, 0, 0)
    check_crops(
        s3_stores["strips"], "strips:0", strips, base_shape=strips.shape, storage_options=s3_options
    )
    full = phenix_image(phenix, "A02", "1")
    plate = instrument_plates.PLATES[0]
    check_crops(
        s3_stores["phenix"],
        f"{plate}:A/2/1",
        full,
        base_shape=full.shape[-2:],
        storage_options=s3_options,
    )


def test_join_resolves_image_and_object_ids(datasets):
    """Profiles keyed by well and site get image_id from the join, object_id from ObjectNumber."""
    store = datasets["plate04"].path
    full = zarr.open_array(store, path="B/3/1/s0", mode="r")[:]
    profiles = pa.table(
        {
            "Metadata_Well": ["B03", "B03", "A01"],
            "Metadata_Site": ["1", "1", "0"],
            "Nuclei_Number_Object_Number": [7, 9, 4],
            "Nuclei_Location_Center_X": [10.7, 47.0, 3.2],
            "Nuclei_Location_Center_Y": [5.5, 30.0, 63.9],
            "Cells_Location_Center_X": [1.0, 1.0, 1.0],
            "Cells_Location_Center_Y": [1.0, 1.0, 1.0],
        }
    )
    result = read_image_crops(str(store), profiles, crop=CropOptions(size=8, compartment="Nuclei"))
    rows = result.table.to_pylist()
    assert [r["object_id"] for r in rows] == [
        "plate04:B/3/1:nuclei:7",
        "plate04:B/3/1:nuclei:9",
        "plate04:A/1/0:nuclei:4",
    ]
    # size 8 around floor(centre): [floor(c) - 4, floor(c) + 4), clipped
    assert [(r["source_bbox_x_min"], r["source_bbox_x_max"]) for r in rows[:2]] == [
        (6, 14),
        (43, 48),
    ]
    assert [(r["source_bbox_y_min"], r["source_bbox_y_max"]) for r in rows[:2]] == [
        (1, 9),
        (26, 34),
    ]
    np.testing.assert_array_equal(result.crops[0], full[:, :, 1:9, 6:14])
    np.testing.assert_array_equal(result.crops[1], full[:, :, 26:34, 43:48])


def test_several_compartments_need_a_choice(datasets):
    from iceberg_bioimage import ContractError

    profiles = pa.table(
        {
            "image_id": ["plate04:A/1/0"],
            "Cells_Location_Center_X": [1.0],
            "Cells_Location_Center_Y": [1.0],
            "Nuclei_Location_Center_X": [1.0],
            "Nuclei_Location_Center_Y": [1.0],
        }
    )
    with pytest.raises(ContractError, match="Cells, Nuclei"):
        read_image_crops(str(datasets["plate04"].path), profiles, crop=CropOptions(size=4))


def test_scan_is_used_for_layout(datasets):
    """The image_assets row the reader relies on describes the fixture (sanity)."""
    assets = scan_as_arrow_table(datasets["plate04"].path)
    assert "plate04:A/1/0" in assets["image_id"].to_pylist()


def test_xarray_crops_keep_the_image_axes(datasets):
    store = datasets["plate04"].path
    full = zarr.open_array(store, path="A/1/0/s0", mode="r")[:]
    boxes = {
        "x_min": np.array([5]),
        "x_max": np.array([20]),
        "y_min": np.array([40]),
        "y_max": np.array([70]),
    }
    result = read_image_crops(
        str(store), profiles_for("plate04:A/1/0", boxes), crop=CropOptions(channels=["GFP"])
    )
    (array,) = result.to_xarray()
    assert array.dims == ("c", "z", "y", "x")
    assert list(array.coords["c"].values) == ["GFP"]
    assert list(array.coords["x"].values) == list(range(5, 20))
    assert array.attrs["object_id"] == "plate04:A/1/0:nuclei:1"
    np.testing.assert_array_equal(array.values, full[1:2, :, 40:64, 5:20])
    np.testing.assert_array_equal(array.sel(y=50, x=7).values.ravel(), full[1:2, :, 50, 7].ravel())


def test_xarray_missing_names_the_requirement(datasets, monkeypatch):
    from iceberg_bioimage import MissingDependencyError

    boxes = {
        "x_min": np.array([5]),
        "x_max": np.array([20]),
        "y_min": np.array([4]),
        "y_max": np.array([7]),
    }
    result = read_image_crops(str(datasets["plate04"].path), profiles_for("plate04:A/1/0", boxes))
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(MissingDependencyError, match="pip install 'xarray'"):
        result.to_xarray()


def test_catalog_chunk_index_without_shard_ranges(sharded05, tmp_path):
    """A chunk index published without shard ranges: inner chunks found via shard indexes."""
    from pyiceberg.catalog.sql import SqlCatalog

    from iceberg_bioimage import register_store

    store, image_id, levels = sharded05
    catalog = SqlCatalog("crops", uri=f"sqlite:///{tmp_path}/c.db", warehouse=tmp_path.as_uri())
    register_store(str(store), catalog, "bio", publish_chunks=True)
    boxes = random_boxes(*levels[0].shape[-2:], count=25, seed=9)
    profiles = profiles_for(image_id, boxes)
    from_catalog = read_image_crops(None, profiles, catalog=catalog, namespace="bio")
    from_store = read_image_crops(str(store), profiles)
    assert from_catalog.table.equals(from_store.table)
    assert len(from_catalog.crops) == len(from_store.crops) > 0
    for a, b in zip(from_catalog.crops, from_store.crops, strict=True):
        np.testing.assert_array_equal(a, b)
    # the shard indexes were read (as metadata), the payloads are the same chunks
    assert from_catalog.stats.chunk_bytes == from_store.stats.chunk_bytes
    assert from_catalog.stats.metadata_bytes > from_store.stats.metadata_bytes
    check_crops(str(store), image_id, levels[0], base_shape=levels[0].shape[-2:], seed=9)
