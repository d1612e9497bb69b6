"""Public verbs. Thin: each delegates to adapters, models and publishing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import BooleanExpression

from iceberg_bioimage import adapters
from iceberg_bioimage.exceptions import StoreNotFoundError
from iceberg_bioimage.integrations.catalog import namespace_parts, resolve_catalog
from iceberg_bioimage.integrations.catalog_tables import list_tables, load_table_arrow
from iceberg_bioimage.models import DatasetSummary, ScanOptions, ScanResult
from iceberg_bioimage.models.results import (
    DeregistrationResult,
    RegistrationResult,
    WarehouseIngestResult,
)
from iceberg_bioimage.publishing.arrow_tables import canonical_table
from iceberg_bioimage.publishing.iceberg_sink import delete_datasets
from iceberg_bioimage.publishing.registration import (
    CANONICAL_TABLES,
    datasets_to_remove,
    expand_uris,
    prepare_batch,
    publish_batch,
    scan_many,
)

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


# -- Iceberg control plane ----------------------------------------------------


def register_store(
    uri: str | os.PathLike[str],
    catalog: str | Catalog,
    namespace: str,
    *,
    publish_chunks: bool = False,
    dataset_id: str | None = None,
    replace: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> RegistrationResult:
    """Scan ``uri`` and replace its dataset's rows in the catalog's tables.

    One commit per table (``image_assets``, plus ``chunk_index`` when
    ``publish_chunks``); re-registering gives the same rows, never duplicates.
    A dataset id already registered for another URI is refused unless ``replace``.
    """
    resolved = resolve_catalog(catalog)
    tables = CANONICAL_TABLES if publish_chunks else ("image_assets",)
    batch = prepare_batch(
        [scan_store(uri, dataset_id=dataset_id, storage_options=storage_options)], tables
    )
    writes = publish_batch(resolved, namespace, batch, replace=replace)
    return RegistrationResult(
        catalog=resolved.name, namespace=namespace, dataset=batch.records[0], tables=writes
    )


def publish_chunk_index(
    uri: str | os.PathLike[str],
    catalog: str | Catalog,
    namespace: str,
    *,
    dataset_id: str | None = None,
    replace: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> RegistrationResult:
    """Scan ``uri`` and replace its dataset's rows in ``chunk_index`` only."""
    resolved = resolve_catalog(catalog)
    batch = prepare_batch(
        [scan_store(uri, dataset_id=dataset_id, storage_options=storage_options)],
        ("chunk_index",),
    )
    writes = publish_batch(resolved, namespace, batch, replace=replace)
    return RegistrationResult(
        catalog=resolved.name, namespace=namespace, dataset=batch.records[0], tables=writes
    )


def ingest_stores_to_warehouse(
    uris: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    catalog: str | Catalog,
    namespace: str,
    *,
    publish_chunks: bool = True,
    glob: str | None = None,
    workers: int | None = None,
    replace: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    on_scanned: Callable[[ScanResult], None] | None = None,
) -> WarehouseIngestResult:
    """Scan many stores in parallel and publish them with ONE commit per table.

    ``uris`` are stores, or folders searched with ``glob`` (e.g. ``"*.ome.zarr"``).
    If any store fails to scan, nothing is committed and the error names it.
    """
    resolved = resolve_catalog(catalog)
    listed = [uris] if isinstance(uris, str | os.PathLike) else list(uris)
    stores = expand_uris(listed, glob, storage_options)
    if not stores:
        raise StoreNotFoundError(
            ", ".join(map(str, listed)) or "(no stores)",
            f"nothing to ingest{f' matching {glob!r}' if glob else ''}",
        )
    results = scan_many(
        stores,
        options=ScanOptions(),
        workers=workers,
        storage_options=storage_options,
        on_scanned=on_scanned,
    )
    batch = prepare_batch(results, CANONICAL_TABLES if publish_chunks else ("image_assets",))
    del results
    writes = publish_batch(resolved, namespace, batch, replace=replace)
    return WarehouseIngestResult(
        catalog=resolved.name, namespace=namespace, datasets=batch.records, tables=writes
    )


def deregister_store(
    uri_or_dataset_id: str | os.PathLike[str], catalog: str | Catalog, namespace: str
) -> DeregistrationResult:
    """Remove a dataset's rows (given its id or its store URI) from both tables."""
    resolved = resolve_catalog(catalog)
    parts = namespace_parts(namespace)
    ids = datasets_to_remove(resolved, parts, os.fspath(uri_or_dataset_id))
    writes = [delete_datasets(resolved.catalog, parts, table, ids) for table in CANONICAL_TABLES]
    return DeregistrationResult(
        catalog=resolved.name,
        namespace=namespace,
        dataset_ids=tuple(ids),
        tables=tuple(w for w in writes if w is not None),
    )


def list_catalog_tables(catalog: str | Catalog, namespace: str) -> list[str]:
    """Names of the tables in ``namespace``."""
    return list_tables(resolve_catalog(catalog).catalog, namespace_parts(namespace))


def load_catalog_table(
    catalog: str | Catalog,
    namespace: str,
    table: str,
    *,
    columns: Sequence[str] | None = None,
    filters: BooleanExpression | Iterable[Sequence[Any]] | None = None,
    snapshot_id: int | None = None,
) -> pa.Table:
    """Read a catalog table into Arrow; ``snapshot_id`` reads an earlier state.

    ``filters`` is a PyIceberg expression or ``(column, op, value)`` tuples with ops
    ``= == != < <= > >= in not in like is null is not null`` (``like``: prefix only).
    """
    return load_table_arrow(
        resolve_catalog(catalog).catalog,
        namespace_parts(namespace),
        table,
        columns=columns,
        filters=filters,
        snapshot_id=snapshot_id,
    )
