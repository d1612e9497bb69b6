"""Real CellProfiler Image tables (tests/data/real, PROVENANCE.md): issue 19 items 3 and 4.

CellProfiler's ExampleHuman pipeline (CytoTable's copy of its output) has no Metadata
module: its ``Image.csv`` names no well or site, only ``FileName_<Ch>``/``PathName_<Ch>``
(and ``URL_<Ch>``) of the three ArrayScan files that a scan of
``cellprofiler-examples/ExampleHuman/images`` indexes as one image. Counts are read with
Python's ``csv`` module, never with ours.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from iceberg_bioimage import ContractError, api, validate_warehouse
from iceberg_bioimage.models.options import ProfileOptions

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
IMAGES = REAL / "cellprofiler-examples" / "ExampleHuman" / "images"
OUTPUT = REAL / "cytotable" / "cellprofiler" / "ExampleHuman"
OTHER_IMAGE_TABLE = (
    REAL / "cytotable" / "cellprofiler" / "cpg0043-segmentation" / "BR00116991-A01-1"
)
IMAGE_ID = "AS_09125_050116030001:D/3/0"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_image_table_names_files_not_wells() -> None:
    (row,) = _csv_rows(OUTPUT / "Image.csv")
    assert not [c for c in row if c.startswith("Metadata_") and c.endswith(("Well", "Site"))]
    assert row["FileName_DNA"] == "AS_09125_050116030001_D03f00d0.tif"
    assert not Path(row["PathName_DNA"]).exists()  # an absolute container path


@pytest.mark.parametrize("compartment", ["Nuclei", "Cells", "Cytoplasm"])
def test_objects_reach_the_scanned_site_through_the_files(compartment: str) -> None:
    joined = api.join_profiles_with_store(IMAGES, OUTPUT / f"{compartment}.csv")
    expected = len(_csv_rows(OUTPUT / f"{compartment}.csv"))
    assert joined.num_rows == expected > 0
    assert set(joined["image_id"].to_pylist()) == {IMAGE_ID}
    numbers = [int(r["ObjectNumber"]) for r in _csv_rows(OUTPUT / f"{compartment}.csv")]
    assert sorted(joined["ObjectNumber"].to_pylist()) == sorted(numbers)
    assert len(set(joined["object_id"].to_pylist())) == expected


def test_counts_equal_the_image_table_counts() -> None:
    (image,) = _csv_rows(OUTPUT / "Image.csv")
    for compartment in ("Nuclei", "Cells", "Cytoplasm"):
        joined = api.join_profiles_with_store(IMAGES, OUTPUT / f"{compartment}.csv")
        assert joined.num_rows == int(float(image[f"Count_{compartment}"])) == 289


def test_export_of_the_output_folder_validates(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    api.export_store_to_cytomining_warehouse(IMAGES, root, profiles=OUTPUT)
    assert validate_warehouse(root).is_valid
    for compartment in ("nuclei", "cells", "cytoplasm"):
        folder = root / "profiles" / f"{compartment}_profiles"
        table = pq.read_table(next(folder.glob("*.parquet")))
        assert set(table["image_id"].to_pylist()) == {IMAGE_ID}
        assert table.num_rows == len(_csv_rows(OUTPUT / f"{compartment.capitalize()}.csv"))


def test_explicit_image_table_wins_over_the_sibling(tmp_path: Path) -> None:
    """A sibling Image.csv of another plate (BR00116991, well A01) must not be used."""
    folder = tmp_path / "objects"
    folder.mkdir()
    shutil.copy(OUTPUT / "Nuclei.csv", folder / "Nuclei.csv")
    shutil.copy(OTHER_IMAGE_TABLE / "Image.csv", folder / "Image.csv")
    assert _csv_rows(folder / "Image.csv")[0]["Metadata_Well"] == "A01"
    options = ProfileOptions(image_table=OUTPUT / "Image.csv")
    joined = api.join_profiles_with_store(IMAGES, folder / "Nuclei.csv", options=options)
    assert joined.num_rows == len(_csv_rows(OUTPUT / "Nuclei.csv"))
    assert set(joined["image_id"].to_pylist()) == {IMAGE_ID}


def test_explicit_image_table_wins_on_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from iceberg_bioimage.cli import main

    folder = tmp_path / "objects"
    folder.mkdir()
    shutil.copy(OUTPUT / "Nuclei.csv", folder / "Nuclei.csv")
    (folder / "Image.csv").write_text("ImageNumber,Metadata_Well\n1,not a well\n")
    out = tmp_path / "joined.parquet"
    args = ["join-profiles", str(IMAGES), str(folder / "Nuclei.csv")]
    args += ["--image-table", str(OUTPUT / "Image.csv"), "--output", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert set(table["image_id"].to_pylist()) == {IMAGE_ID}


def test_files_of_several_images_are_refused(tmp_path: Path) -> None:
    """One Image row naming files of two images is an error, never a guess."""
    plate = tmp_path / "plate"
    plate.mkdir()
    for c in range(3):
        name = f"AS_09125_050116030001_D03f00d{c}.tif"
        shutil.copy(IMAGES / name, plate / name)
        shutil.copy(IMAGES / name, plate / name.replace("D03", "D04"))
    (row,) = _csv_rows(OUTPUT / "Image.csv")
    row["FileName_PH3"] = row["FileName_PH3"].replace("D03", "D04")
    row["URL_PH3"] = row["URL_PH3"].replace("D03", "D04")
    image = tmp_path / "Image.csv"
    with open(image, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    options = ProfileOptions(image_table=image)
    with pytest.raises(ContractError, match="ImageNumber 1: its files belong to several images"):
        api.join_profiles_with_store(plate, OUTPUT / "Nuclei.csv", options=options)


def test_catalog_join_matches_the_image_table_by_files(tmp_path: Path) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=tmp_path.as_uri())
    api.register_store(IMAGES, catalog, "bio", publish_chunks=True)
    joined = api.join_catalog_image_assets_with_profiles(
        catalog,
        "bio",
        OUTPUT / "Nuclei.csv",
        profile_dataset_id="AS_09125_050116030001",
    )
    assert joined.num_rows == len(_csv_rows(OUTPUT / "Nuclei.csv"))
    assert set(joined["image_id"].to_pylist()) == {IMAGE_ID}
