"""File-set plates: folders of single-image TIFFs named by an instrument, and LoadData CSVs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import tifffile

import iceberg_bioimage
from fixtures import instrument_plates as ip
from iceberg_bioimage import FileSetOptions, api
from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.tables.build import canonical_table

PRESET_FIXTURES = ("phenix", "cellomics", "cv7000", "scanr")


@pytest.fixture(scope="module")
def plates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every instrument plate, written once by tifffile."""
    return ip.write_all(tmp_path_factory.mktemp("instrument-plates"))


def _expected_images(expected: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Image id → files, channels, z and t indexes, from the writer's own record."""
    out: dict[str, dict[str, Any]] = {}
    for key, (plate, well, site, c, z, t) in expected["files"].items():
        image_id = f"{plate}:{well[0]}/{int(well[1:])}/{site}"
        image = out.setdefault(image_id, {"files": {}, "well": well, "site": site})
        image["files"][(t, c, z)] = key
    return out


@pytest.mark.parametrize("name", PRESET_FIXTURES)
@pytest.mark.parametrize("plate", ip.PLATES)
def test_preset_folder_is_one_plate(plates: dict[str, Any], name: str, plate: str) -> None:
    fixture = plates[name][plate]
    result = api.scan_store(fixture.path)  # instrument detected from the names
    expected = _expected_images(fixture.expected)
    assert result.dataset_id == plate
    assert (result.format, result.storage_variant) == ("tiff", "tiff-files")
    assert result.image_count == result.array_count == len(ip.WELLS) * ip.SITES == 18
    assert set(result.image_ids) == set(expected)
    for asset in result.image_assets:
        image = expected[asset.image_id]
        assert asset.shape == (ip.CHANNELS, 1, ip.HEIGHT, ip.WIDTH)
        assert asset.axes == "czyx"
        assert asset.dtype == "uint16"
        assert asset.channel_names == tuple(fixture.expected["channels"])
        assert (asset.plate_id, asset.well_id, asset.site_id) == (
            plate,
            image["well"],
            image["site"],
        )
        per_file = {fixture.expected["chunks_per_file"][k] for k in image["files"].values()}
        assert asset.chunk_count == ip.CHANNELS * per_file.pop()
    chunks = canonical_table(result, "chunk_index")
    assert chunks.num_rows == sum(fixture.expected["chunks_per_file"].values())
    assert set(chunks["chunk_key"].to_pylist()) == set(fixture.expected["files"])
    assert chunks["byte_offset"].null_count == 0


def test_phenix_physical_size_and_gallery_plate_name(plates: dict[str, Any]) -> None:
    fixture = plates["phenix"][ip.PLATES[0]]
    assert fixture.path.name.startswith(f"{ip.PLATES[0]}__")
    asset = api.scan_store(
        fixture.path, file_set=FileSetOptions.build(instrument="phenix")
    ).image_assets[0]
    assert asset.physical_size_x == pytest.approx(ip.PIXEL_SIZE_UM)
    assert asset.physical_unit == "micrometer"


def _read_segment(
    path: Path, offset: int, length: int, index: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one stored strip/tile from raw bytes, cropped to the image."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        segment, (_, _, y, x, _), shape = page.decode(data, index)
        plane = segment.reshape(segment.shape[-3:-1]) if segment.ndim > 2 else segment
        return plane[: min(shape[-3], ip.HEIGHT - y), : min(shape[-2], ip.WIDTH - x)], (y, x)


@pytest.mark.parametrize("name", PRESET_FIXTURES)
def test_byte_ranges_decode_to_the_pixels(plates: dict[str, Any], name: str) -> None:
    fixture = plates[name][ip.PLATES[1]]
    result = api.scan_store(fixture.path)
    rows = canonical_table(result, "chunk_index").to_pylist()
    per_key: dict[str, int] = {}
    for row in rows[:: max(1, len(rows) // 40)] + rows[-7:]:
        path = fixture.path / row["chunk_key"]
        index = (
            row["chunk_coords"][-2] * (-(-ip.WIDTH // _chunk_width(path))) + row["chunk_coords"][-1]
        )
        segment, (y, x) = _read_segment(path, row["byte_offset"], row["byte_length"], index)
        full = tifffile.imread(path)
        np.testing.assert_array_equal(
            segment, full[y : y + segment.shape[0], x : x + segment.shape[1]]
        )
        per_key[row["chunk_key"]] = per_key.get(row["chunk_key"], 0) + 1
    assert per_key


def _chunk_width(path: Path) -> int:
    with tifffile.TiffFile(path) as tif:
        return int(tif.pages.first.chunks[1])


def test_imagexpress_several_plates_refused_then_picked(plates: dict[str, Any]) -> None:
    fixture = plates["imagexpress"]
    with pytest.raises(MetadataError, match=r"2 plates \(BR00116991, BR00116992\).*--plate-id"):
        api.scan_store(fixture.path)
    for plate in ip.PLATES:  # plate 1 has GUID suffixes, plate 2 none
        result = api.scan_store(fixture.path, file_set=FileSetOptions.build(plate_id=plate))
        assert result.dataset_id == plate and result.image_count == 18
        assert result.image_assets[0].channel_names == ("w1", "w2", "w3", "w4")
        assert any("2 thumbnails, 1 non-TIFF files" in w for w in result.warnings)
        keys = set(canonical_table(result, "chunk_index")["chunk_key"].to_pylist())
        assert keys == {k for k, v in fixture.expected["files"].items() if v[0] == plate}
    wells = {a.well_id for a in result.image_assets}
    assert "C10" in wells and "H12" in wells


def test_imagexpress_timepoint_folders_give_tczyx(plates: dict[str, Any]) -> None:
    fixture = plates["imagexpress_timelapse"]
    result = api.scan_store(fixture.path, file_set=FileSetOptions.build(instrument="imagexpress"))
    asset = result.image_assets[0]
    assert asset.axes == "tczyx"
    assert asset.shape == (2, ip.CHANNELS, 2, ip.HEIGHT, ip.WIDTH)
    rows = canonical_table(result, "chunk_index").to_pylist()
    first_image = [r for r in rows if r["image_id"] == asset.image_id]
    per_file = fixture.expected["chunks_per_file"][first_image[0]["chunk_key"]]
    assert len(first_image) == 2 * ip.CHANNELS * 2 * per_file
    # the chunk at t=1, c=2, z=1 lives in TimePoint_2/ZStep_2/..._w3.tif
    hit = next(r for r in first_image if r["chunk_coords"][:3] == [1, 2, 1])
    assert hit["chunk_key"].startswith("TimePoint_2/ZStep_2/") and "_w3" in hit["chunk_key"]


def test_channel_names_and_custom_pattern(plates: dict[str, Any]) -> None:
    fixture = plates["cellomics"][ip.PLATES[0]]
    named = api.scan_store(
        fixture.path, file_set=FileSetOptions.build(channel_names=list(ip.CELL_PAINTING))
    )
    assert named.image_assets[0].channel_names == ip.CELL_PAINTING
    pattern = r"(?P<plate>.+)_(?P<well>[A-P]\d\d)f(?P<site>\d\d)(?P<channel>d\d)\.tif"
    custom = api.scan_store(fixture.path, file_set=FileSetOptions.build(pattern=pattern))
    preset = api.scan_store(fixture.path, file_set=FileSetOptions.build(instrument="cellomics"))
    drop = ["scanned_at"]
    assert canonical_table(custom, "image_assets").drop(drop) == canonical_table(
        preset, "image_assets"
    ).drop(drop)
    assert custom.image_assets[0].site_id == "0"  # f00 → "0"
    with pytest.raises(MetadataError, match="4 channels"):
        api.scan_store(fixture.path, file_set=FileSetOptions.build(channel_names=["a", "b"]))


def test_detection_errors(tmp_path: Path, plates: dict[str, Any]) -> None:
    folder = tmp_path / "odd"
    for name in ("a.tif", "b.tif", "c.tif"):
        ip.write_plane(folder / name, ip.pixels(name), tiled=False)
    with pytest.raises(MetadataError, match=r"no naming convention.*phenix.*--instrument"):
        api.scan_store(folder)
    with pytest.raises(MetadataError, match="unknown; choose one of phenix"):
        api.scan_store(folder, file_set=FileSetOptions.build(instrument="operetta9000"))
    with pytest.raises(MetadataError, match="named groups"):
        api.scan_store(folder, file_set=FileSetOptions.build(pattern=r"(?P<colour>.+)\.tif"))
    with pytest.raises(MetadataError, match="no TIFF file here is named like phenix"):
        api.scan_store(folder, file_set=FileSetOptions.build(instrument="phenix"))


def test_unmatched_files_are_counted(tmp_path: Path, plates: dict[str, Any]) -> None:
    source = plates["cv7000"][ip.PLATES[0]].path
    folder = tmp_path / "BR00116991"
    folder.mkdir()
    for path in source.iterdir():
        os.link(path, folder / path.name)
    ip.write_plane(folder / "overview.tif", ip.pixels("o"), tiled=False)
    (folder / "MeasurementData.mlf").write_text("<xml/>")
    result = api.scan_store(folder)
    assert result.image_count == 18
    assert any(
        "1 non-TIFF files, 1 TIFF files not named like cv7000 (e.g. overview.tif)" in w
        for w in result.warnings
    )


def _without_uri(table: pa.Table) -> pa.Table:
    return table.drop(["uri", *(["scanned_at"] if "scanned_at" in table.column_names else [])])


@pytest.mark.parametrize("form", ["pathname", "url"])
def test_load_data_gives_the_folder_rows(plates: dict[str, Any], form: str) -> None:
    folder = plates["phenix"][ip.PLATES[0]].path / "Images"
    from_folder = api.scan_store(
        folder,
        file_set=FileSetOptions.build(plate_id=ip.PLATES[0], channel_names=list(ip.CELL_PAINTING)),
    )
    from_csv = api.scan_store(plates["load_data"][form])
    assert from_csv.uri.endswith("load_data.csv")
    for table in ("image_assets", "chunk_index"):
        assert _without_uri(canonical_table(from_csv, table)).equals(
            _without_uri(canonical_table(from_folder, table))
        )


def _cellprofiler_profiles(path: Path) -> Path:
    rows = [
        {"Metadata_Plate": ip.PLATES[0], "Metadata_Well": ip.well_id(r, c), "Metadata_Site": s}
        for r, c in ip.WELLS
        for s in range(1, ip.SITES + 1)
    ]
    table = pa.Table.from_pylist(
        [{**row, "Cells_AreaShape_Area": float(i)} for i, row in enumerate(rows)]
    )
    out = path / "profiles.parquet"
    import pyarrow.parquet as pq

    pq.write_table(table, out)
    return out


def test_join_profiles_matches_every_row_once(plates: dict[str, Any], tmp_path: Path) -> None:
    from iceberg_bioimage.profiles.join_tables import join_report

    profiles = _cellprofiler_profiles(tmp_path)
    joined = api.join_profiles_with_store(plates["phenix"][ip.PLATES[0]].path, str(profiles))
    report = join_report(joined)
    assert joined.num_rows == 18
    assert report["matched_rows"] == 18 and report["unmatched_rows"] == 0
    assert len(set(joined["image_id"].to_pylist())) == 18


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_cli_export_cytomining_validates(plates: dict[str, Any], tmp_path: Path) -> None:
    profiles = _cellprofiler_profiles(tmp_path)
    root = tmp_path / "warehouse"
    done = _cli(
        "export-cytomining",
        str(plates["phenix"][ip.PLATES[0]].path),
        "--warehouse-root",
        str(root),
        "--profiles",
        str(profiles),
        "--instrument",
        "phenix",
        "--channel-names",
        ",".join(ip.CELL_PAINTING),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert iceberg_bioimage.validate_warehouse(root).is_valid


def test_cli_register_publish_chunks_reads_back(plates: dict[str, Any], tmp_path: Path) -> None:
    fixture = plates["imagexpress"]
    env = {"ICEBERG_BIOIMAGE_WAREHOUSE": str(tmp_path / "iceberg-warehouse"), "HOME": str(tmp_path)}
    done = _cli(
        "register",
        str(fixture.path),
        "--namespace",
        "bioimage",
        "--publish-chunks",
        "--plate-id",
        ip.PLATES[1],
        "--json",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    read = _cli("scan", str(fixture.path), "--plate-id", ip.PLATES[1], "--json")
    assert json.loads(read.stdout)["image_count"] == 18
    code = (
        "from iceberg_bioimage import api;"
        "t = api.load_catalog_table('default', 'bioimage', 'chunk_index');"
        "i = api.load_catalog_table('default', 'bioimage', 'image_assets');"
        "print(t.num_rows, i.num_rows, sorted(set(i['plate_id'].to_pylist())))"
    )
    back = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    assert back.returncode == 0, back.stderr
    expected_chunks = sum(
        n
        for key, n in fixture.expected["chunks_per_file"].items()
        if fixture.expected["files"][key][0] == ip.PLATES[1]
    )
    assert back.stdout.split() == [str(expected_chunks), "18", f"['{ip.PLATES[1]}']"]


def test_cli_scan_refuses_several_plates_in_one_line(plates: dict[str, Any]) -> None:
    done = _cli("scan", str(plates["imagexpress"].path))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "--plate-id" in done.stderr


def test_cli_summarize_prints_the_plate_map(plates: dict[str, Any]) -> None:
    fixture = plates["phenix"][ip.PLATES[0]]
    done = _cli("summarize", str(fixture.path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    title = next(i for i, line in enumerate(lines) if "fields per well" in line)
    assert f"plate {ip.PLATES[0]}" in lines[title]
    header = lines[title + 1].split()
    assert header == [f"{c:02d}" for c in range(1, 13)]  # A01 … H12: columns 1-12
    grid = {line.split()[0]: line.split()[1:] for line in lines[title + 2 :] if line.strip()}
    assert list(grid) == list("ABCDEFGH")
    for row in "ABCDEFGH":
        for column in range(1, 13):
            filled = (ord(row) - 65, column - 1) in ip.WELLS
            assert grid[row][column - 1] == (str(ip.SITES) if filled else "·"), (row, column)
    summary = json.loads(_cli("summarize", str(fixture.path), "--json").stdout)
    assert summary["plate_ids"] == [ip.PLATES[0]]
    assert summary["fields_per_well"] == {ip.well_id(r, c): ip.SITES for r, c in ip.WELLS}


def test_ingest_registers_one_dataset_per_plate(
    plates: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixture = plates["imagexpress"]
    env = {"ICEBERG_BIOIMAGE_WAREHOUSE": str(tmp_path / "iceberg-warehouse"), "HOME": str(tmp_path)}
    done = _cli("ingest", str(fixture.path), "--namespace", "bioimage", "--json", env=env)
    assert done.returncode == 0, done.stderr
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from iceberg_bioimage.catalog.resolve import resolve_catalog

    catalog = resolve_catalog("default").catalog
    for table in ("image_assets", "chunk_index"):
        assert len(catalog.load_table(("bioimage", table)).snapshots()) == 1  # one commit
    images = api.load_catalog_table("default", "bioimage", "image_assets")
    chunks = api.load_catalog_table("default", "bioimage", "chunk_index")
    assert sorted(set(images["dataset_id"].to_pylist())) == list(ip.PLATES)
    for plate in ip.PLATES:
        rows = images.filter(pa.compute.equal(images["dataset_id"], plate))
        assert rows.num_rows == len(ip.WELLS) * ip.SITES
        assert set(rows["plate_id"].to_pylist()) == {plate}
        assert set(rows["uri"].to_pylist()) == {str(fixture.path)}
        expected_chunks = sum(
            n
            for key, n in fixture.expected["chunks_per_file"].items()
            if fixture.expected["files"][key][0] == plate
        )
        assert pa.compute.sum(pa.compute.equal(chunks["dataset_id"], plate)).as_py() == (
            expected_chunks
        )

    # The API gives the same split, each plate's scan equal to a scan with --plate-id.
    from iceberg_bioimage.catalog.registration import scan_many
    from iceberg_bioimage.models import ScanOptions

    results = scan_many([fixture.path], options=ScanOptions(), workers=2)
    assert [r.dataset_id for r in results] == list(ip.PLATES)
    for result in results:
        alone = api.scan_store(
            fixture.path, file_set=FileSetOptions.build(plate_id=result.dataset_id)
        )
        assert _without_uri(canonical_table(result, "image_assets")).equals(
            _without_uri(canonical_table(alone, "image_assets"))
        )


def test_load_data_on_s3_gives_the_folder_rows(
    plates: dict[str, Any],
    tmp_path: Path,
    s3_upload: Any,
    s3_options: dict[str, Any],
) -> None:
    plate = ip.PLATES[0]
    images = plates["phenix"][plate].path / "Images"
    remote = s3_upload(images, "load-data-plate/Images")
    from_folder = api.scan_store(
        images, file_set=FileSetOptions.build(plate_id=plate, channel_names=list(ip.CELL_PAINTING))
    )
    for form in ("pathname", "url"):
        local_csv = plates["load_data"][form]
        text = local_csv.read_text()
        if form == "url":
            text = text.replace(images.as_uri(), remote)
        else:
            text = text.replace(str(images), remote)
        assert remote in text and str(images) not in text
        edited = tmp_path / form / "load_data.csv"
        edited.parent.mkdir()
        edited.write_text(text)
        csv_uri = s3_upload(edited, f"load-data-plate/{form}/load_data.csv")
        from_s3 = api.scan_store(csv_uri, storage_options=s3_options)
        assert from_s3.uri == csv_uri
        assert from_s3.dataset_id == plate
        for table in ("image_assets", "chunk_index"):
            assert _without_uri(canonical_table(from_s3, table)).equals(
                _without_uri(canonical_table(from_folder, table))
            ), (form, table)


def test_damaged_tiff_reason_comes_from_tifffile(tmp_path: Path) -> None:
    from iceberg_bioimage.formats.tiff import headers as th
    from iceberg_bioimage.io.storage import open_store

    good = tmp_path / "r01c01f01p01-ch1sk1fk1fl1.tiff"
    tifffile.imwrite(good, np.zeros((64, 64), np.uint16), rowsperstrip=8)
    data = good.read_bytes()
    (tmp_path / "truncated.tiff").write_bytes(data[: len(data) - 100])
    (tmp_path / "cut-ifd.tiff").write_bytes(data[:12])
    headers = th.read_plane_headers(
        open_store(tmp_path), ["r01c01f01p01-ch1sk1fk1fl1.tiff", "truncated.tiff", "cut-ifd.tiff"]
    )
    assert isinstance(headers["r01c01f01p01-ch1sk1fk1fl1.tiff"], th.PlaneHeader)
    assert "truncated" in headers["truncated.tiff"]
    assert "unreadable TIFF" in headers["cut-ifd.tiff"]
