"""Iceberg catalog commands: register, publish-chunks, ingest, deregister, tables, maintain."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from iceberg_bioimage import api
from iceberg_bioimage.cli.file_set_options import file_set_options
from iceberg_bioimage.cli.output import (
    command_options,
    counted_progress,
    emit_json,
    note,
    print_warnings,
    stdout,
    working,
)
from iceberg_bioimage.cli.storage_options import storage_option
from iceberg_bioimage.models.scheduler import check_scheduler_address, connect_timeout

if TYPE_CHECKING:
    import datetime

    from pyiceberg.catalog import Catalog

    from iceberg_bioimage.models.file_sets import FileSetOptions

# -- Iceberg control plane ----------------------------------------------------

catalog_option = click.option(
    "--catalog",
    default="default",
    show_default=True,
    help="PyIceberg catalog name (~/.pyiceberg.yaml or PYICEBERG_CATALOG__*); "
    "'default' unconfigured = embedded SQLite catalog in ./iceberg-warehouse.",
)
namespace_option = click.option(
    "--namespace",
    default="bioimage",
    show_default=True,
    help="Iceberg namespace, used exactly as given (e.g. bioimage.cytotable).",
)


def _catalog(name: str) -> Catalog:
    """Resolve the catalog, announcing the embedded one once on stderr."""
    resolved = api.resolve_catalog(name)
    if resolved.embedded_warehouse is not None:
        note(
            f"catalog '{name}' is not configured; using the embedded SQLite catalog "
            f"in {resolved.embedded_warehouse}"
        )
    return resolved.catalog


@contextlib.contextmanager
def _ingest_client(scheduler: str | None, dask_workers: int | None) -> Iterator[Any]:
    """A Dask client when asked for (``--scheduler``/``--dask-workers``), else ``None``."""
    if scheduler is None and dask_workers is None:
        yield None
        return
    with contextlib.ExitStack() as stack:
        with working("Starting Dask" if scheduler is None else f"Connecting to {scheduler}"):
            client = stack.enter_context(
                api.dask_client(scheduler=scheduler, n_workers=dask_workers)
            )
        yield client


def _writes_table(title: str, writes: Any) -> Table:
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    for name in ("table", "rows written", "snapshot"):
        table.add_column(name)
    for write in writes:
        table.add_row(write.table, f"{write.rows_written:,}", str(write.snapshot_id or "—"))
    return table


def _print_registration(result: Any, as_json: bool) -> None:
    print_warnings(result.dataset.warnings)
    if as_json:
        emit_json(result.to_dict())
        return
    dataset = result.dataset
    stdout.print(
        _writes_table(
            f"registered {dataset.dataset_id} ({dataset.image_count} images, "
            f"{dataset.array_count} arrays, {dataset.chunk_count:,} chunks) "
            f"in {result.namespace}",
            result.tables,
        )
    )


@click.command()
@click.argument("uri", required=False)
@catalog_option
@namespace_option
@click.option("--publish-chunks", is_flag=True, help="Also publish the chunk_index table.")
@click.option("--dataset-id", help="Dataset id (default: the store name minus its suffix).")
@click.option("--replace", is_flag=True, help="Re-point a dataset id registered for another store.")
@file_set_options
@storage_option
@command_options
def register(
    uri: str,
    catalog: str,
    namespace: str,
    publish_chunks: bool,
    dataset_id: str | None,
    replace: bool,
    as_json: bool,
    storage_options: dict[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> None:
    """Scan a store and register it in Iceberg (one commit per table, idempotent)."""
    resolved = _catalog(catalog)
    with working(f"Registering {uri}"):
        result = api.register_store(
            uri,
            resolved,
            namespace,
            publish_chunks=publish_chunks,
            dataset_id=dataset_id,
            replace=replace,
            storage_options=storage_options,
            file_set=file_set,
        )
    _print_registration(result, as_json)


@click.command("publish-chunks")
@click.argument("uri")
@catalog_option
@namespace_option
@click.option("--dataset-id", help="Dataset id (default: the store name minus its suffix).")
@storage_option
@command_options
def publish_chunks(
    uri: str,
    catalog: str,
    namespace: str,
    dataset_id: str | None,
    as_json: bool,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Publish a store's chunk_index table alone."""
    resolved = _catalog(catalog)
    with working(f"Publishing chunks of {uri}"):
        result = api.publish_chunk_index(
            uri, resolved, namespace, dataset_id=dataset_id, storage_options=storage_options
        )
    _print_registration(result, as_json)


@click.command()
@click.argument("uris", nargs=-1, required=False)
@catalog_option
@namespace_option
@click.option(
    "--glob", "glob_pattern", help="Treat URIS as folders and ingest the stores matching this."
)
@click.option("--workers", type=click.IntRange(1, 64), help="Stores scanned at once (threads).")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Scan and write on the workers of this Dask scheduler (tcp://host:8786; waits "
    "ICEBERG_BIOIMAGE_DASK_TIMEOUT seconds, default 10, for it); needs the 'dask' extra.",
)
@click.option(
    "--dask-workers",
    type=click.IntRange(1, 256),
    metavar="N",
    help="Scan and write on a local Dask cluster of N worker processes; needs the 'dask' extra.",
)
@click.option("--no-chunks", is_flag=True, help="Publish image_assets only.")
@click.option("--replace", is_flag=True, help="Re-point dataset ids registered for other stores.")
@file_set_options
@storage_option
@command_options
def ingest(
    uris: tuple[str, ...],
    catalog: str,
    namespace: str,
    glob_pattern: str | None,
    workers: int | None,
    scheduler: str | None,
    dask_workers: int | None,
    no_chunks: bool,
    replace: bool,
    as_json: bool,
    storage_options: dict[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> None:
    """Scan many stores in parallel and publish them with one commit per table.

    With --scheduler or --dask-workers, Dask workers scan the stores and write the
    data files; this process commits once per table.
    """
    if scheduler is not None and dask_workers is not None:
        raise click.BadParameter(
            "give --scheduler or --dask-workers, not both", param_hint="'--dask-workers'"
        )
    if workers is not None and (scheduler is not None or dask_workers is not None):
        raise click.BadParameter(
            "--workers sets local threads; Dask runs one task per store",
            param_hint="'--workers'",
        )
    if scheduler is not None:  # checked before anything starts: one line, at once
        scheduler = check_scheduler_address(scheduler)
        connect_timeout()
    with _ingest_client(scheduler, dask_workers) as client:  # before the catalog is made
        resolved = _catalog(catalog)
        stores = api.expand_stores(list(uris), glob_pattern, storage_options)
        with counted_progress(len(stores), "scanning") as advance:
            result = api.ingest_stores_to_warehouse(
                stores,
                resolved,
                namespace,
                publish_chunks=not no_chunks,
                workers=workers,
                replace=replace,
                storage_options=storage_options,
                on_scanned=(lambda dataset: advance(dataset.dataset_id)) if advance else None,
                client=client,
                file_set=file_set,
            )
    for dataset in result.datasets:
        print_warnings(dataset.warnings)
    if as_json:
        emit_json(result.to_dict())
        return
    stdout.print(
        _writes_table(
            f"ingested {len(result.datasets)} stores into {result.namespace}", result.tables
        )
    )


@click.command()
@click.argument("uri_or_dataset_id")
@catalog_option
@namespace_option
@command_options
def deregister(uri_or_dataset_id: str, catalog: str, namespace: str, as_json: bool) -> None:
    """Remove a dataset's rows (by dataset id or store URI) from the catalog tables."""
    result = api.deregister_store(uri_or_dataset_id, _catalog(catalog), namespace)
    if as_json:
        emit_json(result.to_dict())
        return
    stdout.print(
        _writes_table(f"removed {', '.join(result.dataset_ids)} from {namespace}", result.tables)
    )


@click.command()
@catalog_option
@namespace_option
@command_options
def tables(catalog: str, namespace: str, as_json: bool) -> None:
    """List the tables of a namespace with their row counts and current snapshot."""
    resolved = _catalog(catalog)
    rows = api.describe_catalog_tables(resolved, namespace)
    interrupted = api.find_interrupted_registrations(resolved, namespace)
    if as_json:
        emit_json(rows)
        return
    print_warnings(
        [
            f"dataset '{dataset}': registration {registration} was interrupted after "
            "chunk_index and before image_assets; register the store again to complete it"
            for dataset, registration in interrupted.items()
        ]
    )
    table_view = Table(title=f"tables in {namespace}", title_justify="left", box=None)
    for name in ("table", "rows", "snapshots", "current snapshot"):
        table_view.add_column(name)
    for row in rows:
        table_view.add_row(
            row["table"], f"{row['rows']:,}", str(row["snapshots"]), str(row["snapshot_id"])
        )
    stdout.print(table_view)


@click.command()
@catalog_option
@namespace_option
@click.option(
    "--keep-last",
    type=click.IntRange(1),
    help="Keep the newest N snapshots of each table, expire older ones.",
)
@click.option(
    "--older-than",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Expire snapshots older than this (UTC) and remove orphan files older than it "
    "(default for files: one hour ago, so no writer mid-commit is hurt).",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@command_options
def maintain(
    catalog: str,
    namespace: str,
    keep_last: int | None,
    older_than: datetime.datetime | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Expire old snapshots and remove orphan metadata and data files."""
    import datetime as dt

    when = older_than.replace(tzinfo=dt.UTC) if older_than is not None else None  # given in UTC
    with working(f"Maintaining {namespace}"):
        result = api.maintain_catalog(
            _catalog(catalog), namespace, keep_last=keep_last, older_than=when, dry_run=dry_run
        )
    if as_json:
        emit_json(result.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    view = Table(
        title=f"maintenance of {namespace}{' (dry run)' if dry_run else ''}: files {verb}",
        title_justify="left",
        box=None,
        header_style="bold",
    )
    for name in ("table", "snapshots expired", "kept", "metadata", "manifests", "data"):
        view.add_column(name)
    for table in result.tables:
        view.add_row(
            table.table,
            str(table.snapshots_expired),
            str(table.snapshots_kept),
            str(table.metadata_files_removed),
            str(table.manifest_files_removed),
            str(table.data_files_removed),
        )
    stdout.print(view)
    for line in result.notes:
        note(line)
