"""Write canonical tables to Iceberg: create on first use, evolve, overwrite by dataset.

Every operation makes one commit per table: rows of the affected datasets are
replaced with ``overwrite(..., overwrite_filter=In("dataset_id", ...))`` so a re-run
never duplicates rows. A commit that loses a race is retried on a fresh table.
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
from pyiceberg.table import Table

from iceberg_bioimage._version import __version__
from iceberg_bioimage.catalog.data_files import remove_files, write_data_files
from iceberg_bioimage.catalog.schema import (
    iceberg_schema,
    iceberg_type,
    partition_spec,
    sort_order,
)
from iceberg_bioimage.exceptions import SchemaConflictError
from iceberg_bioimage.models.results import TableWrite
from iceberg_bioimage.models.schemas import TABLES, TableSchema
from iceberg_bioimage.tables.build import ChunkIndexRows

COMMIT_ATTEMPTS = 6
T = TypeVar("T")

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


def check_existing(catalog: Catalog, namespace: tuple[str, ...], table_name: str) -> None:
    """Raise :class:`SchemaConflictError` if the table exists with a conflicting schema."""
    ident = identifier(namespace, table_name)
    try:
        table = catalog.load_table(ident)
    except NoSuchTableError:
        return
    check_compatible(table, TABLES[table_name], _dotted(ident))


def ensure_table(catalog: Catalog, namespace: tuple[str, ...], table_name: str) -> Table:
    """Load the canonical table, creating or evolving it when needed."""
    canonical = TABLES[table_name]
    ident = identifier(namespace, table_name)
    try:
        table = catalog.load_table(ident)
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
        table = catalog.load_table(ident)
    return table


def conform(data: pa.Table, table: Table) -> pa.Table:
    """Cast ``data`` to the table's current Arrow schema (extra optional columns → nulls)."""
    return conform_to(data, table.schema().as_arrow())


def conform_to(data: pa.Table, target: pa.Schema) -> pa.Table:
    """Cast ``data`` to ``target`` (columns it lacks → nulls of their declared type)."""
    if data.schema.equals(target, check_metadata=True):
        return data
    columns = [
        data[field.name].cast(field.type)
        if field.name in data.column_names
        else pa.nulls(data.num_rows, field.type)
        for field in target
    ]
    return pa.Table.from_arrays(columns, schema=target)


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


def with_retries(catalog: Catalog, ident: tuple[str, ...], action: Callable[[Table], T]) -> T:
    """Run ``action`` on a freshly loaded table, retrying when a commit loses a race.

    pyiceberg retries plain conflicts itself; when a concurrent writer added files
    that our overwrite filter matches it raises ``ValidationException`` instead:
    re-running the overwrite on the new table state replaces those files too.
    """
    for attempt in range(COMMIT_ATTEMPTS):
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
) -> TableWrite:
    """Replace the rows of ``dataset_ids`` with ``data`` in one commit.

    The datasets' old rows are deleted and their new data files (one per dataset,
    written by us) added in a single transaction: one commit, recorded as a delete
    and an append snapshot, both carrying ``summary`` in their snapshot summaries.
    A table is cast to the table's schema once, before any attempt, so only one
    copy is alive (callers should not keep ``data``); a streamed ``chunk_index``
    is built and cast batch by batch while its data file is written.
    """
    ident = identifier(namespace, table_name)
    created = ensure_table(catalog, namespace, table_name)
    if isinstance(data, pa.Table):
        data = conform(data, created)

    def overwrite(table: Table) -> TableWrite:
        paths = write_data_files(table, data, dataset_ids, lambda rows: conform(rows, table))
        try:
            return _commit_files(table, ident, paths, dataset_ids, summary, data.num_rows)
        except BaseException:
            remove_files(table, paths)
            raise

    return with_retries(catalog, ident, overwrite)


def _commit_files(
    table: Table,
    ident: tuple[str, ...],
    paths: Sequence[str],
    dataset_ids: Sequence[str],
    summary: Mapping[str, str] | None,
    rows: int,
) -> TableWrite:
    """Delete the datasets' rows and add ``paths`` in one transaction (one commit)."""
    properties = dict(summary or {})
    with _first_write_is_quiet(), table.transaction() as transaction:
        transaction.delete(
            delete_filter=dataset_filter(dataset_ids), snapshot_properties=properties
        )
        if paths:
            transaction.add_files(
                list(paths), snapshot_properties=properties, check_duplicate_files=False
            )
    snapshot = table.current_snapshot()
    return TableWrite(
        table=_dotted(ident),
        rows_written=rows,
        snapshot_id=snapshot.snapshot_id if snapshot else None,
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
) -> TableWrite:
    """Replace the rows of ``dataset_ids`` with data files already written (one commit).

    The files must carry the table's schema and field ids (see
    :class:`~iceberg_bioimage.catalog.data_files.DataFileTarget`); the caller
    owns them and removes them if this raises.
    """
    ident = identifier(namespace, table_name)
    return with_retries(
        catalog, ident, lambda table: _commit_files(table, ident, paths, dataset_ids, summary, rows)
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
    catalog: Catalog, namespace: tuple[str, ...], dataset_ids: Sequence[str]
) -> dict[str, set[str]]:
    """``dataset_id`` → URIs already registered in ``image_assets``."""
    ident = identifier(namespace, "image_assets")
    if not dataset_ids or not catalog.table_exists(ident):
        return {}
    rows = (
        catalog.load_table(ident)
        .scan(row_filter=dataset_filter(dataset_ids), selected_fields=("dataset_id", "uri"))
        .to_arrow()
        .group_by(["dataset_id", "uri"])
        .aggregate([])
        .to_pylist()
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["dataset_id"], set()).add(row["uri"])
    return found
