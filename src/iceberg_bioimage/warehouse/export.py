"""Build warehouse table requests: image metadata, joined profiles, QC and other tables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError, StoreNotFoundError, WarehouseError
from iceberg_bioimage.models.keys import CANONICAL_KEYS
from iceberg_bioimage.models.options import ProfileOptions
from iceberg_bioimage.models.results import CytominingExportResult
from iceberg_bioimage.models.warehouse import (
    QC_PASS_COLUMNS,
    TABLE_SPECS,
    Layout,
    Mode,
    migrated,
    qualified_table_name,
    table_spec,
)
from iceberg_bioimage.profiles.contract import (
    canonical_profile_keys,
    validate_microscopy_profile_table,
)
from iceberg_bioimage.profiles.files import read_profile_table
from iceberg_bioimage.profiles.join_tables import join_image_assets_with_profiles, join_report
from iceberg_bioimage.profiles.object_ids import is_object_number, object_ids, resolve_compartment
from iceberg_bioimage.warehouse.write import (
    StreamedRows,
    TableRequest,
    grain_conflict,
    load_manifest,
    read_table,
    write_tables,
)

if TYPE_CHECKING:
    from iceberg_bioimage.profiles.read_and_join import JoinedProfiles


def image_requests(
    image_assets: pa.Table | StreamedRows,
    chunk_index: pa.Table | StreamedRows | None,
    sources: Sequence[str],
) -> list[TableRequest]:
    """``images.image_assets`` (+ ``images.chunk_index``, a table or streamed) requests."""
    requests = [canonical_request("image_assets", image_assets, sources)]
    if chunk_index is not None:
        requests.append(canonical_request("chunk_index", chunk_index, sources))
    return requests


def canonical_request(
    role: str,
    data: pa.Table | StreamedRows,
    sources: Sequence[str],
    **grain: str | None,
) -> TableRequest:
    """A request for the canonical table of ``role``, its name and keys from ``TABLE_SPECS``."""
    spec = TABLE_SPECS[role]
    assert spec.table_name is not None, f"role {role} has no canonical table"
    return TableRequest(
        table_name=spec.table_name,
        role=role,
        data=data,
        join_keys=spec.join_keys,
        grain={**spec.grain, **grain},
        sources=tuple(sources),
    )


def _grain(table: pa.Table, compartment: str | None = None) -> dict[str, str | None]:
    level = "object" if "object_id" in table.column_names else "image"
    return {"profile_level": level, "compartment": compartment}


def _keys_of(table: pa.Table) -> tuple[str, ...]:
    return tuple(k for k in CANONICAL_KEYS if k in table.column_names and k != "object_id")


def joined_profile_requests(
    joined: Sequence[JoinedProfiles], *, chosen: bool, sources: Sequence[str]
) -> list[TableRequest]:
    """Profile table requests: one per compartment, ``profiles.joined_profiles`` for one.

    A single profile table is ``profiles.joined_profiles``; each compartment ``c`` of
    a source with several tables is ``profiles.<c>_profiles`` (role ``profiles``),
    plus ``profiles.joined_profiles`` when ``chosen`` (one compartment is exported).
    """
    requests = []
    for part in joined:
        data = part.table
        if isinstance(data, pa.Table):
            data = data.replace_schema_metadata(None)
        report = part.report
        compartment = report.get("compartment", part.compartment) or part.compartment
        grain = {"profile_level": report.get("grain"), "compartment": compartment}
        names = []
        if not part.own_table or chosen:
            names.append(("profiles.joined_profiles", "joined_profiles"))
        if part.own_table:
            names.append((f"profiles.{part.compartment}_profiles", "profiles"))
        requests += [
            TableRequest(
                table_name=name,
                role=role,
                data=data,
                join_keys=_keys_of(data),
                grain=grain,
                sources=tuple(sources),
            )
            for name, role in names
        ]
    return requests


def platemap_request(path: str | os.PathLike[str]) -> TableRequest:
    """``images.platemap`` (role ``annotations``): the platemap as read, keyed by plate and well."""
    from iceberg_bioimage.profiles.platemap import read_platemap

    table = read_platemap(path)
    request = canonical_request("annotations", table, [os.fspath(path)])
    keys = tuple(k for k in request.join_keys if k in table.column_names)
    return dataclasses.replace(request, join_keys=keys)


def _with_canonical_keys(table: pa.Table, keys: pa.Table) -> pa.Table:
    out = table.drop_columns([c for c in keys.column_names if c in table.column_names])
    for name in keys.column_names:
        out = out.append_column(name, keys[name])
    return out


def _qc_column(table: pa.Table, label: str) -> pa.Table:
    lowered = {name.lower(): name for name in table.column_names}
    found = [lowered[a.lower()] for a in QC_PASS_COLUMNS if a.lower() in lowered]
    if not found:
        raise ContractError(label, "a quality_control table needs a boolean qc_pass (or QC_Pass)")
    column = table[found[0]]
    if not pa.types.is_boolean(column.type):
        try:
            column = pc.cast(column, pa.bool_())
        except pa.ArrowInvalid as error:
            raise ContractError(label, f"{found[0]} must be boolean: {error}") from error
    return table.drop_columns([found[0]]).append_column("qc_pass", column)


def profiles_request(
    profiles: Any,
    *,
    table_name: str,
    role: str,
    profile_dataset_id: str | None,
    alias_map: dict[str, Any] | None,
    image_assets: pa.Table | None,
    compartment: str | None = None,
) -> TableRequest:
    """A profile or QC table with canonical key columns (original columns kept).

    Rows without ``image_id`` get it (or, for well-level rows, ``image_ids``) from
    ``image_assets``; object numbers become ``<image_id>:<compartment>:<n>`` ids.
    """
    table, label = read_profile_table(profiles)
    if role == "quality_control":
        table = _qc_column(table, label)
    contract = validate_microscopy_profile_table(
        table, profile_dataset_id=profile_dataset_id, alias_map=alias_map
    )
    if not contract.is_valid:
        raise ContractError(label, "; ".join(contract.errors))
    keys = canonical_profile_keys(table, contract)
    numbers = keys["object_id"] if is_object_number(contract.object_key) else None
    data = _with_canonical_keys(table, keys)
    data = data.replace_schema_metadata(None)  # e.g. pandas metadata, stale after the keys
    level = None
    if table_spec(role).from_images and "image_id" not in data.column_names:
        data, level = _resolve_image_ids(data, image_assets, label, profile_dataset_id, alias_map)
    compartment = resolve_compartment(compartment, table.column_names, contract.object_key)
    if numbers is not None and "image_id" in data.column_names:
        ids = object_ids(data["image_id"], numbers, compartment)
        data = data.set_column(data.column_names.index("object_id"), "object_id", ids)
    grain = _grain(data, compartment)
    if level == "well":
        grain["profile_level"] = "well"
    return TableRequest(
        table_name=qualified_table_name(table_name, role),
        role=role,
        data=data,
        join_keys=_keys_of(data),
        grain=grain,
        sources=(label,),
    )


def _resolve_image_ids(
    data: pa.Table,
    image_assets: pa.Table | None,
    label: str,
    profile_dataset_id: str | None,
    alias_map: dict[str, Any] | None,
) -> tuple[pa.Table, str]:
    """Profile and QC tables must carry image ids: look them up in the warehouse's images.

    Returns the table with ``image_id`` (or ``image_ids`` at well grain) and the grain.
    """
    if image_assets is None:
        raise ContractError(
            label, "profile tables need image_id; export images to this warehouse first"
        )
    joined = join_image_assets_with_profiles(
        image_assets, data, profile_dataset_id=profile_dataset_id, alias_map=alias_map
    )
    report = join_report(joined)
    if report.get("unmatched_rows", 0):
        raise ContractError(
            label, f"{report['unmatched_rows']} rows match no image in the warehouse"
        )
    name = "image_ids" if report.get("grain") == "well" else "image_id"
    return data.append_column(name, joined[name]), report.get("grain", "image")


def join_warnings(reports: Sequence[dict[str, Any]]) -> list[str]:
    """Each join's warnings and its unmatched rows, named by compartment."""
    warnings = []
    for report in reports:
        where = f"{report['compartment']}: " if report.get("compartment") else ""
        warnings += [f"{where}{w}" for w in report.get("warnings", [])]
        if report.get("unmatched_rows"):
            warnings.append(f"{where}{report['unmatched_rows']:,} profile rows match no image")
    return warnings


def profile_requests(
    images: pa.Table,
    profiles: Any,
    *,
    options: ProfileOptions,
    profile_dataset_id: str | None,
    sources: Sequence[str],
) -> tuple[list[TableRequest], list[JoinedProfiles]]:
    """Requests for a profile source joined to ``images`` (one per compartment, + platemap)."""
    from iceberg_bioimage.profiles.read_and_join import join_profile_source

    joined = join_profile_source(
        images, profiles, options=options, profile_dataset_id=profile_dataset_id
    )
    one = options.compartment is not None or len(joined) == 1
    requests = joined_profile_requests(joined, chosen=one, sources=sources)
    if options.platemap is not None:
        requests.append(platemap_request(options.platemap))
    return requests, joined


def export_requests(
    warehouse_root: str | os.PathLike[str],
    requests: list[TableRequest],
    *,
    mode: Mode,
    layout: Layout,
    joined: Sequence[JoinedProfiles] = (),
    warnings: Sequence[str] = (),
) -> CytominingExportResult:
    """Write ``requests`` (one manifest commit) and report the writes and join warnings."""
    requests, settled = settle_compartments(warehouse_root, requests, mode)
    manifest_path, writes = write_tables(warehouse_root, requests, mode=mode, layout=layout)
    reports = [j.report for j in joined]
    warnings = [*warnings, *settled, *join_warnings(reports)]
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


def settle_compartments(
    root: str | os.PathLike[str], requests: Sequence[TableRequest], mode: Mode
) -> tuple[list[TableRequest], list[str]]:
    """Keep ``profiles.joined_profiles`` to the compartment it was first written with.

    A ``joined_profiles`` request of another compartment (or level) is written to its
    ``profiles.<compartment>_profiles`` only, and a warning says so. The writer
    refuses any other change of a table's kind (under its lock, so a concurrent
    writer cannot slip one in).
    """
    try:
        manifest, _moves = migrated(load_manifest(root))
    except StoreNotFoundError:
        return list(requests), []
    names = {r.table_name for r in requests}
    settled: list[TableRequest] = []
    warnings: list[str] = []
    for request in requests:
        conflict = grain_conflict(manifest, request, mode)
        compartment = request.grain.get("compartment")
        if request.role != "joined_profiles" or conflict is None or not compartment:
            settled.append(request)
            continue
        own = qualified_table_name(f"{compartment}_profiles", "profiles")
        warnings.append(
            f"{request.table_name} holds rows of {conflict[0]}; these rows "
            f"({conflict[1]}) are written to {own} only"
        )
        if own not in names:
            names.add(own)
            settled.append(dataclasses.replace(request, table_name=own, role="profiles"))
    return settled, warnings


def existing_layout(root: str | os.PathLike[str]) -> Layout:
    """The layout of the warehouse at ``root``; ``namespaced`` for a new one."""
    try:
        return load_manifest(root).layout
    except StoreNotFoundError:
        return "namespaced"


def require_image_assets(root: str | os.PathLike[str], request: TableRequest) -> None:
    """Refuse ``request`` unless it is, or the warehouse already has, the image metadata.

    A warehouse MUST have ``images.image_assets`` (``validate-warehouse`` rejects one
    without), so no table is written into a warehouse that lacks it.
    """
    if request.role == "image_assets":
        return
    try:
        tables = load_manifest(root).tables
    except StoreNotFoundError:
        tables = ()
    if not any(t.role == "image_assets" for t in tables):
        raise WarehouseError(
            os.fspath(root),
            f"{request.table_name}: this warehouse has no images.image_assets; "
            "export images to it first (export-cytomining)",
        )


def warehouse_image_assets(root: str | os.PathLike[str]) -> pa.Table | None:
    """The ``image_assets`` table of the warehouse at ``root``, if it has one."""
    try:
        manifest = load_manifest(root)
    except StoreNotFoundError:
        return None
    entry = next((t for t in manifest.tables if t.role == "image_assets"), None)
    if entry is None:
        return None
    return read_table(root, entry)
