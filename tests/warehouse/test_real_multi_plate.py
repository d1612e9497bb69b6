"""Several real plates in one warehouse (issue 19, acceptance 3).

Four plates from four public repositories, each in its own format and naming, are
exported one after another into one warehouse through the real CLI. Every export
exits 0; the warehouse validates; pycytominer's ``load_profiles`` and DuckDB read
the right rows per plate. Expected counts come from independent readers of the
sources (tifffile, JSON, pyarrow), never from our own output.

Plates (tests/data/real, see PROVENANCE.md and FACTS.md):

* ``Plate_2`` — coSMicQC's NF1 Cell Painting images (3 deflate TIFFs, one site of
  well B7, custom names → ``--pattern``), with CytoTable's joined single-cell
  profiles (5 rows; 1 of them has its images here). Its plate/well/site columns
  carry pandas merge suffixes (``Image_Metadata_Plate_x``) → ``--aliases``.
* ``plate-rows-2`` — ome-zarr-py's bioformats2raw plate (NGFF 0.4, wells A/1, B/1).
* ``BR00122249`` — pe2loaddata's Phenix image (Version5, one channel of A01 f01).
* ``6x4y1z1t1c8b-swatch-1s1p4w2ws…`` — an OME-TIFF plate (Bio-Formats
  specification sample, 11 images in 4 wells).
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

import duckdb
import pyarrow.parquet as pq
import pytest
import tifffile
from click.testing import CliRunner

from fixtures.ngff_counts import zarr_arrays, zarr_chunk_files
from iceberg_bioimage import load_warehouse_manifest, validate_warehouse
from iceberg_bioimage.cli import main

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
NF1 = REAL / "cosmicqc" / "cytotable" / "NF1_cellpainting_data_shrunken"
NF1_PROFILES = NF1 / "Plate_2_with_image_data_shrunken.parquet"
BF2RAW = REAL / "ome-zarr-py" / "bf2raw" / "plate-rows-2.zarr"
PHENIX = REAL / "pe2loaddata" / "Version5" / "images"
OME_PLATE = (
    REAL / "bioformats-specification-samples" / "2010-06" / "6x4y1z1t1c8b-swatch-1s1p4w2ws"
    ".ome-v2010-06.ome.tiff"
)
NF1_PATTERN = r"(?P<well>[A-H][0-9]+)_01_(?P<channel>[0-9])_(?P<site>[0-9]+)_[A-Za-z]+_001\.tif"
ALIASES = """[microscopy.aliases]
plate_id = "Image_Metadata_Plate_x"
well_id = "Image_Metadata_Well_x"
site_id = "Image_Metadata_Site_x"
"""


def _strips(path: Path) -> int:
    """Stored strips/tiles of every page of a TIFF (tifffile)."""
    with tifffile.TiffFile(path) as tif:
        return sum(len(page.dataoffsets) for page in tif.pages)


def _ome_images(path: Path) -> int:
    with tifffile.TiffFile(path) as tif:
        return len(re.findall(r"<Image\b", tif.ome_metadata or ""))


def _ome_image_strips(path: Path) -> int:
    """Strips of the IFD each OME Image's TiffData names, summed over the images.

    This sample's 11 Images all name IFD 0 (its only IFD, 4 strips): each image's
    chunks are that IFD's strips.
    """
    with tifffile.TiffFile(path) as tif:
        root = ElementTree.fromstring(tif.ome_metadata or "")
        strips = [len(page.dataoffsets) for page in tif.pages]
    total = 0
    for image in root.iter():
        if image.tag.endswith("}Image"):
            ifds = [int(t.get("IFD", "0")) for t in image.iter() if t.tag.endswith("}TiffData")]
            total += sum(strips[i] for i in ifds)
    return total


def _export(root: Path, *args: str) -> None:
    result = CliRunner().invoke(main, ["export-cytomining", "--warehouse-root", str(root), *args])
    assert result.exit_code == 0, result.output
    assert validate_warehouse(root).is_valid, validate_warehouse(root).errors


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four plates, exported one after another into one warehouse."""
    scratch = tmp_path_factory.mktemp("real-plates")
    aliases = scratch / "aliases.toml"
    aliases.write_text(ALIASES)
    root = scratch / "wh"
    _export(
        root,
        str(NF1 / "Plate_2_images"),
        "--pattern",
        NF1_PATTERN,
        "--plate-id",
        "Plate_2",
        "--channel-names",
        "DAPI,GFP,RFP",
        "--profiles",
        str(NF1_PROFILES),
        "--aliases",
        str(aliases),
    )
    _export(root, str(BF2RAW))
    _export(root, str(PHENIX), "--plate-id", "BR00122249")
    _export(root, str(OME_PLATE))
    return root


EXPECTED_IMAGES = {
    "Plate_2": lambda: 1,  # one site (B7 s3), its three channel files one image
    "plate-rows-2": lambda: zarr_arrays(BF2RAW),
    "BR00122249": lambda: 1,
    OME_PLATE.name.removesuffix(".ome.tiff"): lambda: _ome_images(OME_PLATE),
}
EXPECTED_CHUNKS = {
    "Plate_2": lambda: sum(_strips(p) for p in (NF1 / "Plate_2_images").glob("*.tif")),
    "plate-rows-2": lambda: zarr_chunk_files(BF2RAW),
    "BR00122249": lambda: sum(_strips(p) for p in PHENIX.glob("*.tiff")),
    OME_PLATE.name.removesuffix(".ome.tiff"): lambda: _ome_image_strips(OME_PLATE),
}


def test_four_real_plates_validate(warehouse: Path) -> None:
    result = validate_warehouse(warehouse)
    assert result.is_valid, result.errors
    assert result.failed_requirements == ()
    manifest = load_warehouse_manifest(warehouse)
    assets = manifest.table("images.image_assets")
    assert assets is not None
    assert set(assets.datasets) == set(EXPECTED_IMAGES)


def test_duckdb_reads_each_plates_images_and_chunks(warehouse: Path) -> None:
    con = duckdb.connect()
    images = dict(
        con.execute(
            "SELECT dataset_id, count(*) FROM read_parquet(?, union_by_name=true) GROUP BY 1",
            [str(warehouse / "images" / "image_assets" / "*.parquet")],
        ).fetchall()
    )
    assert images == {d: count() for d, count in EXPECTED_IMAGES.items()}
    chunks = dict(
        con.execute(
            "SELECT dataset_id, count(*) FROM read_parquet(?, union_by_name=true) GROUP BY 1",
            [str(warehouse / "images" / "chunk_index" / "*.parquet")],
        ).fetchall()
    )
    for dataset_id, count in EXPECTED_CHUNKS.items():
        assert chunks[dataset_id] == count(), dataset_id
    assert set(chunks) == set(EXPECTED_IMAGES)


def test_profiles_read_by_pycytominer_and_duckdb(warehouse: Path) -> None:
    from pycytominer.cyto_utils import load_profiles

    source = pq.read_table(NF1_PROFILES)
    folder = warehouse / "profiles" / "joined_profiles"
    frame = load_profiles(str(folder))
    assert len(frame) == source.num_rows == 5
    assert set(frame["dataset_id"]) == {"Plate_2"}
    # the one site whose images are here (B7 s3, FACTS.md) has its image id
    matched = frame[frame["image_id"].notna()]
    assert list(matched["Image_Metadata_Well_x"]) == ["B7"]
    assert list(matched["image_id"]) == ["Plate_2:B/7/3"]
    counts = dict(
        duckdb.execute(
            "SELECT dataset_id, count(*) FROM read_parquet(?, union_by_name=true) GROUP BY 1",
            [str(folder / "*.parquet")],
        ).fetchall()
    )
    assert counts == {"Plate_2": 5}
    # every column of the source is kept (CytoTable's 2,077)
    assert set(source.column_names) <= set(frame.columns)
