"""Read the header (first IFD) of many single-image TIFF files.

Only the IFD is parsed: image size, dtype, strip or tile layout with the real
byte ranges, codec and, when the file states it in centimetres, the pixel size.
Every file's first :data:`HEAD_BYTES` are read in one batched call (threads
locally, concurrent ranged GETs remotely) and parsed from bytes
(:mod:`.ifd`); an IFD lying further in costs one more batched round for
the files that need it. When most of a plate's first files keep their IFD after
their pixels (Phenix/Harmony), every other file is read once, from where they
keep it relative to the file's end (:mod:`.tail`). A file the fast parser does
not cover is read with tifffile, which gives the same header.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import tifffile

from iceberg_bioimage.exceptions import IcebergBioimageError
from iceberg_bioimage.formats.tiff.guard import open_tiff
from iceberg_bioimage.formats.tiff.ifd import (
    NeedBytes,
    PlaneHeader,
    Segments,
    UnusualTiff,
    parse_plane_header,
)
from iceberg_bioimage.formats.tiff.scan import codec_name
from iceberg_bioimage.formats.tiff.tail import (
    TailLayout,
    learn_layout,
    merge_layouts,
    parse_tail,
)
from iceberg_bioimage.io.storage import WAITED_READ_S, Store

#: Bytes read from the start of every file: its IFD and strip tables, as most writers place them.
HEAD_BYTES = 8 * 1024
_ROUNDS = 3
#: Files per batched read: the next batch is read while one is parsed.
_BATCH = 2048
_WORKERS = 16
_RESOLUTION_CENTIMETER = 3
#: Files of a plate read the usual way to learn where its files keep their IFD: the
#: first files sorted are one site's channels, whose tag values differ the most.
_PROBE = 8
#: Plates smaller than this are read the usual way: probing first would save little.
_PROBE_AT_LEAST = 32
#: A file the fast parser read: its bytes, its size and its header.
_Parsed = tuple[Segments, int | None, PlaneHeader]


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
        with open_tiff(handle, key, store.limits, name=key.rsplit("/", 1)[-1]) as tif:
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
    except IcebergBioimageError as error:
        return f"{store.location(key)}: unreadable TIFF: {error.problem}"
    except Exception as error:  # tifffile raises many types on damaged files
        return f"{store.location(key)}: unreadable TIFF: {error}"


def read_plane_headers_with_tifffile(store: Store, keys: Sequence[str]) -> list[PlaneHeader | str]:
    """Headers of ``keys`` read by :class:`tifffile.TiffFile` (threads); the slow path."""
    if len(keys) < 2:
        return [_read_or_reason((store, key)) for key in keys]
    with ThreadPoolExecutor(min(_WORKERS, len(keys))) as pool:
        return list(pool.map(_read_or_reason, [(store, key) for key in keys]))


def _reads(
    store: Store, requests: list[tuple[str, int, int]]
) -> Iterator[tuple[tuple[str, int, int], tuple[bytes, int | None] | None]]:
    """``(request, read)`` pairs; batches are read ahead while the caller parses.

    Unless the first batch came from memory (page-cached local files): then a reader
    thread would only take the GIL from the parser between its short system calls,
    and the batches are read in turn.
    """
    batches = [requests[i : i + _BATCH] for i in range(0, len(requests), _BATCH)]
    if len(batches) < 2:
        yield from zip(requests, store.read_heads(requests), strict=True)
        return
    started = time.perf_counter()
    first = store.read_heads(batches[0])
    waited = time.perf_counter() - started >= len(batches[0]) * WAITED_READ_S
    yield from zip(batches[0], first, strict=True)
    if not waited:
        for batch in batches[1:]:
            yield from zip(batch, store.read_heads(batch), strict=True)
        return
    with ThreadPoolExecutor(2) as pool:
        for batch, reads in zip(batches[1:], pool.map(store.read_heads, batches[1:]), strict=True):
            yield from zip(batch, reads, strict=True)


def read_plane_headers(
    store: Store, keys: Sequence[str], sizes: Mapping[str, int] | None = None
) -> dict[str, PlaneHeader | str]:
    """Headers of ``keys``; a damaged file maps to its reason (a string).

    ``sizes`` (from a listing) lets a remote scan check that the data lies inside
    each file, and lets a plate of header-at-end files (Phenix/Harmony) be read in
    one ranged read per file: the first :data:`_PROBE` files are read the usual way,
    and if their IFDs lie after their pixels, every other file's IFD is read from
    the window before its end where the probed files keep theirs (:mod:`.tail`).
    A file whose window does not verify is read the usual way.
    """
    found: dict[str, PlaneHeader | str] = {}
    rest: Sequence[str] = keys
    if sizes and len(keys) >= _PROBE_AT_LEAST:
        probe, rest = keys[:_PROBE], keys[_PROBE:]
        layout = _learn(_read_in_rounds(store, probe, sizes, found, learn=True), len(probe))
        if layout is not None:
            rest = _read_tails(store, layout, rest, sizes, found)
    _read_in_rounds(store, rest, sizes, found)
    return {key: found[key] for key in keys}


def _learn(parsed: Sequence[_Parsed], probed: int) -> TailLayout | None:
    """The layout most probed files share, if they keep their IFD after their pixels."""
    layouts = [learn_layout(*item) for item in parsed]
    learned = [layout for layout in layouts if layout is not None]
    if 2 * len(learned) <= probed:  # header-first files, or too few to tell: the usual way
        return None
    return merge_layouts(learned)


def _read_tails(
    store: Store,
    layout: TailLayout,
    keys: Sequence[str],
    sizes: Mapping[str, int],
    found: dict[str, PlaneHeader | str],
) -> list[str]:
    """Read each file's window of ``layout`` once; the keys left to read the usual way."""
    requests: list[tuple[str, int, int]] = []
    left: list[str] = []
    for key in keys:
        size = sizes.get(key)
        window = layout.window(size) if size else None
        if window is None:
            left.append(key)
        else:
            requests.append((key, *window))
    for (key, start, length), read in _reads(store, requests):
        size = sizes[key]
        header = None
        # A short read or a size other than the listing's: the file changed; not sure.
        if read is not None and len(read[0]) == length and read[1] in (None, size):
            header = parse_tail(layout, start, read[0], size)
        if header is None:
            left.append(key)
        else:
            found[key] = header
    return left


def _read_in_rounds(
    store: Store,
    keys: Sequence[str],
    sizes: Mapping[str, int] | None,
    found: dict[str, PlaneHeader | str],
    *,
    learn: bool = False,
) -> list[_Parsed]:
    """Read ``keys`` from their first bytes on, in rounds, into ``found``.

    With ``learn``, returns what the fast parser read of each file it parsed (for
    :func:`_learn`); otherwise a file's bytes are dropped once its header is parsed,
    so a plate's heads are not all held at once.
    """
    segments: dict[str, Segments] = {}
    file_sizes: dict[str, int | None] = {}
    parsed: list[_Parsed] = []
    requests = [(key, 0, HEAD_BYTES) for key in keys]
    slow: list[str] = []
    for _ in range(_ROUNDS):
        if not requests:
            break
        wanted: list[tuple[str, int, int]] = []
        for (key, start, length), read in _reads(store, requests):
            if read is None:
                slow.append(key)
                continue
            data, size = read
            if key in segments:
                segments[key].add(start, data)
            else:
                segments[key] = Segments([(start, data)])
                file_sizes[key] = size if size is not None else (sizes or {}).get(key)
            if file_sizes[key] is None and len(data) < length:
                file_sizes[key] = start + len(data)  # the read reached the end
            size = file_sizes[key]
            try:
                header = parse_plane_header(segments[key], size)
            except NeedBytes as need:
                if size is not None and need.end > size:
                    slow.append(key)  # past the end: tifffile names the damage
                else:
                    wanted.append((key, need.start, max(need.end - need.start, HEAD_BYTES)))
            except (UnusualTiff, struct.error):
                slow.append(key)
            except ValueError as error:
                found[key] = f"{store.location(key)}: unreadable TIFF: {error}"
                del segments[key]
            else:
                found[key] = header
                if learn:
                    parsed.append((segments[key], size, header))
                del segments[key]
        requests = wanted
    slow.extend(key for key, _, _ in requests)
    found.update(zip(slow, read_plane_headers_with_tifffile(store, slow), strict=True))
    return parsed
