"""Row filters as ``(column, op, value)`` tuples, shared by the catalog and DuckDB readers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from iceberg_bioimage.exceptions import FilterError

OPERATORS = (
    "=",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not in",
    "like",
    "is null",
    "is not null",
)


@dataclass(frozen=True, kw_only=True)
class RowFilter:
    """One checked filter; ``op`` is lower case with ``==`` folded into ``=``."""

    column: str
    op: str
    value: Any = None


def parse_filters(filters: Iterable[Sequence[Any]] | None) -> list[RowFilter]:
    """Check filter tuples; :class:`FilterError` naming the first malformed one.

    Arrow scalars (e.g. ``table["well_id"][0]``) are accepted as values.
    """
    parsed = []
    for item in filters or ():
        if not isinstance(item, list | tuple) or len(item) not in (2, 3):
            raise FilterError(
                "filters", f"filter {item!r} must be (column, op, value) or (column, 'is null')"
            )
        column, op = item[0], str(item[1]).strip().lower()
        if op not in OPERATORS:
            raise FilterError(
                "filters", f"filter {item!r}: unknown operator {item[1]!r}; use one of {OPERATORS}"
            )
        null_test = op in ("is null", "is not null")
        if len(item) == 2 and not null_test:
            raise FilterError("filters", f"filter {item!r}: operator {op!r} needs a value")
        value = None if null_test else _plain(item[2])
        if op in ("in", "not in") and (isinstance(value, str) or not isinstance(value, Iterable)):
            raise FilterError("filters", f"filter {item!r}: {op!r} needs a list of values")
        if op == "like" and not isinstance(value, str):
            raise FilterError("filters", f"filter {item!r}: 'like' needs a string pattern")
        parsed.append(RowFilter(column=str(column), op="=" if op == "==" else op, value=value))
    return parsed


def _plain(value: Any) -> Any:
    """Python value of an Arrow scalar (or of each item of a list of them)."""
    if hasattr(value, "as_py"):
        return value.as_py()
    if isinstance(value, list | tuple | set | frozenset):
        return [v.as_py() if hasattr(v, "as_py") else v for v in value]
    return value
