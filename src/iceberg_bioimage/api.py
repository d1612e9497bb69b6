"""Public verbs. Thin: each delegates to adapters, models and publishing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import pyarrow as pa

from iceberg_bioimage import adapters
from iceberg_bioimage.models import DatasetSummary, ScanOptions, ScanResult
from iceberg_bioimage.publishing.arrow_tables import canonical_table

TableName = Literal["image_assets", "chunk_index"]


def scan_store(
    uri: str | os.PathLike[str],
    *,
    dataset_id: str | None = None,
    stat_chunks: bool = False,
    read_shard_index: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> ScanResult:
    """Scan a Zarr v2/v3 store or a TIFF file, reading metadata only.

    Args:
        uri: local path or fsspec URL (``s3://``, ``gs://``, ``http(s)://``...).
        dataset_id: overrides the default (the store name minus its suffix).
        stat_chunks: list each array's stored objects once to fill chunk sizes
            and mark absent chunks.
        read_shard_index: read shard indexes to give inner chunks byte ranges.
        storage_options: passed to fsspec for remote stores.

    Raises:
        StoreNotFoundError: ``uri`` does not exist.
        MetadataError: the store's metadata is unreadable or not an image.
    """
    options = ScanOptions(stat_chunks=stat_chunks, read_shard_index=read_shard_index)
    return adapters.scan(
        uri, dataset_id=dataset_id, options=options, storage_options=storage_options
    )


def scan_result_as_arrow_table(
    result: ScanResult, *, table: TableName = "image_assets"
) -> pa.Table:
    """Build a canonical table (``image_assets`` or ``chunk_index``) from a scan."""
    return canonical_table(result, table)


def scan_as_arrow_table(
    uri: str | os.PathLike[str],
    *,
    table: TableName = "image_assets",
    **scan_options: Any,
) -> pa.Table:
    """Scan ``uri`` and return a canonical table, no catalog involved."""
    return scan_result_as_arrow_table(scan_store(uri, **scan_options), table=table)


def summarize_store(
    uri: str | os.PathLike[str],
    *,
    dataset_id: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> DatasetSummary:
    """Scan ``uri`` and summarise it: counts, shapes, dtypes, channels, wells."""
    return DatasetSummary.from_scan(
        scan_store(uri, dataset_id=dataset_id, storage_options=storage_options)
    )
