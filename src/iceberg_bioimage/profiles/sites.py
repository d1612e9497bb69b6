"""Site numbering: profile sites against image fields.

CellProfiler numbers sites from 1; OME-NGFF field paths start at 0; instrument file
names usually start at 1. Joining ``site 1`` to field ``"1"`` when the profiles count
from 1 and the fields from 0 silently pairs every row with the wrong field.

* :func:`site_offset_warning` detects the offset and says how many rows it affects.
* :func:`map_sites` implements ``site_base``: profile site ``k`` is the
  ``(k - site_base)``-th field of its well in field order (numeric order when the
  field names are numbers), whatever the fields are named.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.tables.sql import connect, quote_identifier

SITE_BASES = (0, 1)


def _numbers(values: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """Distinct non-null values as int64, or None when any is not a whole number."""
    distinct = pc.drop_null(pc.unique(values))
    try:
        return pc.cast(distinct, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def site_offset_warning(profile_sites: pa.ChunkedArray, image_sites: pa.ChunkedArray) -> str | None:
    """A warning when profile sites look offset from the image fields, else None.

    Offset means: both are numbers, their smallest values differ, and the profile
    sites shifted onto the fields' start all name fields.
    """
    profiles, images = _numbers(profile_sites), _numbers(image_sites)
    if profiles is None or images is None or not len(profiles) or not len(images):
        return None
    p_min, i_min = pc.min(profiles).as_py(), pc.min(images).as_py()
    if p_min == i_min:
        return None
    shifted = pc.add(profiles, i_min - p_min)
    if not pc.all(pc.is_in(shifted, value_set=images)).as_py():
        return None
    strings = pc.cast(profile_sites, pa.string())
    unmatched = int(pc.sum(pc.invert(pc.is_in(strings, value_set=image_sites))).as_py() or 0)
    matched = len(profile_sites) - profile_sites.null_count - unmatched
    p_max, i_max = pc.max(profiles).as_py(), pc.max(images).as_py()
    return (
        f"profile sites run {p_min}..{p_max} but image fields {i_min}..{i_max}: the "
        f"profiles look {p_min}-based; {matched:,} rows joined the field of the same number "
        f"(probably the wrong one) and {unmatched:,} matched none. Pass site_base={p_min} "
        f"(CLI --site-base {p_min}) to map site k to the k-th field of its well"
    )


def map_sites(
    keys: pa.Table, images: pa.Table, well_keys: Sequence[str], site_base: int, source: str
) -> pa.Table:
    """``keys`` with ``site_id`` replaced by the image field that ``site_base`` numbering names.

    ``well_keys`` (``dataset_id``, ``well_id`` [, ``plate_id``]) group the fields of
    a well. A site with no field at its position becomes null (the row matches no
    image). Raises :class:`ContractError` for a site that is not a whole number.
    """
    if site_base not in SITE_BASES:
        raise ContractError(source, f"site_base must be 0 or 1, not {site_base!r}")
    sites = keys["site_id"]
    if _numbers(sites) is None:
        raise ContractError(source, "site_base needs whole-number sites in the profiles")
    con = connect()
    rows = pa.array(np.arange(keys.num_rows, dtype=np.int64))
    con.register("numbered", keys.select([*well_keys, "site_id"]).append_column("__ib_row", rows))
    con.register("images", images.select([*well_keys, "site_id"]))
    group = ", ".join(quote_identifier(k) for k in well_keys)
    on = " AND ".join(f"p.{quote_identifier(k)} = f.{quote_identifier(k)}" for k in well_keys)
    mapped = con.sql(
        f"""
        WITH fields AS (
            SELECT {group}, site_id,
                   row_number() OVER (
                       PARTITION BY {group}
                       ORDER BY try_cast(site_id AS BIGINT) NULLS LAST, site_id
                   ) - 1 AS ordinal
            FROM (SELECT DISTINCT {group}, site_id FROM images WHERE site_id IS NOT NULL)
        )
        SELECT f.site_id FROM numbered p
        LEFT JOIN fields f
          ON {on} AND f.ordinal = CAST(p.site_id AS BIGINT) - ?
        ORDER BY p.__ib_row
        """,
        params=[site_base],
    ).to_arrow_table()
    index = keys.column_names.index("site_id")
    return keys.set_column(index, "site_id", mapped["site_id"].cast(pa.string()))
