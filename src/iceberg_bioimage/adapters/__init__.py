"""Format adapters: turn a store (Zarr v2/v3, TIFF, file-set plate) into a :class:`ScanResult`.

The format is detected from content (``zarr.json``, ``.zgroup``/``.zarray``,
TIFF magic bytes, an OME-XML companion, a folder of TIFF files, a LoadData CSV
header), not from the file name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from iceberg_bioimage.adapters.file_set import scan_file_set, tiff_keys
from iceberg_bioimage.adapters.load_data import is_load_data, scan_load_data
from iceberg_bioimage.adapters.ome_multifile import is_ome_xml
from iceberg_bioimage.adapters.storage import open_store, split_glob
from iceberg_bioimage.adapters.tiff import is_tiff, scan_ome_companion, scan_tiff
from iceberg_bioimage.adapters.zarr_store import (
    read_root_documents,
    scan_zarr,
    zarr_format_of,
)
from iceberg_bioimage.exceptions import InvalidNameError, MetadataError, StoreNotFoundError
from iceberg_bioimage.models import ScanOptions, ScanResult, default_dataset_id
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.names import check_dataset_id


def scan(
    uri: str | os.PathLike[str],
    *,
    dataset_id: str | None = None,
    options: ScanOptions | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ScanResult:
    """Detect the format of ``uri`` and scan it."""
    options = options or ScanOptions()
    file_set = options.file_set or FileSetOptions()
    glob = split_glob(uri)
    store = None
    if glob is not None and "://" in os.fspath(uri):
        # an object key may hold [ ] * ?: a store that exists as written is no glob
        with suppress(StoreNotFoundError):
            store = open_store(uri, storage_options)
    if glob is not None and store is None:
        return _scan_glob(glob, dataset_id, file_set, storage_options)
    store = store or open_store(uri, storage_options)
    if store.is_dir():
        root_docs = read_root_documents(store)
        if zarr_format_of(root_docs) is None:
            listing = store.list_objects("")
            if tiff_keys(listing):
                return scan_file_set(store, listing, dataset_id, file_set)
            if not store.list_children("") and not listing:
                raise MetadataError(
                    store.uri,
                    "empty folder: no Zarr metadata (zarr.json, .zgroup or .zarray) found",
                )
            raise MetadataError(
                store.uri,
                "not a Zarr store: no zarr.json, .zgroup or .zarray at its root, and no TIFF files",
            )
        return scan_zarr(store, root_docs, _dataset_id(dataset_id, store.uri), options)
    head = store.read_ranges([("", 0, 4096)])[0] or b""
    if is_tiff(head):
        return scan_tiff(store, _dataset_id(dataset_id, store.uri))
    if is_ome_xml(head):
        return scan_ome_companion(store, _dataset_id(dataset_id, store.uri))
    if is_load_data(head):
        return scan_load_data(store, dataset_id, file_set, storage_options)
    raise MetadataError(
        store.uri, "not an image: neither a Zarr store, a TIFF file nor a LoadData CSV"
    )


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


def _dataset_id(given: str | None, uri: str) -> str:
    """The dataset id: given, or the store name minus its suffix; checked by one rule."""
    if given is not None:
        return check_dataset_id(given)
    derived = default_dataset_id(uri)
    try:
        return check_dataset_id(derived)
    except InvalidNameError as error:
        raise InvalidNameError(
            error.subject,
            f"{error.problem}; it comes from the store name {uri}: pass a dataset id "
            "(--dataset-id, dataset_id=)",
        ) from None


__all__ = ["scan"]
