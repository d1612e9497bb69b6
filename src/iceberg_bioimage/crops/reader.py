"""Read crops image by image: fetch each needed chunk once, decode it once, cut every box.

Images are processed in waves bounded by the decoded size of their chunks; the
payloads of the next wave are fetched while the current one is decoded, so memory
holds at most two waves of payloads and one wave of decoded chunks. An image's
decoded chunks are placed into a canvas of the array's shape that numpy allocates
lazily (only the pages of placed chunks are ever touched), and each crop is a copy
of its box from it; the canvas is released before the next image.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from iceberg_bioimage.crops.boxes import Boxes
from iceberg_bioimage.crops.decode import (
    ChunkDecoder,
    FileSetDecoder,
    array_document,
    tiff_decoder,
    zarr_decoder,
)
from iceberg_bioimage.crops.fetch import Fetcher, ReadStats
from iceberg_bioimage.crops.plan import (
    ArrayLayout,
    ChunkSources,
    needed_chunk_ids,
)
from iceberg_bioimage.crops.shards import inner_chunk_ranges
from iceberg_bioimage.io.storage import open_store

#: Decoded bytes of one wave of images.
WAVE_BYTES = 96 * 1024 * 1024
#: Threads decoding chunks.
DECODE_WORKERS = 4


@dataclass(frozen=True)
class ImageRequest:
    """The boxes to cut from one array, and which rows of the object table they are.

    ``kind`` is ``image`` for the image's pixels, ``mask`` or ``outline`` for its
    segmentation (label arrays are read like images: only the chunks the boxes touch).
    """

    layout: ArrayLayout
    sources: ChunkSources
    boxes: Boxes
    rows: np.ndarray
    channels: np.ndarray
    kind: str = "image"

    def chunk_ids(self) -> np.ndarray:
        """Linear ids of the chunks the boxes intersect."""
        return needed_chunk_ids(self.layout, self.boxes, self.channels)


@dataclass
class _Planned:
    request: ImageRequest
    ids: np.ndarray
    fetch: list[int]  # positions in ids that have a stored payload
    ranges: list[tuple[str, int, int | None]]
    unresolved: list[int]  # positions of inner chunks whose range the chunk index lacks


def _plan(request: ImageRequest) -> _Planned:
    ids = request.chunk_ids()
    sources, layout = request.sources, request.layout
    rows = sources.row[ids]
    fetch, ranges, unresolved = [], [], []
    for position, row in enumerate(rows.tolist()):
        if row < 0 or not sources.present[row]:
            continue
        offset = int(sources.offsets[row])
        if layout.is_tiff or layout.sharded:
            if offset < 0:
                if layout.sharded and not sources.known[row]:
                    unresolved.append(position)
                continue
            ranges.append((sources.keys[row], offset, offset + int(sources.lengths[row])))
        else:
            ranges.append((sources.keys[row], 0, None))
        fetch.append(position)
    return _Planned(request, ids, fetch, ranges, unresolved)


class CropReader:
    """Reads crops from the stores of the given arrays, counting every read."""

    def __init__(self, storage_options: Mapping[str, Any] | None = None) -> None:
        self.stats = ReadStats()
        self._storage_options = storage_options
        self._fetchers: dict[str, Fetcher] = {}
        self._decoders: dict[tuple[str, str], ChunkDecoder] = {}
        self._shared: dict[tuple[str, tuple[int, ...], bool], ChunkDecoder] = {}
        self._documents: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        #: Linear ids of the chunks read as the fill value (absent), per (uri, array path).
        self.absent: dict[tuple[str, str], np.ndarray] = {}

    def _fetcher(self, uri: str) -> Fetcher:
        if uri not in self._fetchers:
            self._fetchers[uri] = Fetcher(open_store(uri, self._storage_options), self.stats)
        return self._fetchers[uri]

    def _decoder(self, planned: _Planned) -> ChunkDecoder:
        layout = planned.request.layout
        key = (layout.uri, layout.array_path)
        if key not in self._decoders:
            fetcher = self._fetcher(layout.uri)
            if layout.planes is not None:  # files with their own codecs and layouts
                self._decoders[key] = FileSetDecoder(fetcher, layout, planned.request.sources)
            elif layout.is_tiff:
                first = planned.ranges[0][0] if planned.ranges else planned.request.sources.keys[0]
                self._decoders[key] = tiff_decoder(fetcher, layout, first)
            else:
                document, where = self._document(layout)
                # arrays with the same metadata (a plate's fields) share one decoder
                same = (json.dumps(document, sort_keys=True), layout.shape, layout.sharded)
                if same not in self._shared:
                    self._shared[same] = zarr_decoder(document, layout, where)
                self._decoders[key] = self._shared[same]
        return self._decoders[key]

    def _document(self, layout: ArrayLayout) -> tuple[dict[str, Any], str]:
        key = (layout.uri, layout.array_path)
        if key not in self._documents:
            self._documents[key] = array_document(self._fetcher(layout.uri), layout)
        return self._documents[key]

    def _resolve(self, planned: _Planned) -> None:
        """Locate inner chunks the chunk index has no ranges for, from their shards' indexes."""
        request = planned.request
        layout, sources = request.layout, request.sources
        document, where = self._document(layout)
        rows = sources.row[planned.ids[planned.unresolved]]
        coords = np.stack(np.unravel_index(planned.ids[planned.unresolved], layout.grid), -1)
        keys = [sources.keys[r] for r in rows.tolist()]
        offsets, lengths = inner_chunk_ranges(
            self._fetcher(layout.uri), document, keys, coords, where
        )
        for position, key, offset, length in zip(
            planned.unresolved, keys, offsets.tolist(), lengths.tolist(), strict=True
        ):
            if offset >= 0:
                planned.fetch.append(position)
                planned.ranges.append((key, offset, offset + length))

    def _fetch_wave(self, wave: Sequence[_Planned]) -> list[list[bytes | None]]:
        by_uri: dict[str, list[tuple[int, tuple[str, int, int | None]]]] = {}
        for index, planned in enumerate(wave):
            uri = planned.request.layout.uri
            by_uri.setdefault(uri, []).extend((index, r) for r in planned.ranges)
        out: list[list[bytes | None]] = [[] for _ in wave]
        for uri, items in by_uri.items():
            data = self._fetcher(uri).payloads([r for _, r in items])
            for (index, _), payload in zip(items, data, strict=True):
                out[index].append(payload)
        return out

    def read(
        self, requests: Sequence[ImageRequest]
    ) -> Iterator[tuple[ImageRequest, list[np.ndarray]]]:
        """Yield each request with its crops (in the order of its boxes)."""
        for request in requests:  # open stores up front (errors before any work)
            self._fetcher(request.layout.uri)
        plans = [_plan(r) for r in requests]
        for planned in plans:
            if planned.unresolved:
                self._resolve(planned)
        waves = list(_waves(plans))
        with ThreadPoolExecutor(1) as prefetch, ThreadPoolExecutor(DECODE_WORKERS) as pool:
            pending: Future[list[list[bytes | None]]] | None = (
                prefetch.submit(self._fetch_wave, waves[0]) if waves else None
            )
            for number, wave in enumerate(waves):
                assert pending is not None
                payloads = pending.result()
                pending = (
                    prefetch.submit(self._fetch_wave, waves[number + 1])
                    if number + 1 < len(waves)
                    else None
                )
                for planned, data in zip(wave, payloads, strict=True):
                    yield planned.request, self._cut(planned, data, pool)

    def _cut(
        self, planned: _Planned, data: list[bytes | None], pool: ThreadPoolExecutor
    ) -> list[np.ndarray]:
        request = planned.request
        layout = request.layout
        decoder = self._decoder(planned)
        canvas = np.empty(layout.shape, dtype=layout.dtype)
        stored = np.array(
            [i for i, d in zip(planned.fetch, data, strict=True) if d is not None], dtype=np.int64
        )
        payloads = [d for d in data if d is not None]

        def decode_and_place(batch: range) -> None:
            ids = planned.ids[stored[batch.start : batch.stop]]
            blocks = decoder.decode(payloads[batch.start : batch.stop], ids)
            for chunk_id, block in zip(ids.tolist(), blocks, strict=True):
                _place(canvas, layout.chunk_region(chunk_id), block)

        size = -(-len(payloads) // DECODE_WORKERS) if payloads else 1
        batches = [range(i, min(i + size, len(payloads))) for i in range(0, len(payloads), size)]
        list(pool.map(decode_and_place, batches))
        self.stats.count_decodes(layout.uri, layout.array_path, planned.ids[stored])
        absent = np.setdiff1d(np.arange(len(planned.ids)), stored)
        self.absent[(layout.uri, layout.array_path)] = planned.ids[absent]
        for position in absent.tolist():
            canvas[layout.chunk_region(int(planned.ids[position]))] = decoder.fill_value
        return _crops(canvas, request)


def _place(canvas: np.ndarray, region: tuple[slice, ...], block: Any) -> None:
    """Put a decoded chunk in its region (a block may be padded past the array's edge)."""
    region = tuple(
        slice(r.start, min(r.stop, r.start + n)) for r, n in zip(region, block.shape, strict=True)
    )
    canvas[region] = block[tuple(slice(0, r.stop - r.start) for r in region)]


def _crops(canvas: np.ndarray, request: ImageRequest) -> list[np.ndarray]:
    layout, boxes = request.layout, request.boxes
    every = layout.c_axis is None or np.array_equal(
        request.channels, np.arange(layout.shape[layout.c_axis])
    )
    out = []
    for y0, y1, x0, x1 in zip(
        boxes.y_min.tolist(),
        boxes.y_max.tolist(),
        boxes.x_min.tolist(),
        boxes.x_max.tolist(),
        strict=True,
    ):
        index: list[slice] = [slice(None)] * canvas.ndim
        index[layout.y_axis] = slice(y0, y1)
        index[layout.x_axis] = slice(x0, x1)
        crop = canvas[tuple(index)]
        out.append(crop.copy() if every else np.take(crop, request.channels, axis=layout.c_axis))
    return out


def _waves(planned: Sequence[_Planned]) -> Iterator[list[_Planned]]:
    wave: list[_Planned] = []
    size = 0
    for item in planned:
        layout = item.request.layout
        nbytes = len(item.ids) * int(np.prod(layout.chunks)) * layout.dtype.itemsize
        if wave and size + nbytes > WAVE_BYTES:
            yield wave
            wave, size = [], 0
        wave.append(item)
        size += nbytes
    if wave:
        yield wave
