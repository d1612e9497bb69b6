"""Decode chunk payloads with the libraries that wrote them.

Zarr chunks (v2 compressor and filters, v3 codec pipelines, inner chunks of shards)
go through zarr's own codec pipeline, built from the array's metadata document;
TIFF strips and tiles through the decode function of the page that holds them
(``TiffPage.decode``: compression, predictor and bit order are tifffile's). Every
decoder returns blocks laid out along the array's axes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from iceberg_bioimage.crops.fetch import Fetcher
from iceberg_bioimage.crops.plan import ArrayLayout, ChunkSources
from iceberg_bioimage.exceptions import MetadataError


class ChunkDecoder(Protocol):
    """Turns payloads into arrays laid out along the array's axes."""

    fill_value: Any

    def decode(self, payloads: Sequence[bytes], chunk_ids: np.ndarray) -> list[np.ndarray]:
        """Decode ``payloads`` of the chunks ``chunk_ids`` (callers run batches in threads)."""
        ...


class V2Decoder:
    """Decodes Zarr v2 chunks with numcodecs: the compressor, then the filters reversed."""

    def __init__(self, document: dict[str, Any], fill_value: Any) -> None:
        import numcodecs

        compressor = document.get("compressor")
        self._compressor = numcodecs.get_codec(compressor) if compressor else None
        self._filters = [numcodecs.get_codec(f) for f in document.get("filters") or []]
        self._dtype = np.dtype(document["dtype"])
        self._shape = tuple(document["chunks"])
        self._order = document.get("order", "C")
        self.fill_value = fill_value

    def _one(self, payload: bytes) -> np.ndarray:
        data: Any = self._compressor.decode(payload) if self._compressor else payload
        for codec in reversed(self._filters):
            data = codec.decode(data)
        flat = np.frombuffer(data, dtype=self._dtype) if not isinstance(data, np.ndarray) else data
        return flat.view(self._dtype).reshape(self._shape, order=self._order)

    def decode(self, payloads: Sequence[bytes], chunk_ids: np.ndarray) -> list[np.ndarray]:
        """Decode chunks one by one (numcodecs releases the GIL: batches run in threads)."""
        return [self._one(p) for p in payloads]


class ZarrDecoder:
    """Decodes whole chunks, or inner chunks of shards, through zarr's codec pipeline."""

    def __init__(self, document: dict[str, Any], layout: ArrayLayout, where: str) -> None:
        from zarr.core.array import create_codec_pipeline
        from zarr.core.array_spec import ArrayConfig
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.codec_pipeline import BatchedCodecPipeline
        from zarr.core.metadata import ArrayV2Metadata, ArrayV3Metadata

        try:
            if document.get("zarr_format") == 2:
                metadata: Any = ArrayV2Metadata.from_dict({**document, "attributes": {}})
            else:
                metadata = ArrayV3Metadata.from_dict({**document, "attributes": {}})
        except (ValueError, TypeError, KeyError) as error:
            raise MetadataError(where, f"zarr cannot read the array metadata: {error}") from error
        self._prototype = default_buffer_prototype()
        spec = metadata.get_chunk_spec(
            (0,) * len(layout.shape), ArrayConfig.from_dict({}), self._prototype
        )
        if layout.sharded:
            from dataclasses import replace

            from zarr.codecs import ShardingCodec

            sharding = metadata.codecs[0] if metadata.codecs else None
            if not isinstance(sharding, ShardingCodec):
                raise MetadataError(where, "shards are declared but the codec is not sharding")
            self._pipeline = BatchedCodecPipeline.from_codecs(sharding.codecs)
            spec = replace(spec, shape=tuple(sharding.chunk_shape))
        else:
            self._pipeline = create_codec_pipeline(metadata)
        self._spec = spec
        self.fill_value = metadata.fill_value if metadata.fill_value is not None else 0

    def decode(self, payloads: Sequence[bytes], chunk_ids: np.ndarray) -> list[np.ndarray]:
        """Decode chunks as one batch (zarr's pipeline runs codecs concurrently)."""
        from zarr.core.sync import sync

        batch = [(self._prototype.buffer.from_bytes(p), self._spec) for p in payloads]
        decoded = sync(self._pipeline.decode(batch))
        return [d.as_numpy_array() for d in decoded]


class TiffDecoder:
    """Decodes strips and tiles with the keyframe's ``TiffPage.decode``."""

    def __init__(self, keyframe: Any, layout: ArrayLayout) -> None:
        self.keyframe = keyframe
        self._decode = keyframe.decode
        self._jpegtables = getattr(keyframe, "jpegtables", None)
        self._layout = layout
        self._grid = layout.grid
        self._segments_x = self._grid[layout.x_axis]
        self.fill_value = 0

    def _one(self, job: tuple[bytes, int]) -> np.ndarray:
        payload, chunk_id = job
        coords = np.unravel_index(chunk_id, self._grid)
        index = int(coords[self._layout.y_axis]) * self._segments_x + int(
            coords[self._layout.x_axis]
        )
        segment, _position, shape = self._decode(payload, index, jpegtables=self._jpegtables)
        depth, length, width, samples = shape
        sizes = {"y": length, "x": width, "s": samples, "z": depth}
        target = [
            sizes.get(a, 1) if a in "yxs" or (a == "z" and depth > 1) else 1
            for a in self._layout.axes
        ]
        return np.asarray(segment).reshape(target)

    def decode(self, payloads: Sequence[bytes], chunk_ids: np.ndarray) -> list[np.ndarray]:
        """Decode segments one by one (tifffile releases the GIL: batches run in threads)."""
        return [self._one(job) for job in zip(payloads, chunk_ids.tolist(), strict=True)]


class FileSetDecoder:
    """Decodes the strips/tiles of a file-set image whose files differ in codec or layout.

    Each file is decoded by its own page (``TiffPage.decode``): its header is read
    (ranged reads) the first time one of its chunks is decoded. A chunk's segment
    index is its row and column in its own file's grid.
    """

    def __init__(self, fetcher: Fetcher, layout: ArrayLayout, sources: ChunkSources) -> None:
        if layout.planes is None:
            raise ValueError("FileSetDecoder needs an image with per-plane layouts")
        self._fetcher = fetcher
        self._layout = layout
        self._planes = layout.planes
        self._sources = sources
        self._pages: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self.fill_value = 0

    def _page(self, key: str) -> tuple[Any, Any]:
        with self._lock:
            if key not in self._pages:
                keyframe = tiff_decoder(self._fetcher, self._layout, key).keyframe
                self._pages[key] = (keyframe.decode, getattr(keyframe, "jpegtables", None))
            return self._pages[key]

    def decode(self, payloads: Sequence[bytes], chunk_ids: np.ndarray) -> list[np.ndarray]:
        """Decode each chunk with the page of the file that holds it."""
        planes, rows, columns = self._planes.locate(chunk_ids)
        out = []
        for payload, chunk_id, plane, row, column in zip(
            payloads,
            chunk_ids.tolist(),
            planes.tolist(),
            rows.tolist(),
            columns.tolist(),
            strict=True,
        ):
            key = self._sources.keys[int(self._sources.row[chunk_id])]
            decode, jpegtables = self._page(key)
            index = row * int(self._planes.nx[plane]) + column
            segment, _position, shape = decode(payload, index, jpegtables=jpegtables)
            _depth, length, width, _samples = shape
            lead = (1,) * len(self._planes.lead)
            out.append(np.asarray(segment).reshape(*lead, length, width))
        return out


def array_document(fetcher: Fetcher, layout: ArrayLayout) -> tuple[dict[str, Any], str]:
    """The array's metadata document (one small request) and where it is."""
    prefix = f"{layout.array_path}/" if layout.array_path else ""
    name = ".zarray" if layout.storage_variant == "zarr-v2" else "zarr.json"
    where = fetcher.store.location(f"{prefix}{name}")
    raw = fetcher.document(f"{prefix}{name}")
    if raw is None:
        raise MetadataError(where, "array metadata is missing (the store changed since its scan?)")
    try:
        return json.loads(raw), where
    except ValueError as error:
        raise MetadataError(where, f"invalid JSON: {error}") from error


def zarr_decoder(
    document: dict[str, Any], layout: ArrayLayout, where: str
) -> ZarrDecoder | V2Decoder:
    """The decoder of a Zarr array.

    Zarr v2 chunks are decoded by numcodecs directly (zarr's asynchronous pipeline
    costs more per chunk than the codecs themselves); v3 codec pipelines and shards
    by zarr.
    """
    decoder = ZarrDecoder(document, layout, where)  # zarr validates the metadata
    if document.get("zarr_format") == 2:
        return V2Decoder(document, decoder.fill_value)
    return decoder


def tiff_decoder(fetcher: Fetcher, layout: ArrayLayout, first_key: str) -> TiffDecoder:
    """Parse the header of the file holding the array's first chunk (ranged reads)."""
    import tifffile

    from iceberg_bioimage.formats.tiff.guard import open_tiff

    where = fetcher.store.location(fetcher.key(first_key))
    try:
        with open_tiff(fetcher.open_ranged(first_key), where, fetcher.store.limits) as tif:
            if layout.storage_variant == "tiff-files":
                keyframe = tif.pages.first
            else:
                series, level = (int(p) for p in layout.array_path.split("/"))
                keyframe = tif.series[series].levels[level].keyframe
            return TiffDecoder(keyframe, layout)
    except MetadataError:
        raise
    except (tifffile.TiffFileError, ValueError, IndexError, OSError) as error:
        raise MetadataError(where, f"cannot read the TIFF header: {error}") from error
