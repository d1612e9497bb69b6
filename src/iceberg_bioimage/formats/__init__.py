"""Format readers: turn a store (Zarr v2/v3, TIFF, file-set plate) into a :class:`ScanResult`.

The format is detected from content (``zarr.json``, ``.zgroup``/``.zarray``, TIFF magic
bytes, an OME-XML companion, a folder of TIFF files, a LoadData header), not from the
file name: :data:`READERS` are asked in order, each with the same
:class:`~iceberg_bioimage.formats.registry.Probe`, and the first that can read the
store scans it. Adding a format is one module defining a
:class:`~iceberg_bioimage.formats.registry.FormatReader` and one line here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from iceberg_bioimage.exceptions import MetadataError, StoreNotFoundError
from iceberg_bioimage.formats.file_set.load_data import LOAD_DATA
from iceberg_bioimage.formats.file_set.scan import FILE_SET, scan_file_set
from iceberg_bioimage.formats.registry import FormatReader, Probe
from iceberg_bioimage.formats.tiff.scan import OME_COMPANION, TIFF
from iceberg_bioimage.formats.zarr.store import ZARR
from iceberg_bioimage.io.storage import open_store, split_glob
from iceberg_bioimage.models import ScanOptions, ScanResult, ScanStream
from iceberg_bioimage.models.file_sets import FileSetOptions

#: The readers, in the order they are asked.
READERS: list[FormatReader] = [ZARR, FILE_SET, TIFF, OME_COMPANION, LOAD_DATA]


def register_reader(reader: FormatReader, *, before: str | None = None) -> None:
    """Add a reader (at the end, or before the reader named ``before``)."""
    names = [r.name for r in READERS]
    READERS.insert(names.index(before) if before in names else len(READERS), reader)


def scan(
    uri: str | os.PathLike[str],
    *,
    dataset_id: str | None = None,
    options: ScanOptions | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ScanResult:
    """Detect the format of ``uri`` and scan it."""
    found = _detect(uri, dataset_id, options or ScanOptions(), storage_options)
    return found if isinstance(found, ScanResult) else found[0].read(found[1])


def scan_stream(
    uri: str | os.PathLike[str],
    *,
    dataset_id: str | None = None,
    options: ScanOptions | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ScanStream:
    """Detect the format of ``uri`` and scan it a batch of arrays at a time.

    A Zarr plate is read a few wells per batch, so writers that drop each batch
    keep their memory flat in the plate size; other stores come as one batch.
    """
    found = _detect(uri, dataset_id, options or ScanOptions(), storage_options)
    return ScanStream.of(found) if isinstance(found, ScanResult) else found[0].open_stream(found[1])


def _detect(
    uri: str | os.PathLike[str],
    dataset_id: str | None,
    options: ScanOptions,
    storage_options: Mapping[str, Any] | None,
) -> tuple[FormatReader, Probe] | ScanResult:
    """The reader that takes ``uri`` and its probe (a glob of TIFF files: scanned now)."""
    glob = split_glob(uri)
    store = None
    if glob is not None and "://" in os.fspath(uri):
        # an object key may hold [ ] * ?: a store that exists as written is no glob
        with suppress(StoreNotFoundError):
            store = open_store(uri, storage_options)
    if glob is not None and store is None:
        return _scan_glob(glob, dataset_id, options.file_set or FileSetOptions(), storage_options)
    probe = Probe(store or open_store(uri, storage_options), dataset_id, options, storage_options)
    for reader in READERS:
        if reader.can_read(probe):
            return reader, probe
    raise MetadataError(probe.store.uri, _unknown(probe))


def _unknown(probe: Probe) -> str:
    """Why no reader took the store."""
    if not probe.is_dir:
        return "not an image: neither a Zarr store, a TIFF file nor a LoadData table"
    if not probe.store.list_children("") and not probe.listing:
        return "empty folder: no Zarr metadata (zarr.json, .zgroup or .zarray) found"
    return "not a Zarr store: no zarr.json, .zgroup or .zarray at its root, and no TIFF files"


def _scan_glob(
    glob: tuple[str, str],
    dataset_id: str | None,
    file_set: FileSetOptions,
    storage_options: Mapping[str, Any] | None,
) -> ScanResult:
    """A glob of TIFF files as one file-set plate, rooted at the folder before the wildcard."""
    folder, pattern = glob
    store = open_store(folder, storage_options)
    listing = store.glob_objects(pattern)
    if not listing:
        raise StoreNotFoundError(f"{store.uri}/{pattern}", "no file matches this glob")
    return scan_file_set(store, listing, dataset_id, file_set, folders=_ancestors(store.uri))


def _ancestors(uri: str) -> list[str]:
    """Folder names from ``uri`` upwards (the plate may be named by a parent folder)."""
    path = uri.split("://", 1)[-1].rstrip("/")
    return [name for name in reversed(path.split("/")) if name][:4]


__all__ = ["READERS", "FormatReader", "Probe", "register_reader", "scan", "scan_stream"]
