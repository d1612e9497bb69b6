"""Real files from public repositories (tests/data/real, PROVENANCE.md), each with its quirk.

Every expectation is read from the file itself by an independent reader (tifffile's
strip tables and pixels, the OME-XML with ElementTree), never from our earlier output.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from iceberg_bioimage import FileSetOptions, api, validate_warehouse
from iceberg_bioimage.models.options import CropOptions
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


# --- ArrayScan: one site, files of different compression and strips (item 1) -------

HUMAN_FILES = [HUMAN / f"AS_09125_050116030001_D03f00d{c}.tif" for c in range(3)]
HUMAN_IMAGE = "AS_09125_050116030001:D/3/0"


def _codec(path: Path) -> str:
    with tifffile.TiffFile(path) as tif:
        return tif.pages.first.compression.name.lower()


def test_arrayscan_site_with_mixed_file_layouts_is_one_image() -> None:
    result = api.scan_store(HUMAN)
    assert result.warnings == ()
    (asset,) = result.image_assets
    assert asset.image_id == HUMAN_IMAGE
    assert (asset.plate_id, asset.well_id, asset.site_id) == ("AS_09125_050116030001", "D03", "0")
    assert asset.shape == (3, 1, 512, 512) and asset.dtype == "uint8"
    assert asset.channel_names == ("d0", "d1", "d2")
    # Each file keeps its own layout: tifffile says 32 strips of 16 rows (PackBits) for
    # d0/d1 and one strip of 512 rows (uncompressed) for d2.
    with tifffile.TiffFile(HUMAN_FILES[2]) as tif:
        assert tif.pages.first.rowsperstrip == 512
    assert [_codec(p) for p in HUMAN_FILES] == ["packbits", "packbits", "none"]
    assert asset.codecs == "packbits|none"
    assert asset.chunks == (1, 1, 16, 512)  # the first file's layout
    strips = [_strips(p) for p in HUMAN_FILES]
    assert asset.chunk_count == sum(len(o) for o, _ in strips) == 65
    rows = canonical_table(result, "chunk_index").to_pylist()
    assert len(rows) == 65
    for channel, (path, (offsets, lengths)) in enumerate(zip(HUMAN_FILES, strips, strict=True)):
        mine = [r for r in rows if r["chunk_key"] == path.name]
        assert [r["byte_offset"] for r in mine] == offsets
        assert [r["byte_length"] for r in mine] == lengths
        # Coordinates are in the file's own strip grid.
        assert [r["chunk_coords"] for r in mine] == [
            [channel, 0, i, 0] for i in range(len(offsets))
        ]
    assert all(r["present"] for r in rows)


def _cells_boxes() -> tuple[list[dict[str, str]], Any]:
    import pyarrow as pa

    with open(REAL / "cytotable/cellprofiler/ExampleHuman/Cells.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = [f"AreaShape_BoundingBox{e}_{a}" for e in ("Minimum", "Maximum") for a in "XY"]
    columns: dict[str, list[Any]] = {f"Cells_{n}": [int(r[n]) for r in rows] for n in names}
    columns["ObjectNumber"] = [int(r["ObjectNumber"]) for r in rows]
    columns["image_id"] = [HUMAN_IMAGE] * len(rows)
    return rows, pa.table(columns)


@pytest.mark.parametrize(("channel", "index"), [("d0", 0), ("d2", 2)])
def test_crops_of_the_packbits_and_the_raw_channel_equal_tifffile(channel: str, index: int) -> None:
    rows, boxes = _cells_boxes()
    crops = api.read_image_crops(HUMAN, boxes, crop=CropOptions(channels=[channel]))
    plane = tifffile.imread(HUMAN_FILES[index])
    assert len(crops.crops) == len(rows) == 289  # FACTS.md: Count_Cells 289
    order = crops.table["profile_row"].to_pylist()
    for position, crop in zip(order, crops.crops, strict=True):
        row = rows[position]
        x0, x1, y0, y1 = (
            int(row[f"AreaShape_BoundingBox{e}_{a}"]) for a in "XY" for e in ("Minimum", "Maximum")
        )
        assert crop.shape == (1, 1, y1 - y0, x1 - x0)
        np.testing.assert_array_equal(crop[0, 0], plane[y0:y1, x0:x1])
    # Only the chosen file's strips were read (d2 has one), each fetched and decoded once.
    offsets, _ = _strips(HUMAN_FILES[index])
    assert crops.stats.chunks_fetched == len(offsets) == (1 if index == 2 else 32)
    assert set(crops.stats.decoded.values()) == {1}


def test_arrayscan_site_exports_and_validates(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    api.export_store_to_cytomining_warehouse(HUMAN, root)
    import pyarrow.parquet as pq

    chunks = pq.read_table(next((root / "images" / "chunk_index").glob("*.parquet")))
    assert chunks.num_rows == 65
    assert validate_warehouse(root).is_valid


# --- OME-TIFF specification samples, against their own OME-XML (item 10) -------------

OME_SAMPLES = sorted(SPEC_SAMPLES.glob("*/*.ome.tif*"))


def _ome_images(xml: str) -> list[dict[str, int]]:
    root = ET.fromstring(xml)
    out = []
    for image in root.iter():
        if image.tag.rsplit("}", 1)[-1] != "Image":
            continue
        (pixels,) = [p for p in image if p.tag.rsplit("}", 1)[-1] == "Pixels"]
        out.append({k: int(pixels.get(f"Size{k}", "1")) for k in "XYZCT"})
    return out


def _tifffile_segments(path: Path) -> list[tuple[int, int]]:
    """Every strip/tile of every series, as tifffile lists them."""
    with tifffile.TiffFile(path) as tif:
        return [
            (int(o), int(n))
            for series in tif.series
            for page in series.pages
            for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)
        ]


@pytest.mark.parametrize("path", OME_SAMPLES, ids=lambda p: p.name)
def test_ome_tiff_samples_match_their_ome_xml_and_tifffile(path: Path) -> None:
    with tifffile.TiffFile(path) as tif:
        images = _ome_images(tif.pages.first.description)
    result = api.scan_store(path)
    assert not [w for w in result.warnings if "missing" in w]
    assert result.image_count == len(images)
    for asset, image in zip(result.image_assets, images, strict=True):
        assert asset.shape[asset.axes.index("y")] == image["Y"]
        assert asset.shape[asset.axes.index("x")] == image["X"]
        planes = [n for n, a in zip(asset.shape, asset.axes, strict=True) if a not in "yxs"]
        assert int(np.prod(planes)) == image["C"] * image["Z"] * image["T"]
    rows = canonical_table(result, "chunk_index")
    mine = list(zip(rows["byte_offset"].to_pylist(), rows["byte_length"].to_pylist(), strict=True))
    assert sorted(mine) == sorted(_tifffile_segments(path))


def test_renamed_flim_file_is_its_own_reference(tmp_path: Path) -> None:
    """Every TiffData names 'FLIM.ome.tif' (stale) with the file's own UUID: no warning."""
    path = SPEC_SAMPLES / "2012-06" / "FLIM-modulo-sample.ome.tif"
    with tifffile.TiffFile(path) as tif:
        root = ET.fromstring(tif.pages.first.description)
    uuids = {n.text for n in root.iter() if n.tag.endswith("}UUID")}
    names = {n.get("FileName") for n in root.iter() if n.tag.endswith("}UUID")}
    assert uuids == {root.get("UUID")} and names == {"FLIM.ome.tif"}
    result = api.scan_store(path)
    assert result.warnings == ()
    (asset,) = result.image_assets
    assert asset.dtype == "int8"
    planes = [n for n, a in zip(asset.shape, asset.axes, strict=True) if a not in "yxs"]
    assert int(np.prod(planes)) == 16  # SizeC 16 (2 channels x 8 lifetimes, ModuloAlongC)
    assert asset.chunk_count == len(_tifffile_segments(path))


def test_companion_set_is_one_image_over_five_files() -> None:
    folder = SPEC_SAMPLES / "2012-06" / "set-1-meta-companion"
    companion = folder / "18x24y5z1t1c8b-text-companion.ome"
    (image,) = _ome_images(companion.read_text())
    assert (image["Z"], image["C"], image["T"]) == (5, 1, 1)
    result = api.scan_store(companion)
    assert result.warnings == ()
    (asset,) = result.image_assets
    assert asset.shape[asset.axes.index("z")] == 5
    rows = canonical_table(result, "chunk_index").to_pylist()
    files = sorted(folder.glob("*.ome.tiff"))
    assert sorted(r["chunk_key"] for r in rows) == [p.name for p in files]
    for path in files:
        (mine,) = [
            (r["byte_offset"], r["byte_length"]) for r in rows if r["chunk_key"] == path.name
        ]
        assert [mine] == _tifffile_segments(path)
        # The pixels of each file are the plane the companion places there.
        np.testing.assert_array_equal(
            np.frombuffer(path.read_bytes()[mine[0] : mine[0] + mine[1]], np.uint8).reshape(24, 18),
            tifffile.imread(path),
        )


# --- Public buckets: a credential error suggests anonymous access (item 13) ---------


def test_s3_credential_error_suggests_anon(
    tmp_path: Path, s3_endpoint: str, s3_upload: Any
) -> None:
    uri = s3_upload(HUMAN_FILES[2], "needs-credentials/d2.tif")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "iceberg_bioimage",
            "scan",
            uri,
            "--storage-option",
            f"endpoint_url={s3_endpoint}",
            "--storage-option",
            'client_kwargs={"region_name": "us-east-1"}',
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {uri}: ")
    assert "credentials" in lines[0] and "--storage-option anon=true" in lines[0]
    assert done.stdout == ""
