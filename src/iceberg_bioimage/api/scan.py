"""Scan stores: metadata only, no catalog (SPEC §4)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from iceberg_bioimage.models import DatasetSummary, ScanOptions, ScanResult
from iceberg_bioimage.models.file_sets import FileSetOptions

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["scan_as_arrow_table", "scan_result_as_arrow_table", "scan_store", "summarize_store"]

TableName = Literal["image_assets", "chunk_index"]


def scan_store(
    uri: str | os.PathLike[str],
    *,
    dataset_id: str | None = None,
    stat_chunks: bool = False,
    read_shard_index: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> ScanResult:
    """Scan a Zarr v2/v3 store, a TIFF file, a TIFF-folder plate or a LoadData table.

    Reads metadata only; the format is detected from content (see
    :mod:`iceberg_bioimage.formats`).

    Args:
        uri: local path or fsspec URL (``s3://``, ``gs://``, ``http(s)://``...), a
            glob of TIFF files, or a LoadData CSV/Parquet table.
        dataset_id: overrides the default (the store name minus its suffix).
        stat_chunks: list each array's stored objects once to fill chunk sizes
            and mark absent chunks.
        read_shard_index: read shard indexes to give inner chunks byte ranges.
        storage_options: passed to fsspec for remote stores.
        file_set: how to read a folder of single-image TIFFs (or a LoadData table)
            as a plate: instrument, pattern, plate id, channel names
            (:class:`~iceberg_bioimage.models.file_sets.FileSetOptions`).

    Raises:
        StoreNotFoundError: ``uri`` does not exist.
        MetadataError: the store's metadata is unreadable or not an image.
    """
    from iceberg_bioimage.formats import scan

    options = ScanOptions(
        stat_chunks=stat_chunks, read_shard_index=read_shard_index, file_set=file_set
    )
    return scan(uri, dataset_id=dataset_id, options=options, storage_options=storage_options)


def scan_result_as_arrow_table(
    result: ScanResult, *, table: TableName = "image_assets"
) -> pa.Table:
    """Build a canonical table (``image_assets`` or ``chunk_index``) from a scan."""
    from iceberg_bioimage.tables.build import canonical_table

    return canonical_table(result, table)


def scan_as_arrow_table(
    uri: str | os.PathLike[str],
    *,
    table: TableName = "image_assets",
    **scan_options: Any,
) -> pa.Table:
    """Scan ``uri`` and return a canonical table, no catalog involved.

    ``scan_options`` are the keywords of :func:`scan_store`.
    """
    return scan_result_as_arrow_table(scan_store(uri, **scan_options), table=table)


def summarize_store(
    uri: str | os.PathLike[str],
    *,
    dataset_id: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> DatasetSummary:
    """Scan ``uri`` and summarise it: counts, shapes, dtypes, channels, wells."""
    return DatasetSummary.from_scan(
        scan_store(uri, dataset_id=dataset_id, storage_options=storage_options, file_set=file_set)
    )
