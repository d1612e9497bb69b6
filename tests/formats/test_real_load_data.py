"""Real LoadData tables (JUMP Parquet, pe2loaddata CSV, a CellProfiler Image.csv).

Each is read independently (Python's :mod:`csv`, :mod:`pyarrow.parquet`) to say which
columns name TIFF images; our channels must be exactly those, in column order, and
every other ``FileName_`` column (illumination ``.npy``, outline ``.png``) must appear
in a warning and nowhere else. The images these tables name are not in their
repositories (S3 URLs, ``/home/ubuntu/...`` paths), so the scans below copy the real
table, point its ``PathName_`` columns at small TIFFs written by tifffile under the
real file names, and compare the chunk index with tifffile's own offsets.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import tifffile
from click.testing import CliRunner

from iceberg_bioimage import scan_as_arrow_table, scan_store
from iceberg_bioimage.cli import main
from iceberg_bioimage.formats.file_set.load_data import read_load_data_rows, table_shape
from iceberg_bioimage.io.storage import open_store
from iceberg_bioimage.models.limits import Limits

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
JUMP_PARQUET = (
    REAL / "pycytominer/cell_locations_example_data/test_BR00126114_load_data_with_illum.parquet"
)
PE2LOADDATA_V5 = REAL / "pe2loaddata/Version5"
IMAGE_CSV = (
    REAL / "pycytominer/collate/analysis/2021_04_20_Target2/BR00121431/analysis/"
    "BR00121431-A01-1/Image.csv"
)


def _image_columns(columns: list[str], first_row: dict[str, str]) -> tuple[list[str], list[str]]:
    """(channels whose files are TIFFs, other FileName_ channels), read independently."""
    images, others = [], []
    for column in columns:
        if not column.startswith("FileName_"):
            continue
        name = first_row.get(f"URL_{column[9:]}") or first_row[column]
        suffix = name.rsplit(".", 1)[-1].lower()
        (images if suffix in ("tif", "tiff") else others).append(column[9:])
    return images, others


def _rows(path: Path) -> tuple[str, list[str], list[tuple[str, str, str, str]], list[str]]:
    store = open_store(path)
    head = store.read_ranges([("", 0, 4096)])[0] or b""
    shape = table_shape(store, head, Limits())
    assert shape is not None, f"{path} not detected as a LoadData table"
    return read_load_data_rows(store, shape, None)


def test_jump_parquet_channels_are_its_image_columns() -> None:
    """JUMP's Parquet LoadData: 5 Orig channels; the 5 Illum .npy columns only warned."""
    table = pq.read_table(JUMP_PARQUET)
    images, others = _image_columns(table.schema.names, table.to_pylist()[0])
    assert images == ["OrigAGP", "OrigDNA", "OrigER", "OrigMito", "OrigRNA"]
    plate, channels, planes, warnings = _rows(JUMP_PARQUET)
    assert plate == "BR00126114"
    assert channels == images
    assert {channel for _, _, channel, _ in planes} == set(images)
    assert len(planes) == table.num_rows * len(images)
    assert all(loc.startswith("s3://cellpainting-gallery/") for *_, loc in planes)
    assert all(loc.endswith(".tiff") for *_, loc in planes)
    (warning,) = warnings
    for other in others:
        assert f"FileName_{other} " in warning
    assert not any(other in channel for channel in channels for other in others)


def test_cellprofiler_image_csv_reads_as_load_data() -> None:
    """A real Image.csv (CRLF, 1917 columns, a 100 kB header, URL_ beside FileName_)."""
    with open(IMAGE_CSV, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        first = next(reader)
    images, others = _image_columns(columns, first)
    assert len(images) == 8 and len(others) == 10  # 8 Illum .npy + 2 outline .png
    plate, channels, planes, warnings = _rows(IMAGE_CSV)
    assert (plate, channels) == ("BR00121431", images)
    # URL_ (file:/home/...) wins over PathName_/FileName_ and is made a local path
    by_channel = {channel: loc for _, _, channel, loc in planes}
    assert by_channel["OrigDNA"] == first["URL_OrigDNA"].removeprefix("file:")
    assert all(f"FileName_{other} " in warnings[0] for other in others)


def _write_tiffs(folder: Path, names: list[str], shape: tuple[int, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        tifffile.imwrite(
            folder / name,
            np.full(shape, index, dtype="uint16"),
            rowsperstrip=8,
            photometric="minisblack",
        )


def _jump_copy(tmp_path: Path) -> tuple[Path, Path]:
    """The real JUMP table with its Orig PathName_ columns pointed at tmp_path/Images."""
    images = tmp_path / "Images"
    table = pq.read_table(JUMP_PARQUET)
    for name in table.schema.names:
        if name.startswith("PathName_Orig"):
            index = table.schema.get_field_index(name)
            column = pa.array([str(images)] * table.num_rows)
            table = table.set_column(index, name, column)
    names = sorted(
        {
            v
            for c in table.schema.names
            if c.startswith("FileName_Orig")
            for v in table[c].to_pylist()
        }
    )
    _write_tiffs(images, names, (32, 24))
    path = tmp_path / "load_data_with_illum.parquet"
    pq.write_table(table, path)
    return path, images


def test_jump_parquet_scans_its_tiffs_with_real_names(tmp_path: Path) -> None:
    path, images = _jump_copy(tmp_path)
    real = pq.read_table(JUMP_PARQUET)
    result = scan_store(path)
    assert result.dataset_id == "BR00126114"  # the plate, not Metadata_Source (source_4)
    assert [a.site_id for a in result.image_assets] == ["1", "2"]
    for asset in result.image_assets:
        assert asset.channel_names == ("OrigAGP", "OrigDNA", "OrigER", "OrigMito", "OrigRNA")
        assert asset.shape == (5, 1, 32, 24)
        assert asset.well_id == "A01" and asset.plate_id == "BR00126114"
    assert any("FileName_IllumDNA" in w for w in result.warnings)
    chunks = scan_as_arrow_table(path, table="chunk_index")
    site1 = real.filter(pc.equal(real["Metadata_Site"], "1")).to_pylist()[0]
    keys = chunks.filter(pc.equal(chunks["image_id"], "BR00126114:A/1/1"))
    expected_files = [site1[f"FileName_{ch}"] for ch in ("OrigAGP", "OrigDNA", "OrigER")]
    seen = list(dict.fromkeys(keys["chunk_key"].to_pylist()))
    assert seen[:3] == expected_files
    for key in seen:
        with tifffile.TiffFile(images / key) as tif:
            page = tif.pages[0]
            rows = keys.filter(pc.equal(keys["chunk_key"], key))
            assert rows["byte_offset"].to_pylist() == list(page.dataoffsets)
            assert rows["byte_length"].to_pylist() == list(page.databytecounts)


def test_jump_parquet_through_the_cli(tmp_path: Path) -> None:
    path, _ = _jump_copy(tmp_path)
    result = CliRunner().invoke(main, ["scan", "--json", "--load-data", str(path)])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dataset_id"] == "BR00126114"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "FileName_IllumAGP" in warnings[0]


def test_pe2loaddata_csv_relative_paths_and_one_real_tiff(tmp_path: Path) -> None:
    """pe2loaddata writes PathName_ relative to where it ran; only ch6 (OrigMito) exists.

    The real CSV is placed where its relative PathName_ resolves from its folder, beside
    the real TIFF; the other five channels are absent planes (warned, chunks absent).
    """
    table_path = tmp_path / "load_data_version5.csv"
    shutil.copy(PE2LOADDATA_V5 / "load_data_version5.csv", table_path)
    with open(table_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        row = next(reader)
    images, _ = _image_columns(columns, row)
    folder = tmp_path / row["PathName_OrigMito"]
    folder.mkdir(parents=True)
    tiff = PE2LOADDATA_V5 / "images" / row["FileName_OrigMito"]
    shutil.copy(tiff, folder / tiff.name)
    result = scan_store(table_path)
    (asset,) = result.image_assets
    assert list(asset.channel_names) == images
    assert asset.dataset_id == row["Metadata_Plate"] == "BR00122249"
    with tifffile.TiffFile(tiff) as tif:
        page = tif.pages[0]
        assert asset.shape == (len(images), 1, *page.shape)
        mito = images.index("OrigMito")
        per_file = len(page.dataoffsets)
        offsets = asset.chunk_byte_offsets[mito * per_file : (mito + 1) * per_file]
        assert list(offsets) == list(page.dataoffsets)
    assert any("5 planes have no readable file" in w for w in result.warnings)


@pytest.mark.parametrize("follow", ["absolute", "symlink"])
def test_a_named_file_is_read_as_named_absolute_or_symlinked(tmp_path: Path, follow: str) -> None:
    """One rule: a file the table names is read where it is, by path or through a symlink."""
    elsewhere = tmp_path / "elsewhere"
    _write_tiffs(elsewhere, ["a_DNA.tif", "a_RNA.tif"], (16, 16))
    table_dir = tmp_path / "table"
    local = table_dir / "images"
    local.mkdir(parents=True)
    if follow == "symlink":
        for name in ("a_DNA.tif", "a_RNA.tif"):
            (local / name).symlink_to(elsewhere / name)
        folder = "images"
    else:
        folder = str(elsewhere)
    (table_dir / "load_data.csv").write_text(
        "Metadata_Plate,Metadata_Well,Metadata_Site,FileName_DNA,PathName_DNA,"
        f"FileName_RNA,PathName_RNA\nP1,B02,1,a_DNA.tif,{folder},a_RNA.tif,{folder}\n"
    )
    result = scan_store(table_dir / "load_data.csv")
    (asset,) = result.image_assets
    assert asset.shape == (2, 1, 16, 16)
    assert -1 not in asset.chunk_byte_offsets
    assert not result.warnings
