"""Header-at-end (Phenix/Harmony) TIFFs: one read per file, the header tifffile gives."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from fixtures.harmony_tiffs import REAL_HARMONY, harmony_tiff, write_harmony_plate
from iceberg_bioimage.formats.tiff import headers as th
from iceberg_bioimage.formats.tiff.ifd import Segments, parse_plane_header
from iceberg_bioimage.formats.tiff.tail import (
    MIN_WINDOW,
    learn_layout,
    merge_layouts,
    parse_tail,
)
from iceberg_bioimage.io import storage
from iceberg_bioimage.io.storage import Store, open_store

FILES = 200


class CountingStore:
    """A store that counts the ranged reads each file costs."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads: dict[str, int] = {}

    def read_heads(self, requests: Sequence[tuple[str, int, int]]) -> list:
        for key, _, _ in requests:
            self.reads[key] = self.reads.get(key, 0) + 1
        return self.store.read_heads(requests)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def _usual(store: Store, keys: list[str]) -> dict[str, th.PlaneHeader | str]:
    """Headers read the way every file was read before tail reads: tifffile itself."""
    return dict(zip(keys, th.read_plane_headers_with_tifffile(store, keys), strict=True))


def _layout_of(data: bytes):
    segments = Segments([(0, data[: th.HEAD_BYTES])])
    segments.add(*_ifd_read(data))
    return learn_layout(segments, len(data), parse_plane_header(segments, len(data)))


def _ifd_read(data: bytes) -> tuple[int, bytes]:
    ifd = int.from_bytes(data[4:8], "little")
    return ifd, data[ifd : ifd + th.HEAD_BYTES]


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("harmony") / "Images"
    write_harmony_plate(folder, FILES)
    return folder


def test_the_real_harmony_file_is_read_from_its_tail_as_tifffile_reads_it() -> None:
    data = REAL_HARMONY.read_bytes()
    layout = _layout_of(data)
    assert layout is not None
    assert layout.tail_min == layout.tail_max == 1_356_205 - 1_275_084
    start, length = layout.window(len(data)) or (0, 0)
    assert length == MIN_WINDOW  # the IFD and its values (758 bytes) and slack, no XML
    header = parse_tail(layout, start, data[start : start + length], len(data))
    store = open_store(REAL_HARMONY.parent)
    assert header == th.read_plane_header(store, REAL_HARMONY.name)  # tifffile.TiffFile


def test_a_header_first_file_teaches_no_layout(tmp_path: Path) -> None:
    import numpy as np
    import tifffile

    tifffile.imwrite(tmp_path / "a.tiff", np.zeros((64, 64), np.uint16))
    data = (tmp_path / "a.tiff").read_bytes()
    segments = Segments([(0, data)])
    assert learn_layout(segments, len(data), parse_plane_header(segments, len(data))) is None


def test_files_of_other_sizes_are_found_in_the_learned_window() -> None:
    learned = [_layout_of(harmony_tiff(b"\1" * n, xml_extra=e)) for n, e in ((900, 0), (50, 90))]
    layout = merge_layouts(learned)
    assert layout is not None and layout.tail_max - layout.tail_min == 90
    for pixels, extra in ((b"\2" * 30_000, 45), (b"\3" * 12_345, 2_000), (b"\4" * 19_999, 0)):
        data = harmony_tiff(pixels, xml_extra=extra)
        start, length = layout.window(len(data)) or (0, 0)
        header = parse_tail(layout, start, data[start : start + length], len(data))
        assert header is not None
        assert header.byte_offsets == (8,) and header.byte_lengths == (len(pixels),)


def _strip_byte_count(data: bytes, value: int) -> bytes:
    """``data`` with the (inline) strip byte count of its IFD set to ``value``."""
    ifd = int.from_bytes(data[4:8], "little")
    out = bytearray(data)
    for at in range(ifd + 2, ifd + 2 + 12 * int.from_bytes(data[ifd : ifd + 2], "little"), 12):
        if data[at : at + 2] == (279).to_bytes(2, "little"):
            out[at + 8 : at + 12] = value.to_bytes(4, "little")
    return bytes(out)


def test_windows_are_bounded() -> None:
    near, far = (_layout_of(harmony_tiff(b"\1" * 20_000, xml_extra=e)) for e in (0, 70_000))
    assert near is not None and far is not None
    assert near.window(10_000) is None  # a small file: its first read holds the IFD
    assert merge_layouts([near, far]).window(10**9) is None  # too loose to be one read


def test_a_window_that_misses_the_ifd_or_leaves_bytes_unaccounted_gives_up() -> None:
    layout = _layout_of(harmony_tiff(b"\1" * 20_000))
    assert layout is not None
    far = harmony_tiff(b"\1" * 20_000, xml_extra=50_000)  # the IFD lies before the window
    start, length = layout.window(len(far)) or (0, 0)
    assert parse_tail(layout, start, far[start : start + length], len(far)) is None
    # The strip ends 4 bytes before the IFD: the header might point anywhere.
    gap = _strip_byte_count(harmony_tiff(b"\1" * 20_000), 20_000 - 4)
    start, length = layout.window(len(gap)) or (0, 0)
    assert parse_tail(layout, start, gap[start : start + length], len(gap)) is None
    whole = harmony_tiff(b"\1" * 20_000)
    assert parse_tail(layout, start, whole[start : start + length], len(whole)) is not None


def test_a_plate_costs_one_read_per_file_and_gives_tifffiles_headers(plate: Path) -> None:
    store = open_store(plate)
    sizes = store.list_objects("")
    keys = sorted(sizes)
    counting = CountingStore(store)
    headers = th.read_plane_headers(counting, keys, sizes)  # type: ignore[arg-type]
    assert headers == _usual(store, keys)
    assert sum(counting.reads.values()) / len(keys) <= 1.1
    assert max(counting.reads.values()) == 2  # the probed files only


@pytest.mark.parametrize("waited", [0.0, 1.0], ids=["slow reads: threads", "memory: in turn"])
def test_reads_in_threads_or_in_turn_give_the_same_headers(
    plate: Path, monkeypatch: pytest.MonkeyPatch, waited: float
) -> None:
    """Local reads that waited go through threads (and batches are read ahead): same answers."""
    store = open_store(plate)
    sizes = store.list_objects("")
    keys = sorted(sizes)
    expected = th.read_plane_headers(store, keys, sizes)
    monkeypatch.setattr(storage, "WAITED_READ_S", waited)
    monkeypatch.setattr(th, "WAITED_READ_S", waited)
    monkeypatch.setattr(th, "_BATCH", 64)
    assert th.read_plane_headers(store, keys, sizes) == expected
    for n in (64, 65, 130):  # a batch that is all "first files", one more, several slices
        requests = [(key, 0, 16) for key in keys[:n]]
        assert store.read_heads(requests) == [store.read_heads([r])[0] for r in requests]


def test_damaged_files_in_a_plate_read_as_before(plate: Path, tmp_path: Path) -> None:
    folder = tmp_path / "Images"
    shutil.copytree(plate, folder)
    names = sorted(p.name for p in folder.iterdir())
    damaged = {
        names[20]: lambda d: d[:10_000],  # truncated: no IFD, pixels past the end
        names[21]: lambda d: d[:-81_000] + b"\0" * 81_000,  # the IFD zeroed
        names[22]: lambda d: d[:-5] + b"\xff" * 5,  # the XML's end overwritten (harmless)
        names[23]: lambda d: d + b"\0" * 1_000,  # grown: the strip no longer meets the IFD
    }
    for name, damage in damaged.items():
        path = folder / name
        path.write_bytes(damage(path.read_bytes()))
    store = open_store(folder)
    sizes = store.list_objects("")
    keys = sorted(sizes)
    headers = th.read_plane_headers(store, keys, sizes)
    before = th.read_plane_headers(store, keys)  # no sizes: no tail reads
    assert headers == before
    for name in damaged:
        assert headers[name] == _usual(store, [name])[name]
    assert isinstance(headers[names[20]], str)


def test_a_damaged_window_gives_the_usual_header_or_none(tmp_path: Path) -> None:
    """Whatever bytes of the window are damaged, a tail read never disagrees with the usual
    read: it gives the header the usual read gives, or gives up (and the file is read
    the usual way)."""
    import random

    rng = random.Random(7)
    layout = _layout_of(harmony_tiff(b"\1" * 30_000))
    assert layout is not None
    store = open_store(tmp_path)
    accepted = 0
    for index in range(60):
        data = bytearray(harmony_tiff(rng.randbytes(30_000 + rng.randint(0, 99))))
        start, length = layout.window(len(data)) or (0, 0)
        ifd = int.from_bytes(data[4:8], "little")
        for _ in range(rng.randint(1, 3)):  # damage the IFD or its values, mostly
            data[ifd + rng.randrange(300)] = rng.randrange(256)
        name = f"{index}.tiff"
        (tmp_path / name).write_bytes(data)
        header = parse_tail(layout, start, bytes(data[start : start + length]), len(data))
        if header is not None:
            accepted += 1
            assert header == th.read_plane_headers(store, [name])[name]
    assert 0 < accepted < 60
