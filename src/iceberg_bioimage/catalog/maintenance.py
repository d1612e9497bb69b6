"""Table maintenance: expire snapshots, remove orphan files (pyiceberg maintenance APIs).

For each table of a namespace:

1. **Expire snapshots** with ``table.maintenance.expire_snapshots()``: those beyond the
   newest ``keep_last`` and/or older than ``older_than``; branch and tag heads (the
   current snapshot) are never expired. One commit, retried on conflict.
2. **Remove orphan files** below the table's location: ``*.metadata.json`` files that
   neither the current metadata nor its ``metadata-log`` names (left by commits that
   lost a race), manifest lists and manifests no remaining snapshot uses, and data
   files no remaining snapshot references. Only files last modified before the safety
   cutoff (``older_than``, else one hour ago) are touched, so a writer in the middle
   of a commit, whose new files are not referenced yet, is never hurt.
3. **Rewrite manifests**: pyiceberg 0.12 has no manifest-rewrite API; reported as not done.
   Registrations merge manifests as they append (``commit.manifest-merge.enabled``,
   :data:`~iceberg_bioimage.catalog.sink.GROWTH_PROPERTIES`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from iceberg_bioimage.catalog.sink import with_retries
from iceberg_bioimage.exceptions import CatalogConfigError
from iceberg_bioimage.models.results import TableMaintenance

#: Files younger than this are never removed unless ``older_than`` says otherwise.
SAFETY_WINDOW = dt.timedelta(hours=1)
MANIFEST_REWRITE_NOTE = "manifests not rewritten: pyiceberg 0.12 has no manifest-rewrite API"


def cutoff_time(older_than: dt.datetime | None, now: dt.datetime | None = None) -> dt.datetime:
    """Files modified before this instant may be removed (timezone-aware, UTC if naive)."""
    if older_than is not None:
        return older_than if older_than.tzinfo else older_than.replace(tzinfo=dt.UTC)
    return (now or dt.datetime.now(dt.UTC)) - SAFETY_WINDOW


def snapshots_to_expire(
    table: Table, keep_last: int | None, older_than: dt.datetime | None
) -> list[int]:
    """Ids of the snapshots to expire: beyond the newest ``keep_last``, older than ``older_than``.

    With both, a snapshot goes when it is older than ``older_than`` and not among the
    newest ``keep_last``; with neither, none. Branch and tag heads always stay.
    """
    if keep_last is None and older_than is None:
        return []
    metadata = table.metadata
    protected = {ref.snapshot_id for ref in metadata.refs.values()}
    newest_first = sorted(metadata.snapshots, key=lambda s: s.timestamp_ms, reverse=True)
    kept = {s.snapshot_id for s in newest_first[:keep_last]} if keep_last else set()
    limit = cutoff_time(older_than).timestamp() * 1000 if older_than else None
    return [
        s.snapshot_id
        for s in newest_first
        if s.snapshot_id not in protected
        and s.snapshot_id not in kept
        and (limit is None or s.timestamp_ms < limit)
    ]


def _file_system(table: Table) -> tuple[Any, str]:
    """The table location's pyarrow filesystem and path (as its listings spell paths)."""
    io = table.io
    if not hasattr(io, "fs_by_scheme") or not hasattr(io, "parse_location"):
        raise CatalogConfigError(
            f"table {'.'.join(table.name())}",
            f"maintain needs pyiceberg's PyArrowFileIO, not {type(io).__name__}",
        )
    scheme, netloc, path = io.parse_location(table.location(), io.properties)
    return io.fs_by_scheme(scheme, netloc), path


def _path(table: Table, location: str) -> str:
    return str(table.io.parse_location(location, table.io.properties)[2])  # type: ignore[attr-defined]


def referenced_files(table: Table) -> set[str]:
    """Every file the current metadata reaches: metadata log, snapshots, manifests, data."""
    metadata = table.metadata
    live = [table.metadata_location, *(entry.metadata_file for entry in metadata.metadata_log)]
    live += [stat.statistics_path for stat in metadata.statistics]
    manifests: dict[str, Any] = {}
    for snapshot in metadata.snapshots:
        live.append(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            manifests.setdefault(manifest.manifest_path, manifest)
    for path, manifest in manifests.items():
        live.append(path)
        live += [
            entry.data_file.file_path
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
        ]
    return {_path(table, location) for location in live}


def _listing(fs: Any, root: str) -> Iterator[tuple[str, dt.datetime]]:
    from pyarrow import fs as pafs

    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    for info in fs.get_file_info(selector):
        if info.type == pafs.FileType.File:
            mtime = info.mtime or dt.datetime.now(dt.UTC)
            yield info.path, mtime if mtime.tzinfo else mtime.replace(tzinfo=dt.UTC)


def _kind(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".metadata.json"):
        return "metadata"
    if "/metadata/" in path and name.endswith(".avro"):
        return "manifest"
    return "data"


def orphan_files(table: Table, cutoff: dt.datetime) -> dict[str, list[str]]:
    """Files below the table location that nothing references, modified before ``cutoff``.

    Returns ``{"metadata": [...], "manifest": [...], "data": [...]}`` (full locations).
    """
    fs, root = _file_system(table)
    live = referenced_files(table)
    found: dict[str, list[str]] = {"metadata": [], "manifest": [], "data": []}
    for path, modified in _listing(fs, root):
        if path in live or modified >= cutoff:
            continue
        found[_kind(path)].append(path)
    return found


def maintain_table(
    catalog: Catalog,
    ident: tuple[str, ...],
    *,
    keep_last: int | None = None,
    older_than: dt.datetime | None = None,
    dry_run: bool = False,
) -> TableMaintenance:
    """Expire snapshots and remove orphan files of one table (nothing changes on ``dry_run``)."""
    table = catalog.load_table(ident)
    expired = snapshots_to_expire(table, keep_last, older_than)
    if expired and not dry_run:

        def expire(fresh: Table) -> Table:
            ids = snapshots_to_expire(fresh, keep_last, older_than)
            if ids:
                fresh.maintenance.expire_snapshots().by_ids(ids).commit()
            return catalog.load_table(ident)

        table = with_retries(catalog, ident, expire)
    elif expired:
        table = _without_snapshots(table, expired)
    orphans = orphan_files(table, cutoff_time(older_than))
    if not dry_run:
        fs, _root = _file_system(table)
        for path in _each(orphans.values()):
            with contextlib.suppress(FileNotFoundError):  # a concurrent maintain was first
                fs.delete_file(path)
    return TableMaintenance(
        table=".".join(ident),
        snapshots_expired=len(expired),
        snapshots_kept=len(table.metadata.snapshots),
        metadata_files_removed=len(orphans["metadata"]),
        manifest_files_removed=len(orphans["manifest"]),
        data_files_removed=len(orphans["data"]),
    )


def _each(groups: Iterable[list[str]]) -> Iterator[str]:
    for group in groups:
        yield from group


def _without_snapshots(table: Table, snapshot_ids: list[int]) -> Table:
    """A read-only view of ``table`` as it would be with ``snapshot_ids`` expired (dry run)."""
    gone = set(snapshot_ids)
    metadata = table.metadata.model_copy(
        update={"snapshots": [s for s in table.metadata.snapshots if s.snapshot_id not in gone]}
    )
    return Table(
        identifier=table.name(),
        metadata=metadata,
        metadata_location=table.metadata_location,
        io=table.io,
        catalog=table.catalog,
    )
