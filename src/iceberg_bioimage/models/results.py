"""Results of catalog operations, JSON-safe through ``to_dict()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iceberg_bioimage.exceptions import ContractError


@dataclass(frozen=True, kw_only=True)
class TableWrite:
    """What one operation did to one table."""

    table: str
    rows_written: int
    snapshot_id: int | None

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "table": self.table,
            "rows_written": self.rows_written,
            "snapshot_id": self.snapshot_id,
        }


@dataclass(frozen=True, kw_only=True)
class DatasetRecord:
    """One dataset written by an operation."""

    dataset_id: str
    uri: str
    image_count: int
    array_count: int
    chunk_count: int
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "dataset_id": self.dataset_id,
            "uri": self.uri,
            "image_count": self.image_count,
            "array_count": self.array_count,
            "chunk_count": self.chunk_count,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, kw_only=True)
class RegistrationResult:
    """Outcome of ``register_store`` / ``publish_chunk_index`` for one dataset."""

    catalog: str
    namespace: str
    dataset: DatasetRecord
    tables: tuple[TableWrite, ...] = field(default=())

    @property
    def dataset_id(self) -> str:
        """The dataset registered."""
        return self.dataset.dataset_id

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "catalog": self.catalog,
            "namespace": self.namespace,
            **self.dataset.to_dict(),
            "tables": [t.to_dict() for t in self.tables],
        }


@dataclass(frozen=True, kw_only=True)
class WarehouseIngestResult:
    """Outcome of ``ingest_stores_to_warehouse``: many datasets, one commit per table."""

    catalog: str
    namespace: str
    datasets: tuple[DatasetRecord, ...]
    tables: tuple[TableWrite, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "catalog": self.catalog,
            "namespace": self.namespace,
            "dataset_count": len(self.datasets),
            "datasets": [d.to_dict() for d in self.datasets],
            "tables": [t.to_dict() for t in self.tables],
        }


@dataclass(frozen=True, kw_only=True)
class DeregistrationResult:
    """Outcome of ``deregister_store``."""

    catalog: str
    namespace: str
    dataset_ids: tuple[str, ...]
    tables: tuple[TableWrite, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "catalog": self.catalog,
            "namespace": self.namespace,
            "dataset_ids": list(self.dataset_ids),
            "tables": [t.to_dict() for t in self.tables],
        }


@dataclass(frozen=True, kw_only=True)
class WarehouseTableWrite:
    """What one export did to one warehouse table."""

    table_name: str
    role: str
    path: str
    rows_written: int
    datasets: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "table_name": self.table_name,
            "role": self.role,
            "path": self.path,
            "rows_written": self.rows_written,
            "datasets": list(self.datasets),
        }


@dataclass(frozen=True, kw_only=True)
class CytominingExportResult:
    """Outcome of an export to a Cytomining Parquet warehouse."""

    warehouse_root: str
    layout: str
    mode: str
    manifest_path: str
    tables: tuple[WarehouseTableWrite, ...]
    join: dict[str, Any] | None = None
    joins: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values (``join``: the one join; ``joins``: one per compartment)."""
        return {
            "warehouse_root": self.warehouse_root,
            "layout": self.layout,
            "mode": self.mode,
            "manifest_path": self.manifest_path,
            "tables": [t.to_dict() for t in self.tables],
            "join": self.join,
            "joins": list(self.joins),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, kw_only=True)
class CropExportResult:
    """Outcome of an export of single-cell crops (``images.image_crops``)."""

    warehouse_root: str
    manifest_path: str
    table: WarehouseTableWrite
    source_images: WarehouseTableWrite | None
    crops: int
    skipped: int
    unmatched: int
    reads: dict[str, int]
    warnings: tuple[str, ...] = ()
    profile_with_images: WarehouseTableWrite | None = None
    labelled: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "warehouse_root": self.warehouse_root,
            "manifest_path": self.manifest_path,
            "table": self.table.to_dict(),
            "source_images": self.source_images.to_dict() if self.source_images else None,
            "profile_with_images": (
                self.profile_with_images.to_dict() if self.profile_with_images else None
            ),
            "labelled": self.labelled,
            "crops": self.crops,
            "skipped": self.skipped,
            "unmatched": self.unmatched,
            "reads": dict(self.reads),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, kw_only=True)
class PlateReportResult:
    """Outcome of a plate report: the page written, what it shows and what was read."""

    output: str
    dataset_id: str
    wells: int
    wells_missing: int
    fields: int
    fields_missing: int
    absent_chunks: int
    cells: int
    crops: int
    heatmaps: int
    html_bytes: int
    reads: dict[str, int]
    levels: tuple[int, ...]
    thumbnails_table: WarehouseTableWrite | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "output": self.output,
            "dataset_id": self.dataset_id,
            "wells": self.wells,
            "wells_missing": self.wells_missing,
            "fields": self.fields,
            "fields_missing": self.fields_missing,
            "absent_chunks": self.absent_chunks,
            "cells": self.cells,
            "crops": self.crops,
            "heatmaps": self.heatmaps,
            "html_bytes": self.html_bytes,
            "reads": dict(self.reads),
            "levels": list(self.levels),
            "thumbnails_table": (
                self.thumbnails_table.to_dict() if self.thumbnails_table else None
            ),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, kw_only=True)
class TableMaintenance:
    """What ``maintain`` did (or, on a dry run, would do) to one table."""

    table: str
    snapshots_expired: int
    snapshots_kept: int
    metadata_files_removed: int
    manifest_files_removed: int
    data_files_removed: int

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "table": self.table,
            "snapshots_expired": self.snapshots_expired,
            "snapshots_kept": self.snapshots_kept,
            "metadata_files_removed": self.metadata_files_removed,
            "manifest_files_removed": self.manifest_files_removed,
            "data_files_removed": self.data_files_removed,
        }


@dataclass(frozen=True, kw_only=True)
class MaintenanceResult:
    """Outcome of ``maintain_catalog``: per-table counts and notes (e.g. what was not done)."""

    catalog: str
    namespace: str
    dry_run: bool
    tables: tuple[TableMaintenance, ...] = field(default=())
    notes: tuple[str, ...] = ()

    def total(self, name: str) -> int:
        """Sum of one count (e.g. ``"metadata_files_removed"``) over the tables."""
        return sum(int(getattr(table, name)) for table in self.tables)

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "catalog": self.catalog,
            "namespace": self.namespace,
            "dry_run": self.dry_run,
            "tables": [t.to_dict() for t in self.tables],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, kw_only=True)
class ContractValidationResult:
    """Outcome of checking a profile table against the microscopy join contract.

    ``join_keys`` are the canonical keys the profiles can join on (``object_id``
    never is one); ``resolved_aliases`` maps each key found in a column to that
    column; ``profile_dataset_id`` is the dataset id applied to every row, or None
    when ``dataset_id`` comes from a column; ``object_key`` is the object column.
    """

    source: str
    row_count: int
    is_valid: bool
    join_keys: tuple[str, ...]
    resolved_aliases: dict[str, str]
    missing_columns: tuple[str, ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    profile_dataset_id: str | None
    object_key: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "source": self.source,
            "row_count": self.row_count,
            "is_valid": self.is_valid,
            "join_keys": list(self.join_keys),
            "resolved_aliases": dict(self.resolved_aliases),
            "missing_columns": list(self.missing_columns),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "profile_dataset_id": self.profile_dataset_id,
            "object_key": self.object_key,
        }

    def raise_for_errors(self) -> None:
        """Raise :class:`ContractError` listing every error when the table is invalid."""
        if not self.is_valid:
            raise ContractError(self.source, "; ".join(self.errors))


@dataclass(frozen=True, kw_only=True)
class WarehouseValidationResult:
    """Outcome of :func:`validate_warehouse`.

    ``layout`` is ``"namespaced"`` or ``"flat"`` (None when unknown);
    ``failed_requirements`` are the ids of :data:`REQUIREMENTS` some error breaks;
    ``tables`` has one dict per table (``table_name``, ``role``, ``path``,
    ``rows`` found in the Parquet footers, ``datasets``, ``ok``).
    """

    root: str
    is_valid: bool
    layout: str | None
    spec_version: str | None
    failed_requirements: tuple[str, ...]
    tables: tuple[dict[str, Any], ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-safe values."""
        return {
            "root": self.root,
            "is_valid": self.is_valid,
            "layout": self.layout,
            "spec_version": self.spec_version,
            "failed_requirements": list(self.failed_requirements),
            "tables": [{**t, "datasets": list(t["datasets"])} for t in self.tables],
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }
