"""One signature for every format reader, and the probe they share.

A reader answers "can I read this?" from a :class:`Probe` (what detection reads of a
store, read once and shared: the first bytes of a file, the root documents and the
listing of a folder) and then reads it. :data:`READERS` in :mod:`iceberg_bioimage.formats`
asks them in order; the first that says yes scans the store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from iceberg_bioimage.exceptions import InvalidNameError
from iceberg_bioimage.io.storage import Store
from iceberg_bioimage.models import ScanOptions, ScanResult, ScanStream, default_dataset_id
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.names import check_dataset_id

#: What detection reads at a folder's root: Zarr v3 and v2 metadata, consolidated too.
ROOT_FILES = ("zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata")
#: Bytes of a file that detection reads (magic numbers, an XML root, a CSV header).
HEAD_BYTES = 4096


@dataclass(frozen=True)
class Probe:
    """A store, how the caller asked to scan it, and what detection has read of it."""

    store: Store
    given_dataset_id: str | None
    options: ScanOptions
    storage_options: Mapping[str, Any] | None

    @functools.cached_property
    def is_dir(self) -> bool:
        """Whether the store is a folder (prefix) rather than one file."""
        return self.store.is_dir()

    @functools.cached_property
    def head(self) -> bytes:
        """The first :data:`HEAD_BYTES` of a file store (empty for a folder)."""
        if self.is_dir:
            return b""
        return self.store.read_ranges([("", 0, HEAD_BYTES)])[0] or b""

    @functools.cached_property
    def root_documents(self) -> dict[str, bytes | None]:
        """``zarr.json``, ``.zgroup``, ``.zarray``, ``.zattrs`` at a folder's root."""
        if not self.is_dir:
            return {}
        return dict(zip(ROOT_FILES, self.store.read_many(ROOT_FILES), strict=True))

    @functools.cached_property
    def listing(self) -> dict[str, int]:
        """Every object below a folder with its size (empty for a file)."""
        return dict(self.store.list_objects("")) if self.is_dir else {}

    @property
    def file_set(self) -> FileSetOptions:
        """How to read single-image TIFFs as a plate (default: detected)."""
        return self.options.file_set or FileSetOptions()

    @property
    def dataset_id(self) -> str:
        """The dataset id: given, or the store name minus its suffix; checked by one rule."""
        if self.given_dataset_id is not None:
            return check_dataset_id(self.given_dataset_id)
        uri = self.store.uri
        try:
            return check_dataset_id(default_dataset_id(uri))
        except InvalidNameError as error:
            raise InvalidNameError(
                error.subject,
                f"{error.problem}; it comes from the store name {uri}: pass a dataset id "
                "(--dataset-id, dataset_id=)",
            ) from None


@dataclass(frozen=True)
class FormatReader:
    """A format: its name, whether it reads a probed store, and how.

    ``stream``, when given, scans the store a batch of arrays at a time (a large
    plate); readers without it are read whole and streamed as one batch.
    """

    name: str
    can_read: Callable[[Probe], bool]
    read: Callable[[Probe], ScanResult]
    stream: Callable[[Probe], ScanStream] | None = None

    def open_stream(self, probe: Probe) -> ScanStream:
        """The store as a :class:`ScanStream` (one batch when the reader cannot stream)."""
        if self.stream is not None:
            return self.stream(probe)
        return ScanStream.of(self.read(probe))
