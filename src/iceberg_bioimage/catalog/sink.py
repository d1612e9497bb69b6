"""Write canonical tables to Iceberg: create on first use, evolve, overwrite by dataset.

Every operation makes one commit per table: rows of the affected datasets are
deleted and their new data files added in one transaction, so a re-run never
duplicates rows. A commit that loses a race is retried on a fresh table.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchTableError,
    ValidationException,
)
from pyiceberg.expressions import BooleanExpression, EqualTo, In
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.table.update.snapshot import ExpireSnapshots

from iceberg_bioimage._version import __version__
from iceberg_bioimage.catalog.data_files import conform_rows, remove_files, write_data_files
from iceberg_bioimage.catalog.schema import (
    iceberg_schema,
    iceberg_type,
    partition_spec,
    sort_order,
)
from iceberg_bioimage.exceptions import CatalogConfigError, SchemaConflictError
from iceberg_bioimage.models.results import TableWrite
from iceberg_bioimage.models.schemas import TABLES, TableSchema
from iceberg_bioimage.tables.build import ChunkIndexRows

COMMIT_ATTEMPTS = 6
#: Attempts of a commit without a delete (pyiceberg's own retries are off for it), as
#: many as pyiceberg makes under TABLE_PROPERTIES: ingest fan-out makes such races common.
APPEND_ATTEMPTS = 9
T = TypeVar("T")

#: Table property: how many snapshots a registration keeps (time-travel depth, in
#: commits of that table); ``0`` keeps every one. See :func:`snapshots_beyond`.
MAX_SNAPSHOTS = "iceberg-bioimage.history.max-snapshots"

#: Properties that keep a table's metadata bounded as plates pile up (issue 23). New
#: tables get them; a table created without them gets the missing ones at its next
#: registration commit (:func:`missing_growth_properties`), in that same commit.
GROWTH_PROPERTIES = {
    # Each metadata.json holds every snapshot, so keeping all of them grows with N²:
    # pyiceberg deletes the ones beyond the newest 20 after each commit it makes.
    TableProperties.METADATA_DELETE_AFTER_COMMIT_ENABLED: "true",
    TableProperties.METADATA_PREVIOUS_VERSIONS_MAX: "20",
    # A fast append adds one manifest per commit, and every reader opens them all:
    # merge-append folds the manifests into one once 20 have piled up.
    TableProperties.MANIFEST_MERGE_ENABLED: "true",
    TableProperties.MANIFEST_MIN_MERGE_COUNT: "20",
    # A merge rewrites every manifest of its bin: with pyiceberg's 8 MB target, one
    # manifest listing every plate's data file was rewritten every 20 commits. At
    # 128 KiB (~480 data files) a full manifest is left alone, and a reader of one
    # plate skips those whose dataset_id bounds exclude it.
    TableProperties.MANIFEST_TARGET_SIZE_BYTES: str(128 * 1024),
    # pyiceberg deep-copies the whole table metadata, every snapshot in it, about 20
    # times per commit: with all snapshots kept, the 300th registration cost 4-8× the
    # first. Each registration commit expires the snapshots beyond the newest 50.
    MAX_SNAPSHOTS: "50",
}

TABLE_PROPERTIES = {
    "format-version": "2",
    # Many writers commit to one table at once (ingest fan-out, job arrays): retry
    # sooner and more often than pyiceberg's defaults (100 ms doubling, 4 retries).
    "commit.retry.num-retries": "8",
    "commit.retry.min-wait-ms": "20",
    "commit.retry.max-wait-ms": "1000",
    "write.parquet.compression-codec": "zstd",
    "iceberg-bioimage.producer": "iceberg-bioimage",
    "iceberg-bioimage.version": __version__,
    **GROWTH_PROPERTIES,
}


def identifier(namespace: Sequence[str], table: str) -> tuple[str, ...]:
    """Full table identifier."""
    return (*namespace, table)


def _dotted(ident: Sequence[str]) -> str:
    return ".".join(ident)


def _ensure_namespace(catalog: Catalog, namespace: tuple[str, ...]) -> None:
    """Create the namespace unless it exists; a concurrent creator counts as success.

    A SQL catalog that loses the race raises ``NamespaceAlreadyExistsError``, or,
    from the database itself, ``IntegrityError``/``UniqueViolation``: whatever it
    raises, the namespace existing afterwards is success.
    """
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        if not catalog.namespace_exists(namespace):
            raise


def check_compatible(table: Table, canonical: TableSchema, name: str) -> list[str]:
    """Return canonical columns missing from ``table``; raise on real conflicts."""
    existing = {field.name: field for field in table.schema().fields}
    missing, conflicts = [], []
    for column in canonical.columns:
        field = existing.get(column.name)
        if field is None:
            (conflicts if column.required else missing).append(column.name)
            continue
        expected = iceberg_type(column)
        if str(field.field_type) != str(expected):
            conflicts.append(f"{column.name} is {field.field_type}, expected {expected}")
        elif field.required and not column.required:
            conflicts.append(f"{column.name} is required, expected optional")
    extra_required = [
        f.name for f in existing.values() if f.required and f.name not in canonical.names
    ]
    conflicts.extend(f"{n} is a required column we do not write" for n in extra_required)
    if conflicts:
        raise SchemaConflictError(
            f"table {name}",
            "schema conflicts with the canonical schema: " + "; ".join(conflicts),
        )
    return missing


def load_if_exists(catalog: Catalog, ident: tuple[str, ...]) -> Table | None:
    """The table, or ``None`` if there is none (one metadata.json read, not two)."""
    try:
        return catalog.load_table(ident)
    except NoSuchTableError:
        return None


def check_existing(
    catalog: Catalog, namespace: tuple[str, ...], table_name: str, table: Table | None = None
) -> Table | None:
    """Raise :class:`SchemaConflictError` if the table exists with a conflicting schema.

    Returns the table checked (``table`` if given, else loaded), ``None`` if none exists.
    """
    ident = identifier(namespace, table_name)
    table = table if table is not None else load_if_exists(catalog, ident)
    if table is not None:
        check_compatible(table, TABLES[table_name], _dotted(ident))
    return table


def ensure_table(
    catalog: Catalog, namespace: tuple[str, ...], table_name: str, table: Table | None = None
) -> Table:
    """The canonical table (``table`` if already loaded), created or evolved when needed."""
    canonical = TABLES[table_name]
    ident = identifier(namespace, table_name)
    try:
        table = table if table is not None else catalog.load_table(ident)
    except NoSuchTableError:
        _ensure_namespace(catalog, namespace)
        try:
            return catalog.create_table(
                ident,
                schema=iceberg_schema(canonical),
                partition_spec=partition_spec(canonical),
                sort_order=sort_order(canonical),
                properties=TABLE_PROPERTIES,
            )
        except Exception:  # a concurrent writer created it, in whatever words
            if not catalog.table_exists(ident):
                raise
            table = catalog.load_table(ident)
    if check_compatible(table, canonical, _dotted(ident)):
        with table.update_schema() as update:
            update.union_by_name(iceberg_schema(canonical))
        # the commit refreshed ``table`` in place: no need to load it again
    return table


def conform(data: pa.Table, table: Table) -> pa.Table:
    """Cast ``data`` to the table's current Arrow schema (extra optional columns → nulls)."""
    return conform_to(data, table.schema().as_arrow())


def conform_to(data: pa.Table, target: pa.Schema) -> pa.Table:
    """Cast ``data`` to ``target`` (columns it lacks → nulls of their declared type)."""
    return conform_rows(data, target)


def dataset_filter(dataset_ids: Sequence[str]) -> BooleanExpression:
    """Filter selecting the rows of the given datasets."""
    ids = sorted(set(dataset_ids))
    return EqualTo("dataset_id", ids[0]) if len(ids) == 1 else In("dataset_id", ids)


@contextmanager
def _first_write_is_quiet() -> Iterator[None]:
    """Silence pyiceberg's notice that an overwrite or delete matched no rows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Delete operation did not match any records")
        yield


def with_retries(
    catalog: Catalog,
    ident: tuple[str, ...],
    action: Callable[[Table], T],
    table: Table | None = None,
) -> T:
    """Run ``action`` on the table, retrying on a freshly loaded one when a commit loses a race.

    The first attempt uses ``table`` when given (loaded earlier in the same
    operation), so the table's metadata.json is read again only for a retry.
    pyiceberg retries plain conflicts itself; when a concurrent writer added files
    that our overwrite filter matches it raises ``ValidationException`` instead:
    re-running the overwrite on the new table state replaces those files too.
    """
    for attempt in range(COMMIT_ATTEMPTS):
        if table is None or attempt:
            table = catalog.load_table(ident)
        try:
            return action(table)
        except (CommitFailedException, ValidationException):
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.5, 1.5) * 0.05 * 2**attempt)  # jitter: no lockstep
    raise AssertionError("unreachable")


def replace_datasets(
    catalog: Catalog,
    namespace: tuple[str, ...],
    table_name: str,
    data: pa.Table | ChunkIndexRows,
    dataset_ids: Sequence[str],
    summary: Mapping[str, str] | None = None,
    table: Table | None = None,
) -> TableWrite:
    """Replace the rows of ``dataset_ids`` with ``data`` in one commit.

    The datasets' old rows are deleted and their new data files (one per dataset,
    written by us) added in a single transaction: one commit, recorded as a delete
    and an append snapshot (only the append for datasets new to the table), each
    carrying ``summary`` in its snapshot summary.
    A table is cast to the table's schema once, before any attempt, so only one
    copy is alive (callers should not keep ``data``); a streamed ``chunk_index``
    is built and cast batch by batch while its data file is written. ``table`` is
    the table as this operation already loaded (and ensured) it, if it did.
    """
    ident = identifier(namespace, table_name)
    created = table if table is not None else ensure_table(catalog, namespace, table_name)
    if isinstance(data, pa.Table):
        data = conform(data, created)

    def overwrite(table: Table) -> TableWrite:
        paths = write_data_files(table, data, dataset_ids, lambda rows: conform(rows, table))
        try:
            return _commit_files(table, ident, paths, dataset_ids, summary, data.num_rows)
        except BaseException:
            remove_files(table, paths)
            raise

    return with_retries(catalog, ident, overwrite, created)


def _commit_files(
    table: Table,
    ident: tuple[str, ...],
    paths: Sequence[str],
    dataset_ids: Sequence[str],
    summary: Mapping[str, str] | None,
    rows: int,
) -> TableWrite:
    """Delete the datasets' rows and add ``paths`` in one transaction (one commit).

    A dataset with no data file in the table (a new plate) needs no delete, and
    pyiceberg's delete costs a copy of the whole table metadata per step even when
    it matches nothing, so it is skipped. Its other role is conflict detection: a
    writer that added files of the same dataset concurrently must not be missed.
    Without the delete, the commit is therefore made with pyiceberg's own retries
    off (:func:`_without_commit_retries`): it lands only if the table's head is still
    the one checked, else it fails and the check runs again on the new head.

    The same commit expires the snapshots beyond the table's :data:`MAX_SNAPSHOTS`
    newest (:func:`snapshots_beyond`); their files stay for ``maintain`` to remove,
    so a reader still planning on an expired snapshot is not hurt.
    """
    properties = dict(summary or {})
    for attempt in range(APPEND_ATTEMPTS):
        present = has_dataset_files(table, dataset_ids)
        keep = max_snapshots(table)
        # An expiry names snapshots of the head it was planned on, so pyiceberg must not
        # replay it on a newer head: such a commit is retried here, planned afresh.
        replayable = present and not (keep and len(table.metadata.snapshots) + 2 > keep)
        target = table if replayable else _without_commit_retries(table)
        try:
            with _first_write_is_quiet(), target.transaction() as transaction:
                missing = missing_growth_properties(target)
                if missing:  # first (so merge-append sees them), in the same commit
                    transaction.set_properties(missing)
                if present:
                    transaction.delete(
                        delete_filter=dataset_filter(dataset_ids), snapshot_properties=properties
                    )
                if paths:
                    transaction.add_files(
                        list(paths), snapshot_properties=properties, check_duplicate_files=False
                    )
                expired = snapshots_beyond(transaction.table_metadata, keep)
                if expired:
                    ExpireSnapshots(transaction).by_ids(expired).commit()
        except CommitFailedException:
            if replayable or attempt == APPEND_ATTEMPTS - 1:
                raise
            # the schedule of TABLE_PROPERTIES' commit.retry.*, with jitter: no lockstep
            time.sleep(random.uniform(0.5, 1.5) * min(0.02 * 2**attempt, 1.0))
            table = table.refresh()
            continue
        snapshot = target.current_snapshot()
        return TableWrite(
            table=_dotted(ident),
            rows_written=rows,
            snapshot_id=snapshot.snapshot_id if snapshot else None,
        )
    raise AssertionError("unreachable")


def has_dataset_files(table: Table, dataset_ids: Sequence[str]) -> bool:
    """Whether the table's current snapshot holds a data file that may hold these datasets.

    Planned from manifests only: the partition summaries of each manifest and the
    identity partition (``dataset_id``) of each file prune all other datasets, so no
    data file is opened. Errs towards ``True`` (a file that *might* match counts).
    """
    scan = table.scan(row_filter=dataset_filter(dataset_ids), selected_fields=("dataset_id",))
    return any(True for _ in scan.plan_files())


def missing_growth_properties(table: Table) -> dict[str, str]:
    """:data:`GROWTH_PROPERTIES` the table lacks (a table created by an older version)."""
    present = table.metadata.properties
    return {key: value for key, value in GROWTH_PROPERTIES.items() if key not in present}


def max_snapshots(table: Table) -> int:
    """The table's :data:`MAX_SNAPSHOTS` (``0``: keep all; a table without it keeps all)."""
    value = table.metadata.properties.get(MAX_SNAPSHOTS, GROWTH_PROPERTIES[MAX_SNAPSHOTS])
    try:
        keep = int(value)
    except ValueError:
        keep = -1
    if keep < 0:
        raise CatalogConfigError(
            f"table {_dotted(table.name())}",
            f"property {MAX_SNAPSHOTS} must be a whole number >= 0, not {value!r}",
        )
    return keep


def snapshots_beyond(metadata: TableMetadata, keep: int) -> list[int]:
    """Ids of the snapshots older than the newest ``keep`` (none when ``keep`` is 0).

    Branch and tag heads always stay. The newest are found by sequence number, which
    orders the commits of one table even when clocks of different writers disagree
    (then the timestamp, for a format-1 table, whose sequence numbers are all 0).
    """
    if not keep or len(metadata.snapshots) <= keep:
        return []
    protected = {ref.snapshot_id for ref in metadata.refs.values()}
    newest_first = sorted(metadata.snapshots, key=_commit_order, reverse=True)
    return [s.snapshot_id for s in newest_first[keep:] if s.snapshot_id not in protected]


def _commit_order(snapshot: Snapshot) -> tuple[int, int]:
    return (snapshot.sequence_number or 0, snapshot.timestamp_ms)


def _without_commit_retries(table: Table) -> Table:
    """A view of ``table`` whose commits pyiceberg does not retry on a newer head.

    pyiceberg reads its retry count from the properties of the table object it
    commits; the catalog applies the commit's updates to the table as stored, so
    this in-memory value is never written. A fast append's commit requires the
    branch head it was built on, so it either lands on exactly the state checked
    or raises ``CommitFailedException``.
    """
    properties = {**table.metadata.properties, TableProperties.COMMIT_NUM_RETRIES: "0"}
    return Table(
        identifier=table.name(),
        metadata=table.metadata.model_copy(update={"properties": properties}),
        metadata_location=table.metadata_location,
        io=table.io,
        catalog=table.catalog,
    )


def replace_with_files(
    catalog: Catalog,
    namespace: tuple[str, ...],
    table_name: str,
    paths: Sequence[str],
    dataset_ids: Sequence[str],
    *,
    rows: int,
    summary: Mapping[str, str] | None = None,
    table: Table | None = None,
) -> TableWrite:
    """Replace the rows of ``dataset_ids`` with data files already written (one commit).

    The files must carry the table's schema and field ids (see
    :class:`~iceberg_bioimage.catalog.data_files.DataFileTarget`); the caller
    owns them and removes them if this raises. ``table`` is the table as this
    operation already loaded it, if it did (used for the first attempt).
    """
    ident = identifier(namespace, table_name)
    return with_retries(
        catalog,
        ident,
        lambda table: _commit_files(table, ident, paths, dataset_ids, summary, rows),
        table,
    )


def delete_datasets(
    catalog: Catalog,
    namespace: tuple[str, ...],
    table_name: str,
    dataset_ids: Sequence[str],
    summary: Mapping[str, str] | None = None,
) -> TableWrite | None:
    """Delete the rows of ``dataset_ids`` in one commit (``None`` if no such table)."""
    ident = identifier(namespace, table_name)
    if not catalog.table_exists(ident):
        return None

    def delete(table: Table) -> TableWrite:
        with _first_write_is_quiet():
            table.delete(
                delete_filter=dataset_filter(dataset_ids), snapshot_properties=dict(summary or {})
            )
        snapshot = table.current_snapshot()
        return TableWrite(
            table=_dotted(ident),
            rows_written=0,
            snapshot_id=snapshot.snapshot_id if snapshot else None,
        )

    return with_retries(catalog, ident, delete)


def registered_uris(
    catalog: Catalog,
    namespace: tuple[str, ...],
    dataset_ids: Sequence[str],
    table: Table | None = None,
) -> dict[str, set[str]]:
    """``dataset_id`` → URIs already registered in ``image_assets`` (``table`` if loaded)."""
    if not dataset_ids:
        return {}
    if table is None:
        table = load_if_exists(catalog, identifier(namespace, "image_assets"))
    if table is None:
        return {}
    rows = (
        table.scan(row_filter=dataset_filter(dataset_ids), selected_fields=("dataset_id", "uri"))
        .to_arrow()
        .group_by(["dataset_id", "uri"])
        .aggregate([])
        .to_pylist()
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["dataset_id"], set()).add(row["uri"])
    return found
