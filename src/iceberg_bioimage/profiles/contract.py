"""The microscopy join contract: which profile columns hold which identity keys.

A profile table joins image metadata on ``dataset_id`` (a column, or one
``profile_dataset_id`` for every row) and on ``image_id`` or ``well_id``
[+ ``site_id``] [+ ``plate_id``]. Columns are found by case-insensitive aliases
(configuration as data in :data:`DEFAULT_ALIASES`, extended by ``alias_map`` or a
TOML file); :func:`canonical_profile_keys` turns them into canonical string keys.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError, StoreNotFoundError
from iceberg_bioimage.models.keys import CANONICAL_KEYS, normalize_well_id
from iceberg_bioimage.models.results import ContractValidationResult
from iceberg_bioimage.profiles.files import read_profile_table

if TYPE_CHECKING:
    from iceberg_bioimage.profiles.files import ProfileSource

AliasMap: TypeAlias = Mapping[str, str | Sequence[str]]


DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    # Not ``Metadata_Source``: in JUMP it names the contributing centre (``source_4``).
    "dataset_id": ("Metadata_dataset_id", "Metadata_DatasetID"),
    "image_id": ("Metadata_image_id", "Metadata_ImageID"),
    "plate_id": ("Metadata_Plate", "Metadata_plate_id", "Image_Metadata_Plate"),
    "well_id": ("Metadata_Well", "Metadata_well_id", "Image_Metadata_Well"),
    "site_id": (
        "Metadata_Site",
        "Metadata_Field",
        "Metadata_site_id",
        "Image_Metadata_Site",
        "Metadata_SiteNumber",
        "Metadata_FOV",
    ),
    "object_id": ("ObjectNumber", "Metadata_ObjectNumber", "Metadata_object_id"),
}
#: CellProfiler's per-object-table layout names the object number ``<Object>_Number_Object_Number``.
OBJECT_NUMBER_SUFFIX = "_number_object_number"

_MAX_EXAMPLES = 5


def load_profile_column_aliases(path: str | os.PathLike[str]) -> dict[str, tuple[str, ...]]:
    """Read extra column aliases from the ``[microscopy.aliases]`` table of a TOML file.

    Each key is a canonical key and each value a column name or a list of them::

        [microscopy.aliases]
        well_id = "WellName"
        site_id = ["FieldNumber", "Site"]
    """
    label = os.fspath(path)
    try:
        with Path(label).open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as error:
        raise StoreNotFoundError(label, "no such file") from error
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ContractError(label, f"cannot read aliases: {error}") from error
    section = document.get("microscopy", {})
    aliases = section.get("aliases") if isinstance(section, dict) else None
    if not isinstance(aliases, dict):
        raise ContractError(label, "no [microscopy.aliases] table")
    return _parse_alias_map(aliases, label)


def _parse_alias_map(alias_map: Mapping[str, Any], subject: str) -> dict[str, tuple[str, ...]]:
    """Check an alias map (canonical key → column name or names) and return tuples.

    Raises :class:`ContractError` naming ``subject`` for an unknown key or a value
    that is not a non-empty string or a list of them.
    """
    parsed: dict[str, tuple[str, ...]] = {}
    for key, value in alias_map.items():
        if key not in CANONICAL_KEYS:
            raise ContractError(
                subject,
                f"unknown key {key!r} in aliases; expected one of {', '.join(CANONICAL_KEYS)}",
            )
        names = (value,) if isinstance(value, str) else value
        if not isinstance(names, Sequence) or not all(
            isinstance(name, str) and name.strip() for name in names
        ):
            raise ContractError(
                subject, f"aliases of {key} must be a column name or a list of column names"
            )
        parsed[key] = tuple(names)
    return parsed


def validate_microscopy_profile_table(
    table_or_path: ProfileSource,
    *,
    profile_dataset_id: str | None = None,
    alias_map: AliasMap | None = None,
) -> ContractValidationResult:
    """Check that a profile table carries the keys needed to join image metadata.

    Every problem is collected before returning; call
    :meth:`ContractValidationResult.raise_for_errors` to fail on them.
    """
    table, source = read_profile_table(table_or_path)
    candidates = _alias_candidates(alias_map)
    resolved, errors = _resolve_columns(table.column_names, candidates)
    object_column = resolve_object_column(table.column_names, alias_map)
    if object_column is not None:
        resolved["object_id"] = object_column
    warnings: list[str] = [] if table.num_rows else ["the table has no rows"]
    missing: list[str] = []

    used_dataset_id = None
    if profile_dataset_id is not None:  # an explicit id wins over any column (SPEC §5)
        used_dataset_id = profile_dataset_id
        if not profile_dataset_id.strip():
            errors.append("profile_dataset_id is empty")
        column = resolved.pop("dataset_id", None)
        if column is not None:
            warnings.append(
                f"dataset_id column {column!r} ignored: profile_dataset_id "
                f"{profile_dataset_id!r} applies to every row"
            )
        errors[:] = [e for e in errors if not e.startswith("dataset_id: ")]
    elif "dataset_id" not in resolved:
        missing.append("dataset_id")
        errors.append(
            f"no dataset_id column (one of {_names(candidates['dataset_id'])}); pass "
            "profile_dataset_id= (CLI --profile-dataset-id) when all rows share one dataset"
        )

    if "image_id" not in resolved and "well_id" not in resolved:
        missing.append("image_id or well_id")
        errors.append(
            f"no image_id or well_id column (one of "
            f"{_names(candidates['image_id'] + candidates['well_id'])}); add more names "
            "with alias_map= or an aliases TOML file (CLI --aliases)"
        )
        if "site_id" in resolved:
            warnings.append(
                f"site_id column {resolved['site_id']!r} is unused without image_id or well_id"
            )
    _check_key_values(table, resolved, errors, warnings)

    join_keys = tuple(
        key
        for key in CANONICAL_KEYS[:-1]
        if key in resolved or (key == "dataset_id" and used_dataset_id is not None)
    )
    return ContractValidationResult(
        source=source,
        row_count=table.num_rows,
        is_valid=not errors,
        join_keys=join_keys,
        resolved_aliases=resolved,
        missing_columns=tuple(missing),
        errors=tuple(errors),
        warnings=tuple(warnings),
        profile_dataset_id=used_dataset_id,
        object_key=resolved.get("object_id"),
    )


def resolve_object_column(names: Sequence[str], alias_map: AliasMap | None = None) -> str | None:
    """The column of object ids or numbers (``ObjectNumber``, ``Nuclei_Number_Object_Number``)."""
    resolved, _errors = _resolve_columns(names, _alias_candidates(alias_map))
    if "object_id" in resolved:
        return resolved["object_id"]
    numbered = [c for c in names if c.lower().endswith(OBJECT_NUMBER_SUFFIX)]
    return numbered[0] if len(numbered) == 1 else None


def canonical_profile_keys(table: pa.Table, result: ContractValidationResult) -> pa.Table:
    """Return the canonical key columns of a validated profile table.

    Rows keep the count and order of ``table``; columns are the resolved keys in
    :data:`CANONICAL_KEYS` order, all strings, wells normalised (``A/1`` → ``A01``)
    and ``dataset_id`` filled from ``profile_dataset_id`` when it is not a column.
    Raises :class:`ContractError` when ``result`` is invalid.
    """
    result.raise_for_errors()
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for key in CANONICAL_KEYS:
        if key == "dataset_id" and result.profile_dataset_id is not None:
            columns[key] = pa.repeat(result.profile_dataset_id, table.num_rows)
        elif key in result.resolved_aliases:
            column_name = result.resolved_aliases[key]
            if column_name not in table.column_names:
                raise ContractError(result.source, f"no column {column_name!r} for {key}")
            strings = _as_strings(table.column(column_name))
            columns[key] = _normalize_wells(strings, result.source) if key == "well_id" else strings
    return pa.table(columns)


def _alias_candidates(alias_map: AliasMap | None) -> dict[str, tuple[str, ...]]:
    """Every accepted column name per key: the key itself, defaults, then extras."""
    extras = _parse_alias_map(alias_map or {}, "alias_map")
    return {key: (key, *DEFAULT_ALIASES[key], *extras.get(key, ())) for key in CANONICAL_KEYS}


def _resolve_columns(
    column_names: Sequence[str], candidates: Mapping[str, tuple[str, ...]]
) -> tuple[dict[str, str], list[str]]:
    """Map each key to the one column whose name matches it (case-insensitive).

    A column named exactly as the key (``well_id``) is the key, whatever aliases
    sit beside it: tables we write keep the original ``Metadata_*`` columns next to
    the canonical ones. Otherwise the aliases are searched. Returns the resolved
    keys and an error for each key matched by several alias columns and each column
    matched by several keys.
    """
    lowered = {key: {alias.lower() for alias in aliases} for key, aliases in candidates.items()}
    matches = {
        key: [name for name in column_names if name.lower() in accepted]
        for key, accepted in lowered.items()
    }
    for key, names in matches.items():
        exact = [name for name in names if name == key]
        if exact:
            matches[key] = exact
    keys_of_column: dict[str, list[str]] = {}
    for key, names in matches.items():
        for name in names:
            keys_of_column.setdefault(name, []).append(key)
    errors = [
        f"{key}: {len(names)} columns match ({_names(names)}); keep one, rename or drop the others"
        for key, names in matches.items()
        if len(names) > 1
    ]
    errors += [
        f"column {name!r} matches several keys ({', '.join(keys)}); check the aliases"
        for name, keys in keys_of_column.items()
        if len(keys) > 1
    ]
    resolved = {
        key: names[0]
        for key, names in matches.items()
        if len(names) == 1 and len(keys_of_column[names[0]]) == 1
    }
    return resolved, errors


def _check_key_values(
    table: pa.Table, resolved: Mapping[str, str], errors: list[str], warnings: list[str]
) -> None:
    """Append problems with the values of each resolved key column: type, nulls, wells."""
    for key, column_name in resolved.items():
        column = table.column(column_name)
        if not _is_key_type(column.type):
            errors.append(
                f"{key}: column {column_name!r} has type {column.type}; expected strings or numbers"
            )
            continue
        nulls = pc.sum(pc.is_null(column, nan_is_null=True)).as_py() or 0
        if nulls:
            warnings.append(f"{key}: {nulls} null values; those rows cannot join")
        invalid = _normalize_distinct_wells(pc.unique(column))[1] if key == "well_id" else []
        if invalid:
            errors.append(
                f"well_id: {len(invalid)} values of column {column_name!r} are not well names "
                f"(e.g. 'A01', 'A/1'): {_names(invalid[:_MAX_EXAMPLES])}"
            )


def _names(names: Sequence[str]) -> str:
    """Quote and join column names for a message."""
    return ", ".join(map(repr, names))


def _is_key_type(data_type: pa.DataType) -> bool:
    """Whether a column of this type can hold identity keys."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_null(data_type)
    )


def _as_strings(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Cast a key column to strings: ``0`` → ``"0"``, ``1.0`` → ``"1"``, NaN → null."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    return column.cast(pa.string())


def _normalize_distinct_wells(values: pa.Array) -> tuple[list[str | None], list[str]]:
    """Normalise distinct well values; returns them aligned (None if invalid) and the invalid."""
    normalized: list[str | None] = []
    invalid: list[str] = []
    for value in _as_strings(values).to_pylist():
        try:
            normalized.append(None if value is None else normalize_well_id(value))
        except ValueError:
            normalized.append(None)
            invalid.append(value)
    return normalized, invalid


def _normalize_wells(wells: pa.Array | pa.ChunkedArray, source: str) -> pa.Array | pa.ChunkedArray:
    """Normalise a string well column by normalising its distinct values once."""
    distinct = pc.unique(wells)
    normalized, invalid = _normalize_distinct_wells(distinct)
    if invalid:
        raise ContractError(source, f"not well names: {_names(invalid[:_MAX_EXAMPLES])}")
    return pc.take(pa.array(normalized, pa.string()), pc.index_in(wells, value_set=distinct))


def profile_dataset_ids(
    profiles: pa.Table, profile_dataset_id: str | None, alias_map: AliasMap | None
) -> list[str]:
    """The dataset ids a profile table names (or ``profile_dataset_id``), sorted."""
    import pyarrow.compute as pc

    contract = validate_microscopy_profile_table(
        profiles, profile_dataset_id=profile_dataset_id, alias_map=alias_map
    )
    contract.raise_for_errors()
    keys = canonical_profile_keys(profiles, contract)
    return sorted(v for v in pc.unique(keys["dataset_id"]).to_pylist() if v is not None)
