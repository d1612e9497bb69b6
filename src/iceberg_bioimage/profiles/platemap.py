"""Platemaps as pycytominer and the JUMP / Cell Painting Gallery keep them.

A batch's ``barcode_platemap.csv`` (``Assay_Plate_Barcode``, ``Plate_Map_Name``) names, for
each assay plate, a plate map ``platemap/<Plate_Map_Name>.txt`` beside it: a tab-separated
table with ``well_position`` and treatment columns. :func:`read_platemap` reads them into
one Arrow table keyed by ``Metadata_Plate`` (the barcode) and ``Metadata_well_position``,
every other column prefixed ``Metadata_`` as pycytominer's ``annotate`` does (a column that
already starts with ``Metadata_`` keeps its name), plus the canonical ``well_id``. A single
plate map file given directly has no ``Metadata_Plate``: it applies to every plate.
:func:`annotate_with_platemap` adds those columns to profile rows by ``(plate_id, well_id)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from iceberg_bioimage.exceptions import ContractError, MetadataError, StoreNotFoundError
from iceberg_bioimage.models.keys import normalize_well_id
from iceberg_bioimage.models.limits import Limits
from iceberg_bioimage.models.paths import read_inside, resolve_inside

__all__ = ["PLATE_KEY", "WELL_KEY", "annotate_with_platemap", "read_platemap"]

BARCODE_COLUMN = "Assay_Plate_Barcode"
MAP_NAME_COLUMN = "Plate_Map_Name"
#: Platemap key columns in the output (pycytominer names).
PLATE_KEY = "Metadata_Plate"
WELL_KEY = "Metadata_well_position"
_PREFIX = "Metadata_"


def _delimiter(data: bytes) -> str:
    """Tab when the header line holds a tab (platemap ``.txt``), comma otherwise."""
    end = data.find(b"\n")
    return "\t" if b"\t" in (data if end < 0 else data[:end]) else ","


def _load(root: Path, path: Path) -> bytes:
    """The bytes of a platemap file inside ``root``, within the limits of ``models/limits``.

    The file must be a regular file that resolves inside ``root`` (no symlink out of
    it), of at most ``max_platemap_bytes``, with lines of at most ``max_field_bytes``
    and at most ``max_platemap_rows`` lines. It is read once, never past the limit.
    """
    limits = Limits.from_env()
    try:
        data = read_inside(os.fspath(root), os.fspath(path), limits.max_platemap_bytes)
    except MetadataError as exc:
        raise ContractError(
            str(path),
            exc.problem.replace("metadata limit", "platemap limit").replace(
                "ICEBERG_BIOIMAGE_MAX_METADATA_BYTES", "ICEBERG_BIOIMAGE_MAX_PLATEMAP_BYTES"
            ),
        ) from exc
    if data is None:
        raise StoreNotFoundError(str(path), "no such platemap file")
    rows = data.count(b"\n")
    if rows > limits.max_platemap_rows:
        raise ContractError(
            str(path),
            f"{rows:,} lines is over the {limits.max_platemap_rows:,}-row platemap limit "
            "(ICEBERG_BIOIMAGE_MAX_PLATEMAP_ROWS)",
        )
    longest = max(map(len, data.split(b"\n")))
    if longest > limits.max_field_bytes:
        raise ContractError(
            str(path),
            f"a line of {longest:,} bytes is over the {limits.max_field_bytes:,}-byte limit "
            "(ICEBERG_BIOIMAGE_MAX_FIELD_BYTES); not a platemap",
        )
    return data


def _read(root: Path, path: Path, text_columns: tuple[str, ...]) -> pa.Table:
    """Read a delimited file; ``text_columns`` stay strings, empty fields are null."""
    data = _load(root, path)
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            parse_options=pacsv.ParseOptions(delimiter=_delimiter(data)),
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=True,
                column_types=dict.fromkeys(text_columns, pa.string()),
            ),
        )
        table.column_names  # noqa: B018  (decodes the header: UnicodeDecodeError if not UTF-8)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ContractError(str(path), f"unreadable platemap: {str(exc).splitlines()[0]}") from exc
    except UnicodeDecodeError as exc:
        raise ContractError(str(path), f"the header is not UTF-8 text ({exc.reason})") from exc
    binary = [f.name for f in table.schema if pa.types.is_binary(f.type)]
    if binary:
        raise ContractError(str(path), f"column(s) {', '.join(binary)} are not UTF-8 text")
    return table


def _map_file(root: Path, barcodes: Path, name: str, barcode: str) -> Path:
    """``<root>/platemap/<name>.txt``, refused when the name or a symlink leaves ``root``."""
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise ContractError(
            str(barcodes),
            f"Plate_Map_Name {name!r} (plate {barcode}) is not a plain file name; refused",
        )
    try:
        return resolve_inside(root, f"platemap/{name}.txt", what="plate map")
    except MetadataError as exc:
        raise ContractError(
            str(barcodes), f"plate map {name!r} (plate {barcode}): {exc.problem}"
        ) from exc


def _well_ids(column: pa.ChunkedArray, source: Path) -> pa.Array:
    """Canonical ``well_id`` of every row, normalising each distinct spelling once."""
    if column.null_count:
        raise ContractError(str(source), f"{column.null_count} row(s) have no well_position")
    spellings = pc.unique(column)
    try:
        canonical = pa.array([normalize_well_id(s) for s in spellings.to_pylist()], pa.string())
    except ValueError as exc:
        raise ContractError(str(source), str(exc)) from exc
    return canonical.take(pc.index_in(column, value_set=spellings))


def _read_map(root: Path, path: Path) -> pa.Table:
    """One plate map: columns prefixed ``Metadata_``, ``well_id`` added, wells unique."""
    table = _read(root, path, ("well_position", WELL_KEY, "plate_map_name"))
    names = [n if n.startswith(_PREFIX) else _PREFIX + n for n in table.column_names]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ContractError(str(path), f"columns clash once prefixed: {', '.join(clashes)}")
    table = table.rename_columns(names)
    if WELL_KEY not in names:
        raise ContractError(str(path), "no well_position column (pycytominer platemap layout)")
    well_ids = _well_ids(table[WELL_KEY], path)
    _require_unique(pa.table({"well_id": well_ids}), ["well_id"], str(path))
    return table.append_column("well_id", well_ids)


def _require_unique(keys: pa.Table, columns: list[str], subject: str) -> None:
    """Raise naming the first repeated key of ``keys``."""
    counts = keys.group_by(columns).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    if repeated.num_rows:
        first = ", ".join(str(repeated[c][0].as_py()) for c in columns)
        raise ContractError(subject, f"{first} is listed more than once")


def _read_barcodes(root: Path, path: Path) -> pa.Table:
    table = _read(root, path, (BARCODE_COLUMN, MAP_NAME_COLUMN))
    missing = [c for c in (BARCODE_COLUMN, MAP_NAME_COLUMN) if c not in table.column_names]
    if missing:
        raise ContractError(str(path), f"missing column(s) {', '.join(missing)}")
    table = table.select([BARCODE_COLUMN, MAP_NAME_COLUMN])
    for name in table.column_names:
        if table[name].null_count:
            raise ContractError(str(path), f"{table[name].null_count} row(s) have no {name}")
    _require_unique(table.select([BARCODE_COLUMN]), [BARCODE_COLUMN], str(path))
    return table


def read_platemap(path: str | Path) -> pa.Table:
    """Read a ``barcode_platemap.csv`` with its plate maps, or one plate map file.

    Returns one row per (plate, well): ``Metadata_Plate`` (barcode mode only),
    ``Metadata_well_position`` as written, ``well_id`` (``A01``), then every other
    platemap column prefixed ``Metadata_``. Raises :class:`StoreNotFoundError` when
    ``path`` does not exist and :class:`ContractError` naming the file for a missing
    column, a barcode listed twice, a plate map name without its ``.txt``, a well
    listed twice in a map, or a value that is not a well name.
    """
    path = Path(path)
    if not path.exists():
        raise StoreNotFoundError(str(path), "no such platemap file")
    own_root = Path(os.path.realpath(path)).parent  # the named file itself may be a link
    data = _load(own_root, path)
    header = data[: data.find(b"\n")].decode("utf-8", "replace")
    if BARCODE_COLUMN not in header and MAP_NAME_COLUMN not in header:
        table = _read_map(own_root, path)
        return table.select([WELL_KEY, "well_id", *_others(table)])
    root = path.parent.resolve()  # every plate map must stay inside the barcodes' folder
    barcodes = _read_barcodes(own_root, path)
    maps: dict[str, pa.Table] = {}
    for barcode, name in zip(
        *(barcodes[c].to_pylist() for c in barcodes.column_names), strict=True
    ):
        if name in maps:
            continue
        map_path = _map_file(root, path, name, barcode)
        if not map_path.is_file():
            raise ContractError(
                str(path), f"plate map {name!r} (plate {barcode}) has no file {map_path}"
            )
        maps[name] = _read_map(root, map_path)
        if PLATE_KEY in maps[name].column_names:
            raise ContractError(str(map_path), f"has a {PLATE_KEY} column; the barcode sets it")
    parts = []
    for barcode, name in zip(
        *(barcodes[c].to_pylist() for c in barcodes.column_names), strict=True
    ):
        table = maps[name]
        plate = pa.array(np.full(table.num_rows, barcode, dtype=object), pa.string())
        parts.append(table.add_column(0, PLATE_KEY, plate))
    try:
        combined = pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ContractError(str(path), f"plate maps disagree on column types: {exc}") from exc
    return combined.select([PLATE_KEY, WELL_KEY, "well_id", *_others(combined)])


def _others(table: pa.Table) -> list[str]:
    """Platemap columns other than the keys, in file order."""
    return [n for n in table.column_names if n not in (PLATE_KEY, WELL_KEY, "well_id")]


def annotate_with_platemap(profiles: pa.Table, platemap: pa.Table) -> pa.Table:
    """Add the platemap's ``Metadata_`` columns to each profile row.

    Rows match on ``(plate_id, well_id)`` (on ``well_id`` alone when the platemap has
    no ``Metadata_Plate``: a single plate map for every plate). Row count and order are
    kept; rows whose well the platemap lacks get nulls. The key columns themselves
    (``Metadata_Plate``, ``Metadata_well_position``, ``well_id``) are not added, as
    pycytominer's ``annotate`` drops the platemap's well column. A profile column with
    the name of an added column raises :class:`ContractError` naming it.
    """
    keys = [("plate_id", PLATE_KEY)] if PLATE_KEY in platemap.column_names else []
    keys.append(("well_id", "well_id"))
    missing = [p for p, _ in keys if p not in profiles.column_names]
    missing += [m for _, m in keys if m not in platemap.column_names]
    if missing:
        raise ContractError("profiles", f"missing key column(s) {', '.join(missing)}")
    added = _others(platemap)
    clashes = [n for n in added if n in profiles.column_names]
    if clashes:
        raise ContractError("profiles", f"already has platemap column(s) {', '.join(clashes)}")
    key_names = [f"__key{i}" for i in range(len(keys))]
    right = pa.table(
        {
            **{
                k: pc.cast(platemap[m], pa.string())
                for k, (_, m) in zip(key_names, keys, strict=True)
            },
            "__platemap_row": pa.array(np.arange(platemap.num_rows, dtype=np.int64)),
        }
    )
    _require_unique(right.select(key_names), key_names, "platemap")
    left = pa.table(
        {
            **{
                k: pc.cast(profiles[p], pa.string())
                for k, (p, _) in zip(key_names, keys, strict=True)
            },
            "__profile_row": pa.array(np.arange(profiles.num_rows, dtype=np.int64)),
        }
    )
    joined = left.join(right, key_names, join_type="left outer", use_threads=True)
    joined = joined.sort_by("__profile_row")
    rows = joined["__platemap_row"]
    annotations = platemap.select(added).take(rows)
    out = profiles
    for name in added:
        out = out.append_column(name, annotations[name])
    return out
