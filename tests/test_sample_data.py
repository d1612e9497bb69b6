"""Tests for the ``sample-data`` dataset writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import tifffile
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Plate, Reader

from iceberg_bioimage.samples import plate as sample_data
from iceberg_bioimage.samples.plate import SampleData, write_sample_data

WELLS = ["A/1", "A/2", "A/3", "B/1", "B/2", "B/3"]
PROFILE_COLUMNS = [
    "Metadata_Plate",
    "Metadata_Well",
    "Metadata_Site",
    "ObjectNumber",
    "Cells_AreaShape_Area",
    "Nuclei_AreaShape_Area",
    "Nuclei_AreaShape_FormFactor",
    "Nuclei_AreaShape_Eccentricity",
    "Cytoplasm_Intensity_MeanIntensity_DNA",
    "Cells_Intensity_MeanIntensity_Mito",
    "Nuclei_Location_Center_X",
    "Nuclei_Location_Center_Y",
    "Nuclei_AreaShape_BoundingBoxMinimum_X",
    "Nuclei_AreaShape_BoundingBoxMinimum_Y",
    "Nuclei_AreaShape_BoundingBoxMaximum_X",
    "Nuclei_AreaShape_BoundingBoxMaximum_Y",
]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> SampleData:
    return write_sample_data(tmp_path_factory.mktemp("sample") / "data")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_paths_and_to_dict(sample):
    assert sample.plate == sample.directory / "plate.ome.zarr"
    assert sample.image == sample.directory / "image.ome.zarr"
    assert sample.ome_tiff == sample.directory / "stack.ome.tiff"
    assert sample.profiles == sample.directory / "cells.parquet"
    assert sample.phenix == sample.directory / "phenix"
    assert sample.load_data == sample.directory / "load_data.csv"
    assert sample.cellprofiler_sqlite == sample.directory / "cellprofiler.sqlite"
    assert sample.cellprofiler_folders == sample.directory / "analysis"
    assert sample.platemap == sample.directory / "platemap"
    for path in (
        sample.plate,
        sample.image,
        sample.ome_tiff,
        sample.profiles,
        sample.phenix,
        sample.load_data,
        sample.cellprofiler_sqlite,
        sample.cellprofiler_folders / "phenix-A01-1" / "Nuclei.csv",
        sample.platemap / "barcode_platemap.csv",
    ):
        assert path.exists()
    as_dict = json.loads(json.dumps(sample.to_dict()))
    assert as_dict == {
        "directory": str(sample.directory),
        "plate": str(sample.plate),
        "image": str(sample.image),
        "ome_tiff": str(sample.ome_tiff),
        "profiles": str(sample.profiles),
        "phenix": str(sample.phenix),
        "load_data": str(sample.load_data),
        "cellprofiler_sqlite": str(sample.cellprofiler_sqlite),
        "cellprofiler_folders": str(sample.cellprofiler_folders),
        "platemap": str(sample.platemap),
    }
    assert _leftovers(sample.directory) == []


def test_total_size_is_small(sample):
    total = sum(p.stat().st_size for p in sample.directory.rglob("*") if p.is_file())
    assert total < 2_000_000


def test_plate_reads_with_ome_zarr(sample):
    nodes = list(Reader(parse_url(str(sample.plate)))())
    plate = next(spec for spec in nodes[0].specs if isinstance(spec, Plate))
    assert plate.row_names == ["A", "B"]
    assert plate.col_names == ["1", "2", "3"]
    assert plate.well_paths == WELLS

    (field,) = Reader(parse_url(str(sample.plate / "B/3/1")))()
    assert [level.shape for level in field.data] == [(2, 1, 64, 64), (2, 1, 32, 32)]
    assert field.metadata["channel_names"] == ["DNA", "Mito"]


def test_plate_metadata_is_ngff_04(sample):
    root = zarr.open_group(sample.plate, mode="r", zarr_format=2)
    plate = root.attrs["plate"]
    assert plate["name"] == "plate"
    assert plate["version"] == "0.4"
    assert plate["field_count"] == 2
    assert plate["rows"] == [{"name": "A"}, {"name": "B"}]
    assert plate["columns"] == [{"name": "1"}, {"name": "2"}, {"name": "3"}]
    assert plate["wells"][4] == {"path": "B/2", "rowIndex": 1, "columnIndex": 1}
    assert [well["path"] for well in plate["wells"]] == WELLS

    for well_path in WELLS:
        well = root[well_path]
        assert well.attrs["well"] == {
            "images": [{"path": "0"}, {"path": "1"}],
            "version": "0.4",
        }
        for field_path in ("0", "1"):
            image = well[field_path]
            (multiscale,) = image.attrs["multiscales"]
            assert multiscale["version"] == "0.4"
            assert [a["name"] for a in multiscale["axes"]] == ["c", "z", "y", "x"]
            assert multiscale["axes"][0] == {"name": "c", "type": "channel"}
            assert multiscale["axes"][3]["unit"] == "micrometer"
            scales = [d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]]
            assert scales == [[1, 1, 0.5, 0.5], [1, 1, 1.0, 1.0]]
            channels = image.attrs["omero"]["channels"]
            assert [c["label"] for c in channels] == ["DNA", "Mito"]
            assert set(channels[0]["window"]) == {"min", "max", "start", "end"}
            for level, shape in (("0", (2, 1, 64, 64)), ("1", (2, 1, 32, 32))):
                array = image[level]
                assert array.shape == shape
                assert array.chunks == (1, 1, 32, 32)
                assert array.dtype == np.uint16
    zarray = json.loads((sample.plate / "A/1/0/0/.zarray").read_text())
    assert zarray["dimension_separator"] == "/"
    assert (sample.plate / "A/1/0/0/1/0/1/1").is_file()


def test_image_is_ngff_05_with_sharded_level_0(sample):
    assert parse_url(str(sample.image)).version == "0.5"
    group = zarr.open_group(sample.image, mode="r", zarr_format=3)
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    (multiscale,) = ome["multiscales"]
    assert "version" not in multiscale
    assert [d["path"] for d in multiscale["datasets"]] == ["0", "1", "2"]
    assert [c["label"] for c in ome["omero"]["channels"]] == ["DNA", "Mito"]

    shapes = [(2, 128, 128), (2, 64, 64), (2, 32, 32)]
    for level, shape in enumerate(shapes):
        array = group[str(level)]
        assert array.shape == shape
        assert array.metadata.dimension_names == ("c", "y", "x")
    assert group["0"].shards == (1, 128, 128)
    assert group["0"].chunks == (1, 32, 32)
    assert group["1"].shards is None


def test_ome_tiff_is_pyramidal(sample):
    with tifffile.TiffFile(sample.ome_tiff) as tif:
        assert tif.is_ome
        assert len(tif.series) == 1
        series = tif.series[0]
        assert series.axes == "CYX"
        assert [level.shape for level in series.levels] == [
            (2, 256, 256),
            (2, 128, 128),
            (2, 64, 64),
        ]
        page = tif.pages[0]
        assert page.is_tiled
        assert (page.tilelength, page.tilewidth) == (64, 64)
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        ome_xml = tif.ome_metadata
        data = series.asarray()
    assert 'Name="DNA"' in ome_xml
    assert 'Name="Mito"' in ome_xml
    assert 'PhysicalSizeX="0.5"' in ome_xml
    assert data.dtype == np.uint16
    assert data.max() > data.min()


def test_profiles_table(sample):
    table = pq.read_table(sample.profiles)
    assert table.column_names == PROFILE_COLUMNS
    assert table.schema.field("Metadata_Site").type == "int64"
    assert set(pc.unique(table["Metadata_Plate"]).to_pylist()) == {"plate"}
    rows = table.to_pylist()
    per_field: dict[tuple[str, int], list[int]] = {}
    for row in rows:
        key = (row["Metadata_Well"], row["Metadata_Site"])
        per_field.setdefault(key, []).append(row["ObjectNumber"])
    wells = ["A01", "A02", "A03", "B01", "B02", "B03"]
    assert sorted(per_field) == [(well, site) for well in wells for site in (0, 1)]
    for objects in per_field.values():
        assert 18 <= len(objects) <= 22
        assert objects == list(range(1, len(objects) + 1))

    for name in ("Nuclei_AreaShape_FormFactor", "Nuclei_AreaShape_Eccentricity"):
        values = table[name]
        assert pc.min(values).as_py() > 0
        assert pc.max(values).as_py() < 1
    area = table["Cells_AreaShape_Area"].to_numpy()
    form_factor = table["Nuclei_AreaShape_FormFactor"].to_numpy()
    outliers = (area > 4 * np.median(area)) & (form_factor < 0.5)
    assert outliers.sum() == 2


PHENIX_WELLS = ["A01", "A02", "B01", "B02"]


def test_phenix_plate_files(sample):
    names = sorted(p.name for p in (sample.phenix / "Images").iterdir())
    expected = sorted(
        f"r{row:02d}c{column:02d}f{field:02d}p01-ch{channel}sk1fk1fl1.tiff"
        for row in (1, 2)
        for column in (1, 2)
        for field in (1, 2)
        for channel in (1, 2, 3)
    )
    assert names == expected
    with tifffile.TiffFile(sample.phenix / "Images" / names[0]) as tif:
        assert len(tif.pages) == 1
        page = tif.pages[0]
        assert page.shape == (32, 32)
        assert page.dtype == np.uint16
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.asarray().max() > page.asarray().min()


def test_load_data_csv_names_every_file(sample):
    lines = sample.load_data.read_text().splitlines()
    header = lines[0].split(",")
    assert header == [
        "FileName_DNA",
        "PathName_DNA",
        "FileName_ER",
        "PathName_ER",
        "FileName_Mito",
        "PathName_Mito",
        "Metadata_Plate",
        "Metadata_Well",
        "Metadata_Site",
    ]
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    assert [(r["Metadata_Well"], r["Metadata_Site"]) for r in rows] == [
        (well, site) for well in PHENIX_WELLS for site in ("1", "2")
    ]
    assert {r["Metadata_Plate"] for r in rows} == {"phenix"}
    for row in rows:
        for channel in ("DNA", "ER", "Mito"):
            path = sample.directory / row[f"PathName_{channel}"] / row[f"FileName_{channel}"]
            assert path.is_file()


def test_phenix_plate_and_load_data_scan_alike(sample):
    from iceberg_bioimage import scan_store

    folder = scan_store(sample.phenix)
    csv = scan_store(sample.load_data)
    assert folder.dataset_id == csv.dataset_id == "phenix"
    assert [a.image_id for a in folder.image_assets] == [a.image_id for a in csv.image_assets]
    assert len(folder.image_assets) == 8
    assert {a.well_id for a in folder.image_assets} == set(PHENIX_WELLS)
    assert folder.image_assets[0].shape == (3, 1, 32, 32)
    assert csv.image_assets[0].channel_names == ("DNA", "ER", "Mito")
    assert folder.chunk_count == csv.chunk_count == 8 * 3 * 2
    assert not folder.warnings and not csv.warnings


def test_output_is_deterministic(sample, tmp_path):
    again = write_sample_data(tmp_path)
    assert pq.read_table(again.profiles).equals(pq.read_table(sample.profiles))
    for path in ("A/1/0/0", "B/3/1/1"):
        first = zarr.open_array(sample.plate / path, mode="r")[:]
        second = zarr.open_array(again.plate / path, mode="r")[:]
        np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(tifffile.imread(sample.ome_tiff), tifffile.imread(again.ome_tiff))
    for path in sorted((sample.phenix / "Images").iterdir()):
        assert (again.phenix / "Images" / path.name).read_bytes() == path.read_bytes()
    assert again.load_data.read_text() == sample.load_data.read_text()


def test_refuses_to_clobber_without_overwrite(tmp_path):
    write_sample_data(tmp_path)
    with pytest.raises(FileExistsError, match=r"plate\.ome\.zarr"):
        write_sample_data(tmp_path)


def test_checks_every_target_before_writing(tmp_path):
    (tmp_path / "notes.txt").write_text("unrelated files are fine")
    (tmp_path / "cells.parquet").write_text("mine")
    with pytest.raises(FileExistsError, match=r"cells\.parquet"):
        write_sample_data(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.parquet", "notes.txt"]
    assert (tmp_path / "cells.parquet").read_text() == "mine"


def test_overwrite_replaces_targets(tmp_path):
    first = write_sample_data(tmp_path)
    (first.plate / "stale").write_text("old")
    first.profiles.write_text("not parquet")
    second = write_sample_data(tmp_path, overwrite=True)
    assert second == first
    assert not (second.plate / "stale").exists()
    assert pq.read_table(second.profiles).column_names == PROFILE_COLUMNS
    assert _leftovers(tmp_path) == []


def test_creates_missing_directory(tmp_path):
    sample = write_sample_data(tmp_path / "a" / "b")
    assert sample.directory.is_dir()
    assert sample.profiles.is_file()


def test_interrupted_write_leaves_no_partial_target(tmp_path, monkeypatch):
    def broken_writer(path: Path) -> None:
        path.write_bytes(b"II*\x00 half a tiff")
        raise KeyboardInterrupt

    monkeypatch.setattr(sample_data, "_write_ome_tiff", broken_writer)
    with pytest.raises(KeyboardInterrupt):
        write_sample_data(tmp_path)
    assert not (tmp_path / "stack.ome.tiff").exists()
    assert (tmp_path / "plate.ome.zarr").is_dir()
    assert _leftovers(tmp_path) == []


def test_interrupted_phenix_write_leaves_no_partial_folder(tmp_path, monkeypatch):
    def broken_writer(path: Path) -> None:
        (path / "Images").mkdir(parents=True)
        (path / "Images" / "r01c01f01p01-ch1sk1fk1fl1.tiff").write_bytes(b"II*\x00")
        raise OSError("disk full")

    monkeypatch.setattr(sample_data, "_write_phenix", broken_writer)
    with pytest.raises(OSError, match="disk full"):
        write_sample_data(tmp_path)
    assert not (tmp_path / "phenix").exists()
    assert _leftovers(tmp_path) == []


def test_interrupted_overwrite_keeps_previous_target(tmp_path, monkeypatch):
    original = write_sample_data(tmp_path)
    before = original.ome_tiff.read_bytes()

    def broken_writer(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(sample_data, "_write_ome_tiff", broken_writer)
    with pytest.raises(OSError, match="disk full"):
        write_sample_data(tmp_path, overwrite=True)
    assert original.ome_tiff.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_profiles_give_a_crop_per_cell(sample):
    """The bounding boxes fit the plate fields: every cell has a crop of its box, and each
    crop's object_id is the one the join gives the same row (SPEC §10)."""
    from iceberg_bioimage import join_profiles_with_store, read_image_crops

    profiles = pq.read_table(sample.profiles)
    joined = join_profiles_with_store(str(sample.plate), profiles).to_pylist()
    object_ids = {(r["image_id"], r["ObjectNumber"]): r["object_id"] for r in joined}
    crops = read_image_crops(str(sample.plate), profiles)
    assert len(crops.crops) == profiles.num_rows
    assert crops.skipped == crops.unmatched == 0
    rows = crops.table.to_pylist()
    for row, profile, crop in zip(rows, profiles.to_pylist(), crops.crops, strict=True):
        width = profile["Nuclei_AreaShape_BoundingBoxMaximum_X"]
        width -= profile["Nuclei_AreaShape_BoundingBoxMinimum_X"]
        assert crop.shape[-1] == width > 0
        assert row["object_id"] == object_ids[(row["image_id"], profile["ObjectNumber"])]
