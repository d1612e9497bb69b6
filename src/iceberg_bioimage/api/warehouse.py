"""The Cytomining Parquet warehouse: export, read the manifest, validate (SPEC §6)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from iceberg_bioimage.models.names import check_table_name
from iceberg_bioimage.models.options import ProfileOptions, StoreOptions
from iceberg_bioimage.models.results import CytominingExportResult, WarehouseValidationResult
from iceberg_bioimage.models.warehouse import (
    TABLE_SPECS,
    Layout,
    Mode,
    RoleSpec,
    WarehouseManifest,
    qualified_table_name,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

    from iceberg_bioimage.profiles.read_and_join import JoinedProfiles

__all__ = [
    "export_catalog_to_cytomining_warehouse",
    "export_profiles_to_cytomining_warehouse",
    "export_store_to_cytomining_warehouse",
    "export_table_to_cytomining_warehouse",
    "load_warehouse_manifest",
    "validate_warehouse",
    "warehouse_requirements",
    "warehouse_roles",
]


def warehouse_roles() -> dict[str, RoleSpec]:
    """Every manifest role and its facts (namespace, keys, canonical table)."""
    return dict(TABLE_SPECS)


def warehouse_requirements() -> dict[str, str]:
    """The MUSTs ``validate-warehouse`` checks, by id (``[manifest]``, ``[roles]``…)."""
    from iceberg_bioimage.warehouse.validate import REQUIREMENTS

    return dict(REQUIREMENTS)


def validate_warehouse(root: str | os.PathLike[str]) -> WarehouseValidationResult:
    """Check a warehouse against the Cytomining Warehouse Specification (never raises).

    See :func:`iceberg_bioimage.warehouse.validate.validate_warehouse`.
    """
    from iceberg_bioimage.warehouse.validate import validate_warehouse as check

    return check(root)


def load_warehouse_manifest(warehouse_root: str | os.PathLike[str]) -> WarehouseManifest:
    """Read a warehouse's manifest (fails fast on an unknown major spec version)."""
    from iceberg_bioimage.warehouse.write import load_manifest

    return load_manifest(warehouse_root)


def export_store_to_cytomining_warehouse(
    uri: str | os.PathLike[str],
    warehouse_root: str | os.PathLike[str],
    *,
    profiles: Any = None,
    profile_dataset_id: str | None = None,
    include_chunks: bool = True,
    mode: Mode = "overwrite",
    layout: Layout = "namespaced",
    store: StoreOptions | None = None,
    options: ProfileOptions | None = None,
) -> CytominingExportResult:
    """Scan a store and write its tables (and joined profiles) to a Parquet warehouse.

    Profiles are written one table per compartment (``profiles.nuclei_profiles``…);
    when there is one compartment (the only one, or ``options.compartment``) it is
    also ``profiles.joined_profiles``, as is a single table of unknown compartment.
    Everything is computed before the warehouse is touched, so a failure (e.g.
    profiles violating the contract) leaves an existing warehouse as it was.
    ``store`` names the dataset and says how to read the store (storage options,
    TIFF-folder plates).

    Without profiles the store is scanned while its tables are written, a batch of
    wells at a time, so memory stays flat in the plate size; the files are staged
    and the manifest is written last, so a failure mid-plate leaves the warehouse
    as it was. Profiles are joined to the whole ``image_assets`` table, so with
    profiles the store is scanned first.
    """
    from iceberg_bioimage.api.scan import scan_store
    from iceberg_bioimage.tables.build import chunk_index_rows, image_assets_table
    from iceberg_bioimage.warehouse.export import export_requests, image_requests, profile_requests

    store = store or StoreOptions()
    if profiles is None:
        return _export_streamed(uri, warehouse_root, include_chunks, mode, layout, store)
    result = scan_store(
        uri,
        dataset_id=store.dataset_id,
        storage_options=store.storage_options,
        file_set=store.file_set,
    )
    images = image_assets_table(result)
    chunks = chunk_index_rows(result) if include_chunks else None
    requests = image_requests(images, chunks, [result.uri])
    joined: list[JoinedProfiles] = []
    if profiles is not None:
        more, joined = profile_requests(
            images,
            profiles,
            options=options or ProfileOptions(),
            profile_dataset_id=profile_dataset_id or result.dataset_id,
            sources=[result.uri],
        )
        requests += more
    return export_requests(
        warehouse_root, requests, mode=mode, layout=layout, joined=joined, warnings=result.warnings
    )


def _export_streamed(
    uri: str | os.PathLike[str],
    warehouse_root: str | os.PathLike[str],
    include_chunks: bool,
    mode: Mode,
    layout: Layout,
    store: StoreOptions,
) -> CytominingExportResult:
    """Export a store's image tables from a streamed scan (one pass, both tables at once)."""
    import dataclasses

    from iceberg_bioimage.formats import scan_stream
    from iceberg_bioimage.models import ScanOptions
    from iceberg_bioimage.tables.stream import CanonicalStream
    from iceberg_bioimage.warehouse.export import export_requests, image_requests

    scanned = scan_stream(
        uri,
        dataset_id=store.dataset_id,
        options=ScanOptions(file_set=store.file_set),
        storage_options=store.storage_options,
    )
    tables = ("image_assets", "chunk_index") if include_chunks else ("image_assets",)
    stream = CanonicalStream(scanned, tables)
    chunks = stream.part("chunk_index") if include_chunks else None
    requests = image_requests(stream.part("image_assets"), chunks, [scanned.uri])
    result = export_requests(warehouse_root, requests, mode=mode, layout=layout)
    # the scan's warnings are complete once the stream was written
    warnings = dict.fromkeys([*scanned.warnings, *result.warnings])
    return dataclasses.replace(result, warnings=tuple(warnings))


def export_catalog_to_cytomining_warehouse(
    catalog: str | Catalog,
    namespace: str,
    warehouse_root: str | os.PathLike[str],
    *,
    dataset_ids: Sequence[str] | None = None,
    profiles: Any = None,
    profile_dataset_id: str | None = None,
    include_chunks: bool = True,
    mode: Mode = "overwrite",
    layout: Layout = "namespaced",
    options: ProfileOptions | None = None,
) -> CytominingExportResult:
    """Write catalog tables (optionally some datasets) and joined profiles to a warehouse."""
    from iceberg_bioimage.catalog.read import load_named_table
    from iceberg_bioimage.warehouse.export import export_requests, image_requests, profile_requests

    only = [("dataset_id", "in", list(dataset_ids))] if dataset_ids else None
    images = load_named_table(catalog, namespace, "image_assets", filters=only)
    chunks = (
        load_named_table(catalog, namespace, "chunk_index", filters=only)
        if include_chunks
        else None
    )
    sources = sorted(set(images["uri"].to_pylist()))
    requests = image_requests(images, chunks, sources)
    joined: list[JoinedProfiles] = []
    if profiles is not None:
        more, joined = profile_requests(
            images,
            profiles,
            options=options or ProfileOptions(),
            profile_dataset_id=profile_dataset_id,
            sources=sources,
        )
        requests += more
    return export_requests(warehouse_root, requests, mode=mode, layout=layout, joined=joined)


def export_profiles_to_cytomining_warehouse(
    profiles: Any,
    warehouse_root: str | os.PathLike[str],
    *,
    table_name: str,
    role: str = "joined_profiles",
    profile_dataset_id: str | None = None,
    alias_map: Mapping[str, Any] | None = None,
    mode: Mode = "append",
    compartment: str | None = None,
) -> CytominingExportResult:
    """Add a profile table (e.g. pycytominer or coSMicQC output) to a warehouse.

    Key columns are written under their canonical names (aliases resolved, wells
    normalised) beside the original columns. Profile and QC tables lacking
    ``image_id`` get it from the warehouse's images (by well/site keys);
    ``role="quality_control"`` tables need a boolean ``qc_pass`` (``QC_Pass`` accepted).
    """
    from iceberg_bioimage.warehouse.export import (
        existing_layout,
        export_requests,
        profiles_request,
        warehouse_image_assets,
    )

    check_table_name(qualified_table_name(table_name, role))
    manifest_layout = existing_layout(warehouse_root)
    request = profiles_request(
        profiles,
        table_name=table_name,
        role=role,
        profile_dataset_id=profile_dataset_id,
        alias_map=dict(alias_map) if alias_map else None,
        image_assets=warehouse_image_assets(warehouse_root),
        compartment=compartment,
    )
    return export_requests(warehouse_root, [request], mode=mode, layout=manifest_layout)


def export_table_to_cytomining_warehouse(
    table: pa.Table,
    warehouse_root: str | os.PathLike[str],
    *,
    table_name: str,
    role: str,
    join_keys: Sequence[str],
    mode: Mode = "overwrite",
    grain: Mapping[str, str | None] | None = None,
) -> CytominingExportResult:
    """Write any Arrow table to the warehouse with a manifest entry.

    The warehouse must already have its images (``images.image_assets``), unless
    ``table`` is that table: a warehouse without them does not validate.
    """
    from iceberg_bioimage.warehouse.export import (
        existing_layout,
        export_requests,
        require_image_assets,
    )
    from iceberg_bioimage.warehouse.write import TableRequest

    check_table_name(qualified_table_name(table_name, role))
    request = TableRequest(
        table_name=qualified_table_name(table_name, role),
        role=role,
        data=table,
        join_keys=tuple(join_keys),
        grain=dict(grain or {}),
        sources=(),
    )
    require_image_assets(warehouse_root, request)
    return export_requests(
        warehouse_root, [request], mode=mode, layout=existing_layout(warehouse_root)
    )
