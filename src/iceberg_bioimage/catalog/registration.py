"""Register scanned stores in Iceberg: identity checks, then one commit per table."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
from pyiceberg.table import Table

from iceberg_bioimage.catalog.data_files import remove_files, write_stream_files
from iceberg_bioimage.catalog.resolve import ResolvedCatalog, namespace_parts
from iceberg_bioimage.catalog.sink import (
    check_existing,
    delete_datasets,
    ensure_table,
    registered_uris,
    replace_datasets,
    replace_with_files,
)
from iceberg_bioimage.exceptions import (
    DatasetConflictError,
    DatasetNotFoundError,
    IcebergBioimageError,
)
from iceberg_bioimage.formats import scan
from iceberg_bioimage.formats.file_set.plate_files import SeveralPlatesError
from iceberg_bioimage.io.storage import expand_glob
from iceberg_bioimage.models import ScanOptions, ScanResult, ScanStream
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.results import DatasetRecord, TableWrite
from iceberg_bioimage.tables.build import (
    ChunkIndexRows,
    chunk_index_rows,
    image_assets_table,
)
from iceberg_bioimage.tables.stream import CanonicalStream

CANONICAL_TABLES = ("image_assets", "chunk_index")
#: Commit order: ``image_assets`` last, so a dataset visible there always has its chunks.
COMMIT_ORDER = ("chunk_index", "image_assets")
REGISTRATION_ID = "iceberg-bioimage.registration-id"
REGISTRATION_TABLES = "iceberg-bioimage.registration-tables"
REGISTRATION_DATASETS = "iceberg-bioimage.registration-datasets"


def dataset_record(result: ScanResult | ScanStream) -> DatasetRecord:
    """Summary of a scan (a stream's, once it has been read) for an operation's result."""
    return DatasetRecord(
        dataset_id=result.dataset_id,
        uri=result.uri,
        image_count=result.image_count,
        array_count=result.array_count,
        chunk_count=result.chunk_count,
        warnings=result.warnings,
    )


@dataclass(frozen=True, kw_only=True)
class Batch:
    """Canonical tables of scanned stores, ready to publish.

    ``chunk_index`` is kept as :class:`ChunkIndexRows` (the arrays, not the rows):
    the sink builds and writes it batch by batch.
    """

    records: tuple[DatasetRecord, ...]
    tables: dict[str, pa.Table | ChunkIndexRows]

    @property
    def dataset_ids(self) -> list[str]:
        """Dataset ids in the batch."""
        return [record.dataset_id for record in self.records]


def prepare_batch(results: Sequence[ScanResult], tables: Sequence[str]) -> Batch:
    """Build ``image_assets`` and plan ``chunk_index`` (streamed when written)."""
    built: dict[str, pa.Table | ChunkIndexRows] = {}
    for table in tables:
        if table == "chunk_index":
            built[table] = chunk_index_rows(results)
        elif table == "image_assets":
            built[table] = image_assets_table(results)
        else:
            raise ValueError(f"unknown table {table!r}; expected one of {CANONICAL_TABLES}")
    return Batch(records=tuple(dataset_record(result) for result in results), tables=built)


def check_identity(
    resolved: ResolvedCatalog,
    parts: tuple[str, ...],
    records: Sequence[DatasetRecord],
    replace: bool,
    assets: Table | None = None,
) -> set[str]:
    """Refuse a dataset id already registered for another URI; return re-pointed ids.

    ``assets`` is ``image_assets`` if this operation already loaded it (else it is loaded).
    """
    seen: dict[str, str] = {}
    for record in records:
        if record.dataset_id in seen and seen[record.dataset_id] != record.uri:
            raise DatasetConflictError(
                f"dataset '{record.dataset_id}'",
                f"given twice, for {seen[record.dataset_id]} and {record.uri}; "
                "pass distinct dataset ids",
            )
        seen[record.dataset_id] = record.uri
    existing = registered_uris(resolved.catalog, parts, list(seen), assets)
    moved = {ds for ds, uris in existing.items() if uris - {seen[ds]}}
    if moved and not replace:
        ds = sorted(moved)[0]
        other = ", ".join(sorted(existing[ds] - {seen[ds]}))
        raise DatasetConflictError(
            f"dataset '{ds}'",
            f"already registered in {'.'.join(parts)} for {other}; pass replace=True "
            "(--replace) to point it at the new store, or choose another dataset id",
        )
    return moved


def prepare_tables(
    resolved: ResolvedCatalog,
    parts: tuple[str, ...],
    names: Sequence[str],
    loaded: Mapping[str, Table] | None = None,
) -> dict[str, Table]:
    """Create or evolve the ``names`` tables (after :func:`check_schemas`).

    Runs before any data file is written, so files are written with the schema
    (and field ids) they are committed under. ``loaded`` are the tables
    :func:`check_schemas` loaded; they are not loaded again.
    """
    loaded = loaded or {}
    return {
        table: ensure_table(resolved.catalog, parts, table, loaded.get(table)) for table in names
    }


def check_schemas(resolved: ResolvedCatalog, parts: tuple[str, ...]) -> dict[str, Table]:
    """Refuse existing canonical tables whose schema conflicts, before touching anything.

    Returns the canonical tables that exist, each loaded once, for the rest of the
    operation to use (a commit that loses a race reloads its table).
    """
    loaded = {}
    for name in CANONICAL_TABLES:
        table = check_existing(resolved.catalog, parts, name)
        if table is not None:
            loaded[name] = table
    return loaded


#: Commits one table: ``(table name, dataset ids, snapshot summary)`` → its write.
TableCommit = Callable[[str, list[str], dict[str, str]], TableWrite]


def commit_tables(
    resolved: ResolvedCatalog,
    parts: tuple[str, ...],
    records: Sequence[DatasetRecord],
    names: Sequence[str],
    commit: TableCommit,
    moved: set[str],
) -> tuple[TableWrite, ...]:
    """Commit each table of ``names`` (in :data:`COMMIT_ORDER`) with one registration id.

    ``moved`` are the re-pointed dataset ids :func:`check_identity` returned.

    ``image_assets`` is the commit point: ``chunk_index`` is committed first, so a
    process killed between the two commits leaves new chunks under the old (or no)
    ``image_assets`` rows, never images without their chunks. Both commits record
    one registration id (:data:`REGISTRATION_ID`) in their snapshot summaries;
    :func:`interrupted_registrations` finds a pair whose second commit is missing,
    and re-running the registration repairs it.
    """
    ordered = [table for table in COMMIT_ORDER if table in names]
    ids = [record.dataset_id for record in records]
    stale = sorted(moved) if moved and "chunk_index" not in ordered else []
    summary = {
        REGISTRATION_ID: uuid.uuid4().hex,
        REGISTRATION_TABLES: ",".join(["chunk_index"] * bool(stale) + ordered),
        REGISTRATION_DATASETS: json.dumps(sorted(set(ids))),
    }
    writes = []
    if stale:  # chunks of the old store are stale now
        deleted = delete_datasets(resolved.catalog, parts, "chunk_index", stale, summary)
        writes.extend([deleted] if deleted else [])
    for table in ordered:
        writes.append(commit(table, ids, summary))
    return tuple(sorted(writes, key=lambda w: CANONICAL_TABLES.index(w.table.rsplit(".")[-1])))


def publish_batch(
    resolved: ResolvedCatalog, namespace: str, batch: Batch, *, replace: bool = False
) -> tuple[TableWrite, ...]:
    """Write the batch's canonical tables: one commit per table, ``image_assets`` last.

    See :func:`commit_tables` for the commit order. Tables are handed to the sink
    one at a time and dropped from the batch, so a large ``chunk_index`` exists
    once while it is written.
    """
    parts = namespace_parts(namespace)
    names = [table for table in COMMIT_ORDER if table in batch.tables]
    loaded = check_schemas(resolved, parts)
    moved = check_identity(resolved, parts, batch.records, replace, loaded.get("image_assets"))
    prepared = prepare_tables(resolved, parts, names, loaded)

    def commit(table: str, ids: list[str], summary: dict[str, str]) -> TableWrite:
        return replace_datasets(
            resolved.catalog, parts, table, batch.tables.pop(table), ids, summary, prepared[table]
        )

    return commit_tables(resolved, parts, batch.records, names, commit, moved)


def publish_stream(
    resolved: ResolvedCatalog,
    namespace: str,
    scanned: ScanStream,
    tables: Sequence[str],
    *,
    replace: bool = False,
) -> tuple[DatasetRecord, tuple[TableWrite, ...]]:
    """Register a streamed scan: one pass writes every table's data file, then the commits.

    The checks of :func:`publish_batch` come first (schemas, the dataset id's
    store), before the store is read past its plate metadata. The scan then
    streams into one data file per table, a batch of wells at a time (memory flat
    in the plate size), and the files are committed as :func:`commit_tables` says:
    one commit per table, ``image_assets`` last, one registration id. A failure
    before a table's commit removes its file, so nothing half-written is left.
    """
    parts = namespace_parts(namespace)
    names = [table for table in COMMIT_ORDER if table in tables]
    loaded = check_schemas(resolved, parts)
    claim = DatasetRecord(
        dataset_id=scanned.dataset_id, uri=scanned.uri, image_count=0, array_count=0, chunk_count=0
    )
    moved = check_identity(resolved, parts, [claim], replace, loaded.get("image_assets"))
    prepared = prepare_tables(resolved, parts, names, loaded)
    files = write_stream_files(prepared, CanonicalStream(scanned, names), scanned.dataset_id)
    record = dataset_record(scanned)  # its counts are complete once the files are written
    committed: list[str] = []

    def commit(table: str, ids: list[str], summary: dict[str, str]) -> TableWrite:
        paths, rows = files[table]
        write = replace_with_files(
            resolved.catalog,
            parts,
            table,
            paths,
            ids,
            rows=rows,
            summary=summary,
            table=prepared[table],
        )
        committed.append(table)
        return write

    try:
        writes = commit_tables(resolved, parts, [record], names, commit, moved)
    except BaseException:
        for table, (paths, _rows) in files.items():
            if table not in committed:
                remove_files(prepared[table], paths)
        raise
    return record, writes


def _registrations(table: Any) -> dict[str, tuple[int, str, str, int]]:
    """Dataset id → ``(sequence number, registration id, tables, timestamp ms)`` of its latest."""
    latest: dict[str, tuple[int, str, str, int]] = {}
    for snapshot in table.snapshots():
        summary = snapshot.summary
        registration = summary.get(REGISTRATION_ID) if summary else None
        if not registration:
            continue
        try:
            datasets = json.loads(summary.get(REGISTRATION_DATASETS) or "[]")
        except ValueError:
            continue
        tables = summary.get(REGISTRATION_TABLES) or ""
        for dataset in datasets:
            if snapshot.sequence_number >= latest.get(dataset, (-1, "", "", 0))[0]:
                latest[dataset] = (
                    snapshot.sequence_number,
                    registration,
                    tables,
                    snapshot.timestamp_ms,
                )
    return latest


def _history_start(table: Any) -> int | None:
    """Timestamp of the table's oldest kept snapshot when older ones were expired, else ``None``.

    A table's first commit has sequence number 1: an oldest kept snapshot with a
    higher one means history before it is gone.
    """
    snapshots = table.snapshots()
    if not snapshots:
        return None
    oldest = min(snapshots, key=lambda s: s.sequence_number or 0)
    return oldest.timestamp_ms if (oldest.sequence_number or 0) > 1 else None


def interrupted_registrations(resolved: ResolvedCatalog, namespace: str) -> dict[str, str]:
    """Datasets whose latest registration committed ``chunk_index`` but not ``image_assets``.

    Returns dataset id → registration id. Readers that start from ``image_assets``
    still see the dataset's previous state (or none); re-registering repairs it.
    A registration whose ``chunk_index`` commit is older than the oldest
    ``image_assets`` snapshot kept (older ones expired by a registration's history
    bound or by ``maintain``) cannot be judged, and is not reported.
    """
    parts = namespace_parts(namespace)
    catalog = resolved.catalog
    if not catalog.table_exists((*parts, "chunk_index")):
        return {}
    chunks = _registrations(catalog.load_table((*parts, "chunk_index")))
    assets: set[str] = set()
    start = None
    if catalog.table_exists((*parts, "image_assets")):
        table = catalog.load_table((*parts, "image_assets"))
        start = _history_start(table)
        assets = {
            summary.get(REGISTRATION_ID)
            for snapshot in table.snapshots()
            if (summary := snapshot.summary) is not None and summary.get(REGISTRATION_ID)
        }
    return {
        dataset: registration
        for dataset, (_, registration, tables, committed) in sorted(chunks.items())
        if "image_assets" in tables.split(",")
        and registration not in assets
        and (start is None or committed >= start)
    }


def scan_plates(
    uri: str | os.PathLike[str],
    *,
    options: ScanOptions,
    storage_options: Mapping[str, Any] | None = None,
) -> list[ScanResult]:
    """Scan one store; a file-set folder (or LoadData CSV) of several plates gives one each.

    Each plate's dataset id is its plate id. A store of one plate gives one result.
    """
    try:
        return [scan(uri, options=options, storage_options=storage_options)]
    except SeveralPlatesError as error:
        file_set = options.file_set or FileSetOptions()
        return [
            scan(
                uri,
                options=replace(options, file_set=replace(file_set, plate_id=plate)),
                storage_options=storage_options,
            )
            for plate in error.plates
        ]


def scan_many(
    uris: Sequence[str | os.PathLike[str]],
    *,
    options: ScanOptions,
    workers: int | None,
    storage_options: Mapping[str, Any] | None = None,
    on_scanned: Callable[[ScanResult], None] | None = None,
) -> list[ScanResult]:
    """Scan stores in parallel; the first failure cancels the rest and is raised.

    A folder holding several file-set plates gives one result per plate, in plate order.
    """
    if not uris:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, workers or min(8, len(uris))))
    futures = {
        pool.submit(scan_plates, uri, options=options, storage_options=storage_options): uri
        for uri in uris
    }
    results: dict[str, list[ScanResult]] = {}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None:
                    raise aborted_error(error) from error
                scanned = future.result()
                results[os.fspath(futures[future])] = scanned
                if on_scanned is not None:
                    for result in scanned:
                        on_scanned(result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [result for uri in uris for result in results[os.fspath(uri)]]


def aborted_error(error: BaseException) -> BaseException:
    """``error`` saying that the batch was aborted with nothing committed (same type)."""
    if isinstance(error, IcebergBioimageError):
        try:
            return type(error)(error.subject, f"{error.problem}; batch aborted, nothing committed")
        except TypeError:
            return error
    return error


def expand_uris(
    uris: Sequence[str | os.PathLike[str]],
    glob: str | None,
    storage_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """The stores to ingest: ``uris`` as given, or the matches of ``glob`` inside each."""
    if glob is None:
        return [os.fspath(uri) for uri in uris]
    found: list[str] = []
    for uri in uris:
        found.extend(expand_glob(uri, glob, storage_options))
    return list(dict.fromkeys(found))


def datasets_to_remove(
    resolved: ResolvedCatalog, parts: tuple[str, ...], uri_or_dataset_id: str
) -> list[str]:
    """Dataset ids matching a dataset id, or registered for a store URI."""
    from iceberg_bioimage.catalog.read import load_table_arrow

    if not resolved.catalog.table_exists((*parts, "image_assets")):
        raise DatasetNotFoundError(
            f"dataset '{uri_or_dataset_id}'", f"not registered: {'.'.join(parts)} has no tables"
        )
    rows = load_table_arrow(resolved.catalog, parts, "image_assets", columns=["dataset_id", "uri"])
    pairs = set(zip(rows["dataset_id"].to_pylist(), rows["uri"].to_pylist(), strict=True))
    if any(ds == uri_or_dataset_id for ds, _ in pairs):
        return [uri_or_dataset_id]
    candidates = {uri_or_dataset_id}
    if "://" not in uri_or_dataset_id and os.path.exists(uri_or_dataset_id):
        candidates.add(os.path.realpath(uri_or_dataset_id))
    ids = sorted({ds for ds, uri in pairs if uri in candidates or uri.rstrip("/") in candidates})
    if not ids:
        raise DatasetNotFoundError(
            f"dataset '{uri_or_dataset_id}'",
            f"no dataset id or store URI matches in {'.'.join(parts)}.image_assets",
        )
    return ids
