"""``export_image_crops`` / ``export-crops``: the image_crops table, round trips, re-runs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
from pyiceberg.catalog.sql import SqlCatalog

from iceberg_bioimage import (
    CropOptions,
    export_image_crops,
    export_store_to_cytomining_warehouse,
    load_warehouse_manifest,
    register_store,
    validate_warehouse,
)
from iceberg_bioimage.warehouse.write import read_table

pytestmark = pytest.mark.usefixtures("written_warehouses")  # every warehouse written validates

SPEC_COLUMNS = [
    "dataset_id",
    "image_id",
    "object_id",
    "Metadata_ObjectID",
    "Metadata_ImageCropID",
    "source_bbox_x_min",
    "source_bbox_x_max",
    "source_bbox_y_min",
    "source_bbox_y_max",
    "ome_arrow_image",
]


def plate_profiles() -> pa.Table:
    """Nuclei rows of two plate04 fields keyed by well and site (as CellProfiler writes them)."""
    return pa.table(
        {
            "Metadata_Well": ["A01", "A01", "B03", "B03"],
            "Metadata_Site": ["0", "0", "1", "1"],
            "ObjectNumber": [1, 2, 1, 2],
            "Metadata_Treatment": ["dmso", "drug", "drug", "dmso"],
            "Nuclei_AreaShape_BoundingBoxMinimum_X": [0, 20, 30, 40],
            "Nuclei_AreaShape_BoundingBoxMinimum_Y": [0, 30, 50, 10],
            "Nuclei_AreaShape_BoundingBoxMaximum_X": [12, 33, 60, 47],
            "Nuclei_AreaShape_BoundingBoxMaximum_Y": [9, 44, 70, 25],
        }
    )


def ome_pixels(record: pa.StructScalar) -> np.ndarray:
    """Pixels of an OME-Arrow record as read back by ``ome_arrow`` (TCZYX)."""
    import ome_arrow

    return ome_arrow.OMEArrow(record).export("numpy")


def crops_entry(root):
    manifest = load_warehouse_manifest(root)
    return manifest.table("images.image_crops")


def test_export_writes_spec_table_that_round_trips(datasets, tmp_path):
    store = datasets["plate04"].path
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(str(store), root, profiles=plate_profiles())
    result = export_image_crops(str(store), root, profiles=plate_profiles())
    assert result.crops == 4 and result.skipped == 0
    entry = crops_entry(root)
    assert entry.role == "image_crops"
    assert entry.join_keys == ("dataset_id", "image_id", "object_id")
    table = read_table(root, entry)
    assert table.column_names == SPEC_COLUMNS
    assert table["object_id"].to_pylist() == [
        "plate04:A/1/0:nuclei:1",
        "plate04:A/1/0:nuclei:2",
        "plate04:B/3/1:nuclei:1",
        "plate04:B/3/1:nuclei:2",
    ]
    assert len(set(table["Metadata_ObjectID"].to_pylist())) == 4
    assert validate_warehouse(root).is_valid
    a = zarr.open_array(store, path="A/1/0/s0", mode="r")[:]
    b = zarr.open_array(store, path="B/3/1/s0", mode="r")[:]
    expected = [
        a[:, :, 0:9, 0:12],
        a[:, :, 30:44, 20:33],
        b[:, :, 50:64, 30:48],
        b[:, :, 10:25, 40:47],
    ]
    for record, pixels in zip(table["ome_arrow_image"], expected, strict=True):
        got = ome_pixels(record)
        assert got.shape == (1, *pixels.shape)
        np.testing.assert_array_equal(got[0], pixels)
    assert [r["source_bbox_x_max"] for r in table.to_pylist()] == [12, 33, 48, 47]


def test_rerun_replaces_only_that_datasets_crops(datasets, tmp_path):
    root = tmp_path / "wh"
    strips = pa.table(
        {
            "image_id": ["strips:0"],
            "object_id": ["strips:0:cells:5"],
            "Cells_AreaShape_BoundingBoxMinimum_X": [3],
            "Cells_AreaShape_BoundingBoxMinimum_Y": [4],
            "Cells_AreaShape_BoundingBoxMaximum_X": [30],
            "Cells_AreaShape_BoundingBoxMaximum_Y": [40],
        }
    )
    export_store_to_cytomining_warehouse(str(datasets["plate04"].path), root)
    export_image_crops(str(datasets["strips"].path), root, profiles=strips)
    first = export_image_crops(str(datasets["plate04"].path), root, profiles=plate_profiles())
    before = read_table(root, crops_entry(root)).sort_by("Metadata_ImageCropID")
    again = export_image_crops(str(datasets["plate04"].path), root, profiles=plate_profiles())
    after = read_table(root, crops_entry(root)).sort_by("Metadata_ImageCropID")
    assert first.crops == again.crops == 4
    assert after.num_rows == 5
    assert after.equals(before)
    assert sorted(set(after["dataset_id"].to_pylist())) == ["plate04", "strips"]
    assert validate_warehouse(root).is_valid
    # another level or channel set is another crop id; the object id stays
    other = export_image_crops(
        str(datasets["plate04"].path),
        root,
        profiles=plate_profiles(),
        crop=CropOptions(channels=["GFP"]),
    )
    assert other.crops == 4
    changed = read_table(root, crops_entry(root))
    plate = changed.filter(pa.compute.equal(changed["dataset_id"], "plate04"))
    assert set(plate["Metadata_ObjectID"].to_pylist()) == set(
        before.filter(pa.compute.equal(before["dataset_id"], "plate04"))[
            "Metadata_ObjectID"
        ].to_pylist()
    )
    assert not set(plate["Metadata_ImageCropID"].to_pylist()) & set(
        before["Metadata_ImageCropID"].to_pylist()
    )
    assert ome_pixels(plate["ome_arrow_image"][0]).shape[1] == 1


def test_export_from_catalog_matches_store(datasets, tmp_path):
    store = datasets["plate04"].path
    catalog = SqlCatalog("crops", uri=f"sqlite:///{tmp_path}/c.db", warehouse=tmp_path.as_uri())
    register_store(str(store), catalog, "bio", publish_chunks=True)
    from_catalog = export_image_crops(
        None,
        tmp_path / "a",
        profiles=plate_profiles(),
        catalog=catalog,
        namespace="bio",
        profile_dataset_id="plate04",
    )
    from_store = export_image_crops(str(store), tmp_path / "b", profiles=plate_profiles())
    assert from_catalog.crops == from_store.crops == 4
    a = read_table(tmp_path / "a", crops_entry(tmp_path / "a"))
    b = read_table(tmp_path / "b", crops_entry(tmp_path / "b"))
    assert a.equals(b)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_export_crops_with_where(datasets, tmp_path, written_warehouses):
    profiles = tmp_path / "profiles.parquet"
    pq.write_table(plate_profiles(), profiles)
    root = written_warehouses.add(tmp_path / "wh")  # validated when the test passes
    done = run(
        "export-crops",
        "--warehouse-root",
        str(root),
        "--profiles",
        str(profiles),
        "--where",
        "Metadata_Treatment = drug",
        "--channels",
        "DAPI",
        "--json",
        str(datasets["plate04"].path),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["crops"] == 2
    assert report["reads"]["max_decodes_per_chunk"] == 1
    table = read_table(root, crops_entry(root))
    assert table["object_id"].to_pylist() == ["plate04:A/1/0:nuclei:2", "plate04:B/3/1:nuclei:1"]


def test_cli_errors_name_the_problem(datasets, tmp_path):
    profiles = tmp_path / "profiles.parquet"
    pq.write_table(
        plate_profiles().drop_columns(["Nuclei_AreaShape_BoundingBoxMinimum_X"]), profiles
    )
    done = run(
        "export-crops",
        "--warehouse-root",
        str(tmp_path / "wh"),
        "--profiles",
        str(profiles),
        str(datasets["plate04"].path),
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert "BoundingBox" in done.stderr
    assert not (tmp_path / "wh").exists()
    bad = run(
        "export-crops",
        "--warehouse-root",
        str(tmp_path / "wh"),
        "--profiles",
        str(profiles),
        "--where",
        "Metadata_Well ~ A01",
        str(datasets["plate04"].path),
    )
    assert bad.returncode == 2
    assert "--where" in bad.stderr


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("Metadata_Well = A01", ("Metadata_Well", "=", "A01")),
        ("Nuclei_Area >= 12.5", ("Nuclei_Area", ">=", 12.5)),
        ("Metadata_Well in A01, B03", ("Metadata_Well", "in", ["A01", "B03"])),
        ("qc_pass is not null", ("qc_pass", "is not null")),
        ("Metadata_Plate = '7'", ("Metadata_Plate", "=", "7")),
    ],
)
def test_where_syntax(text, parsed):
    from iceberg_bioimage.cli.crop_commands import parse_where

    assert parse_where(text) == parsed


def test_missing_ome_arrow_names_the_extra(datasets, tmp_path, monkeypatch):
    from iceberg_bioimage import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ome_arrow", None)
    with pytest.raises(MissingDependencyError, match=r"iceberg-bioimage\[ome-arrow\]"):
        export_image_crops(
            str(datasets["plate04"].path), tmp_path / "wh", profiles=plate_profiles()
        )
    assert not (tmp_path / "wh").exists()


def test_source_images_come_from_the_same_single_read(datasets, tmp_path):
    """Whole images beside the crops: every chunk of each image decoded exactly once."""
    store = datasets["plate04"].path
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(str(store), root)
    result = export_image_crops(
        str(store),
        root,
        profiles=plate_profiles(),
        crop=CropOptions(source_images=True, channels=["GFP"]),
    )
    assert result.source_images is not None and result.source_images.rows_written == 2
    # 2 images × 1 channel × (64/32) × (48/32 → 2) chunks, each decoded once
    assert result.reads["decodes"] == 2 * 1 * 2 * 2
    assert result.reads["max_decodes_per_chunk"] == 1
    entry = load_warehouse_manifest(root).table("images.source_images")
    assert entry.role == "source_images"
    images = read_table(root, entry)
    assert images["image_id"].to_pylist() == ["plate04:A/1/0", "plate04:B/3/1"]
    for image_id, record in zip(
        images["image_id"].to_pylist(), images["ome_arrow_image"], strict=True
    ):
        full = zarr.open_array(store, path=image_id.split(":")[1] + "/s0", mode="r")[:]
        np.testing.assert_array_equal(ome_pixels(record)[0], full[1:2])
    assert validate_warehouse(root).is_valid
