"""Write tables into a Cytomining Parquet warehouse, atomically.

Each table folder holds one Parquet file per dataset (``<dataset_id>.parquet``), so
``mode="overwrite"`` replaces a dataset's file and ``mode="append"`` adds new
datasets only. Every file is first written to a staging folder beside the target;
only when all are written are they renamed into place, and the manifest is
replaced last (``os.replace``). A failure removes the staging folder and leaves
the warehouse as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from iceberg_bioimage._version import __version__
from iceberg_bioimage.exceptions import StoreNotFoundError, WarehouseError
from iceberg_bioimage.models.results import WarehouseTableWrite
from iceberg_bioimage.models.warehouse import (
    MANIFEST_NAME,
    ROLES,
    WAREHOUSE_SPEC_VERSION,
    Layout,
    Mode,
    TableEntry,
    TableFile,
    WarehouseManifest,
    table_path,
)

STAGING_PREFIX = ".iceberg-bioimage-staging-"
PRODUCER = {"name": "iceberg-bioimage", "version": __version__}


@dataclass(frozen=True, kw_only=True)
class TableRequest:
    """A table to write: its dotted name, role, rows, keys, grain and sources."""

    table_name: str
    role: str
    data: pa.Table
    join_keys: tuple[str, ...]
    grain: dict[str, str | None]
    sources: tuple[str, ...] = ()


def load_manifest(root: str | os.PathLike[str]) -> WarehouseManifest:
    """Read ``warehouse_manifest.json``; fail fast on a missing file or unknown major."""
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        raise StoreNotFoundError(str(path), "no warehouse manifest here")
    try:
        manifest = WarehouseManifest.from_dict(json.loads(path.read_text()))
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


def _file_name(dataset_id: str | None) -> str:
    return f"{quote(dataset_id, safe='')}.parquet" if dataset_id is not None else ""


def _split_by_dataset(data: pa.Table) -> list[tuple[str | None, pa.Table]]:
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
    if "." not in request.table_name:
        raise WarehouseError(f"table {request.table_name}", "table names are dotted: ns.table")
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


def _plan(
    manifest: WarehouseManifest, request: TableRequest, mode: Mode
) -> tuple[list[tuple[str, pa.Table, TableFile]], list[TableFile]]:
    """New files to write, and the existing files the table keeps."""
    existing = manifest.table(request.table_name)
    kept = list(existing.files) if existing else []
    parts = _split_by_dataset(request.data)
    if parts == [(None, request.data)]:
        if mode == "overwrite":
            kept = []
        name = f"part-{uuid.uuid4().hex[:12]}.parquet"
        return [
            (name, request.data, TableFile(path=name, dataset_id=None, rows=request.data.num_rows))
        ], kept
    present = {f.dataset_id for f in kept}
    writes = []
    for dataset_id, rows in parts:
        if dataset_id in present and mode == "append":
            raise WarehouseError(
                f"table {request.table_name}",
                f"already holds dataset '{dataset_id}'; use mode='overwrite' (--mode overwrite) "
                "to replace it",
            )
        name = _file_name(dataset_id)
        writes.append((name, rows, TableFile(path=name, dataset_id=dataset_id, rows=rows.num_rows)))
    replaced = {d for d, _ in parts}
    return writes, [f for f in kept if f.dataset_id not in replaced]


def _stamp(table: pa.Table) -> pa.Table:
    metadata = dict(table.schema.metadata or {})
    metadata[b"iceberg-bioimage.producer"] = b"iceberg-bioimage"
    metadata[b"iceberg-bioimage.version"] = __version__.encode()
    return table.replace_schema_metadata(metadata)


def _entry(request: TableRequest, path: str, files: Sequence[TableFile], when: str) -> TableEntry:
    return TableEntry(
        table_name=request.table_name,
        role=request.role,
        path=path,
        join_keys=request.join_keys,
        columns=tuple({"name": f.name, "type": str(f.type)} for f in request.data.schema),
        grain=request.grain,
        files=tuple(sorted(files, key=lambda f: f.path)),
        provenance={
            "producer": f"iceberg-bioimage {__version__}",
            "sources": list(request.sources),
            "written_at": when,
        },
    )


def _write_manifest(root: Path, manifest: WarehouseManifest) -> Path:
    target = root / MANIFEST_NAME
    temporary = root / f".{MANIFEST_NAME}.{uuid.uuid4().hex}.tmp"
    temporary.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    os.replace(temporary, target)
    return target


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
    base = Path(root)
    manifest = (
        load_manifest(base)
        if (base / MANIFEST_NAME).exists()
        else WarehouseManifest(layout=layout, producer=PRODUCER)
    )
    if manifest.layout != layout:
        raise WarehouseError(
            str(base),
            f"this warehouse uses the {manifest.layout} layout; pass layout='{manifest.layout}'",
        )
    _check_folders(manifest, requests, layout)
    plans = []
    for request in requests:
        _check_request(request)
        plans.append((request, *_plan(manifest, request, mode)))
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        staged: list[tuple[Path, Path]] = []
        for request, writes, _kept in plans:
            folder = base / table_path(request.table_name, layout)
            for name, rows, _file in writes:
                source = staging / f"{len(staged)}.parquet"
                pq.write_table(_stamp(rows), source, compression="zstd")
                staged.append((source, folder / name))
        for source, target in staged:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        when = datetime.now(UTC).isoformat()
        results = []
        for request, writes, kept in plans:
            path = table_path(request.table_name, layout)
            entry = _entry(request, path, [*kept, *(f for _, _, f in writes)], when)
            _remove_dropped(base / path, manifest.table(request.table_name), entry)
            manifest = manifest.with_table(entry)
            results.append(
                WarehouseTableWrite(
                    table_name=request.table_name,
                    role=request.role,
                    path=path,
                    rows_written=sum(f.rows for _, _, f in writes),
                    datasets=tuple(sorted({f.dataset_id for _, _, f in writes if f.dataset_id})),
                )
            )
        manifest_path = _write_manifest(base, _updated(manifest, when))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest_path, results


def _updated(manifest: WarehouseManifest, when: str) -> WarehouseManifest:
    from dataclasses import replace

    return replace(manifest, updated_at=when, producer=PRODUCER)


def _remove_dropped(folder: Path, before: TableEntry | None, after: TableEntry) -> None:
    """Delete files the previous entry listed that the new one no longer does."""
    if before is None:
        return
    keep = {f.path for f in after.files}
    for old in before.files:
        if old.path not in keep:
            (folder / old.path).unlink(missing_ok=True)
