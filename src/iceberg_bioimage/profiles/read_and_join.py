"""Join every chosen table of a profile source to its images, compartment by compartment."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.models.options import ProfileOptions
from iceberg_bioimage.profiles.contract import AliasMap
from iceberg_bioimage.profiles.join_streamed import StreamedJoin, join_streamed
from iceberg_bioimage.profiles.join_tables import (
    JOIN_METADATA_KEY,
    join_image_assets_with_profiles,
    join_report,
)
from iceberg_bioimage.profiles.sources import ProfileSet, read_profile_set
from iceberg_bioimage.profiles.sqlite import SqliteTable


@dataclass(frozen=True)
class JoinedProfiles:
    """One compartment's joined rows (``None``: a single table of unknown compartment).

    ``own_table`` is true for a compartment of a source with several tables (a
    folder or SQLite), which is written as its own ``profiles.<compartment>_profiles``.
    """

    compartment: str | None
    table: pa.Table | StreamedJoin
    own_table: bool = False

    @property
    def report(self) -> dict[str, Any]:
        """Keys, grain and matched/unmatched counts of the join (a streamed one: once written)."""
        if isinstance(self.table, StreamedJoin):
            return self.table.report
        return join_report(self.table)

    def to_table(self) -> pa.Table:
        """The joined rows in memory, the report in the schema metadata."""
        return self.table.to_table() if isinstance(self.table, StreamedJoin) else self.table


def join_profile_source(
    image_assets: pa.Table,
    profiles: Any,
    *,
    options: ProfileOptions | None = None,
    chunk_index: pa.Table | None = None,
    profile_dataset_id: str | None = None,
    multiscale_level: int | None = 0,
) -> list[JoinedProfiles]:
    """Read a profile source and join the chosen compartment, or each one present."""
    options = options or ProfileOptions()
    alias_map: AliasMap | None = dict(options.alias_map) if options.alias_map else None
    profile_set = read_profile_set(
        profiles, image_table=options.image_table, alias_map=alias_map, image_assets=image_assets
    )
    if options.compartment is not None:
        chosen = [profile_set.select(options.compartment)]
    else:
        chosen = [(c, profile_set.tables[c]) for c in profile_set.compartments]
    platemap = _platemap(options.platemap)
    joined = []
    for compartment, table in chosen:
        if isinstance(table, SqliteTable):
            joined.append(
                JoinedProfiles(
                    compartment,
                    _streamed(
                        image_assets,
                        table,
                        profile_set,
                        compartment,
                        options,
                        platemap,
                        profile_dataset_id,
                        alias_map,
                    ),
                    own_table=profile_set.multi_table and compartment is not None,
                )
            )
            continue
        rows = join_image_assets_with_profiles(
            image_assets,
            table,
            chunk_index=chunk_index,
            profile_dataset_id=profile_dataset_id,
            alias_map=dict(alias_map) if alias_map else None,
            multiscale_level=multiscale_level,
            compartment=compartment,
            site_base=options.site_base,
            label=_label(profile_set, compartment),
        )
        rows = _with_source_warnings(rows, profile_set.warnings, profile_set.label)
        if platemap is not None:
            rows = _annotated(rows, platemap)
        own = profile_set.multi_table and compartment is not None
        joined.append(JoinedProfiles(compartment, rows, own_table=own))
    return joined


def _streamed(
    image_assets: pa.Table,
    table: SqliteTable,
    profile_set: ProfileSet,
    compartment: str | None,
    options: ProfileOptions,
    platemap: pa.Table | None,
    profile_dataset_id: str | None,
    alias_map: AliasMap | None,
) -> StreamedJoin:
    """A SQLite object table joined batch by batch through the source's Image table."""
    if profile_set.image is None:
        raise ContractError(table.label, "no Image table to key its rows; pass image_table=")
    streamed = join_streamed(
        image_assets,
        table,
        profile_set.image,
        image_label=f"{profile_set.label} (Image table)",
        compartment=compartment,
        profile_dataset_id=profile_dataset_id,
        alias_map=alias_map,
        site_base=options.site_base,
    )
    if platemap is not None:
        from iceberg_bioimage.profiles.platemap import annotate_with_platemap

        streamed.annotate = lambda rows: annotate_with_platemap(rows, platemap)
    return streamed


def _label(profile_set: ProfileSet, compartment: str | None) -> str | None:
    """The source's name in messages (and the table's, for a source of several)."""
    if profile_set.label.startswith("<"):
        return None  # an in-memory table: the join names its kind
    if profile_set.multi_table and compartment is not None:
        return f"{profile_set.label} ({compartment})"
    return profile_set.label


def _with_source_warnings(rows: pa.Table, warnings: tuple[str, ...], label: str) -> pa.Table:
    """Record the reader's warnings (e.g. unmatched image numbers) in the join report."""
    report = join_report(rows)
    report["source"] = label
    report["warnings"] = [*warnings, *report.get("warnings", [])]
    metadata = {**(rows.schema.metadata or {}), JOIN_METADATA_KEY: json.dumps(report).encode()}
    return rows.replace_schema_metadata(metadata)


def _platemap(path: str | os.PathLike[str] | None) -> pa.Table | None:
    if path is None:
        return None
    from iceberg_bioimage.profiles.platemap import read_platemap

    return read_platemap(path)


def _annotated(rows: pa.Table, platemap: pa.Table) -> pa.Table:
    from iceberg_bioimage.profiles.platemap import annotate_with_platemap

    metadata = rows.schema.metadata
    return annotate_with_platemap(rows, platemap).replace_schema_metadata(metadata)
