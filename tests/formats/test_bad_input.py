"""Bad input: a precise error naming the file, or warnings plus only intact arrays."""

from __future__ import annotations

import pytest

from fixtures import writers
from iceberg_bioimage import (
    IcebergBioimageError,
    MetadataError,
    StoreNotFoundError,
    scan_result_as_arrow_table,
    scan_store,
)


def test_missing_path(tmp_path):
    missing = tmp_path / "nope.ome.zarr"
    with pytest.raises(StoreNotFoundError) as info:
        scan_store(missing)
    assert isinstance(info.value, FileNotFoundError)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize(
    "write",
    [writers.write_corrupt_zarray, writers.write_corrupt_zarr_json],
    ids=["zarray", "zarr.json"],
)
@pytest.mark.parametrize("at_root", [False, True], ids=["nested", "root"])
def test_truncated_array_metadata(tmp_path, write, at_root):
    fixture = write(tmp_path, at_root=at_root)
    with pytest.raises(MetadataError) as info:
        scan_store(fixture.path)
    assert isinstance(info.value, ValueError)
    assert str(fixture.path / fixture.expected["corrupt_file"]) in str(info.value)
    assert "JSON" in str(info.value)


def test_truncated_ome_tiff_reports_only_intact_arrays(tmp_path):
    fixture = writers.write_truncated_ome_tiff(tmp_path)
    size = fixture.path.stat().st_size
    try:
        result = scan_store(fixture.path)
    except MetadataError as error:
        assert str(fixture.path) in str(error)
        return
    assert result.warnings, "a damaged file must never scan silently"
    chunks = scan_result_as_arrow_table(result, table="chunk_index").to_pylist()
    for row in chunks:
        assert row["byte_offset"] + row["byte_length"] <= size


def test_not_an_image(tmp_path):
    fixture = writers.write_not_an_image(tmp_path)
    with pytest.raises(MetadataError, match="not an image") as info:
        scan_store(fixture.path)
    assert str(fixture.path) in str(info.value)


def test_empty_folder(tmp_path):
    fixture = writers.write_empty_dir(tmp_path)
    with pytest.raises(MetadataError, match="empty folder") as info:
        scan_store(fixture.path)
    assert str(fixture.path) in str(info.value)


def test_folder_that_is_not_a_zarr_store(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(IcebergBioimageError, match="not a Zarr store"):
        scan_store(tmp_path)


def test_plate_with_malformed_well_list(tmp_path, datasets):
    import json
    import shutil

    store = tmp_path / "bad.ome.zarr"
    shutil.copytree(datasets["plate04"].path, store)
    attrs = json.loads((store / ".zattrs").read_text())
    attrs["plate"]["wells"] = [{"path": "A1"}]
    (store / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(MetadataError, match="plate") as info:
        scan_store(store)
    assert str(store / ".zattrs") in str(info.value)


def test_well_listed_but_missing_is_a_warning(tmp_path, datasets):
    import shutil

    store = tmp_path / "sparse.ome.zarr"
    shutil.copytree(datasets["plate04"].path, store)
    shutil.rmtree(store / "B" / "3")
    result = scan_store(store)
    assert result.image_count == 6
    assert any("B/3" in warning for warning in result.warnings)


def _looping_tiff(pages: int, loop_to: int) -> bytes:
    """A classic TIFF of ``pages`` one-pixel IFDs whose last IFD points back at IFD ``loop_to``."""
    import struct

    entries = [(256, 4, 1, 1), (257, 4, 1, 1), (258, 3, 1, 8), (273, 4, 1, 8), (279, 4, 1, 1)]
    size = 2 + 12 * len(entries) + 4
    offsets = [16 + i * size for i in range(pages)]
    out = bytearray(b"II*\x00" + struct.pack("<I", offsets[0]) + b"\x00" * 8)
    for index in range(pages):
        out += struct.pack("<H", len(entries))
        for code, kind, count, value in entries:
            out += struct.pack("<HHII", code, kind, count, value)
        following = offsets[loop_to] if index == pages - 1 else offsets[index + 1]
        out += struct.pack("<I", following)
    return bytes(out)


@pytest.mark.parametrize(("pages", "loop_to"), [(1, 0), (3, 1), (150, 20)])
def test_ifd_chain_that_loops_is_refused(tmp_path, pages, loop_to):
    """tifffile checks for loops only at its 100th page: every loop is refused first."""
    from click.testing import CliRunner

    from iceberg_bioimage.cli import main

    path = tmp_path / "loop.tif"
    path.write_bytes(_looping_tiff(pages, loop_to))
    result = CliRunner().invoke(main, ["scan", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0]
    assert "IFD chain loops back" in lines[0]


def test_ifd_chain_longer_than_the_page_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "long.tif"
    path.write_bytes(_looping_tiff(12, 0)[:-4] + b"\x00\x00\x00\x00")  # 12 pages, no loop
    monkeypatch.setenv("ICEBERG_BIOIMAGE_MAX_TIFF_PAGES", "10")
    with pytest.raises(MetadataError, match="more than 10 IFDs"):
        scan_store(path)
    monkeypatch.setenv("ICEBERG_BIOIMAGE_MAX_TIFF_PAGES", "12")
    assert scan_store(path).image_assets
