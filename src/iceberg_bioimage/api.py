"""Public verbs. Thin: each delegates to adapters, models and publishing.

Importing this module is cheap: pyarrow, pyiceberg, DuckDB and the layers built on
them are imported inside the verbs that use them, so ``scan`` never pays for the
catalog and a catalog command never pays for DuckDB.

``create_ome_arrow`` and ``scan_ome_arrow`` (optional extra ``ome-arrow``) are
re-exported from :mod:`iceberg_bioimage.integrations.ome_arrow`.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from iceberg_bioimage import adapters
from iceberg_bioimage.exceptions import StoreNotFoundError
from iceberg_bioimage.integrations.ome_arrow import (  # noqa: F401 - public re-exports
    create_ome_arrow,
    scan_ome_arrow,
)
from iceberg_bioimage.models import DatasetSummary, ScanOptions, ScanResult
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.names import check_table_name
from iceberg_bioimage.models.results import (
    CropExportResult,
    CytominingExportResult,
    DatasetRecord,
    DeregistrationResult,
    MaintenanceResult,
    RegistrationResult,
    TableWrite,
    WarehouseIngestResult,
)
from iceberg_bioimage.models.warehouse import (
    Layout,
    Mode,
    WarehouseManifest,
    qualified_table_name,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from distributed import Client
    from pyiceberg.catalog import Catalog
    from pyiceberg.expressions import BooleanExpression

    from iceberg_bioimage.integrations.catalog import ResolvedCatalog
    from iceberg_bioimage.integrations.crops.run import CropOptions, ImageCrops
    from iceberg_bioimage.profiles.source_join import JoinedProfiles, ProfileOptions
    from iceberg_bioimage.publishing.warehouse import TableRequest


TableName = Literal["image_assets", "chunk_index"]


def scan_store(
    uri: str | os.PathLike[str],
    *,
    dataset_id: str | None = None,
    stat_chunks: bool = False,
    read_shard_index: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    instrument: str | None = None,
    pattern: str | None = None,
    plate_id: str | None = None,
    channel_names: Sequence[str] | None = None,
    file_set: FileSetOptions | None = None,
) -> ScanResult:
    """Scan a Zarr v2/v3 store or a TIFF file, reading metadata only.

    Args:
        uri: local path or fsspec URL (``s3://``, ``gs://``, ``http(s)://``...).
        dataset_id: overrides the default (the store name minus its suffix).
        stat_chunks: list each array's stored objects once to fill chunk sizes
            and mark absent chunks.
        read_shard_index: read shard indexes to give inner chunks byte ranges.
        storage_options: passed to fsspec for remote stores.
        instrument, pattern, plate_id, channel_names: how to read a folder of
            single-image TIFFs (or a LoadData CSV) as a plate; see
            :class:`~iceberg_bioimage.models.file_sets.FileSetOptions`, which
            ``file_set`` gives whole (the other four override its fields).

    Raises:
        StoreNotFoundError: ``uri`` does not exist.
        MetadataError: the store's metadata is unreadable or not an image.
    """
    loose = FileSetOptions.build(
        instrument=instrument, pattern=pattern, plate_id=plate_id, channel_names=channel_names
    )
    if file_set is not None:
        loose = dataclasses.replace(
            file_set,
            **{k: v for k, v in vars(loose).items() if v is not None and k != "plate_columns"},
        )
    options = ScanOptions(
        stat_chunks=stat_chunks, read_shard_index=read_shard_index, file_set=loose
    )
    return adapters.scan(
        uri, dataset_id=dataset_id, options=options, storage_options=storage_options
    )


def scan_result_as_arrow_table(
    result: ScanResult, *, table: TableName = "image_assets"
) -> pa.Table:
    """Build a canonical table (``image_assets`` or ``chunk_index``) from a scan."""
    from iceberg_bioimage.publishing.arrow_tables import canonical_table

    return canonical_table(result, table)


def scan_as_arrow_table(
    uri: str | os.PathLike[str],
    *,
    table: TableName = "image_assets",
    **scan_options: Any,
) -> pa.Table:
    """Scan ``uri`` and return a canonical table, no catalog involved."""
    return scan_result_as_arrow_table(scan_store(uri, **scan_options), table=table)


def summarize_store(
    uri: str | os.PathLike[str],
    *,
    dataset_id: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> DatasetSummary:
    """Scan ``uri`` and summarise it: counts, shapes, dtypes, channels, wells."""
    return DatasetSummary.from_scan(
        scan_store(uri, dataset_id=dataset_id, storage_options=storage_options, file_set=file_set)
    )


# -- Iceberg control plane ----------------------------------------------------


def register_store(
    uri: str | os.PathLike[str],
    catalog: str | Catalog,
    namespace: str,
    *,
    publish_chunks: bool = False,
    dataset_id: str | None = None,
    replace: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
) -> RegistrationResult:
    """Scan ``uri`` and replace its dataset's rows in the catalog's tables.

    One commit per table (``image_assets``, plus ``chunk_index`` when
    ``publish_chunks``); re-registering gives the same rows, never duplicates.
    A dataset id already registered for another URI is refused unless ``replace``.
    """
    from iceberg_bioimage.integrations.catalog import resolve_catalog
    from iceberg_bioimage.publishing.registration import (
        CANONICAL_TABLES,
        prepare_batch,
        publish_batch,
    )

    resolved = resolve_catalog(catalog)
    tables = CANONICAL_TABLES if publish_chunks else ("image_assets",)
    scanned = scan_store(
        uri, dataset_id=dataset_id, storage_options=storage_options, file_set=file_set
    )
    batch = prepare_batch([scanned], tables)
    writes = publish_batch(resolved, namespace, batch, replace=replace)
    return RegistrationResult(
        catalog=resolved.name, namespace=namespace, dataset=batch.records[0], tables=writes
    )


def publish_chunk_index(
    uri: str | os.PathLike[str],
    catalog: str | Catalog,
    namespace: str,
    *,
    dataset_id: str | None = None,
    replace: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> RegistrationResult:
    """Scan ``uri`` and replace its dataset's rows in ``chunk_index`` only."""
    from iceberg_bioimage.integrations.catalog import resolve_catalog
    from iceberg_bioimage.publishing.registration import prepare_batch, publish_batch

    resolved = resolve_catalog(catalog)
    batch = prepare_batch(
        [scan_store(uri, dataset_id=dataset_id, storage_options=storage_options)],
        ("chunk_index",),
    )
    writes = publish_batch(resolved, namespace, batch, replace=replace)
    return RegistrationResult(
        catalog=resolved.name, namespace=namespace, dataset=batch.records[0], tables=writes
    )


def ingest_stores_to_warehouse(
    uris: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    catalog: str | Catalog,
    namespace: str,
    *,
    publish_chunks: bool = True,
    glob: str | None = None,
    workers: int | None = None,
    replace: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    on_scanned: Callable[[DatasetRecord], None] | None = None,
    client: Client | None = None,
    file_set: FileSetOptions | None = None,
) -> WarehouseIngestResult:
    """Scan many stores in parallel and publish them with ONE commit per table.

    ``uris`` are stores, or folders searched with ``glob`` (e.g. ``"*.ome.zarr"``).
    If any store fails to scan, nothing is committed and the error names it.
    ``workers`` threads scan the stores here; with ``client`` (a
    ``dask.distributed.Client``, extra ``dask``) the stores are scanned and their
    data files written on the Dask workers instead, each store retried a bounded
    number of times, and this process commits. ``on_scanned`` is called with each
    dataset as its store is done. ``file_set`` says how to read TIFF-folder plates
    (instrument, pattern, plate id, channel names; default: detected). See
    :mod:`iceberg_bioimage.integrations.dask_ingest`.
    """
    from iceberg_bioimage.integrations.catalog import resolve_catalog
    from iceberg_bioimage.publishing.registration import CANONICAL_TABLES, expand_uris

    resolved = resolve_catalog(catalog)
    listed = [uris] if isinstance(uris, str | os.PathLike) else list(uris)
    stores = expand_uris(listed, glob, storage_options)
    if not stores:
        raise StoreNotFoundError(
            ", ".join(map(str, listed)) or "(no stores)",
            f"nothing to ingest{f' matching {glob!r}' if glob else ''}",
        )
    tables = CANONICAL_TABLES if publish_chunks else ("image_assets",)
    if client is not None:
        from iceberg_bioimage.integrations.dask_ingest import ingest_on_dask

        records, writes = ingest_on_dask(
            client,
            resolved,
            namespace,
            stores,
            tables,
            replace=replace,
            storage_options=storage_options,
            on_stored=on_scanned,
            options=ScanOptions(file_set=file_set),
        )
    else:
        records, writes = _ingest_here(
            resolved,
            namespace,
            stores,
            tables,
            workers,
            replace,
            storage_options,
            on_scanned,
            ScanOptions(file_set=file_set),
        )
    return WarehouseIngestResult(
        catalog=resolved.name, namespace=namespace, datasets=records, tables=writes
    )


def _ingest_here(
    resolved: ResolvedCatalog,
    namespace: str,
    stores: Sequence[str],
    tables: Sequence[str],
    workers: int | None,
    replace: bool,
    storage_options: Mapping[str, Any] | None,
    on_scanned: Callable[[DatasetRecord], None] | None,
    options: ScanOptions,
) -> tuple[tuple[DatasetRecord, ...], tuple[TableWrite, ...]]:
    """Scan on local threads, then publish from this process."""
    from iceberg_bioimage.publishing.registration import (
        dataset_record,
        prepare_batch,
        publish_batch,
        scan_many,
    )

    results = scan_many(
        stores,
        options=options,
        workers=workers,
        storage_options=storage_options,
        on_scanned=(lambda result: on_scanned(dataset_record(result))) if on_scanned else None,
    )
    batch = prepare_batch(results, tables)
    del results
    return batch.records, publish_batch(resolved, namespace, batch, replace=replace)


def deregister_store(
    uri_or_dataset_id: str | os.PathLike[str], catalog: str | Catalog, namespace: str
) -> DeregistrationResult:
    """Remove a dataset's rows (given its id or its store URI) from both tables."""
    from iceberg_bioimage.integrations.catalog import namespace_parts, resolve_catalog
    from iceberg_bioimage.publishing.iceberg_sink import delete_datasets
    from iceberg_bioimage.publishing.registration import CANONICAL_TABLES, datasets_to_remove

    resolved = resolve_catalog(catalog)
    parts = namespace_parts(namespace)
    ids = datasets_to_remove(resolved, parts, os.fspath(uri_or_dataset_id))
    writes = [delete_datasets(resolved.catalog, parts, table, ids) for table in CANONICAL_TABLES]
    return DeregistrationResult(
        catalog=resolved.name,
        namespace=namespace,
        dataset_ids=tuple(ids),
        tables=tuple(w for w in writes if w is not None),
    )


def list_catalog_tables(catalog: str | Catalog, namespace: str) -> list[str]:
    """Names of the tables in ``namespace``."""
    from iceberg_bioimage.integrations.catalog import namespace_parts, resolve_catalog
    from iceberg_bioimage.integrations.catalog_tables import list_tables

    return list_tables(resolve_catalog(catalog).catalog, namespace_parts(namespace))


def find_interrupted_registrations(catalog: str | Catalog, namespace: str) -> dict[str, str]:
    """Datasets whose last registration was killed between its two commits.

    Returns dataset id → registration id. ``chunk_index`` is committed before
    ``image_assets``, so such a dataset shows its previous images (or none) with
    new chunks; register the store again to complete it.
    """
    from iceberg_bioimage.integrations.catalog import resolve_catalog
    from iceberg_bioimage.publishing.registration import interrupted_registrations

    return interrupted_registrations(resolve_catalog(catalog), namespace)


def maintain_catalog(
    catalog: str | Catalog,
    namespace: str,
    *,
    keep_last: int | None = None,
    older_than: datetime.datetime | None = None,
    dry_run: bool = False,
) -> MaintenanceResult:
    """Expire old snapshots and remove orphan files in every table of ``namespace``.

    Snapshots beyond the newest ``keep_last`` and/or older than ``older_than`` are
    expired (none when neither is given; the current snapshot always stays). Files
    no remaining snapshot or metadata version references (lost commit races, expired
    snapshots) are removed when last modified before ``older_than``, else before one
    hour ago, so a writer mid-commit is never hurt. ``dry_run`` counts, changes nothing.
    See :mod:`iceberg_bioimage.publishing.maintenance`.
    """
    from iceberg_bioimage.integrations.catalog import namespace_parts, resolve_catalog
    from iceberg_bioimage.integrations.catalog_tables import list_tables
    from iceberg_bioimage.publishing.maintenance import MANIFEST_REWRITE_NOTE, maintain_table

    if keep_last is not None and keep_last < 1:
        raise ValueError("keep_last must be at least 1")
    resolved = resolve_catalog(catalog)
    parts = namespace_parts(namespace)
    tables = tuple(
        maintain_table(
            resolved.catalog,
            (*parts, name),
            keep_last=keep_last,
            older_than=older_than,
            dry_run=dry_run,
        )
        for name in list_tables(resolved.catalog, parts)
    )
    return MaintenanceResult(
        catalog=resolved.name,
        namespace=namespace,
        dry_run=dry_run,
        tables=tables,
        notes=(MANIFEST_REWRITE_NOTE,),
    )


def load_catalog_table(
    catalog: str | Catalog,
    namespace: str,
    table: str,
    *,
    columns: Sequence[str] | None = None,
    filters: BooleanExpression | Iterable[Sequence[Any]] | None = None,
    snapshot_id: int | None = None,
) -> pa.Table:
    """Read a catalog table into Arrow; ``snapshot_id`` reads an earlier state.

    ``filters`` is a PyIceberg expression or ``(column, op, value)`` tuples with ops
    ``= == != < <= > >= in not in like is null is not null`` (``like``: prefix only).
    """
    from iceberg_bioimage.integrations.catalog import namespace_parts, resolve_catalog
    from iceberg_bioimage.integrations.catalog_tables import load_table_arrow

    return load_table_arrow(
        resolve_catalog(catalog).catalog,
        namespace_parts(namespace),
        table,
        columns=columns,
        filters=filters,
        snapshot_id=snapshot_id,
    )


# -- Joins and the Cytomining warehouse -----------------------------------------


def join_image_assets_with_profiles(
    image_assets: pa.Table,
    profiles: Any,
    *,
    chunk_index: pa.Table | None = None,
    profile_dataset_id: str | None = None,
    alias_map: Mapping[str, Any] | None = None,
    compartment: str | None = None,
    image_table: Any = None,
    site_base: int | None = None,
    platemap: str | os.PathLike[str] | None = None,
) -> pa.Table:
    """Join profiles to image metadata with DuckDB on the most specific shared keys.

    ``profiles`` is a table, a file, a folder (CellProfiler output or per-site
    folders) or a CellProfiler SQLite; ``compartment`` picks one of its tables when
    it has several; ``image_table`` gives the Image table of ``ImageNumber``-keyed
    rows; ``site_base`` (0 or 1) says where profile site numbers start; ``platemap``
    annotates the rows. See :func:`iceberg_bioimage.profiles.join.join_image_assets_with_profiles`;
    keys, grain and matched/unmatched counts are in :func:`join_report`.
    """
    from iceberg_bioimage.profiles.source_join import ProfileOptions, join_profile_source
    from iceberg_bioimage.profiles.sources import read_profile_set

    profile_set = read_profile_set(profiles, image_table=image_table, alias_map=alias_map)
    profile_set.select(compartment)  # one table: refuses a missing or ambiguous choice first
    options = ProfileOptions(compartment=compartment, site_base=site_base, platemap=platemap)
    (joined,) = join_profile_source(
        image_assets,
        profile_set,
        options=options,
        chunk_index=chunk_index,
        profile_dataset_id=profile_dataset_id,
        alias_map=alias_map,
    )
    return joined.to_table()


def join_profiles_with_store(
    uri: str | os.PathLike[str],
    profiles: Any,
    *,
    profile_dataset_id: str | None = None,
    include_chunks: bool = False,
    alias_map: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
    compartment: str | None = None,
    image_table: Any = None,
    site_base: int | None = None,
    platemap: str | os.PathLike[str] | None = None,
) -> pa.Table:
    """Scan a store and join profiles to its images (dataset id defaults to the store's)."""
    from iceberg_bioimage.publishing.arrow_tables import canonical_table

    result = scan_store(uri, storage_options=storage_options, file_set=file_set)
    return join_image_assets_with_profiles(
        canonical_table(result, "image_assets"),
        profiles,
        chunk_index=canonical_table(result, "chunk_index") if include_chunks else None,
        profile_dataset_id=profile_dataset_id or result.dataset_id,
        alias_map=alias_map,
        compartment=compartment,
        image_table=image_table,
        site_base=site_base,
        platemap=platemap,
    )


def join_catalog_image_assets_with_profiles(
    catalog: str | Catalog,
    namespace: str,
    profiles: Any,
    *,
    image_assets_table: str = "image_assets",
    chunk_index_table: str | None = None,
    profile_dataset_id: str | None = None,
    alias_map: Mapping[str, Any] | None = None,
    compartment: str | None = None,
    image_table: Any = None,
    site_base: int | None = None,
    platemap: str | os.PathLike[str] | None = None,
) -> pa.Table:
    """Load catalog tables (only the profiles' datasets), then join profiles to them."""
    import pyarrow as pa

    from iceberg_bioimage.profiles.sources import read_profile_set

    aliases = dict(alias_map) if alias_map else None
    profile_set = read_profile_set(profiles, image_table=image_table, alias_map=aliases)
    chosen, table = profile_set.select(compartment)
    keyed = table if isinstance(table, pa.Table) or profile_set.image is None else profile_set.image
    ids = _profile_dataset_ids(keyed, profile_dataset_id, aliases)
    only = [("dataset_id", "in", ids)]
    images = load_catalog_table(catalog, namespace, image_assets_table, filters=only)
    chunks = (
        load_catalog_table(catalog, namespace, chunk_index_table, filters=only)
        if chunk_index_table
        else None
    )
    return join_image_assets_with_profiles(
        images,
        profile_set,
        chunk_index=chunks,
        profile_dataset_id=profile_dataset_id,
        alias_map=aliases,
        compartment=chosen,
        site_base=site_base,
        platemap=platemap,
    )


def _profile_dataset_ids(
    profiles: pa.Table, profile_dataset_id: str | None, alias_map: Any
) -> list[str]:
    import pyarrow.compute as pc

    from iceberg_bioimage.profiles.contract import (
        canonical_profile_keys,
        validate_microscopy_profile_table,
    )

    contract = validate_microscopy_profile_table(
        profiles, profile_dataset_id=profile_dataset_id, alias_map=alias_map
    )
    contract.raise_for_errors()
    keys = canonical_profile_keys(profiles, contract)
    return sorted(v for v in pc.unique(keys["dataset_id"]).to_pylist() if v is not None)


def _export(
    warehouse_root: str | os.PathLike[str],
    requests: list[TableRequest],
    *,
    mode: Mode,
    layout: Layout,
    joined: Sequence[JoinedProfiles] = (),
    warnings: Sequence[str] = (),
) -> CytominingExportResult:
    from iceberg_bioimage.publishing.warehouse import write_tables

    manifest_path, writes = write_tables(warehouse_root, requests, mode=mode, layout=layout)
    reports = [j.report for j in joined]
    warnings = [*warnings, *_join_warnings(reports)]
    return CytominingExportResult(
        warehouse_root=os.fspath(warehouse_root),
        layout=layout,
        mode=mode,
        manifest_path=str(manifest_path),
        tables=tuple(writes),
        join=reports[0] if len(reports) == 1 else None,
        joins=tuple(reports),
        warnings=tuple(dict.fromkeys(warnings)),
    )


def _join_warnings(reports: Sequence[dict[str, Any]]) -> list[str]:
    """Each join's warnings and its unmatched rows, named by compartment."""
    warnings = []
    for report in reports:
        where = f"{report['compartment']}: " if report.get("compartment") else ""
        warnings += [f"{where}{w}" for w in report.get("warnings", [])]
        if report.get("unmatched_rows"):
            warnings.append(f"{where}{report['unmatched_rows']:,} profile rows match no image")
    return warnings


def _profile_requests(
    images: pa.Table,
    profiles: Any,
    *,
    options: ProfileOptions,
    profile_dataset_id: str | None,
    alias_map: Mapping[str, Any] | None,
    sources: Sequence[str],
) -> tuple[list[TableRequest], list[JoinedProfiles]]:
    from iceberg_bioimage.profiles.source_join import join_profile_source
    from iceberg_bioimage.publishing.cytomining import joined_profile_requests, platemap_request

    joined = join_profile_source(
        images,
        profiles,
        options=options,
        profile_dataset_id=profile_dataset_id,
        alias_map=alias_map,
    )
    one = options.compartment is not None or len(joined) == 1
    requests = joined_profile_requests(joined, chosen=one, sources=sources)
    if options.platemap is not None:
        requests.append(platemap_request(options.platemap))
    return requests, joined


def export_store_to_cytomining_warehouse(
    uri: str | os.PathLike[str],
    warehouse_root: str | os.PathLike[str],
    *,
    profiles: Any = None,
    profile_dataset_id: str | None = None,
    include_chunks: bool = True,
    mode: Mode = "overwrite",
    layout: Layout = "namespaced",
    dataset_id: str | None = None,
    alias_map: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
    compartment: str | None = None,
    image_table: Any = None,
    site_base: int | None = None,
    platemap: str | os.PathLike[str] | None = None,
) -> CytominingExportResult:
    """Scan a store and write its tables (and joined profiles) to a Parquet warehouse.

    Profiles are written one table per compartment (``profiles.nuclei_profiles``…);
    when there is one compartment (the only one, or the ``compartment`` chosen) it
    is also ``profiles.joined_profiles``, as is a single table of unknown compartment. Everything is
    computed before the warehouse is touched, so a failure (e.g. profiles violating
    the contract) leaves an existing warehouse as it was.
    """
    from iceberg_bioimage.profiles.source_join import ProfileOptions
    from iceberg_bioimage.publishing.arrow_tables import chunk_index_rows, image_assets_table
    from iceberg_bioimage.publishing.cytomining import image_requests

    result = scan_store(
        uri, dataset_id=dataset_id, storage_options=storage_options, file_set=file_set
    )
    images = image_assets_table(result)
    chunks = chunk_index_rows(result) if include_chunks else None
    requests = image_requests(images, chunks, [result.uri])
    joined: list[JoinedProfiles] = []
    if profiles is not None:
        options = ProfileOptions(
            compartment=compartment, image_table=image_table, site_base=site_base, platemap=platemap
        )
        more, joined = _profile_requests(
            images,
            profiles,
            options=options,
            profile_dataset_id=profile_dataset_id or result.dataset_id,
            alias_map=alias_map,
            sources=[result.uri],
        )
        requests += more
    return _export(
        warehouse_root, requests, mode=mode, layout=layout, joined=joined, warnings=result.warnings
    )


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
    alias_map: Mapping[str, Any] | None = None,
    compartment: str | None = None,
    image_table: Any = None,
    site_base: int | None = None,
    platemap: str | os.PathLike[str] | None = None,
) -> CytominingExportResult:
    """Write catalog tables (optionally some datasets) and joined profiles to a warehouse."""
    from iceberg_bioimage.profiles.source_join import ProfileOptions
    from iceberg_bioimage.publishing.cytomining import image_requests

    only = [("dataset_id", "in", list(dataset_ids))] if dataset_ids else None
    images = load_catalog_table(catalog, namespace, "image_assets", filters=only)
    chunks = (
        load_catalog_table(catalog, namespace, "chunk_index", filters=only)
        if include_chunks
        else None
    )
    sources = sorted(set(images["uri"].to_pylist()))
    requests = image_requests(images, chunks, sources)
    joined: list[JoinedProfiles] = []
    if profiles is not None:
        options = ProfileOptions(
            compartment=compartment, image_table=image_table, site_base=site_base, platemap=platemap
        )
        more, joined = _profile_requests(
            images,
            profiles,
            options=options,
            profile_dataset_id=profile_dataset_id,
            alias_map=alias_map,
            sources=sources,
        )
        requests += more
    return _export(warehouse_root, requests, mode=mode, layout=layout, joined=joined)


def _warehouse_image_assets(root: str | os.PathLike[str]) -> pa.Table | None:
    from iceberg_bioimage.publishing.warehouse import load_manifest, read_table

    try:
        manifest = load_manifest(root)
    except StoreNotFoundError:
        return None
    entry = next((t for t in manifest.tables if t.role == "image_assets"), None)
    if entry is None:
        return None
    return read_table(root, entry)


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
    from iceberg_bioimage.publishing.cytomining import profiles_request

    check_table_name(qualified_table_name(table_name, role))
    manifest_layout = _existing_layout(warehouse_root)
    request = profiles_request(
        profiles,
        table_name=table_name,
        role=role,
        profile_dataset_id=profile_dataset_id,
        alias_map=dict(alias_map) if alias_map else None,
        image_assets=_warehouse_image_assets(warehouse_root),
        compartment=compartment,
    )
    return _export(warehouse_root, [request], mode=mode, layout=manifest_layout)


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
    """Write any Arrow table to the warehouse with a manifest entry."""
    from iceberg_bioimage.publishing.warehouse import TableRequest

    check_table_name(qualified_table_name(table_name, role))
    request = TableRequest(
        table_name=qualified_table_name(table_name, role),
        role=role,
        data=table,
        join_keys=tuple(join_keys),
        grain=dict(grain or {}),
        sources=(),
    )
    return _export(warehouse_root, [request], mode=mode, layout=_existing_layout(warehouse_root))


def _existing_layout(root: str | os.PathLike[str]) -> Layout:
    from iceberg_bioimage.publishing.warehouse import load_manifest

    try:
        return load_manifest(root).layout
    except StoreNotFoundError:
        return "namespaced"


def load_warehouse_manifest(warehouse_root: str | os.PathLike[str]) -> WarehouseManifest:
    """Read a warehouse's manifest (fails fast on an unknown major spec version)."""
    from iceberg_bioimage.publishing.warehouse import load_manifest

    return load_manifest(warehouse_root)


BoxColumnNames = Mapping[str, str] | Sequence[str]


def _crop_objects(
    source: str | os.PathLike[str] | None,
    table: pa.Table,
    label: str,
    *,
    catalog: str | Catalog | None,
    namespace: str | None,
    profile_dataset_id: str | None,
    where: Iterable[Sequence[Any]] | None,
    storage_options: Mapping[str, Any] | None,
    options: CropOptions,
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Objects (profile rows with ``image_id``/``object_id``), image_assets and chunk_index."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from iceberg_bioimage.exceptions import ContractError
    from iceberg_bioimage.integrations.crops.objects import (
        dataset_ids_of,
        has_image_ids,
        identified,
    )
    from iceberg_bioimage.integrations.duckdb import query_metadata_table
    from iceberg_bioimage.publishing.arrow_tables import canonical_table

    if where:
        table = query_metadata_table(table, filters=where)
    keyed = has_image_ids(table)
    if source is not None:
        result = scan_store(source, read_shard_index=True, storage_options=storage_options)
        images = canonical_table(result, "image_assets")
        profile_dataset_id = profile_dataset_id or result.dataset_id
    elif catalog is not None and namespace is not None:
        ids = (
            dataset_ids_of(table["image_id"])
            if keyed
            else _profile_dataset_ids(table, profile_dataset_id, None)
        )
        images = load_catalog_table(
            catalog, namespace, "image_assets", filters=[("dataset_id", "in", ids)]
        )
    else:
        raise ContractError(label, "give a store, or catalog= and namespace=")
    if not keyed:  # image_id from the join; object_id from ObjectNumber, never the join's
        numbered = table.append_column("_crop_row", pa.array(np.arange(table.num_rows)))
        joined = join_image_assets_with_profiles(
            images, numbered, profile_dataset_id=profile_dataset_id
        )
        table = joined.take(pc.sort_indices(joined["_crop_row"])).drop_columns(["_crop_row"])
        if "object_id" in table.column_names:
            table = table.drop_columns(["object_id"])
    objects = identified(table, options.box_columns.compartment, label)
    if source is not None:
        return objects, images, canonical_table(result, "chunk_index")
    wanted = sorted(v for v in pc.unique(objects["image_id"]).to_pylist() if v)
    filters = [("dataset_id", "in", dataset_ids_of(pa.array(wanted))), ("image_id", "in", wanted)]
    return objects, images, load_catalog_table(catalog, namespace, "chunk_index", filters=filters)


def _crop_options(
    profiles_columns: Sequence[str],
    *,
    size: int | None,
    bbox_columns: BoxColumnNames | None,
    channels: Sequence[str | int] | None,
    level: int,
    compartment: str | None,
    label: str,
    whole_images: bool = False,
) -> CropOptions:
    from iceberg_bioimage.integrations.crops.boxes import resolve_box_columns
    from iceberg_bioimage.integrations.crops.run import CropOptions

    box_columns = resolve_box_columns(
        profiles_columns, size=size, bbox_columns=bbox_columns, compartment=compartment, label=label
    )
    return CropOptions(
        box_columns=box_columns,
        channels=tuple(channels) if channels is not None else None,
        level=level,
        whole_images=whole_images,
    )


def read_image_crops(
    source: str | os.PathLike[str] | None,
    profiles: Any,
    *,
    catalog: str | Catalog | None = None,
    namespace: str | None = None,
    size: int | None = None,
    bbox_columns: BoxColumnNames | None = None,
    channels: Sequence[str | int] | None = None,
    level: int = 0,
    compartment: str | None = None,
    profile_dataset_id: str | None = None,
    where: Iterable[Sequence[Any]] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    source_images: bool = False,
) -> ImageCrops:
    """Cut the single-cell crops of profile rows, reading only the chunks their boxes touch.

    Nothing is written. ``source`` is a store (local or fsspec URL), or ``None`` with
    ``catalog``/``namespace`` (the chunk index then comes from the catalog). Boxes come
    from CellProfiler ``<Compartment>_AreaShape_BoundingBoxMinimum/Maximum_X/Y`` columns
    (maximum exclusive), ``bbox_columns`` (``x_min, y_min, x_max, y_max``), or ``size``
    pixels around ``Location_Center_X/Y``; they are scaled to ``level`` and clipped at
    the image borders. ``channels`` are names or indices. ``where`` filters the profiles
    first (``(column, op, value)`` as in :func:`query_metadata_table`).
    ``source_images=True`` also returns each image whole (``source_pixels``), cut from
    the same decoded chunks.

    Returns:
        :class:`~iceberg_bioimage.integrations.crops.run.ImageCrops`: numpy arrays along
        the image's axes (``.to_xarray()`` for ``xarray.DataArray``), their rows and the
        read counts.
    """
    from iceberg_bioimage.integrations.crops.run import crop_objects
    from iceberg_bioimage.profiles.files import read_profile_table

    profiles, label = read_profile_table(profiles)
    options = _crop_options(
        profiles.column_names,
        size=size,
        bbox_columns=bbox_columns,
        channels=channels,
        level=level,
        compartment=compartment,
        label=label,
        whole_images=source_images,
    )
    objects, images, chunks = _crop_objects(
        source,
        profiles,
        label,
        catalog=catalog,
        namespace=namespace,
        profile_dataset_id=profile_dataset_id,
        where=where,
        storage_options=storage_options,
        options=options,
    )
    return crop_objects(
        objects, images, chunks, options, storage_options=storage_options, label=label
    )


def export_image_crops(
    source: str | os.PathLike[str] | None,
    warehouse_root: str | os.PathLike[str],
    *,
    profiles: Any,
    catalog: str | Catalog | None = None,
    namespace: str | None = None,
    size: int | None = None,
    bbox_columns: BoxColumnNames | None = None,
    channels: Sequence[str | int] | None = None,
    level: int = 0,
    compartment: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    profile_dataset_id: str | None = None,
    where: Iterable[Sequence[Any]] | None = None,
    source_images: bool = False,
) -> CropExportResult:
    """Write the crops of profile rows to ``images.image_crops`` (role ``image_crops``).

    Reads as :func:`read_image_crops`; each row holds ``dataset_id``, ``image_id``,
    ``object_id``, deterministic ``Metadata_ObjectID`` / ``Metadata_ImageCropID``, the
    ``source_bbox_*`` box (at ``level``; maxima exclusive) and ``ome_arrow_image``
    (the OME-Arrow struct, every requested channel). A re-run replaces the crops of the
    datasets it writes; other datasets' crops stay. ``source_images=True`` also writes
    ``images.source_images`` (role ``source_images``): each cropped image whole, as
    OME-Arrow, read in the same pass. Needs the ``ome-arrow`` extra.
    """
    from iceberg_bioimage.integrations.crops.table import (
        CROP_JOIN_KEYS,
        SOURCE_JOIN_KEYS,
        crops_table,
        require_ome_arrow,
        source_images_table,
    )
    from iceberg_bioimage.publishing.warehouse import TableRequest, write_tables

    require_ome_arrow()  # before any pixel is read
    crops = read_image_crops(
        source,
        profiles,
        catalog=catalog,
        namespace=namespace,
        size=size,
        bbox_columns=bbox_columns,
        channels=channels,
        level=level,
        compartment=compartment,
        profile_dataset_id=profile_dataset_id,
        where=where,
        storage_options=storage_options,
        source_images=source_images,
    )
    names = [str(c) for c in channels] if channels is not None else ["*"]
    table = crops_table(crops, level=level, channels=names)
    sources = tuple(sorted({os.fspath(source)} if source is not None else ()))
    requests = [
        TableRequest(
            table_name="images.image_crops",
            role="image_crops",
            data=table,
            join_keys=CROP_JOIN_KEYS,
            grain={"profile_level": "object", "compartment": _crops_compartment(crops)},
            sources=sources,
        )
    ]
    if source_images:
        requests.append(
            TableRequest(
                table_name="images.source_images",
                role="source_images",
                data=source_images_table(crops),
                join_keys=SOURCE_JOIN_KEYS,
                grain={"profile_level": "image", "compartment": None},
                sources=sources,
            )
        )
    manifest_path, writes = write_tables(
        warehouse_root, requests, mode="overwrite", layout=_existing_layout(warehouse_root)
    )
    return CropExportResult(
        warehouse_root=os.fspath(warehouse_root),
        manifest_path=str(manifest_path),
        table=writes[0],
        source_images=writes[1] if source_images else None,
        crops=table.num_rows,
        skipped=crops.skipped,
        unmatched=crops.unmatched,
        reads=crops.stats.to_dict(),
        warnings=crops.warnings,
    )


def _crops_compartment(crops: ImageCrops) -> str | None:
    """The compartment of the crops' objects (from their ``object_id``), if one."""
    import pyarrow.compute as pc

    parts = pc.split_pattern(crops.table["object_id"], ":")
    found = {p[-2] for p in parts.to_pylist() if p and len(p) >= 3}
    return found.pop() if len(found) == 1 else None
