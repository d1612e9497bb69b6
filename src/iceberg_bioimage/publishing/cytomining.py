"""Build warehouse table requests: image metadata, joined profiles, QC and other tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.models.warehouse import qualified_table_name
from iceberg_bioimage.profiles.contract import (
    canonical_profile_keys,
    validate_microscopy_profile_table,
)
from iceberg_bioimage.profiles.files import read_profile_table
from iceberg_bioimage.profiles.join import join_image_assets_with_profiles, join_report
from iceberg_bioimage.publishing.arrow_tables import ChunkIndexRows
from iceberg_bioimage.publishing.warehouse import TableRequest

PROFILE_KEYS = ("dataset_id", "image_id", "plate_id", "well_id", "site_id", "object_id")
QC_ALIASES = ("qc_pass", "QC_Pass", "qcpass", "Metadata_qc_pass")
#: Roles whose rows join to images, so they must carry ``image_id`` (warehouse spec).
IMAGE_JOINABLE_ROLES = ("joined_profiles", "quality_control")


def image_requests(
    image_assets: pa.Table,
    chunk_index: pa.Table | ChunkIndexRows | None,
    sources: Sequence[str],
) -> list[TableRequest]:
    """``images.image_assets`` (+ ``images.chunk_index``, a table or streamed) requests."""
    requests = [
        TableRequest(
            table_name="images.image_assets",
            role="image_assets",
            data=image_assets,
            join_keys=("dataset_id", "image_id"),
            grain={"level": "array"},
            sources=tuple(sources),
        )
    ]
    if chunk_index is not None:
        requests.append(
            TableRequest(
                table_name="images.chunk_index",
                role="chunk_index",
                data=chunk_index,
                join_keys=("dataset_id", "image_id", "array_path"),
                grain={"level": "chunk"},
                sources=tuple(sources),
            )
        )
    return requests


def _grain(table: pa.Table, compartment: str | None = None) -> dict[str, str | None]:
    level = "object" if "object_id" in table.column_names else "image"
    return {"profile_level": level, "compartment": compartment}


def _keys_of(table: pa.Table) -> tuple[str, ...]:
    return tuple(k for k in PROFILE_KEYS if k in table.column_names and k != "object_id")


def joined_profiles_request(
    image_assets: pa.Table,
    profiles: Any,
    *,
    profile_dataset_id: str | None,
    alias_map: dict[str, Any] | None,
    sources: Sequence[str],
) -> tuple[TableRequest, dict[str, Any]]:
    """``profiles.joined_profiles``: profiles joined to their images, plus the join report."""
    joined = join_image_assets_with_profiles(
        image_assets,
        profiles,
        profile_dataset_id=profile_dataset_id,
        alias_map=alias_map,
    )
    report = join_report(joined)
    joined = joined.replace_schema_metadata(None)
    return (
        TableRequest(
            table_name="profiles.joined_profiles",
            role="joined_profiles",
            data=joined,
            join_keys=_keys_of(joined),
            grain=_grain(joined),
            sources=tuple(sources),
        ),
        report,
    )


def _with_canonical_keys(table: pa.Table, keys: pa.Table) -> pa.Table:
    out = table.drop_columns([c for c in keys.column_names if c in table.column_names])
    for name in keys.column_names:
        out = out.append_column(name, keys[name])
    return out


def _qc_column(table: pa.Table, label: str) -> pa.Table:
    lowered = {name.lower(): name for name in table.column_names}
    found = [lowered[a.lower()] for a in QC_ALIASES if a.lower() in lowered]
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
) -> TableRequest:
    """A profile or QC table with canonical key columns (original columns kept)."""
    table, label = read_profile_table(profiles)
    if role == "quality_control":
        table = _qc_column(table, label)
    contract = validate_microscopy_profile_table(
        table, profile_dataset_id=profile_dataset_id, alias_map=alias_map
    )
    if not contract.is_valid:
        raise ContractError(label, "; ".join(contract.errors))
    data = _with_canonical_keys(table, canonical_profile_keys(table, contract))
    data = data.replace_schema_metadata(None)  # e.g. pandas metadata, stale after the keys
    if role in IMAGE_JOINABLE_ROLES and "image_id" not in data.column_names:
        data = _resolve_image_ids(data, image_assets, label, profile_dataset_id, alias_map)
    return TableRequest(
        table_name=qualified_table_name(table_name, role),
        role=role,
        data=data,
        join_keys=_keys_of(data),
        grain=_grain(data),
        sources=(label,),
    )


def _resolve_image_ids(
    data: pa.Table,
    image_assets: pa.Table | None,
    label: str,
    profile_dataset_id: str | None,
    alias_map: dict[str, Any] | None,
) -> pa.Table:
    """Profile and QC tables must carry image_id: look it up in the warehouse's images."""
    if image_assets is None:
        raise ContractError(
            label, "profile tables need image_id; export images to this warehouse first"
        )
    joined = join_image_assets_with_profiles(
        image_assets, data, profile_dataset_id=profile_dataset_id, alias_map=alias_map
    )
    unmatched = join_report(joined).get("unmatched_rows", 0)
    if unmatched:
        raise ContractError(label, f"{unmatched} rows match no image in the warehouse")
    return data.append_column("image_id", joined["image_id"])
