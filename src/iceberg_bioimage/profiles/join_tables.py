"""The join of profiles with image metadata (DuckDB on the resolved keys).

Only key columns travel through DuckDB; profile columns are attached in Arrow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError, InvalidNameError
from iceberg_bioimage.profiles.contract import (
    ContractValidationResult,
    canonical_profile_keys,
    validate_microscopy_profile_table,
)
from iceberg_bioimage.profiles.files import read_profile_table
from iceberg_bioimage.profiles.object_ids import (
    duplicate_count,
    is_object_number,
    object_ids,
    resolve_compartment,
)
from iceberg_bioimage.profiles.sites import map_sites, site_offset_warning
from iceberg_bioimage.tables.sql import connect, quote_identifier

if TYPE_CHECKING:
    import duckdb

JOIN_METADATA_KEY = b"iceberg_bioimage.join"
ROW_NUMBER = "__ib_row"
IMAGE_PREFIX = "__ib_image_"
IMAGE_COLUMNS = ("image_id", "plate_id", "well_id", "site_id", "uri", "array_path")
CANONICAL_OUTPUT = ("dataset_id", "image_id", "plate_id", "well_id", "site_id")


def _present(table: pa.Table, name: str) -> bool:
    return name in table.column_names and table[name].null_count < table.num_rows


def choose_join_keys(contract: ContractValidationResult, images: pa.Table) -> tuple[str, ...]:
    """The most specific key set available on both sides."""
    profile = set(contract.join_keys)
    if "image_id" in profile and _present(images, "image_id"):
        return ("dataset_id", "image_id")
    if "well_id" in profile and _present(images, "well_id"):
        extra = tuple(k for k in ("site_id", "plate_id") if k in profile and _present(images, k))
        return ("dataset_id", "well_id", *extra)
    raise ContractError(
        contract.source,
        f"profiles (keys {', '.join(contract.join_keys) or 'none'}) and images (columns "
        f"{', '.join(c for c in CANONICAL_OUTPUT if _present(images, c))}) share no join key: "
        "profiles need image_id, or well_id matching the images' wells",
    )


def _image_side(images: pa.Table, multiscale_level: int | None) -> pa.Table:
    if "dataset_id" not in images.column_names:
        raise InvalidNameError("<image_assets>", "needs a dataset_id column")
    if multiscale_level is not None and "multiscale_level" in images.column_names:
        images = images.filter(pc.equal(images["multiscale_level"], multiscale_level))
    if "is_label" in images.column_names:  # label images share their image's well and site
        images = images.filter(pc.invert(pc.fill_null(images["is_label"], False)))
    return images


def _check_unique(con: duckdb.DuckDBPyConnection, keys: Sequence[str], source: str) -> None:
    columns = ", ".join(quote_identifier(k) for k in keys)
    duplicate = con.execute(
        f"SELECT {columns}, count(*) AS n FROM images GROUP BY {columns} HAVING n > 1 "
        f"ORDER BY n DESC LIMIT 1"
    ).fetchone()
    if duplicate:
        where = ", ".join(f"{k}={v}" for k, v in zip(keys, duplicate[:-1], strict=True))
        raise ContractError(
            source,
            f"key set ({', '.join(keys)}) matches {duplicate[-1]} images for {where}; "
            "one profile row would match several images: profiles need site_id "
            "(or image_id) to pick one",
        )


def _match_rows(
    con: duckdb.DuckDBPyConnection,
    keys: Sequence[str],
    image_columns: Sequence[str],
    with_chunks: bool,
) -> pa.Table:
    """Row number of each profile row with its image (and chunk) columns, in row order.

    Only key columns travel through DuckDB; profile columns are attached in Arrow.
    """
    on = " AND ".join(f"p.{quote_identifier(k)} = i.{quote_identifier(k)}" for k in keys)
    select = [f"p.{ROW_NUMBER}", "i.dataset_id IS NOT NULL AS __ib_matched"]
    select += [
        f"i.{quote_identifier(c)} AS {quote_identifier(IMAGE_PREFIX + c)}" for c in image_columns
    ]
    join = f"LEFT JOIN images i ON {on}"
    if with_chunks:
        select.append("c.* EXCLUDE (dataset_id, image_id, array_path, uri)")
        join += (
            " LEFT JOIN chunks c ON c.dataset_id = i.dataset_id AND c.image_id = i.image_id"
            " AND c.array_path = i.array_path"
        )
    matches = con.sql(f"SELECT {', '.join(select)} FROM profile_keys p {join}").to_arrow_table()
    order = [(ROW_NUMBER, "ascending")] + ([("chunk_key", "ascending")] if with_chunks else [])
    return matches.take(pc.sort_indices(matches, sort_keys=order))


def _assemble(
    table: pa.Table,
    canonical: pa.Table,
    matches: pa.Table,
    image_columns: Sequence[str],
    object_column: str | None,
    compartment: str | None,
) -> pa.Table:
    """Original columns, canonical keys (profile value, else the image's), image columns."""
    rows = matches[ROW_NUMBER]
    repeated = matches.num_rows != table.num_rows
    base = table.take(rows) if repeated else table
    keys = canonical.take(rows) if repeated else canonical
    out = base.drop_columns([c for c in (*CANONICAL_OUTPUT, "object_id") if c in base.column_names])
    for name in CANONICAL_OUTPUT:
        values = [keys[name]] if name in keys.column_names else []
        if name in image_columns:
            values.append(matches[IMAGE_PREFIX + name])
        if values:
            column = values[0] if len(values) == 1 else pc.coalesce(*values)
            out = out.append_column(name, column)
    if "object_id" in keys.column_names:
        ids = keys["object_id"]
        if is_object_number(object_column) and "image_id" in out.column_names:
            ids = object_ids(out["image_id"], ids, compartment)
        out = out.append_column("object_id", ids)
    for name in ("uri", "array_path"):
        if name in image_columns:
            out = out.append_column(name, matches[IMAGE_PREFIX + name])
    skip = {ROW_NUMBER, "__ib_matched", *(IMAGE_PREFIX + c for c in image_columns)}
    for name in matches.column_names:
        if name not in skip:
            out = out.append_column(name, matches[name])
    return out


def _well_grain(images: pa.Table, keys: Sequence[str]) -> bool:
    """Whether ``keys`` (no site, no image id) name several images of one well."""
    if "image_id" in keys or "site_id" in keys:
        return False
    grouped = images.group_by(list(keys)).aggregate([([], "count_all")])
    return grouped.num_rows < images.num_rows


def _match_wells(con: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> pa.Table:
    """Row number of each profile row with the ``image_ids`` of its well, in row order."""
    group = ", ".join(quote_identifier(k) for k in keys)
    on = " AND ".join(f"p.{quote_identifier(k)} = w.{quote_identifier(k)}" for k in keys)
    matches = con.sql(
        f"""
        WITH wells AS (
            SELECT {group}, list(image_id ORDER BY try_cast(site_id AS BIGINT) NULLS LAST,
                                 site_id, image_id) AS image_ids
            FROM images GROUP BY {group}
        )
        SELECT p.{ROW_NUMBER}, w.image_ids IS NOT NULL AS __ib_matched, w.image_ids
        FROM profile_keys p LEFT JOIN wells w ON {on}
        """
    ).to_arrow_table()
    return matches.sort_by(ROW_NUMBER)


def _assemble_wells(table: pa.Table, canonical: pa.Table, matches: pa.Table) -> pa.Table:
    """Original columns, canonical keys and ``image_ids``: one row per profile row."""
    out = table.drop_columns([c for c in CANONICAL_OUTPUT if c in table.column_names])
    for name in CANONICAL_OUTPUT:
        if name in canonical.column_names:
            out = out.append_column(name, canonical[name])
    return out.append_column("image_ids", matches["image_ids"])


def join_image_assets_with_profiles(
    image_assets: pa.Table,
    profiles: Any,
    *,
    chunk_index: pa.Table | None = None,
    profile_dataset_id: str | None = None,
    alias_map: dict[str, Any] | None = None,
    multiscale_level: int | None = 0,
    compartment: str | None = None,
    site_base: int | None = None,
    label: str | None = None,
) -> pa.Table:
    """Join profiles to images on the most specific shared key set (DuckDB).

    Every profile row is kept, in order, with its original columns, the canonical
    key columns and the image's ``image_id``, ``uri`` and ``array_path``; unmatched
    rows get nulls and are counted in :func:`join_report`. A profile row never
    matches more than one image (level ``multiscale_level`` only; ``None`` keeps all
    levels) unless ``chunk_index`` is given, which adds one row per chunk.

    Grain: rows with an image or site key join one image; rows keyed by well only,
    on a plate with several fields per well, join at well grain and get the list
    ``image_ids``. Object rows get ``object_id`` =
    ``<image_id>:<compartment>:<ObjectNumber>``. ``site_base`` (0 or 1) says where
    the profiles' site numbers start and maps them onto the fields in field order;
    without it, an offset between profile sites and image fields is a warning.
    ``label`` names the profiles in messages (default: the path, or the kind of table).
    """
    table, read_label = read_profile_table(profiles)
    label = label or read_label
    contract = validate_microscopy_profile_table(
        table, profile_dataset_id=profile_dataset_id, alias_map=alias_map
    )
    contract = _relabel(contract, label)
    contract.raise_for_errors()
    compartment = resolve_compartment(compartment, table.column_names, contract.object_key)
    images = _image_side(image_assets, multiscale_level)
    keys = choose_join_keys(contract, images)
    canonical = canonical_profile_keys(table, contract)
    warnings = list(contract.warnings)
    if "site_id" in keys:
        well_keys = [k for k in keys if k != "site_id"]
        if site_base is not None:
            canonical = map_sites(canonical, images, well_keys, site_base, label)
        else:
            offset = site_offset_warning(canonical["site_id"], images["site_id"])
            warnings += [offset] if offset else []
    con = connect()
    profile_keys = canonical.select(list(keys)).append_column(
        ROW_NUMBER, pa.array(np.arange(table.num_rows, dtype=np.int64))
    )
    con.register("profile_keys", profile_keys)
    con.register("images", images)
    well_grain = multiscale_level is not None and chunk_index is None and _well_grain(images, keys)
    if well_grain:
        matches = _match_wells(con, keys)
        joined = _assemble_wells(table, canonical, matches)
        grain = "well"
    else:
        if multiscale_level is not None:
            _check_unique(con, keys, label)
        if chunk_index is not None:
            con.register("chunks", chunk_index)
        image_columns = [c for c in IMAGE_COLUMNS if c in images.column_names]
        matches = _match_rows(con, keys, image_columns, chunk_index is not None)
        joined = _assemble(
            table, canonical, matches, image_columns, contract.object_key, compartment
        )
        grain = "object" if "object_id" in joined.column_names else "image"
    if "object_id" in joined.column_names and chunk_index is None:
        repeats = duplicate_count(joined["object_id"])
        if repeats:
            warnings.append(f"{repeats:,} rows repeat an object_id of an earlier row")
    matched = matches["__ib_matched"]
    report = {
        "join_keys": list(keys),
        "grain": grain,
        "compartment": compartment,
        "profile_rows": table.num_rows,
        "matched_rows": int(pc.sum(matched).as_py() or 0),
        "unmatched_rows": int(pc.sum(pc.invert(matched)).as_py() or 0),
        "resolved_aliases": contract.resolved_aliases,
        "site_base": site_base,
        "warnings": warnings,
    }
    return joined.replace_schema_metadata(
        {**(joined.schema.metadata or {}), JOIN_METADATA_KEY: json.dumps(report).encode()}
    )


def _relabel(contract: ContractValidationResult, label: str) -> ContractValidationResult:
    from dataclasses import replace

    return contract if contract.source == label else replace(contract, source=label)


def join_report(joined: pa.Table) -> dict[str, Any]:
    """Join keys and matched/unmatched row counts recorded on a joined table."""
    raw = (joined.schema.metadata or {}).get(JOIN_METADATA_KEY)
    return json.loads(raw) if raw else {}
