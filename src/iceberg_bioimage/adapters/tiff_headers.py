"""Read the header (first IFD) of many single-image TIFF files, in threads.

Only the IFD is parsed: image size, dtype, strip or tile layout with the real
byte ranges, codec and, when the file states it in centimetres, the pixel size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import tifffile

from iceberg_bioimage.adapters.storage import Store
from iceberg_bioimage.adapters.tiff import codec_name

_WORKERS = 16
_RESOLUTION_CENTIMETER = 3


@dataclass(frozen=True, kw_only=True)
class PlaneHeader:
    """One single-image TIFF file: its plane and where each strip or tile lies."""

    height: int
    width: int
    dtype: str
    itemsize: int
    chunks: tuple[int, int]
    byte_offsets: tuple[int, ...]
    byte_lengths: tuple[int, ...]
    codec: str
    physical_size_x: float | None = None
    physical_size_y: float | None = None

    @property
    def layout(self) -> tuple[int, int, str, tuple[int, int]]:
        """What every file of one image must share: size, dtype and chunk shape."""
        return (self.height, self.width, self.dtype, self.chunks)


def _micrometres(page: tifffile.TiffPage) -> tuple[float | None, float | None]:
    tags = page.tags
    unit = tags.get("ResolutionUnit")
    if unit is None or int(unit.value) != _RESOLUTION_CENTIMETER:
        return None, None
    sizes: list[float | None] = []
    for name in ("XResolution", "YResolution"):
        tag = tags.get(name)
        value = tag.value if tag is not None else None
        ok = isinstance(value, tuple) and len(value) == 2 and value[0]
        sizes.append(1e4 * value[1] / value[0] if ok else None)
    return sizes[0], sizes[1]


def read_plane_header(store: Store, key: str) -> PlaneHeader:
    """Parse the one IFD of ``key``; ``ValueError`` when it is not one 2-D plane."""
    with store.open(key) as handle:
        file_size = handle.seek(0, 2)
        handle.seek(0)
        with tifffile.TiffFile(handle, name=key.rsplit("/", 1)[-1]) as tif:
            if len(tif.pages) != 1:
                raise ValueError(f"holds {len(tif.pages)} images; expected one plane per file")
            page = tif.pages.first
            if len(page.shape) != 2:
                raise ValueError(f"image shape {page.shape} is not one 2-D plane")
            height, width = (int(n) for n in page.shape)
            chunks = (int(page.chunks[0]), int(page.chunks[1]))
            offsets = tuple(int(o) for o in page.dataoffsets)
            lengths = tuple(int(n) for n in page.databytecounts)
            expected = math.ceil(height / chunks[0]) * math.ceil(width / chunks[1])
            if len(offsets) != expected:
                raise ValueError(f"{len(offsets)} strips/tiles where the layout needs {expected}")
            if offsets and max(o + n for o, n in zip(offsets, lengths, strict=True)) > file_size:
                raise ValueError("image data extends past the end of the file (truncated?)")
            size_x, size_y = _micrometres(page)
            return PlaneHeader(
                height=height,
                width=width,
                dtype=page.dtype.name,
                itemsize=page.dtype.itemsize,
                chunks=chunks,
                byte_offsets=tuple(
                    o if n > 0 else -1 for o, n in zip(offsets, lengths, strict=True)
                ),
                byte_lengths=tuple(n if n > 0 else -1 for n in lengths),
                codec=codec_name(page),
                physical_size_x=size_x,
                physical_size_y=size_y,
            )


def _read_or_reason(job: tuple[Store, str]) -> PlaneHeader | str:
    store, key = job
    try:
        return read_plane_header(store, key)
    except Exception as error:  # tifffile raises many types on damaged files
        return f"{store.location(key)}: unreadable TIFF: {error}"


def read_plane_headers(store: Store, keys: Sequence[str]) -> dict[str, PlaneHeader | str]:
    """Headers of ``keys``, read in threads; a damaged file maps to its reason (a string)."""
    if not keys:
        return {}
    with ThreadPoolExecutor(min(_WORKERS, len(keys))) as pool:
        found = pool.map(_read_or_reason, [(store, key) for key in keys])
        return dict(zip(keys, found, strict=True))
