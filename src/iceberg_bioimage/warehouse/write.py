"""Write tables into a Cytomining Parquet warehouse, atomically.

Each table folder holds one Parquet file per dataset. Every write gives its files
new names (``<dataset_id>.<write token>.parquet``), so no live file is ever
replaced: the new files are written to a staging folder, renamed into their table
folders, and the manifest, replaced atomically (``os.replace``) last, is the one
pointer to the live files. Only then are the files it no longer lists removed. A
reader following the manifest sees the previous or the new warehouse, never a mix.

Writers hold an exclusive lock on ``<root>/.iceberg-bioimage.lock`` (``flock``), so
two writers never interleave; the lock dies with its process, so whatever a
killed writer left (its staging folder, a temporary manifest, renamed files no
manifest lists) is ours to remove, and the next writer removes it first.
Every path is resolved inside the root (:func:`~iceberg_bioimage.models.paths.resolve_inside`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iceberg_bioimage._version import __version__
from iceberg_bioimage.exceptions import (
    IcebergBioimageError,
    MetadataError,
    StoreNotFoundError,
    WarehouseError,
)
from iceberg_bioimage.models.limits import Limits, load_json
from iceberg_bioimage.models.names import check_table_name, file_safe
from iceberg_bioimage.models.paths import os_reason, read_inside, resolve_inside
from iceberg_bioimage.models.results import WarehouseTableWrite
from iceberg_bioimage.models.warehouse import (
    MANIFEST_NAME,
    ROLES,
    TABLE_SPECS,
    WAREHOUSE_SPEC_VERSION,
    Layout,
    Mode,
    TableEntry,
    TableFile,
    TableMove,
    WarehouseManifest,
    migrated,
    table_path,
)
from iceberg_bioimage.runtime import prefetched


class StreamedRows(Protocol):
    """Rows written batch by batch (a ``chunk_index``, a streamed profile join)."""

    @property
    def schema(self) -> pa.Schema: ...

    @property
    def column_names(self) -> list[str]: ...

    @property
    def num_rows(self) -> int: ...

    @property
    def dataset_ids(self) -> list[str]: ...

    def for_dataset(self, dataset_id: str) -> StreamedRows: ...

    def batches(self) -> Iterator[pa.RecordBatch]: ...


class JointRows(StreamedRows, Protocol):
    """Rows of one of several tables built together in one pass (a streamed plate scan).

    ``stream.batches()`` yields ``(table, rows)`` for every table of the stream;
    the writer writes them all at once, and ``num_rows`` is known only after that
    (see :class:`~iceberg_bioimage.tables.stream.StreamPart`).
    """

    @property
    def table(self) -> str: ...

    @property
    def stream(self) -> JointSource: ...


class JointSource(Protocol):
    """What :class:`JointRows` of one pass share: the interleaved batches of every table."""

    def batches(self) -> Iterator[tuple[str, pa.Table]]: ...


STAGING_PREFIX = ".iceberg-bioimage-staging-"
LOCK_NAME = ".iceberg-bioimage.lock"
#: File names our writes give (``<dataset>.<token>.parquet``, ``part-<token>.parquet``).
WRITTEN_FILE = re.compile(r"(?:.+\.|part-)[0-9a-f]{12}\.parquet")
PRODUCER = {"name": "iceberg-bioimage", "version": __version__}


@dataclass(frozen=True, kw_only=True)
class TableRequest:
    """A table to write: its dotted name, role, rows, keys, grain and sources.

    ``data`` is a table, or rows streamed batch by batch (a ``chunk_index``, a large
    profile table): anything with ``schema``, ``column_names``, ``num_rows``,
    ``dataset_ids``, ``for_dataset()`` and ``batches()``.
    """

    table_name: str
    role: str
    data: pa.Table | StreamedRows
    join_keys: tuple[str, ...]
    grain: dict[str, str | None]
    sources: tuple[str, ...] = ()


def load_manifest(root: str | os.PathLike[str]) -> WarehouseManifest:
    """Read ``warehouse_manifest.json``; fail fast on a missing file or unknown major."""
    base = Path(root).resolve()
    path = base / MANIFEST_NAME
    limits = Limits.from_env()
    try:
        raw = read_inside(str(base), str(path), limits.max_metadata_bytes)
    except MetadataError as error:
        raise WarehouseError(str(path), f"invalid manifest: {error.problem}") from error
    if raw is None:
        raise StoreNotFoundError(str(path), "no warehouse manifest here")
    try:
        manifest = WarehouseManifest.from_dict(load_json(raw, str(path), limits))
    except MetadataError as error:
        raise WarehouseError(str(path), f"invalid manifest: {error.problem}") from error
    except (ValueError, KeyError, TypeError) as error:
        raise WarehouseError(str(path), f"invalid manifest: {error}") from error
    major = manifest.warehouse_spec_version.split(".", 1)[0]
    if major != WAREHOUSE_SPEC_VERSION.split(".", 1)[0]:
        raise WarehouseError(
            str(path),
            f"warehouse_spec_version {manifest.warehouse_spec_version} is not supported "
            f"(this writer speaks {WAREHOUSE_SPEC_VERSION})",
        )
    return manifest


def table_files(root: str | os.PathLike[str], entry: TableEntry) -> list[Path]:
    """The live files of a manifest entry, each resolved inside ``root``."""
    return [
        resolve_inside(root, f"{entry.path}/{f.path}", what=f"file of table {entry.table_name}")
        for f in entry.files
    ]


def read_table(root: str | os.PathLike[str], entry: TableEntry) -> pa.Table:
    """The rows of a manifest entry, read from the files the manifest lists (and only those)."""
    files = table_files(root, entry)
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def _file_name(dataset_id: str, token: str) -> str:
    return f"{file_safe(dataset_id)}.{token}.parquet"


def _split_by_dataset(
    data: pa.Table | StreamedRows,
) -> list[tuple[str | None, pa.Table | StreamedRows]]:
    if not isinstance(data, pa.Table):
        ids = data.dataset_ids
        if not ids:
            raise WarehouseError("<table>", "the rows have no dataset_id")
        return [(ids[0], data)] if len(ids) == 1 else [(i, data.for_dataset(i)) for i in ids]
    if "dataset_id" not in data.column_names:
        return [(None, data)]
    ids = data["dataset_id"]
    if ids.null_count:
        raise WarehouseError("<table>", f"{ids.null_count} rows have no dataset_id")
    values = sorted(pc.unique(ids).to_pylist())
    if len(values) == 1:
        return [(values[0], data)]
    return [(value, data.filter(pc.equal(ids, value))) for value in values]


def _check_request(request: TableRequest) -> None:
    if request.role not in ROLES:
        raise WarehouseError(
            f"table {request.table_name}", f"unknown role {request.role!r}; use one of {ROLES}"
        )
    check_table_name(request.table_name)
    missing = [k for k in request.join_keys if k not in request.data.column_names]
    if missing:
        raise WarehouseError(f"table {request.table_name}", f"join keys not in columns: {missing}")
    if request.role == "quality_control":
        field = (
            request.data.schema.field("qc_pass") if "qc_pass" in request.data.column_names else None
        )
        if field is None or not pa.types.is_boolean(field.type):
            raise WarehouseError(f"table {request.table_name}", "QC tables need a boolean qc_pass")


def _check_folders(
    manifest: WarehouseManifest, requests: Sequence[TableRequest], layout: Layout
) -> None:
    """Refuse two tables in one folder (the flat layout keeps only the last name part)."""
    owners = {t.path: t.table_name for t in manifest.tables}
    for request in requests:
        path = table_path(request.table_name, layout)
        owner = owners.setdefault(path, request.table_name)
        if owner != request.table_name:
            raise WarehouseError(
                f"table {request.table_name}",
                f"its folder {path}/ already holds table {owner}; choose another table name",
            )


def kept_files(manifest: WarehouseManifest, request: TableRequest, mode: Mode) -> list[TableFile]:
    """The files of ``request``'s table that the write keeps (other datasets', or all on append)."""
    existing = manifest.table(request.table_name)
    if existing is None:
        return []
    if mode == "append":
        return list(existing.files)
    if isinstance(request.data, pa.Table) and "dataset_id" not in request.data.column_names:
        return []
    replaced = {d for d, _ in _split_by_dataset(request.data)}
    return [f for f in existing.files if f.dataset_id not in replaced]


def grain_conflict(
    manifest: WarehouseManifest, request: TableRequest, mode: Mode
) -> tuple[str, str] | None:
    """``(what the table holds, what the write brings)`` when they differ, else ``None``.

    One kind of object per profile table (roles with ``object_rows``): such a table
    keeps the ``compartment`` and ``profile_level`` it was first written with while
    files of other writes remain. Other tables (``images.image_crops``) may mix them.
    """
    existing = manifest.table(request.table_name)
    spec = TABLE_SPECS.get(request.role)  # an unknown role is refused by _check_request
    if spec is None or not spec.object_rows:
        return None
    if existing is None or not kept_files(manifest, request, mode):
        return None
    for key in ("compartment", "profile_level"):
        held, brought = existing.grain.get(key), request.grain.get(key)
        if key in existing.grain and held != brought:
            return f"{key} {held}", f"{key} {brought}"
    return None


def _check_grain(manifest: WarehouseManifest, request: TableRequest, mode: Mode) -> None:
    conflict = grain_conflict(manifest, request, mode)
    if conflict is not None:
        held, brought = conflict
        raise WarehouseError(
            f"table {request.table_name}",
            f"holds rows of {held}; this write has {brought} (one kind of object per table: "
            "write them to their own table, or overwrite every dataset it holds)",
        )


#: A file to write: its name, its rows and its dataset.
_Write = tuple[str, pa.Table | StreamedRows, str | None]


def _plan(
    manifest: WarehouseManifest, request: TableRequest, mode: Mode, token: str
) -> tuple[list[_Write], list[TableFile]]:
    """New files to write, and the existing files the table keeps.

    The new files' :class:`TableFile` entries are made once they are written: rows
    streamed in one pass with other tables' are counted as they are written.
    """
    existing = manifest.table(request.table_name)
    kept = list(existing.files) if existing else []
    parts = _split_by_dataset(request.data)
    if parts == [(None, request.data)]:
        if mode == "overwrite":
            kept = []
        return [(f"part-{token}.parquet", request.data, None)], kept
    present = {f.dataset_id for f in kept}
    writes = []
    for dataset_id, rows in parts:
        if dataset_id in present and mode == "append":
            raise WarehouseError(
                f"table {request.table_name}",
                f"already holds dataset '{dataset_id}'; use mode='overwrite' (--mode overwrite) "
                "to replace it",
            )
        writes.append((_file_name(dataset_id, token), rows, dataset_id))
    replaced = {d for d, _ in parts}
    return writes, [f for f in kept if f.dataset_id not in replaced]


def _stamped(schema: pa.Schema) -> pa.Schema:
    metadata = dict(schema.metadata or {})
    metadata[b"iceberg-bioimage.producer"] = b"iceberg-bioimage"
    metadata[b"iceberg-bioimage.version"] = __version__.encode()
    return schema.with_metadata(metadata)


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth dictionary encoding: all but floating point (measurements rarely repeat)."""
    return [f.name for f in schema if not pa.types.is_floating(f.type)]


def _write_parquet(rows: pa.Table | StreamedRows, path: Path) -> None:
    """Write ``rows`` to ``path``; a streamed table batch by batch, reading ahead of the writer."""
    schema = _stamped(rows.schema)
    options = {"compression": "zstd", "use_dictionary": _dictionary_columns(schema)}
    if isinstance(rows, pa.Table):
        pq.write_table(rows.replace_schema_metadata(schema.metadata), path, **options)
        return
    with pq.ParquetWriter(path, schema, **options) as writer:
        for batch in prefetched(rows.batches()):
            writer.write_batch(batch)


def _write_joint(
    source: JointSource, paths: dict[str, Path], schemas: dict[str, pa.Schema]
) -> None:
    """Write every table of one pass to its file at once, batch by batch.

    The batches are produced (scanned, built) a step ahead of the writer
    (:func:`~iceberg_bioimage.runtime.prefetched`); a table none of ``paths``
    names is built and dropped.
    """
    with contextlib.ExitStack() as stack:
        writers = {}
        for table, path in paths.items():
            schema = _stamped(schemas[table])
            options = {"compression": "zstd", "use_dictionary": _dictionary_columns(schema)}
            writers[table] = stack.enter_context(pq.ParquetWriter(path, schema, **options))
        for table, rows in prefetched(source.batches()):
            writer = writers.get(table)
            if writer is not None:
                writer.write_table(rows.replace_schema_metadata(writer.schema.metadata))


def _is_joint(rows: object) -> bool:
    return hasattr(rows, "stream") and hasattr(rows, "table") and not isinstance(rows, pa.Table)


def _union_columns(
    folder: Path, kept: Sequence[TableFile], schema: pa.Schema
) -> tuple[dict[str, str], ...]:
    """Every column of the kept files and of the new rows, by name, first seen first.

    Plates differ in their feature columns; readers union the files by name, so the
    manifest lists the union (each name with the type it was first written with).
    """
    columns: dict[str, str] = {}
    for file in kept:
        for field in pq.read_schema(folder / file.path):
            columns.setdefault(field.name, str(field.type))
    for field in schema:
        columns.setdefault(field.name, str(field.type))
    return tuple({"name": name, "type": kind} for name, kind in columns.items())


def _merged_grain(
    existing: TableEntry | None, request: TableRequest, kept: Sequence[TableFile]
) -> dict[str, str | None]:
    """The request's grain; a value kept files disagree with becomes ``None`` (mixed).

    Profile tables never get here mixed (:func:`grain_conflict` refuses them).
    """
    if existing is None or not kept:
        return dict(request.grain)
    return {
        key: value if existing.grain.get(key, value) == value else None
        for key, value in request.grain.items()
    }


def _entry(
    request: TableRequest,
    path: str,
    files: Sequence[TableFile],
    when: str,
    columns: tuple[dict[str, str], ...],
    grain: dict[str, str | None],
) -> TableEntry:
    return TableEntry(
        table_name=request.table_name,
        role=request.role,
        path=path,
        join_keys=request.join_keys,
        columns=columns,
        grain=grain,
        files=tuple(sorted(files, key=lambda f: f.path)),
        provenance={
            "producer": f"iceberg-bioimage {__version__}",
            "sources": list(request.sources),
            "written_at": when,
        },
    )


def _write_manifest(root: Path, manifest: WarehouseManifest) -> Path:
    """Replace the manifest atomically: a flushed temporary file, then ``os.replace``."""
    target = root / MANIFEST_NAME
    temporary = root / f".{MANIFEST_NAME}.{uuid.uuid4().hex}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(manifest.to_dict(), indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    return target


@contextmanager
def _writer_lock(root: Path) -> Iterator[None]:
    """Hold the warehouse's exclusive writer lock (released when the process dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, writers must not overlap
        yield
        return
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:  # O_NOFOLLOW: a lock "file" that is a symlink out of the root is refused
        fd = os.open(root / LOCK_NAME, flags, 0o644)
    except OSError as error:
        raise WarehouseError(
            str(root / LOCK_NAME), f"cannot take the writer lock: {os_reason(error)}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_leftovers(root: Path, manifest: WarehouseManifest) -> None:
    """Remove what killed writers left: staging folders, temporary manifests, unlisted files.

    Called under the writer lock, so no live writer owns any of it. Only names our
    writes give are touched, and only inside the root.
    """
    for child in root.iterdir():
        if child.name.startswith(STAGING_PREFIX) and child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        elif child.name.startswith(f".{MANIFEST_NAME}.") and child.name.endswith(".tmp"):
            child.unlink(missing_ok=True)
    for entry in manifest.tables:
        try:
            folder = resolve_inside(root, entry.path, what=f"folder of table {entry.table_name}")
        except IcebergBioimageError:
            continue
        if not folder.is_dir():
            continue
        listed = {f.path for f in entry.files}
        for child in folder.iterdir():
            if (
                child.name not in listed
                and WRITTEN_FILE.fullmatch(child.name)
                and child.is_file()
                and not child.is_symlink()
            ):
                child.unlink(missing_ok=True)


def _table_folder(root: Path, table_name: str, layout: Layout) -> Path:
    return resolve_inside(root, table_path(table_name, layout), what=f"folder of {table_name}")


def write_tables(
    root: str | os.PathLike[str],
    requests: Sequence[TableRequest],
    *,
    mode: Mode,
    layout: Layout,
) -> tuple[Path, list[WarehouseTableWrite]]:
    """Write ``requests`` into the warehouse at ``root``; returns the manifest path."""
    if mode not in ("overwrite", "append"):
        raise WarehouseError(str(root), f"mode must be 'overwrite' or 'append', got {mode!r}")
    if layout not in ("namespaced", "flat"):
        raise WarehouseError(str(root), f"layout must be 'namespaced' or 'flat', got {layout!r}")
    for request in requests:
        _check_request(request)
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WarehouseError(str(root), "exists and is not a folder") from None
    base = Path(root).resolve()
    with _writer_lock(base):
        manifest = (
            load_manifest(base)
            if (base / MANIFEST_NAME).exists()
            else WarehouseManifest(layout=layout, producer=PRODUCER)
        )
        if manifest.layout != layout:
            raise WarehouseError(
                str(base),
                f"this warehouse uses the {manifest.layout} layout; "
                f"pass layout='{manifest.layout}'",
            )
        _remove_leftovers(base, manifest)
        manifest, moves = migrated(manifest)
        _check_folders(manifest, requests, layout)
        for request in requests:
            _check_grain(manifest, request, mode)
        return _write_locked(base, manifest, requests, mode=mode, layout=layout, moves=moves)


def _write_locked(
    base: Path,
    manifest: WarehouseManifest,
    requests: Sequence[TableRequest],
    *,
    mode: Mode,
    layout: Layout,
    moves: Sequence[TableMove] = (),
) -> tuple[Path, list[WarehouseTableWrite]]:
    token = uuid.uuid4().hex[:12]
    plans = [(request, *_plan(manifest, request, mode, token)) for request in requests]
    folders = {r.table_name: _table_folder(base, r.table_name, layout) for r in requests}
    previous = manifest
    staging = base / f"{STAGING_PREFIX}{token}"
    staging.mkdir()
    try:
        staged: list[tuple[Path, Path]] = []
        written: dict[int, Path] = {}  # one file per rows object, linked for other tables
        joint: dict[int, tuple[JointSource, dict[str, Path], dict[str, pa.Schema]]] = {}
        links: list[tuple[Path, Path]] = []
        for request, writes, _kept in plans:
            for name, rows, _dataset in writes:
                source = staging / f"{len(staged)}.parquet"
                if id(rows) in written:
                    links.append((written[id(rows)], source))
                elif _is_joint(rows):
                    part: JointRows = rows  # type: ignore[assignment]
                    found = joint.setdefault(id(part.stream), (part.stream, {}, {}))
                    found[1][part.table] = source
                    found[2][part.table] = part.schema
                    written[id(rows)] = source
                else:
                    _write_parquet(rows, source)
                    written[id(rows)] = source
                staged.append((source, folders[request.table_name] / name))
        for stream, paths, schemas in joint.values():  # each pass writes all its tables
            _write_joint(stream, paths, schemas)
        for first, source in links:
            _link_or_copy(first, source)
        files = {
            id(request): [
                TableFile(path=name, dataset_id=dataset, rows=rows.num_rows)
                for name, rows, dataset in writes
            ]
            for request, writes, _kept in plans
        }
        for source, target in staged:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        staged += _link_moved_tables(base, moves)
        when = datetime.now(UTC).isoformat()
        results = []
        for request, _writes, kept in plans:
            path = table_path(request.table_name, layout)
            columns = _union_columns(folders[request.table_name], kept, request.data.schema)
            grain = _merged_grain(manifest.table(request.table_name), request, kept)
            new = files[id(request)]
            manifest = manifest.with_table(
                _entry(request, path, [*kept, *new], when, columns, grain)
            )
            results.append(
                WarehouseTableWrite(
                    table_name=request.table_name,
                    role=request.role,
                    path=path,
                    rows_written=sum(f.rows for f in new),
                    datasets=tuple(sorted({f.dataset_id for f in new if f.dataset_id})),
                )
            )
        manifest_path = _write_manifest(base, replace(manifest, updated_at=when, producer=PRODUCER))
    except BaseException:  # the manifest was not replaced: no reader sees these names
        for _source, target in staged:
            target.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for request in requests:
        _remove_dropped(folders[request.table_name], previous.table(request.table_name), manifest)
    _remove_moved_tables(base, moves)
    return manifest_path, results


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (a copy where links are not supported)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _link_moved_tables(base: Path, moves: Sequence[TableMove]) -> list[tuple[Path, Path]]:
    """Give the files of tables that migrate a name in their new folder (hard links).

    Returns ``(old, new)`` file pairs; the new names are removed again if the
    manifest is not replaced, and the old ones after it is.
    """
    linked = []
    for old, new, names in moves:
        source_folder = resolve_inside(base, old, what="folder of a migrated table")
        target_folder = resolve_inside(base, new, what="folder of a migrated table")
        target_folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            source, target = source_folder / name, target_folder / name
            temporary = target_folder / f".{name}.{uuid.uuid4().hex}.tmp"
            _link_or_copy(source, temporary)
            os.replace(temporary, target)
            linked.append((source, target))
    return linked


def _remove_moved_tables(base: Path, moves: Sequence[TableMove]) -> None:
    """Remove the old names of migrated tables (and their folders once empty)."""
    for old, _new, names in moves:
        folder = resolve_inside(base, old, what="folder of a migrated table")
        for name in names:
            (folder / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()


def _remove_dropped(folder: Path, before: TableEntry | None, after: WarehouseManifest) -> None:
    """Delete files the previous entry listed that the new manifest no longer does."""
    if before is None:
        return
    entry = after.table(before.table_name)
    keep = {f.path for f in entry.files} if entry is not None else set()
    for old in before.files:
        if old.path not in keep:
            (folder / old.path).unlink(missing_ok=True)
