"""Counted reads of chunk payloads and of the few metadata bytes decoding needs.

Every byte the crop reader takes from a store goes through :class:`Fetcher`, which
counts requests, payload bytes and metadata bytes (:class:`ReadStats`), so the I/O
economy of a run is measured, not assumed. Payloads are read by
:meth:`~iceberg_bioimage.io.storage.Store.read_ranges`: a few threads locally,
one batched ``cat_ranges`` (concurrent requests) on fsspec filesystems.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

from iceberg_bioimage.io.storage import Store
from iceberg_bioimage.models.crops import ReadStats

#: Block size of ranged reads that parse a TIFF header (IFDs are small).
HEADER_BLOCK = 4 * 1024


class Fetcher:
    """Reads chunk payloads and metadata from one store, counting every byte."""

    def __init__(self, store: Store, stats: ReadStats) -> None:
        self.store = store
        self.stats = stats
        self.single_file = not store.is_dir()

    def key(self, chunk_key: str) -> str:
        """The store key of a chunk key (a single-file store is its own root)."""
        return "" if self.single_file else chunk_key

    def payloads(self, requests: Sequence[tuple[str, int, int | None]]) -> list[bytes | None]:
        """Read ``(chunk key, start, end)`` ranges at once; ``None`` for an absent object."""
        if not requests:
            return []
        data = self.store.read_ranges([(self.key(k), s, e) for k, s, e in requests])
        with self.stats._lock:
            self.stats.requests += len(requests)
            self.stats.chunks_fetched += len(requests)
            self.stats.chunk_bytes += sum(len(d) for d in data if d is not None)
        return data

    def metadata_ranges(
        self, requests: Sequence[tuple[str, int, int | None]]
    ) -> list[bytes | None]:
        """Read metadata byte ranges (shard indexes) at once, counted as metadata."""
        if not requests:
            return []
        data = self.store.read_ranges([(self.key(k), s, e) for k, s, e in requests])
        self.stats.count_metadata(sum(len(d) for d in data if d is not None), len(requests))
        return data

    def document(self, key: str) -> bytes | None:
        """A whole metadata document (Zarr ``.zarray`` / ``zarr.json``)."""
        data = self.store.read_many([key])[0]
        self.stats.count_metadata(len(data) if data is not None else 0)
        return data

    def size(self, chunk_key: str) -> int:
        """Size in bytes of the file holding ``chunk_key``."""
        fs: Any = getattr(self.store, "fs", None)
        location = self.store.location(self.key(chunk_key))
        if fs is None:
            return os.path.getsize(location)
        root: str = getattr(self.store, "root", "")
        key = self.key(chunk_key)
        return int(fs.size(f"{root}/{key}" if key else root))

    def open_ranged(self, chunk_key: str) -> RangedFile:
        """A read-only file over ranged reads of ``chunk_key`` (for parsing TIFF headers)."""
        return RangedFile(self, chunk_key, self.size(chunk_key))


class RangedFile(io.RawIOBase):
    """A seekable file whose reads are block-aligned ranged requests, counted as metadata."""

    def __init__(self, fetcher: Fetcher, chunk_key: str, size: int) -> None:
        super().__init__()
        self._fetcher = fetcher
        self._key = fetcher.key(chunk_key)
        self._size = size
        self._pos = 0
        self._blocks: dict[int, bytes] = {}

    def readable(self) -> bool:
        """Always readable."""
        return True

    def seekable(self) -> bool:
        """Always seekable."""
        return True

    def tell(self) -> int:
        """Current position."""
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the position."""
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def _block(self, index: int) -> bytes:
        if index not in self._blocks:
            start = index * HEADER_BLOCK
            end = min(start + HEADER_BLOCK, self._size)
            data = self._fetcher.store.read_ranges([(self._key, start, end)])[0] or b""
            self._fetcher.stats.count_metadata(len(data))
            self._blocks[index] = data
        return self._blocks[index]

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (the rest of the file when negative)."""
        end = self._size if size is None or size < 0 else min(self._pos + size, self._size)
        if end <= self._pos:
            return b""
        parts = []
        for index in range(self._pos // HEADER_BLOCK, (end - 1) // HEADER_BLOCK + 1):
            block = self._block(index)
            lo = max(self._pos - index * HEADER_BLOCK, 0)
            hi = min(end - index * HEADER_BLOCK, len(block))
            parts.append(block[lo:hi])
        data = b"".join(parts)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        """Read into a writable buffer."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
