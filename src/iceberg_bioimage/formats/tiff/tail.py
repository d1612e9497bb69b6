"""Read the IFD of header-at-end TIFFs (Phenix/Harmony) in one ranged read per file.

Harmony writes the pixels first (from byte 8) and the IFD after them, followed by its
tag values and an ~80 KB XML tag that ends the file. A read of the file's first bytes
then finds only the IFD's offset, and a second read fetches the IFD: two GETs per
file. The files of one plate share this layout, and the listing gives each file's
size. So :func:`learn_layout` learns, from a few files read the usual way, how far
before the end of the file the IFD lies; :meth:`TailLayout.window` is then the one
range of any other file that should hold its IFD and every value the header needs;
and :func:`parse_tail` finds the IFD in those bytes and accepts it only when the
file's structure is fully accounted for (see :func:`_accounted`). Anything else —
no candidate, two candidates, a value outside the window, an unusual or damaged IFD —
returns ``None`` and the caller reads that file the usual way, so the header (or the
error) is the usual one.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from iceberg_bioimage.formats.tiff.ifd import (
    NeedBytes,
    PlaneHeader,
    Segments,
    UnusualTiff,
    ifd_place,
    parse_plane_header,
)

#: The smallest window read: as much as a head read, so slack is free.
MIN_WINDOW = 8 * 1024
#: The largest window read: probed files whose IFDs lie at distances from their end
#: that differ more than this teach nothing useful (each read would be large).
MAX_WINDOW = 64 * 1024
#: Candidate IFDs tried in one window before giving up on it (bounds the work per file).
_MAX_CANDIDATES = 8


@dataclass(frozen=True)
class TailLayout:
    """Where the learned files keep their IFD: how far from their end, and what it starts with."""

    prefix: bytes
    pointer: str
    signature: bytes
    #: Fewest and most bytes seen from the IFD to the end of the file.
    tail_min: int
    tail_max: int
    #: Most bytes seen from the IFD to the end of the last value the header needs.
    span: int

    @property
    def header_size(self) -> int:
        """Bytes of the TIFF header (8, or 16 for BigTIFF): where the pixels start."""
        return len(self.prefix) + struct.calcsize(self.pointer)

    def window(self, size: int) -> tuple[int, int] | None:
        """``(start, length)`` of a file of ``size`` bytes to read; ``None``: read its head.

        The window covers every IFD position seen, relative to the end, plus the values
        after it, and is widened on both sides to :data:`MIN_WINDOW` for files whose
        tag values differ a little in length.
        """
        low = size - self.tail_max
        high = min(size - self.tail_min + self.span, size)
        slack = max(0, MIN_WINDOW - (high - low)) // 2
        start = low - slack
        end = min(high + slack, size)
        if start < MIN_WINDOW or end - start > MAX_WINDOW:  # small file; or a layout too loose
            return None
        return start, end - start

    def header(self, ifd: int) -> bytes:
        """The TIFF header of a file of this layout whose IFD lies at ``ifd``."""
        return self.prefix + struct.pack(self.pointer, ifd)


def _accounted(header: PlaneHeader, start: int, ifd: int) -> bool:
    """Whether the strips or tiles fill ``[start, ifd)`` exactly, one after another.

    Then the file is header, pixels, IFD: the header's first-IFD offset (not read) can
    only be ``ifd``, for no other byte between the header and the IFD is free.
    """
    if -1 in header.byte_lengths:
        return False
    at = start
    for offset, length in sorted(zip(header.byte_offsets, header.byte_lengths, strict=True)):
        if offset != at:
            return False
        at += length
    return at == ifd


def learn_layout(segments: Segments, size: int | None, header: PlaneHeader) -> TailLayout | None:
    """The layout of one parsed file, or ``None`` when its pixels do not come first."""
    if size is None:
        return None
    place = ifd_place(segments)
    layout = TailLayout(
        prefix=place.prefix,
        pointer=place.pointer,
        signature=place.signature,
        tail_min=size - place.offset,
        tail_max=size - place.offset,
        span=place.end - place.offset,
    )
    return layout if _accounted(header, layout.header_size, place.offset) else None


def merge_layouts(layouts: Iterable[TailLayout]) -> TailLayout | None:
    """One layout covering all of ``layouts``; ``None`` if none, or if they differ in kind."""
    merged: TailLayout | None = None
    for layout in layouts:
        if merged is None:
            merged = layout
            continue
        kind = (layout.prefix, layout.pointer, layout.signature)
        if kind != (merged.prefix, merged.pointer, merged.signature):
            return None
        merged = TailLayout(
            prefix=merged.prefix,
            pointer=merged.pointer,
            signature=merged.signature,
            tail_min=min(merged.tail_min, layout.tail_min),
            tail_max=max(merged.tail_max, layout.tail_max),
            span=max(merged.span, layout.span),
        )
    return merged


def _candidate(layout: TailLayout, window: Segments, ifd: int, size: int) -> PlaneHeader | None:
    """The header if an IFD at ``ifd`` parses from the window and accounts for the file."""
    segments = Segments([(0, layout.header(ifd)), *window.parts])
    try:
        header = parse_plane_header(segments, size)
    except (NeedBytes, UnusualTiff, ValueError, struct.error):
        return None
    return header if _accounted(header, layout.header_size, ifd) else None


def parse_tail(layout: TailLayout, start: int, data: bytes, size: int) -> PlaneHeader | None:
    """The header of a file from its window ``data`` read at ``start``; ``None``: not sure."""
    window = Segments([(start, data)])
    found: PlaneHeader | None = None
    at = data.find(layout.signature)
    for _ in range(_MAX_CANDIDATES):
        if at < 0:
            return found
        header = _candidate(layout, window, start + at, size)
        if header is not None:
            if found is not None:
                return None  # two IFDs would do: only the unread header could tell
            found = header
        at = data.find(layout.signature, at + 1)
    return None
