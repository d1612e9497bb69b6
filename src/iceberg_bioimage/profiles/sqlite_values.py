"""SQLite values as Arrow columns, whatever type each cell was stored with.

SQLite stores every value with its own type, whatever the column declares.
cytominer-database writes text ``'nan'`` (and ``'inf'``, ``''``) into ``FLOAT``
columns, and some JUMP databases declare every column ``TEXT`` while holding
numbers. A column's Arrow type is therefore chosen once per table
(:func:`text_column_type`, from :func:`value_kind` over all its values), and every
batch is made to fit it (:func:`column_as`): numeric text becomes a number
(``'nan'`` → NaN, ``'inf'`` → inf), anything else in a numeric column becomes null.
:class:`TextCounts` counts the text values so read, for one warning per table.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_LEADING_ZERO = re.compile(r"[+-]?0[0-9]")
_INT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)", re.IGNORECASE
)
_SPECIAL = ("nan", "inf", "infinity")
#: Kinds of a value, in the order a column's kind is their maximum.
NULL, INTEGER, REAL, TEXT = 0, 1, 2, 3
#: Text columns that name things (plates, wells, files, table numbers) stay text.
_IDENTIFIER = re.compile(
    r"^(?:image_)?metadata_|tablenumber$|(?:^|_)(?:objects)?(?:filename|pathname|url)_",
    re.IGNORECASE,
)


def value_kind(value: Any) -> int:
    """``NULL`` (None, ``''``), ``INTEGER`` (``7``, ``'7'``), ``REAL`` (``'nan'``), ``TEXT``.

    Text with leading zeros (``'007'``) or spaces is ``TEXT``: it does not survive a
    round trip through a number.
    """
    if value is None or value == "":
        return NULL
    if isinstance(value, bool | int):
        return INTEGER
    if isinstance(value, float):
        return REAL
    if isinstance(value, str):
        if _LEADING_ZERO.match(value):  # '007', '0012': names, not numbers
            return TEXT
        if _INT.fullmatch(value):
            return INTEGER
        return REAL if _FLOAT.fullmatch(value) else TEXT
    return TEXT


def is_identifier(name: str) -> bool:
    """Whether a text column names things and keeps its text (``Metadata_Plate``)."""
    return bool(_IDENTIFIER.search(name))


def text_column_type(kind: int) -> pa.DataType:
    """The Arrow type of a text-declared column whose values' largest kind is ``kind``."""
    return {INTEGER: pa.int64(), REAL: pa.float64()}.get(kind, pa.string())


@dataclass
class TextCounts:
    """Text values read into numeric columns, per column and value (for a warning)."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, column: str, value: Any) -> None:
        text = value if isinstance(value, str) else f"<{type(value).__name__}>"
        self.counts.setdefault(column, Counter())[text[:20]] += 1

    def warning(self, label: str) -> str | None:
        """One line naming the table, the count and the commonest values, or None."""
        total = sum(sum(c.values()) for c in self.counts.values())
        if not total:
            return None
        values: Counter[str] = Counter()
        for counter in self.counts.values():
            values.update(counter)
        common = ", ".join(f"{v!r} × {n:,}" for v, n in values.most_common(3))
        return (
            f"{label}: {total:,} text value(s) in {len(self.counts):,} numeric column(s) "
            f"({common}) read as numbers: 'nan'/'inf' as NaN/inf, others as null"
        )


def column_as(
    values: Sequence[Any] | pa.Array, target: pa.DataType, name: str, counts: TextCounts
) -> pa.Array:
    """``values`` (Python values, or an Arrow array of another type) as ``target``."""
    if isinstance(values, pa.Array):
        if values.type == target:
            return values
        if pa.types.is_binary(values.type):  # an untyped column: text, or numbers as text
            values = values.cast(pa.string())  # ArrowInvalid when not UTF-8: the caller names it
            if pa.types.is_string(target):
                return values
        if pa.types.is_string(values.type) and not pa.types.is_string(target):
            blank = pc.equal(values, "")
            values = pc.if_else(blank, pa.scalar(None, values.type), values)
            try:
                return pc.cast(values, target)
            except pa.ArrowInvalid:
                pass
        values = values.to_pylist()
    try:
        return pa.array(values, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    if pa.types.is_string(target):
        return pa.array([_as_text(v) for v in values], target)
    convert = float if pa.types.is_floating(target) else int
    return pa.array([_as_number(v, convert, name, counts) for v in values], target)


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")  # UnicodeDecodeError: the caller names the table
    return str(value)


def _as_number(value: Any, convert: type, name: str, counts: TextCounts) -> Any:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if convert is int and isinstance(value, float):
            return int(value) if value.is_integer() else None
        return convert(value)
    kind = value_kind(value)
    special = isinstance(value, str) and value.lower().lstrip("+-") in _SPECIAL
    if kind in (NULL, TEXT) or special:  # numbers written as text are no surprise
        counts.add(name, value)
    if convert is float and kind in (INTEGER, REAL):
        return float(value)
    if convert is int and kind == INTEGER:
        return int(value)
    return None
