"""The Iceberg control plane: register, ingest, read back, deregister, maintain (SPEC §4, §11)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from iceberg_bioimage.exceptions import StoreNotFoundError
from iceberg_bioimage.models import ScanOptions
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.results import (
    DatasetRecord,
    DeregistrationResult,
    MaintenanceResult,
    RegistrationResult,
    WarehouseIngestResult,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from distributed import Client
    from pyiceberg.catalog import Catalog
    from pyiceberg.expressions import BooleanExpression

    from iceberg_bioimage.catalog.resolve import ResolvedCatalog

__all__ = [
    "dask_client",
    "deregister_store",
    "describe_catalog_tables",
    "embedded_catalog",
    "expand_stores",
    "find_interrupted_registrations",
    "ingest_stores_to_warehouse",
    "list_catalog_tables",
    "load_catalog_table",
    "maintain_catalog",
    "publish_chunk_index",
    "register_store",
    "resolve_catalog",
]


def resolve_catalog(catalog: str | Catalog) -> ResolvedCatalog:
    """The catalog for a name or object, and whether it is the embedded one (SPEC §4)."""
    from iceberg_bioimage.catalog.resolve import resolve_catalog as resolve

    return resolve(catalog)


def embedded_catalog(
    warehouse: str | os.PathLike[str] | None = None, *, name: str = "default"
) -> Catalog:
    """The embedded SQLite catalog in ``warehouse`` (default ``./iceberg-warehouse``)."""
    from iceberg_bioimage.catalog.resolve import embedded_catalog as embedded

    return embedded(warehouse, name=name)


def _tables(publish_chunks: bool) -> tuple[str, ...]:
    from iceberg_bioimage.catalog.registration import CANONICAL_TABLES

    return CANONICAL_TABLES if publish_chunks else ("image_assets",)


def _publish(
    uri: str | os.PathLike[str],
    catalog: str | Catalog,
    namespace: str,
    tables: Sequence[str],
    *,
    dataset_id: str | None,
    replace: bool,
    storage_options: Mapping[str, Any] | None,
    file_set: FileSetOptions | None,
) -> RegistrationResult:
    """Scan ``uri`` while its tables are written (a plate a batch of wells at a time)."""
    from iceberg_bioimage.catalog.registration import publish_stream
    from iceberg_bioimage.formats import scan_stream

    resolved = resolve_catalog(catalog)
    scanned = scan_stream(
        uri,
        dataset_id=dataset_id,
        options=ScanOptions(file_set=file_set),
        storage_options=storage_options,
    )
    record, writes = publish_stream(resolved, namespace, scanned, tables, replace=replace)
    return RegistrationResult(
        catalog=resolved.name, namespace=namespace, dataset=record, tables=writes
    )


def register_store(
    uri: str | os.PathLike[str],
    catalog: str | Catalog,
    namespace: str,
    *,
    publish_chunks: bool = False,
    dataset_id: str | None = None,
    replace: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> RegistrationResult:
    """Scan ``uri`` and replace its dataset's rows in the catalog's tables.

    One commit per table (``image_assets``, plus ``chunk_index`` when
    ``publish_chunks``); re-registering gives the same rows, never duplicates.
    A dataset id already registered for another URI is refused unless ``replace``.
    """
    return _publish(
        uri,
        catalog,
        namespace,
        _tables(publish_chunks),
        dataset_id=dataset_id,
        replace=replace,
        storage_options=storage_options,
        file_set=file_set,
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
    return _publish(
        uri,
        catalog,
        namespace,
        ("chunk_index",),
        dataset_id=dataset_id,
        replace=replace,
        storage_options=storage_options,
        file_set=None,
    )


def expand_stores(
    uris: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    glob: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """The stores an ingest reads: ``uris`` as given, or the matches of ``glob`` in each."""
    from iceberg_bioimage.catalog.registration import expand_uris

    listed = [uris] if isinstance(uris, str | os.PathLike) else list(uris)
    return expand_uris(listed, glob, storage_options)


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
    on_scanned: Callable[[DatasetRecord], None] | None = None,
    client: Client | None = None,
    file_set: FileSetOptions | None = None,
) -> WarehouseIngestResult:
    """Scan many stores in parallel and publish them with ONE commit per table.

    ``uris`` are stores, or folders searched with ``glob`` (e.g. ``"*.ome.zarr"``).
    If any store fails to scan, nothing is committed and the error names it.
    ``workers`` threads scan the stores here; with ``client`` (a
    ``dask.distributed.Client``, extra ``dask``) the stores are scanned and their
    data files written on the Dask workers instead, each store retried a bounded
    number of times, and this process commits. ``on_scanned`` is called with each
    dataset as its store is done. ``file_set`` says how to read TIFF-folder plates
    (instrument, pattern, plate id, channel names; default: detected). See
    :mod:`iceberg_bioimage.engines`.
    """
    from iceberg_bioimage.engines import IngestJobOptions, engine_for

    resolved = resolve_catalog(catalog)
    stores = expand_stores(uris, glob, storage_options)
    if not stores:
        listed = [uris] if isinstance(uris, str | os.PathLike) else list(uris)
        raise StoreNotFoundError(
            ", ".join(map(str, listed)) or "(no stores)",
            f"nothing to ingest{f' matching {glob!r}' if glob else ''}",
        )
    job = IngestJobOptions(
        scan=ScanOptions(file_set=file_set),
        storage_options=storage_options,
        replace=replace,
        on_stored=on_scanned,
        workers=workers,
        client=client,
    )
    records, writes = engine_for(job)(resolved, namespace, stores, _tables(publish_chunks), job)
    return WarehouseIngestResult(
        catalog=resolved.name, namespace=namespace, datasets=records, tables=writes
    )


@contextmanager
def dask_client(
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    timeout: float | None = None,
) -> Iterator[Any]:
    """A ``dask.distributed.Client`` of ``scheduler``, else of a local cluster (extra ``dask``).

    ``scheduler`` must be a scheduler address (``tcp://host:8786``; a bare
    ``host:port`` means tcp); the connection waits at most ``timeout`` seconds
    (default ``ICEBERG_BIOIMAGE_DASK_TIMEOUT``, else 10 s). Both failures raise
    :class:`~iceberg_bioimage.exceptions.SchedulerError` naming the address.
    """
    from iceberg_bioimage.engines.dask import dask_client as client_of

    with client_of(scheduler=scheduler, n_workers=n_workers, timeout=timeout) as client:
        yield client


def deregister_store(
    uri_or_dataset_id: str | os.PathLike[str], catalog: str | Catalog, namespace: str
) -> DeregistrationResult:
    """Remove a dataset's rows (given its id or its store URI) from both tables."""
    from iceberg_bioimage.catalog.registration import CANONICAL_TABLES, datasets_to_remove
    from iceberg_bioimage.catalog.resolve import namespace_parts, resolve_catalog
    from iceberg_bioimage.catalog.sink import delete_datasets

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
    from iceberg_bioimage.catalog.read import list_tables
    from iceberg_bioimage.catalog.resolve import namespace_parts, resolve_catalog

    return list_tables(resolve_catalog(catalog).catalog, namespace_parts(namespace))


def find_interrupted_registrations(catalog: str | Catalog, namespace: str) -> dict[str, str]:
    """Datasets whose last registration was killed between its two commits.

    Returns dataset id → registration id. ``chunk_index`` is committed before
    ``image_assets``, so such a dataset shows its previous images (or none) with
    new chunks; register the store again to complete it.
    """
    from iceberg_bioimage.catalog.registration import interrupted_registrations
    from iceberg_bioimage.catalog.resolve import resolve_catalog

    return interrupted_registrations(resolve_catalog(catalog), namespace)


def maintain_catalog(
    catalog: str | Catalog,
    namespace: str,
    *,
    keep_last: int | None = None,
    older_than: datetime.datetime | None = None,
    dry_run: bool = False,
) -> MaintenanceResult:
    """Expire old snapshots and remove orphan files in every table of ``namespace``.

    Snapshots beyond the newest ``keep_last`` and/or older than ``older_than`` are
    expired (none when neither is given; the current snapshot always stays). Files
    no remaining snapshot or metadata version references (lost commit races, expired
    snapshots) are removed when last modified before ``older_than``, else before one
    hour ago, so a writer mid-commit is never hurt. ``dry_run`` counts, changes nothing.
    See :mod:`iceberg_bioimage.catalog.maintenance`.
    """
    from iceberg_bioimage.catalog.maintenance import MANIFEST_REWRITE_NOTE, maintain_table
    from iceberg_bioimage.catalog.read import list_tables
    from iceberg_bioimage.catalog.resolve import namespace_parts, resolve_catalog

    if keep_last is not None and keep_last < 1:
        raise ValueError("keep_last must be at least 1")
    resolved = resolve_catalog(catalog)
    parts = namespace_parts(namespace)
    tables = tuple(
        maintain_table(
            resolved.catalog,
            (*parts, name),
            keep_last=keep_last,
            older_than=older_than,
            dry_run=dry_run,
        )
        for name in list_tables(resolved.catalog, parts)
    )
    return MaintenanceResult(
        catalog=resolved.name,
        namespace=namespace,
        dry_run=dry_run,
        tables=tables,
        notes=(MANIFEST_REWRITE_NOTE,),
    )


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
    from iceberg_bioimage.catalog.read import load_named_table

    return load_named_table(
        catalog, namespace, table, columns=columns, filters=filters, snapshot_id=snapshot_id
    )


def describe_catalog_tables(catalog: str | Catalog, namespace: str) -> list[dict[str, Any]]:
    """Each table of ``namespace``: rows, current snapshot, snapshot count, location.

    ``interrupted_datasets`` lists, on ``image_assets`` and ``chunk_index``, the
    datasets whose last registration was killed between its two commits
    (:func:`find_interrupted_registrations`).
    """
    from iceberg_bioimage.catalog.registration import CANONICAL_TABLES
    from iceberg_bioimage.catalog.resolve import namespace_parts

    resolved = resolve_catalog(catalog).catalog
    parts = namespace_parts(namespace)
    interrupted = sorted(find_interrupted_registrations(resolved, namespace))
    rows = []
    for name in list_catalog_tables(resolved, namespace):
        table = resolved.load_table((*parts, name))
        snapshot = table.current_snapshot()
        records = snapshot.summary.get("total-records") if snapshot and snapshot.summary else None
        count = int(records) if records is not None else 0
        rows.append(
            {
                "table": f"{namespace}.{name}",
                "rows": count,
                "snapshot_id": snapshot.snapshot_id if snapshot else None,
                "snapshots": len(table.snapshots()),
                "location": table.location(),
                "interrupted_datasets": interrupted if name in CANONICAL_TABLES else [],
            }
        )
    return rows
