"""Profiles: the join contract, profile sources and their joins to images (SPEC §5, §9)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.options import ProfileOptions
from iceberg_bioimage.models.results import ContractValidationResult

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

__all__ = [
    "join_catalog_image_assets_with_profiles",
    "join_image_assets_with_profiles",
    "join_profiles_with_store",
    "join_report",
    "load_profile_column_aliases",
    "query_metadata_table",
    "validate_microscopy_profile_table",
    "validate_profiles",
]


def validate_microscopy_profile_table(
    table_or_path: Any,
    *,
    profile_dataset_id: str | None = None,
    alias_map: Mapping[str, Any] | None = None,
) -> ContractValidationResult:
    """Check that a profile table (or file) carries the keys that join it to images.

    See :func:`iceberg_bioimage.profiles.contract.validate_microscopy_profile_table`.
    """
    from iceberg_bioimage.profiles.contract import validate_microscopy_profile_table as check

    return check(table_or_path, profile_dataset_id=profile_dataset_id, alias_map=alias_map)


def validate_profiles(
    profiles: Any,
    *,
    profile_dataset_id: str | None = None,
    options: ProfileOptions | None = None,
) -> ContractValidationResult:
    """Check a profile source (table, file, CellProfiler folder(s), SQLite) against the contract.

    Object tables keyed by ``ImageNumber`` are checked with their image's keys, which
    the Image table supplies (in a SQLite source, the Image table itself is checked).
    ``options.compartment`` picks the table of a source that has several.
    """
    import dataclasses

    from iceberg_bioimage.profiles.sources import read_profile_set
    from iceberg_bioimage.profiles.sqlite import SqliteTable

    options = options or ProfileOptions()
    aliases = dict(options.alias_map) if options.alias_map else None
    profile_set = read_profile_set(profiles, image_table=options.image_table, alias_map=aliases)
    _chosen, table = profile_set.select(options.compartment)
    streamed = isinstance(table, SqliteTable) and profile_set.image is not None
    result = validate_microscopy_profile_table(
        profile_set.image if streamed else table,
        profile_dataset_id=profile_dataset_id,
        alias_map=aliases,
    )
    if result.source.startswith("<") and isinstance(profiles, str | os.PathLike):
        result = dataclasses.replace(result, source=os.fspath(profiles))
    return result


def load_profile_column_aliases(path: str | os.PathLike[str]) -> dict[str, tuple[str, ...]]:
    """Read ``[microscopy.aliases]`` from a TOML file into an alias map."""
    from iceberg_bioimage.profiles.contract import load_profile_column_aliases as load

    return load(path)


def join_report(table: pa.Table) -> dict[str, Any]:
    """Keys, grain and matched/unmatched counts of a joined table (from its metadata)."""
    from iceberg_bioimage.profiles.join_tables import join_report as report

    return report(table)


def query_metadata_table(
    table: pa.Table,
    *,
    columns: Sequence[str] | None = None,
    filters: Iterable[Sequence[Any]] | None = None,
) -> pa.Table:
    """Filter and project a table with DuckDB, values bound as parameters.

    See :func:`iceberg_bioimage.tables.query.query_metadata_table`.
    """
    from iceberg_bioimage.tables.query import query_metadata_table as query

    return query(table, columns=columns, filters=filters)


def join_image_assets_with_profiles(
    image_assets: pa.Table,
    profiles: Any,
    *,
    chunk_index: pa.Table | None = None,
    profile_dataset_id: str | None = None,
    options: ProfileOptions | None = None,
) -> pa.Table:
    """Join profiles to image metadata with DuckDB on the most specific shared keys.

    ``profiles`` is a table, a file, a folder (CellProfiler output or per-site
    folders) or a CellProfiler SQLite; ``options`` (:class:`ProfileOptions`) picks the
    compartment, the Image table, the site base, the platemap and column aliases. See
    :func:`iceberg_bioimage.profiles.join_tables.join_image_assets_with_profiles`;
    keys, grain and matched/unmatched counts are in :func:`join_report`.
    """
    from iceberg_bioimage.profiles.read_and_join import join_profile_source
    from iceberg_bioimage.profiles.sources import read_profile_set

    options = options or ProfileOptions()
    aliases = dict(options.alias_map) if options.alias_map else None
    profile_set = read_profile_set(
        profiles, image_table=options.image_table, alias_map=aliases, image_assets=image_assets
    )
    profile_set.select(options.compartment)  # one table: refuses a missing or ambiguous choice
    (joined,) = join_profile_source(
        image_assets,
        profile_set,
        options=options,
        chunk_index=chunk_index,
        profile_dataset_id=profile_dataset_id,
    )
    return joined.to_table()


def join_profiles_with_store(
    uri: str | os.PathLike[str],
    profiles: Any,
    *,
    profile_dataset_id: str | None = None,
    include_chunks: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    file_set: FileSetOptions | None = None,
    options: ProfileOptions | None = None,
) -> pa.Table:
    """Scan a store and join profiles to its images (dataset id defaults to the store's)."""
    from iceberg_bioimage.api.scan import scan_store
    from iceberg_bioimage.tables.build import canonical_table

    result = scan_store(uri, storage_options=storage_options, file_set=file_set)
    return join_image_assets_with_profiles(
        canonical_table(result, "image_assets"),
        profiles,
        chunk_index=canonical_table(result, "chunk_index") if include_chunks else None,
        profile_dataset_id=profile_dataset_id or result.dataset_id,
        options=options,
    )


def join_catalog_image_assets_with_profiles(
    catalog: str | Catalog,
    namespace: str,
    profiles: Any,
    *,
    image_assets_table: str = "image_assets",
    chunk_index_table: str | None = None,
    profile_dataset_id: str | None = None,
    options: ProfileOptions | None = None,
) -> pa.Table:
    """Load catalog tables (only the profiles' datasets), then join profiles to them."""
    import dataclasses

    import pyarrow as pa

    from iceberg_bioimage.catalog.read import load_named_table
    from iceberg_bioimage.profiles.contract import profile_dataset_ids
    from iceberg_bioimage.profiles.sources import read_profile_set

    options = options or ProfileOptions()
    aliases = dict(options.alias_map) if options.alias_map else None
    images = None
    if profile_dataset_id is not None:
        # The dataset is known: its images are loaded first, so an Image table without
        # well keys can be matched to them by the files it names.
        only = [("dataset_id", "in", [profile_dataset_id])]
        images = load_named_table(catalog, namespace, image_assets_table, filters=only)
    profile_set = read_profile_set(
        profiles, image_table=options.image_table, alias_map=aliases, image_assets=images
    )
    chosen, table = profile_set.select(options.compartment)
    keyed = table if isinstance(table, pa.Table) or profile_set.image is None else profile_set.image
    ids = profile_dataset_ids(keyed, profile_dataset_id, aliases)
    only = [("dataset_id", "in", ids)]
    if images is None:
        images = load_named_table(catalog, namespace, image_assets_table, filters=only)
    chunks = (
        load_named_table(catalog, namespace, chunk_index_table, filters=only)
        if chunk_index_table
        else None
    )
    return join_image_assets_with_profiles(
        images,
        profile_set,
        chunk_index=chunks,
        profile_dataset_id=profile_dataset_id,
        options=dataclasses.replace(options, compartment=chosen, image_table=None),
    )
