"""Parse the first IFD of a plain single-plane TIFF from bytes already read.

The fast path of :mod:`.tiff_headers`: a file-set plate holds thousands of
files whose headers are all alike, and building a :class:`tifffile.TiffFile`
for each costs far more than reading it. This reads only the tags a
:class:`PlaneHeader` needs, with :mod:`struct`, from byte segments of the file
(usually its first few KiB). It covers what instruments write: classic or
BigTIFF, either byte order, one 2-D grey plane in strips or tiles. Anything
else raises :class:`UnusualTiff` and the caller reads the file with tifffile,
so both paths give the same header. A tag value outside the segments raises
:class:`NeedBytes` naming the range to fetch.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import tifffile

#: Value types read here (SHORT, LONG, RATIONAL, SRATIONAL, LONG8): a tag of another
#: type sends the file to tifffile, whatever it makes of it.
_TYPE_CODES = {3: "H", 4: "I", 5: "I", 10: "i", 16: "Q"}
_RATIONALS = (5, 10)
_SIZES = {kind: struct.calcsize(code) for kind, code in _TYPE_CODES.items()}
#: Tags the header is made of; any other tag is skipped unread.
_WANTED = frozenset(
    (256, 257, 258, 259, 262, 273, 277, 278, 279, 282, 283, 296, 317, 322, 323, 324, 325, 339)
)
#: Tags after which tifffile reads the file differently (ImageDepth, LSM, NDPI, JPEG
#: interchange, SubIFDs): left to tifffile.
_SPECIAL = frozenset((32997, 32998, 34412, 65420, 513, 514, 330))
_RESOLUTION_CENTIMETER = 3
_MAX_TAGS = 4096


class UnusualTiff(Exception):
    """The file is not a plain single-plane TIFF this parser reads: use tifffile."""


class NeedBytes(Exception):
    """A value lies outside the bytes at hand: fetch ``[start, end)`` and parse again."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__(start, end)
        self.start = start
        self.end = end


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
    def plane(self) -> tuple[int, int, str]:
        """What every file of one image must share: size and dtype.

        Compression and strip/tile layout may differ between the files of one image
        (each file's strips or tiles are its own chunks).
        """
        return (self.height, self.width, self.dtype)


class Segments:
    """Byte ranges of one file read so far, as ``(start, data)`` pairs."""

    def __init__(self, parts: Sequence[tuple[int, bytes]]) -> None:
        self.parts = list(parts)

    def add(self, start: int, data: bytes) -> None:
        """Remember ``data`` read at ``start``."""
        self.parts.append((start, data))

    def find(self, offset: int, length: int) -> tuple[bytes, int]:
        """The buffer holding ``[offset, offset + length)`` and the position in it."""
        for start, data in self.parts:
            if start <= offset and offset + length <= start + len(data):
                return data, offset - start
        raise NeedBytes(offset, offset + length)


@functools.cache
def _dtypes() -> dict[tuple[int, int], tuple[str, int]]:
    import numpy

    out = {}
    for key, code in tifffile.TIFF.SAMPLE_DTYPES.items():
        try:
            dtype = numpy.dtype(code)
        except TypeError:  # a code numpy lacks (tifffile's own float24): left to tifffile
            continue
        out[key] = (dtype.name, dtype.itemsize)
    return out


@functools.cache
def _compression(value: int) -> str:
    try:
        return tifffile.COMPRESSION(value).name.lower()
    except ValueError:
        raise UnusualTiff(f"compression {value}") from None


@functools.cache
def _predictor(value: int) -> str:
    try:
        return tifffile.PREDICTOR(value).name.lower()
    except ValueError:
        raise UnusualTiff(f"predictor {value}") from None


@dataclass(frozen=True)
class _Value:
    """Where one tag's values lie: inline in the IFD entry, or at a file offset."""

    kind: int
    count: int
    offset: int | None
    inline: bytes

    @property
    def size(self) -> int:
        """Bytes the values take."""
        return self.count * (2 if self.kind in _RATIONALS else 1) * _SIZES[self.kind]

    def read(self, order: str, segments: Segments) -> tuple:
        n = self.count * (2 if self.kind in _RATIONALS else 1)
        layout = f"{order}{n}{_TYPE_CODES[self.kind]}"
        if self.offset is None:
            return struct.unpack_from(layout, self.inline)
        return struct.unpack_from(layout, *segments.find(self.offset, struct.calcsize(layout)))


@dataclass(frozen=True)
class _Plan:
    """What one IFD's entries say, shared by every file whose entries are the same bytes."""

    order: str
    height: int
    width: int
    dtype: tuple[str, int]
    chunks: tuple[int, int]
    expected: int
    codec: str
    single_strip_counted: bool
    offsets: _Value
    lengths: _Value
    resolution: tuple[_Value | None, _Value | None] | None


def _locate(segments: Segments) -> tuple[str, bool, int, bytes]:
    """Byte order, BigTIFF flag, offset and bytes of the first IFD (count, entries, next)."""
    head, _ = segments.find(0, 8)
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None:
        raise UnusualTiff("not a TIFF header")
    version = struct.unpack_from(order + "H", head, 2)[0]
    if version == 42:
        big, ifd = False, struct.unpack_from(order + "I", head, 4)[0]
    elif version == 43:
        data, pos = segments.find(0, 16)
        if struct.unpack_from(order + "HH", data, pos + 4) != (8, 0):
            raise UnusualTiff("BigTIFF offset size")
        big, ifd = True, struct.unpack_from(order + "Q", data, pos + 8)[0]
    else:
        raise UnusualTiff(f"TIFF version {version}")
    if ifd < 8:
        raise UnusualTiff("first IFD offset")
    count_size, entry_size = (8, 20) if big else (2, 12)
    data, pos = segments.find(ifd, count_size)
    count = struct.unpack_from(order + ("Q" if big else "H"), data, pos)[0]
    if not 0 < count <= _MAX_TAGS:
        raise UnusualTiff(f"{count} tags")
    size = count_size + count * entry_size + (8 if big else 4)
    data, pos = segments.find(ifd, size)
    return order, big, ifd, data[pos : pos + size]


def _entries(order: str, big: bool, ifd: bytes) -> dict[int, _Value]:
    """The wanted tags of one IFD."""
    count_size, entry_size, inline = (8, 20, 8) if big else (2, 12, 4)
    entry_format = order + ("HHQ" if big else "HHI")
    pointer = order + ("Q" if big else "I")
    tags: dict[int, _Value] = {}
    for at in range(count_size, len(ifd) - inline, entry_size):
        code, kind, n = struct.unpack_from(entry_format, ifd, at)
        if code in _SPECIAL:
            raise UnusualTiff(f"tag {code}")
        if code not in _WANTED:
            continue
        if code in tags:
            raise UnusualTiff(f"tag {code} twice")
        code_char = _TYPE_CODES.get(kind)
        if code_char is None or n == 0:
            raise UnusualTiff(f"tag {code} type {kind}")
        width = struct.calcsize(code_char) * (2 if kind in _RATIONALS else 1) * n
        value_at = at + entry_size - inline
        if width <= inline:
            tags[code] = _Value(kind, n, None, ifd[value_at : value_at + width])
        else:
            tags[code] = _Value(kind, n, struct.unpack_from(pointer, ifd, value_at)[0], b"")
    if struct.unpack_from(pointer, ifd, len(ifd) - inline)[0]:
        raise UnusualTiff("more than one IFD")
    return tags


@functools.lru_cache(maxsize=256)
def _plan(order: str, big: bool, ifd: bytes) -> _Plan:
    """Read the entries of one IFD (cached: the files of a plate mostly share them)."""
    tags = _entries(order, big, ifd)

    def scalar(code: int, default: int | None = None) -> int:
        tag = tags.get(code)
        if tag is None:
            if default is None:
                raise UnusualTiff(f"tag {code} missing")
            return default
        if tag.count != 1 or tag.kind in _RATIONALS:
            raise UnusualTiff(f"tag {code} is not one integer")
        return int(tag.read(order, Segments(()))[0])

    width, height = scalar(256), scalar(257)
    if scalar(277, 1) != 1 or scalar(262, 1) == 2:
        raise UnusualTiff("not one grey sample per pixel")
    dtype = _dtypes().get((scalar(339, 1), scalar(258, 1)))
    if dtype is None or not width or not height:
        raise UnusualTiff("sample format")
    if 322 in tags:
        chunks = (scalar(323), scalar(322))
        offsets, lengths = tags.get(324), tags.get(325)
        if 273 in tags or 279 in tags:
            raise UnusualTiff("both strips and tiles")
    else:
        rows = tags.get(278)
        per_strip = scalar(278) if rows is not None and rows.count == 1 else height
        chunks = (min(per_strip, height), width)
        offsets, lengths = tags.get(273), tags.get(279)
    if offsets is None or lengths is None or not all(chunks):
        raise UnusualTiff("no strip or tile table")
    if offsets.kind in _RATIONALS or lengths.kind in _RATIONALS:
        raise UnusualTiff("strip or tile table of fractions")
    expected = -(-height // chunks[0]) * -(-width // chunks[1])
    if offsets.count != expected or lengths.count != expected:
        raise UnusualTiff("strip or tile count")
    compression = scalar(259, 1)
    if compression == 6:  # old-style JPEG: tifffile patches its tags
        raise UnusualTiff("old-style JPEG")
    codec = _compression(compression)
    predictor = scalar(317, 1)
    if predictor > 1:
        codec = f"{codec},predictor:{_predictor(predictor)}"
    centimetres = 296 in tags and scalar(296) == _RESOLUTION_CENTIMETER
    return _Plan(
        order=order,
        height=height,
        width=width,
        dtype=dtype,
        chunks=chunks,
        expected=expected,
        codec=codec,
        single_strip_counted=compression in (2, 3, 4) and expected == 1,
        offsets=offsets,
        lengths=lengths,
        resolution=(tags.get(282), tags.get(283)) if centimetres else None,
    )


def parse_plane_header(segments: Segments, file_size: int | None) -> PlaneHeader:
    """The header of a plain single-plane TIFF; see the module for what raises."""
    order, big, _, ifd = _locate(segments)
    plan = _plan(order, big, ifd)
    offsets = plan.offsets.read(plan.order, segments)
    lengths = plan.lengths.read(plan.order, segments)
    if plan.single_strip_counted and not lengths[0]:
        raise UnusualTiff("single strip without its byte count")
    if (
        file_size is not None
        and max(offsets) + max(lengths) > file_size  # a bound first: cheap, and usually enough
        and max(map(int.__add__, offsets, lengths)) > file_size
    ):
        raise ValueError("image data extends past the end of the file (truncated?)")
    size_x = size_y = None
    if plan.resolution is not None:
        size_x, size_y = (_size(plan.order, tag, segments) for tag in plan.resolution)
    return PlaneHeader(
        height=plan.height,
        width=plan.width,
        dtype=plan.dtype[0],
        itemsize=plan.dtype[1],
        chunks=plan.chunks,
        byte_offsets=offsets if all(lengths) else _absent(offsets, lengths),
        byte_lengths=lengths if all(lengths) else tuple(n or -1 for n in lengths),
        codec=plan.codec,
        physical_size_x=size_x,
        physical_size_y=size_y,
    )


def _absent(offsets: Sequence[int], lengths: Sequence[int]) -> tuple[int, ...]:
    return tuple(o if n else -1 for o, n in zip(offsets, lengths, strict=True))


def _size(order: str, tag: _Value | None, segments: Segments) -> float | None:
    """Micrometres per pixel from a (resolution) rational tag, as tifffile's value gives it."""
    if tag is None or tag.kind not in _RATIONALS or tag.count != 1:
        return None
    numerator, denominator = tag.read(order, segments)
    return 1e4 * denominator / numerator if numerator else None


@dataclass(frozen=True)
class IfdPlace:
    """Where the first IFD of a parsed file lies, for learning a plate's layout."""

    #: The file's first bytes up to its first-IFD offset (byte order, version, and for
    #: BigTIFF the offset size): what every file of the same layout starts with.
    prefix: bytes
    #: The :mod:`struct` format of the first-IFD offset that follows ``prefix``.
    pointer: str
    offset: int
    #: End of the last byte :func:`parse_plane_header` reads from the IFD and its values.
    end: int
    #: The IFD's tag count and first entry's code, type and count: what finds it in bytes.
    signature: bytes


def ifd_place(segments: Segments) -> IfdPlace:
    """Where the first IFD of a file :func:`parse_plane_header` has read lies."""
    order, big, at, ifd = _locate(segments)
    plan = _plan(order, big, ifd)
    ends = [at + len(ifd)]
    for value in (plan.offsets, plan.lengths, *(plan.resolution or ())):
        if value is not None and value.offset is not None:
            ends.append(value.offset + value.size)
    prefix_size, entry_head = (8, 8 + 12) if big else (4, 2 + 8)
    head, pos = segments.find(0, prefix_size)
    return IfdPlace(
        prefix=head[pos : pos + prefix_size],
        pointer=order + ("Q" if big else "I"),
        offset=at,
        end=max(ends),
        signature=ifd[:entry_head],
    )
