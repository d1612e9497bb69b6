"""Real files from public repositories (tests/data/real, PROVENANCE.md), each with its quirk.

Every expectation is read from the file itself by an independent reader (tifffile's
strip tables and pixels, the OME-XML with ElementTree), never from our earlier output.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile

from iceberg_bioimage import FileSetOptions, api, validate_warehouse
from iceberg_bioimage.tables.build import canonical_table

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
EXAMPLES = REAL / "cellprofiler-examples"
HUMAN = EXAMPLES / "ExampleHuman" / "images"
WORMS = EXAMPLES / "ExampleUntangleWorms" / "images"
ILLUM = EXAMPLES / "ExampleIlluminationCorrection" / "images"
STRAIGHTEN = EXAMPLES / "ExampleStraightenWorms" / "images"
SPEC_SAMPLES = REAL / "bioformats-specification-samples"
SCANR = "--W00001--P00001--Z00000--T00000--cherry.tif"


def _strips(path: Path) -> tuple[list[int], list[int]]:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        return [int(o) for o in page.dataoffsets], [int(n) for n in page.databytecounts]


def _copy(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy(file, folder / file.name)
    return folder


# --- scan^R: a name beginning with "--" (issue 19 item 11) ---------------------------


def test_scanr_file_scans_with_its_own_name_as_dataset_id(tmp_path: Path) -> None:
    result = api.scan_store(ILLUM / SCANR)
    assert result.dataset_id == "--W00001--P00001--Z00000--T00000--cherry"
    (asset,) = result.image_assets
    assert asset.shape[-2:] == (1024, 1344) and asset.dtype == "uint16"
    chunks = canonical_table(result, "chunk_index")
    offsets, lengths = _strips(ILLUM / SCANR)
    assert chunks["byte_offset"].to_pylist() == offsets == [8]
    assert chunks["byte_length"].to_pylist() == lengths == [1660272]
    export = api.export_store_to_cytomining_warehouse(ILLUM / SCANR, tmp_path / "wh")
    assert export is not None
    written = sorted(p.name for p in (tmp_path / "wh").rglob("*.parquet"))
    assert written and all(n.startswith("--W00001") for n in written)
    assert validate_warehouse(tmp_path / "wh").is_valid


def test_scanr_folder_with_the_preset(tmp_path: Path) -> None:
    folder = _copy([ILLUM / SCANR], tmp_path / "scanr_plate")
    result = api.scan_store(folder, file_set=FileSetOptions.build(instrument="scanr"))
    (asset,) = result.image_assets
    assert (asset.well_id, asset.site_id, asset.channel_names) == ("A01", "1", ("cherry",))
    chunks = canonical_table(result, "chunk_index").to_pylist()
    assert [(r["chunk_key"], r["byte_offset"], r["byte_length"]) for r in chunks] == [
        (SCANR, 8, 1660272)
    ]


# --- ImageXpress: "_" (and "_[...]") before the GUID (issue 19 item 2) ----------------


def test_imagexpress_underscore_before_guid(tmp_path: Path) -> None:
    folder = _copy(sorted(WORMS.glob("*.tif")), tmp_path / "worms")
    result = api.scan_store(folder, file_set=FileSetOptions.build(instrument="imagexpress"))
    (asset,) = result.image_assets
    assert result.dataset_id == "1649_1109_0003_Amp5-1_B_20070424"
    assert asset.image_id == "1649_1109_0003_Amp5-1_B_20070424:C/1/0"
    assert asset.channel_names == ("w1", "w2")
    assert asset.shape == (2, 1, 520, 696) and asset.dtype == "uint16"
    rows = canonical_table(result, "chunk_index").to_pylist()
    for path in sorted(WORMS.glob("*.tif")):
        offsets, lengths = _strips(path)
        mine = [r for r in rows if r["chunk_key"] == path.name]
        assert [r["byte_offset"] for r in mine] == offsets
        assert [r["byte_length"] for r in mine] == lengths
        assert len(mine) == 104  # FACTS.md: 104 strips of 5 rows
    # Detected without --instrument too.
    assert api.scan_store(folder).image_ids == result.image_ids


@pytest.mark.parametrize(
    ("folder", "name", "channel", "well"),
    [
        (ILLUM, "ADSAStaphInfection2_A01_w2247376DD-6ADD-442D-AE47-F54A05F3EA94.tif", "w2", "A01"),
        (
            STRAIGHTEN,
            "101210OranePlt1_C16_w1_[9AA4D9EA-18E4-4354-8C7D-0202029A8048].tif",
            "w1",
            "C16",
        ),
    ],
)
def test_imagexpress_guid_forms(
    tmp_path: Path, folder: Path, name: str, channel: str, well: str
) -> None:
    plate = _copy([folder / name], tmp_path / "plate")
    result = api.scan_store(plate, file_set=FileSetOptions.build(instrument="imagexpress"))
    (asset,) = result.image_assets
    assert (asset.well_id, asset.channel_names) == (well, (channel,))
    offsets, lengths = _strips(folder / name)
    chunks = canonical_table(result, "chunk_index")
    assert chunks["byte_offset"].to_pylist() == offsets
    assert chunks["byte_length"].to_pylist() == lengths
