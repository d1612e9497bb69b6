"""The fast first-IFD parser gives the header tifffile gives, and hands the rest to tifffile."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile

from iceberg_bioimage.formats.tiff import headers as th
from iceberg_bioimage.formats.tiff.ifd import (
    NeedBytes,
    Segments,
    UnusualTiff,
    parse_plane_header,
)
from iceberg_bioimage.io.storage import open_store

PIXELS = (np.arange(96 * 200, dtype=np.uint16).reshape(96, 200) * 7) % 4093

WRITTEN = {
    "stripped.tiff": {"rowsperstrip": 16, "compression": "zlib"},
    "tiled.tiff": {"tile": (32, 64), "compression": "zstd"},
    "bigtiff.tiff": {"bigtiff": True, "tile": (48, 48), "compression": "lzw"},
    "big-endian.tiff": {"byteorder": ">", "rowsperstrip": 40},
    "predictor.tiff": {"compression": "zlib", "predictor": True, "rowsperstrip": 8},
    "one-strip.tiff": {"compression": "zlib"},
    "resolution.tiff": {"resolution": (2.5, 4.0), "resolutionunit": "CENTIMETER"},
    "inch.tiff": {"resolution": (300, 300), "resolutionunit": "INCH"},
    "float.tiff": {"dtype": np.float32, "rowsperstrip": 32},
    "described.tiff": {"description": "x" * 20_000, "rowsperstrip": 4},
}


def _ifd_at_end(path: Path) -> None:
    """A raw little-endian TIFF whose pixels come first and whose IFD (and tables) come last.

    As libtiff-based writers lay files out: the IFD lies past the first read.
    """
    rows_per_strip = 32
    strips = [PIXELS[i : i + rows_per_strip].tobytes() for i in range(0, 96, rows_per_strip)]
    offsets, at = [], 8
    for strip in strips:
        offsets.append(at)
        at += len(strip)
    ifd = at
    entries = [
        (256, 4, 1, 200),
        (257, 4, 1, 96),
        (258, 3, 1, 16),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 3, None),
        (277, 3, 1, 1),
        (278, 4, 1, rows_per_strip),
        (279, 4, 3, None),
    ]
    tables = ifd + 2 + 12 * len(entries) + 4
    table_data = struct.pack("<3I", *offsets) + struct.pack("<3I", *map(len, strips))
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd) + b"".join(strips))
    out += struct.pack("<H", len(entries))
    for code, kind, count, value in entries:
        if value is None:
            value = tables if code == 273 else tables + 12
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", code, kind, count) + packed
    out += struct.pack("<I", 0) + table_data
    path.write_bytes(bytes(out))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiff-ifd")
    for name, options in WRITTEN.items():
        options = dict(options)
        dtype = options.pop("dtype", np.uint16)
        tifffile.imwrite(root / name, PIXELS.astype(dtype), photometric="minisblack", **options)
    _ifd_at_end(root / "ifd-at-end.tiff")
    return root


@pytest.mark.parametrize("name", [*WRITTEN, "ifd-at-end.tiff"])
def test_fast_path_equals_tifffile(folder: Path, name: str) -> None:
    store = open_store(folder)
    data = (folder / name).read_bytes()
    expected = th.read_plane_header(store, name)  # through tifffile.TiffFile
    segments = Segments([(0, data[: th.HEAD_BYTES])])
    if name in ("ifd-at-end.tiff", "described.tiff"):
        with pytest.raises(NeedBytes) as need:
            parse_plane_header(segments, len(data))
        start, end = need.value.start, need.value.end
        assert start >= th.HEAD_BYTES or end > th.HEAD_BYTES
        segments.add(start, data[start : start + th.HEAD_BYTES])
    assert parse_plane_header(segments, len(data)) == expected
    assert th.read_plane_headers(store, [name]) == {name: expected}
    with tifffile.TiffFile(folder / name) as tif:
        page = tif.pages.first
        assert expected.byte_offsets == tuple(page.dataoffsets)
        assert expected.byte_lengths == tuple(page.databytecounts)
        assert (expected.height, expected.width) == page.shape == PIXELS.shape


def test_a_strip_read_by_its_range_decodes_to_tifffiles_pixels(folder: Path) -> None:
    store = open_store(folder)
    headers = th.read_plane_headers(store, ["ifd-at-end.tiff", "tiled.tiff"])
    for name, header in headers.items():
        assert isinstance(header, th.PlaneHeader)
        data = (folder / name).read_bytes()
        with tifffile.TiffFile(folder / name) as tif:
            page = tif.pages.first
            start, length = header.byte_offsets[1], header.byte_lengths[1]
            chunk, _index, shape = page.decode(data[start : start + length], 1)
            assert chunk is not None
            rows, columns = header.chunks
            if page.is_tiled:
                expected = PIXELS[:rows, columns : 2 * columns]
            else:
                expected = PIXELS[rows : 2 * rows]
            h, w = expected.shape
            assert np.array_equal(chunk.reshape(shape)[0, :h, :w, 0], expected)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("rgb.tiff", {"photometric": "rgb"}),
        ("pages.tiff", {"photometric": "minisblack"}),
    ],
)
def test_unusual_files_go_to_tifffile(tmp_path: Path, name: str, options: dict) -> None:
    shape = (3, 16, 16) if name == "pages.tiff" else (16, 16, 3)
    pixels = np.zeros(shape, np.uint8)
    tifffile.imwrite(tmp_path / name, pixels, **options)
    data = (tmp_path / name).read_bytes()
    with pytest.raises(UnusualTiff):
        parse_plane_header(Segments([(0, data)]), len(data))
    found = th.read_plane_headers(open_store(tmp_path), [name])[name]
    assert isinstance(found, str) and "unreadable TIFF" in found
