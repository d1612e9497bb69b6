"""Open a TIFF with tifffile only after its IFD chain has been walked within bounds.

tifffile trusts the chain of IFD offsets: a damaged file whose chain loops back
(tifffile checks for loops only at the 100th page) or holds millions of pages
sends its page iteration into a loop that never ends or allocates without bound
(a 378-byte file did both). :func:`check_ifd_chain` walks the chain first with
plain ``struct`` reads: every IFD must lie inside the file, no IFD may be visited
twice, and the chain may hold at most ``Limits.max_tiff_pages`` IFDs. Where the
chain ends early (a next-IFD offset past the end, a tag count over 4,096) it
ends exactly where tifffile would end it. Every place that hands a file to
tifffile goes through :func:`open_tiff`.
"""

from __future__ import annotations

import os
import struct
from typing import IO, Any

import tifffile

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.models.limits import Limits

#: tifffile's own bound on the tags of one IFD; past it the chain ends there.
MAX_TAGS = 4096
_CLASSIC = (2, 12, 4, "I", "H")  # tag-count size, tag size, offset size, formats
_BIG = (8, 20, 8, "Q", "Q")


def _header(head: bytes, where: str) -> tuple[str, tuple[int, int, int, str, str], int]:
    """Byte order, layout and first IFD offset from the first 16 bytes."""
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None or len(head) < 8:
        raise MetadataError(where, "not a TIFF (bad byte-order mark)")
    (magic,) = struct.unpack(order + "H", head[2:4])
    if magic == 42:
        return order, _CLASSIC, struct.unpack(order + "I", head[4:8])[0]
    if magic == 43 and len(head) >= 16:
        return order, _BIG, struct.unpack(order + "Q", head[8:16])[0]
    raise MetadataError(where, f"not a TIFF (magic number {magic})")


def check_ifd_chain(handle: IO[bytes], size: int, where: str, limits: Limits) -> int:
    """Walk the chain of IFDs of an open TIFF; return how many IFDs tifffile will see.

    :class:`MetadataError` when the chain loops back, holds more than
    ``limits.max_tiff_pages`` IFDs, or its first IFD lies outside the file.
    """
    handle.seek(0)
    order, layout, offset = _header(handle.read(16), where)
    count_size, tag_size, offset_size, offset_format, count_format = layout
    header_size = 16 if layout is _BIG else 8
    if not header_size <= offset < size:
        raise MetadataError(where, f"first IFD offset {offset} lies outside the file")
    seen: set[int] = set()
    while offset != 0:
        if offset in seen:
            raise MetadataError(where, f"damaged TIFF: the IFD chain loops back to offset {offset}")
        if len(seen) >= limits.max_tiff_pages:
            raise MetadataError(
                where,
                f"more than {limits.max_tiff_pages:,} IFDs (pages) in the chain "
                "(ICEBERG_BIOIMAGE_MAX_TIFF_PAGES)",
            )
        handle.seek(offset)
        raw = handle.read(count_size)
        if len(raw) < count_size:
            break
        (tags,) = struct.unpack(order + count_format, raw)
        if tags > MAX_TAGS:
            break  # tifffile drops this IFD and ends the chain here
        seen.add(offset)
        handle.seek(offset + count_size + tags * tag_size)
        raw = handle.read(offset_size)
        if len(raw) < offset_size:
            break
        (offset,) = struct.unpack(order + offset_format, raw)
        if offset >= size:
            break  # tifffile ends the chain at an offset past the end
    return len(seen)


def open_tiff(
    source: IO[bytes] | str | os.PathLike[str],
    where: str,
    limits: Limits | None = None,
    **options: Any,
) -> tifffile.TiffFile:
    """A :class:`tifffile.TiffFile` of ``source`` (open handle or path), its chain checked."""
    limits = limits or Limits.from_env()
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            check_ifd_chain(handle, os.fstat(handle.fileno()).st_size, where, limits)
        return tifffile.TiffFile(source, **options)
    size = source.seek(0, 2)
    check_ifd_chain(source, size, where, limits)
    source.seek(0)
    return tifffile.TiffFile(source, **options)
