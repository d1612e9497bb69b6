"""``--profiles`` of export-crops takes every profile source the joins take (SPEC §10).

The sample plate's Phenix TIFFs with the CellProfiler outputs written for them:
ExportToSpreadsheet per-site folders (``Image.csv`` + ``Nuclei.csv``/``Cells.csv``, rows
keyed only by ``ImageNumber``) and a cytominer-database SQLite. Counts and boxes are
read back with Python's ``csv`` and ``sqlite3``; the warehouse with pyarrow.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from iceberg_bioimage import (
    ContractError,
    export_image_crops,
    export_store_to_cytomining_warehouse,
    load_warehouse_manifest,
    validate_warehouse,
    write_sample_data,
)
from iceberg_bioimage.cli import main
from iceberg_bioimage.models.options import CropOptions

pytest.importorskip("ome_arrow")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory):
    return write_sample_data(tmp_path_factory.mktemp("sample") / "data")


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def folder_rows(folders: Path, name: str) -> int:
    return sum(len(csv_rows(f / name)) for f in sorted(folders.iterdir()))


def table_ids(root: Path, table_name: str) -> list[str]:
    entry = load_warehouse_manifest(root).table(table_name)
    assert entry is not None, table_name
    return [
        i
        for f in entry.files
        for i in pq.read_table(root / entry.path / f.path)["object_id"].to_pylist()
    ]


def test_per_site_folders_crop_and_meet_their_profile_rows(sample, tmp_path):
    root = tmp_path / "wh"
    folders = sample.cellprofiler_folders
    export_store_to_cytomining_warehouse(str(sample.phenix), root, profiles=str(folders))
    result = export_image_crops(
        str(sample.phenix), root, profiles=str(folders), crop=CropOptions(compartment="Nuclei")
    )
    assert result.crops == folder_rows(folders, "Nuclei.csv")
    assert result.unmatched == 0
    crops = table_ids(root, "images.image_crops")
    # one compartment resolution: every crop's object_id is its profile row's
    assert sorted(crops) == sorted(table_ids(root, "profiles.nuclei_profiles"))
    assert all(":nuclei:" in i for i in crops)
    assert validate_warehouse(root).is_valid


def test_an_object_file_uses_the_image_table_beside_it(sample, tmp_path):
    site = sample.cellprofiler_folders / "phenix-A02-2"
    image = csv_rows(site / "Image.csv")
    nuclei = csv_rows(site / "Nuclei.csv")
    assert "Metadata_Well" not in nuclei[0] and "ImageNumber" in nuclei[0]
    root = tmp_path / "wh"
    result = export_image_crops(str(sample.phenix), root, profiles=str(site / "Nuclei.csv"))
    assert result.crops == len(nuclei)
    entry = load_warehouse_manifest(root).table("images.image_crops")
    table = pq.read_table(root / entry.path / entry.files[0].path)
    well, number = image[0]["Metadata_Well"], image[0]["Metadata_Site"]
    assert set(table["image_id"].to_pylist()) == {f"phenix:{well[0]}/{int(well[1:])}/{number}"}
    boxes = sorted(
        (
            int(float(r["AreaShape_BoundingBoxMinimum_X"])),
            int(float(r["AreaShape_BoundingBoxMaximum_X"])),
        )
        for r in nuclei
    )
    got = sorted(
        zip(
            table["source_bbox_x_min"].to_pylist(),
            table["source_bbox_x_max"].to_pylist(),
            strict=True,
        )
    )
    assert got == boxes
    assert validate_warehouse(root).is_valid


def test_sqlite_objects_crop_through_their_image_table(sample, tmp_path):
    with sqlite3.connect(sample.cellprofiler_sqlite) as db:
        (cells,) = db.execute("SELECT count(*) FROM Cells").fetchone()
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(
        str(sample.phenix), root, profiles=str(sample.cellprofiler_sqlite)
    )
    result = export_image_crops(
        str(sample.phenix),
        root,
        profiles=str(sample.cellprofiler_sqlite),
        crop=CropOptions(compartment="cells"),
    )
    assert result.crops == cells
    assert sorted(table_ids(root, "images.image_crops")) == sorted(
        table_ids(root, "profiles.cells_profiles")
    )
    assert validate_warehouse(root).is_valid


def test_a_fresh_folder_gets_the_stores_images(sample, tmp_path):
    root = tmp_path / "fresh"
    export_image_crops(
        str(sample.phenix),
        root,
        profiles=str(sample.cellprofiler_folders),
        crop=CropOptions(compartment="nuclei"),
    )
    result = validate_warehouse(root)
    assert result.is_valid, result.errors
    manifest = load_warehouse_manifest(root)
    assets = manifest.table("images.image_assets")
    assert assets is not None and manifest.table("images.chunk_index") is not None
    images = pq.read_table(root / assets.path / assets.files[0].path)
    sites = {
        (r["Metadata_Well"], r["Metadata_Site"])
        for f in sorted(sample.cellprofiler_folders.iterdir())
        for r in csv_rows(f / "Image.csv")
    }
    assert images.num_rows == len(sites)
    crops = manifest.table("images.image_crops")
    ids = pq.read_table(root / crops.path / crops.files[0].path)["image_id"]
    assert pc.all(pc.is_in(ids, images["image_id"])).as_py()
    # a second run leaves the images as they are (no second copy)
    export_image_crops(
        str(sample.phenix),
        root,
        profiles=str(sample.cellprofiler_folders),
        crop=CropOptions(compartment="cells"),
    )
    again = load_warehouse_manifest(root).table("images.image_assets")
    assert again is not None and again.files == assets.files


def test_several_compartments_need_a_choice_naming_the_folder(sample, tmp_path):
    folders = sample.cellprofiler_folders
    with pytest.raises(ContractError, match="cells, nuclei") as raised:
        export_image_crops(str(sample.phenix), tmp_path / "wh", profiles=str(folders))
    assert str(folders) in str(raised.value)
    assert not (tmp_path / "wh").exists()


def test_cli_errors_name_the_profiles_file(sample, tmp_path):
    nuclei = sample.cellprofiler_folders / "phenix-A01-1" / "Nuclei.csv"
    run = CliRunner().invoke(
        main,
        [
            "export-crops",
            str(sample.phenix),
            "--warehouse-root",
            str(tmp_path / "wh"),
            "--profiles",
            str(nuclei),
            "--where",
            "ObjectNumber < abc",
        ],
    )
    assert run.exit_code == 2, run.output
    lines = [line for line in run.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1
    assert str(nuclei) in lines[0] and "ObjectNumber" in lines[0]
    assert "<arrow table>" not in lines[0]
    assert not (tmp_path / "wh").exists()


def test_a_filter_value_beyond_int64_keeps_every_row(sample):
    from iceberg_bioimage import read_image_crops

    nuclei = sample.cellprofiler_folders / "phenix-A01-1" / "Nuclei.csv"
    result = read_image_crops(
        str(sample.phenix),
        str(nuclei),
        where=[("ObjectNumber", "<", 10**23)],
    )
    assert result.table.num_rows == len(csv_rows(nuclei))
