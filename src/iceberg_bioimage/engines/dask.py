"""Distributed ingest on Dask: workers scan stores and write data files; the caller commits.

One task per store runs on a worker: it scans the store (every plate of a file-set
folder) and writes its ``image_assets`` and ``chunk_index`` rows as Parquet data
files (Iceberg field ids included) straight into the table locations, through a
FileIO rebuilt from the catalog's storage properties. The driver only collects the
file paths and commits once per table (``chunk_index``, then ``image_assets``, one
registration id), exactly like a local ingest.

Failures: a task that raises is retried :data:`STORE_RETRIES` times by Dask; a task
whose worker dies is rescheduled by Dask. A store that keeps failing aborts the
batch: the other tasks are told to stop, nothing is committed, and every data file
of the batch is removed. Every data file a batch writes is named
``ingest-<batch id>-<uuid>.parquet``, so the driver finds them by listing the table
locations, including files whose worker died before reporting them; after a
successful commit, such unreported files are removed too.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pyiceberg.io import FileIO

from iceberg_bioimage.catalog.data_files import (
    DataFileTarget,
    remove_paths,
    sweep_data_files,
    write_dataset_files,
)
from iceberg_bioimage.catalog.registration import (
    aborted_error,
    check_identity,
    check_schemas,
    commit_tables,
    prepare_batch,
    prepare_tables,
    scan_plates,
)
from iceberg_bioimage.catalog.resolve import ResolvedCatalog, namespace_parts
from iceberg_bioimage.catalog.sink import conform_to, replace_with_files
from iceberg_bioimage.engines.job import IngestJobOptions
from iceberg_bioimage.exceptions import (
    DistributedIngestError,
    IcebergBioimageError,
    MissingDependencyError,
    SchedulerError,
)
from iceberg_bioimage.models import ScanOptions
from iceberg_bioimage.models.results import DatasetRecord, TableWrite
from iceberg_bioimage.models.scheduler import (
    TIMEOUT_VARIABLE,
    check_scheduler_address,
    connect_timeout,
)

#: Seconds past the connect timeout before a silent handshake is given up.
_CONNECT_MARGIN_S = 2.0
#: Times Dask re-runs a store's task after it raised (a lost worker does not count).
STORE_RETRIES = 2
FILE_PREFIX = "ingest-"


def require_distributed() -> ModuleType:
    """``dask.distributed``, or :class:`MissingDependencyError` naming the ``dask`` extra."""
    try:
        import distributed
    except ImportError as error:
        raise MissingDependencyError("distributed ingest on Dask", "dask") from error
    return distributed


@contextmanager
def dask_client(
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    timeout: float | None = None,
) -> Iterator[Any]:
    """A Dask client of the scheduler at ``scheduler``, else of a local cluster.

    The address is checked first (:func:`check_scheduler_address`); the connection
    waits at most ``timeout`` seconds (:func:`connect_timeout`, default 10 s) and then
    raises :class:`SchedulerError` naming the address. The local cluster runs
    ``n_workers`` worker processes, its dashboard on a free loopback port (so a busy
    port 8787 prints no warning), and is closed on exit.
    """
    distributed = require_distributed()
    if scheduler is not None:
        address = check_scheduler_address(scheduler)
        wait = connect_timeout(timeout)
        try:
            client = _connect(distributed, address, wait)
        except (OSError, TimeoutError) as error:
            raise SchedulerError(
                scheduler,
                f"no Dask scheduler answered within {wait:g} s ({_reason(error)}); is it "
                f"running? ({TIMEOUT_VARIABLE} sets the wait)",
            ) from None
        except ValueError as error:
            raise SchedulerError(scheduler, f"not a Dask scheduler address: {error}") from None
        with client:
            yield client
        return
    with (
        distributed.LocalCluster(
            n_workers=n_workers, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _connect(distributed: ModuleType, address: str, wait: float) -> Any:
    """``distributed.Client(address)``, given up after ``wait`` seconds (plus a margin).

    distributed's own ``timeout`` bounds the connection, but a server that accepts the
    connection and never answers the handshake can keep ``Client()`` waiting for ever
    (seen on loopback): the client is built on a daemon thread and abandoned past the
    deadline, so the command ends with a named error instead of hanging.
    """
    built: dict[str, Any] = {}

    def build() -> None:
        try:
            built["client"] = distributed.Client(address, timeout=wait)
        except BaseException as error:  # re-raised on the caller's thread
            built["error"] = error

    thread = threading.Thread(target=build, name="dask-connect", daemon=True)
    thread.start()
    thread.join(wait + _CONNECT_MARGIN_S)
    if thread.is_alive():
        raise TimeoutError(f"no answer to the handshake within {wait:g} s")
    if "error" in built:
        raise built["error"]
    return built["client"]


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@dataclass(frozen=True, kw_only=True)
class IngestJob:
    """What every store's task needs: where to write, and how to read stores."""

    batch_id: str
    targets: tuple[DataFileTarget, ...]
    storage_options: dict[str, Any] | None
    options: ScanOptions = field(default_factory=ScanOptions)

    @property
    def prefix(self) -> str:
        """Name prefix of every data file of this batch."""
        return f"{FILE_PREFIX}{self.batch_id}-"

    @property
    def abort_event(self) -> str:
        """Name of the Dask event that tells the batch's tasks to stop."""
        return f"iceberg-bioimage-abort-{self.batch_id}"


@dataclass(frozen=True, kw_only=True)
class StoreFiles:
    """What a worker reports for one store: its datasets and the data files it wrote."""

    uri: str
    records: tuple[DatasetRecord, ...]
    files: dict[str, tuple[str, ...]]
    rows: dict[str, int]


class BatchAbortedError(RuntimeError):
    """Raised in a task that starts (or would write) after its batch was aborted."""


def _stop_if_aborted(job: IngestJob) -> None:
    distributed = require_distributed()
    if distributed.Event(job.abort_event).is_set():
        raise BatchAbortedError(job.batch_id)


_FILE_IOS: dict[tuple[str, ...], FileIO] = {}


def _file_io(target: DataFileTarget) -> FileIO:
    """The target's FileIO, one per worker process and storage settings (its clients reused)."""
    key = (
        target.location.split("://", 1)[0],
        *sorted(f"{k}={v}" for k, v in target.io_properties.items()),
    )
    if key not in _FILE_IOS:
        _FILE_IOS[key] = target.file_io()
    return _FILE_IOS[key]


def scan_and_write(uri: str, job: IngestJob) -> StoreFiles:
    """Worker task: scan one store and write its rows as data files of every target table.

    On failure the files this attempt wrote are removed before the error propagates.
    """
    _stop_if_aborted(job)
    results = scan_plates(uri, options=job.options, storage_options=job.storage_options)
    batch = prepare_batch(results, tuple(target.name for target in job.targets))
    files: dict[str, tuple[str, ...]] = {}
    rows: dict[str, int] = {}
    written: list[tuple[DataFileTarget, list[str]]] = []
    try:
        for target in job.targets:
            _stop_if_aborted(job)
            data = batch.tables.pop(target.name)
            paths = write_dataset_files(
                _file_io(target),
                target.location,
                target.schema,
                data,
                batch.dataset_ids,
                lambda part, schema=target.schema: conform_to(part, schema),
                prefix=job.prefix,
            )
            written.append((target, paths))
            files[target.name] = tuple(paths)
            rows[target.name] = data.num_rows
    except BaseException:
        for target, paths in written:
            remove_paths(_file_io(target), paths)
        raise
    return StoreFiles(uri=uri, records=batch.records, files=files, rows=rows)


def _failure(uri: str, error: BaseException | None) -> BaseException:
    """The error that aborts the batch, naming the store that kept failing."""
    if isinstance(error, IcebergBioimageError):
        return aborted_error(error)
    if error is None:
        problem = "its task was cancelled on the Dask cluster"
    else:
        problem = (
            f"failed on the Dask workers after {STORE_RETRIES + 1} attempts "
            f"({type(error).__name__}: {error})"
        )
    return DistributedIngestError(uri, f"{problem}; batch aborted, nothing committed")


def _abort(client: Any, job: IngestJob, futures: Sequence[Any]) -> None:
    """Stop the batch's tasks, wait for those running, and remove every file it wrote."""
    distributed = require_distributed()
    distributed.Event(job.abort_event, client=client).set()
    try:
        distributed.wait(list(futures))
    finally:
        client.cancel(list(futures))
        for target in job.targets:
            sweep_data_files(target, job.prefix)


def _gather(
    client: Any,
    job: IngestJob,
    stores: Sequence[str],
    on_stored: Callable[[DatasetRecord], None] | None,
) -> dict[str, StoreFiles]:
    """Run one task per store; return each store's files, or abort on a failing store."""
    distributed = require_distributed()
    futures = {
        client.submit(
            scan_and_write,
            uri,
            job,
            key=f"iceberg-bioimage-{job.batch_id}-{index}",
            retries=STORE_RETRIES,
            pure=False,
        ): uri
        for index, uri in enumerate(stores)
    }
    outputs: dict[str, StoreFiles] = {}
    try:
        for future in distributed.as_completed(list(futures)):
            if future.status != "finished":  # "error" after its retries, or "cancelled"
                error = future.exception() if future.status == "error" else None
                raise _failure(futures[future], error)
            output = future.result()
            # forget the result on the cluster: a worker lost later must not re-run the store
            future.release()
            del futures[future]
            outputs[output.uri] = output
            for record in output.records if on_stored is not None else ():
                on_stored(record)
    except BaseException:
        _abort(client, job, list(futures))
        raise
    return outputs


def ingest_on_dask(
    client: Any,
    resolved: ResolvedCatalog,
    namespace: str,
    stores: Sequence[str | os.PathLike[str]],
    tables: Sequence[str],
    *,
    replace: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    on_stored: Callable[[DatasetRecord], None] | None = None,
    options: ScanOptions | None = None,
) -> tuple[tuple[DatasetRecord, ...], tuple[TableWrite, ...]]:
    """Scan ``stores`` and write their data files on Dask workers, then commit once per table.

    Returns the datasets (in store order) and the table writes. ``on_stored`` is
    called on the driver for each dataset as its store completes.
    """
    parts = namespace_parts(namespace)
    loaded = check_schemas(resolved, parts)
    prepared = prepare_tables(resolved, parts, tables, loaded)
    job = IngestJob(
        batch_id=uuid.uuid4().hex,
        targets=tuple(DataFileTarget.of(table) for table in prepared.values()),
        storage_options=dict(storage_options) if storage_options else None,
        options=options or ScanOptions(),
    )
    uris = [os.fspath(store) for store in stores]
    outputs = _gather(client, job, uris, on_stored)
    records = tuple(record for uri in uris for record in outputs[uri].records)
    committed: list[str] = []

    def commit(table: str, ids: list[str], summary: dict[str, str]) -> TableWrite:
        write = replace_with_files(
            resolved.catalog,
            parts,
            table,
            [path for uri in uris for path in outputs[uri].files.get(table, ())],
            ids,
            rows=sum(outputs[uri].rows.get(table, 0) for uri in uris),
            summary=summary,
        )
        committed.append(table)
        return write

    try:
        moved = check_identity(resolved, parts, records, replace)
        writes = commit_tables(resolved, parts, records, tables, commit, moved)
    except BaseException:
        for target in job.targets:
            if target.name not in committed:
                sweep_data_files(target, job.prefix)
        raise
    keep = frozenset(
        path.rsplit("/", 1)[-1]
        for output in outputs.values()
        for paths in output.files.values()
        for path in paths
    )
    for target in job.targets:  # files of attempts whose worker died before reporting them
        sweep_data_files(target, job.prefix, keep)
    return records, writes


def ingest_with_client(
    resolved: ResolvedCatalog,
    namespace: str,
    stores: Sequence[str | os.PathLike[str]],
    tables: Sequence[str],
    job: IngestJobOptions,
) -> tuple[tuple[DatasetRecord, ...], tuple[TableWrite, ...]]:
    """The Dask engine (:data:`iceberg_bioimage.engines.ENGINES`): ``job.client`` runs it."""
    return ingest_on_dask(
        job.client,
        resolved,
        namespace,
        stores,
        tables,
        replace=job.replace,
        storage_options=job.storage_options,
        on_stored=job.on_stored,
        options=job.scan,
    )
