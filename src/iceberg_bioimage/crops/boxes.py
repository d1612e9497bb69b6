"""Crop boxes from CellProfiler columns: bounding boxes or a fixed size around centres.

Boxes are half-open pixel ranges ``[x_min, x_max) × [y_min, y_max)``. CellProfiler's
``<Compartment>_AreaShape_BoundingBoxMaximum_X/Y`` are already exclusive (its
``BoundingBoxArea`` is ``(max_x - min_x) * (max_y - min_y)``); ``size=N`` gives
``[floor(c) - N//2, floor(c) - N//2 + N)`` around the centre ``c``. Boxes are scaled to a
pyramid level (outwards: floor the minimum, ceil the maximum) and clipped at the image
borders without padding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.models.limits import MAX_BOX_COORDINATE, MAX_CROP_SIZE

_BBOX = re.compile(r"^(?:(?P<compartment>[A-Za-z][A-Za-z0-9]*)_)?AreaShape_BoundingBoxMinimum_X$")
_CENTER = re.compile(r"^(?:(?P<compartment>[A-Za-z][A-Za-z0-9]*)_)?Location_Center_X$")
BOX_KEYS = ("x_min", "y_min", "x_max", "y_max")


@dataclass(frozen=True, kw_only=True)
class BoxColumns:
    """Where a profile table's boxes come from, and the compartment they belong to."""

    compartment: str | None
    x_min: str | None = None
    y_min: str | None = None
    x_max: str | None = None
    y_max: str | None = None
    center_x: str | None = None
    center_y: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Boxes:
    """Half-open boxes, one per profile row; ``valid`` is false where a value was null."""

    x_min: np.ndarray
    x_max: np.ndarray
    y_min: np.ndarray
    y_max: np.ndarray
    valid: np.ndarray

    def take(self, index: np.ndarray) -> Boxes:
        """The boxes at ``index``."""
        return Boxes(
            *(a[index] for a in (self.x_min, self.x_max, self.y_min, self.y_max)), self.valid[index]
        )

    def with_box(self, x_min: int, x_max: int, y_min: int, y_max: int) -> Boxes:
        """These boxes and one more (valid) at the end."""
        return Boxes(
            np.r_[self.x_min, x_min],
            np.r_[self.x_max, x_max],
            np.r_[self.y_min, y_min],
            np.r_[self.y_max, y_max],
            np.r_[self.valid, True],
        )

    def scaled(self, factor_x: float, factor_y: float) -> Boxes:
        """Boxes at a level ``factor`` times coarser (outwards: floor minima, ceil maxima)."""
        if factor_x == 1 and factor_y == 1:
            return self
        return Boxes(
            np.floor(self.x_min / factor_x).astype(np.int64),
            np.ceil(self.x_max / factor_x).astype(np.int64),
            np.floor(self.y_min / factor_y).astype(np.int64),
            np.ceil(self.y_max / factor_y).astype(np.int64),
            self.valid,
        )

    def clipped(self, width: int, height: int) -> Boxes:
        """Boxes clipped to ``[0, width) × [0, height)``; empty ones become invalid."""
        x_min = np.clip(self.x_min, 0, width)
        x_max = np.clip(self.x_max, 0, width)
        y_min = np.clip(self.y_min, 0, height)
        y_max = np.clip(self.y_max, 0, height)
        valid = self.valid & (x_max > x_min) & (y_max > y_min)
        return Boxes(x_min, x_max, y_min, y_max, valid)


def _found(pattern: re.Pattern[str], names: Sequence[str]) -> dict[str, str]:
    """Compartment (``""`` when unprefixed) → matching column."""
    found = {}
    for name in names:
        match = pattern.match(name)
        if match:
            found[match.group("compartment") or ""] = name
    return found


def _pick(found: dict[str, str], compartment: str | None, what: str, label: str) -> str:
    if compartment is not None:
        for prefix in found:
            if prefix.lower() == compartment.lower():
                return prefix
        if "" in found:  # a per-compartment table (CellProfiler's Nuclei.csv): unprefixed
            return ""
        raise ContractError(
            label, f"no {what} columns for compartment {compartment!r}; found {_names(found)}"
        )
    if len(found) > 1:
        raise ContractError(
            label,
            f"{what} columns of several compartments ({_names(found)}); choose one with "
            "compartment= (--compartment)",
        )
    return next(iter(found))


def _names(found: Mapping[str, str]) -> str:
    return ", ".join(sorted(p or "<unprefixed>" for p in found)) or "none"


def resolve_box_columns(
    names: Sequence[str],
    *,
    size: int | None,
    bbox_columns: Mapping[str, str] | Sequence[str] | None,
    compartment: str | None,
    label: str,
) -> BoxColumns:
    """Find the box columns of a profile table (:class:`ContractError` naming what is missing)."""
    if size is not None:
        if size <= 0 or size > MAX_CROP_SIZE:
            raise ContractError(
                label,
                f"size must be a positive number of pixels, at most {MAX_CROP_SIZE:,} "
                f"(a crop side), got {size}",
            )
        found = _found(_CENTER, names)
        if not found:
            raise ContractError(label, "size= needs Location_Center_X/Y columns; none found")
        prefix = _pick(found, compartment, "Location_Center", label)
        head = f"{prefix}_" if prefix else ""
        _require(names, [f"{head}Location_Center_X", f"{head}Location_Center_Y"], label)
        return BoxColumns(
            compartment=prefix or compartment,
            center_x=f"{head}Location_Center_X",
            center_y=f"{head}Location_Center_Y",
            size=size,
        )
    if bbox_columns is not None:
        given = (
            dict(bbox_columns)
            if isinstance(bbox_columns, Mapping)
            else dict(zip(BOX_KEYS, bbox_columns, strict=True))
        )
        unknown = sorted(set(given) - set(BOX_KEYS))
        if unknown or len(given) != len(BOX_KEYS):
            raise ContractError(label, f"bbox_columns needs exactly the keys {BOX_KEYS}")
        _require(names, list(given.values()), label)
        return BoxColumns(compartment=compartment, **given)
    found = _found(_BBOX, names)
    if not found:
        raise ContractError(
            label,
            "no AreaShape_BoundingBoxMinimum_X/Y columns; pass size= (--size N) to crop around "
            "Location_Center_X/Y, or bbox_columns=",
        )
    prefix = _pick(found, compartment, "AreaShape_BoundingBox", label)
    head = f"{prefix}_AreaShape_BoundingBox" if prefix else "AreaShape_BoundingBox"
    columns = {
        "x_min": f"{head}Minimum_X",
        "y_min": f"{head}Minimum_Y",
        "x_max": f"{head}Maximum_X",
        "y_max": f"{head}Maximum_Y",
    }
    _require(names, list(columns.values()), label)
    return BoxColumns(compartment=prefix or compartment, **columns)


def _require(names: Sequence[str], wanted: Sequence[str], label: str) -> None:
    missing = [w for w in wanted if w not in names]
    if missing:
        raise ContractError(label, f"missing box columns: {missing}")


def _numbers(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    column = table[name]
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        try:
            column = pc.cast(column, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise ContractError(name, f"box column is not numeric ({column.type})") from error
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    values = pc.fill_null(pc.cast(column, pa.float64()), 0.0).to_numpy(zero_copy_only=False)
    valid &= np.isfinite(values) & (np.abs(values) < MAX_BOX_COORDINATE)
    return np.where(valid, values, 0.0), valid


def compute_boxes(table: pa.Table, columns: BoxColumns) -> Boxes:
    """Level-0 boxes for every row of ``table`` (invalid where a value is null)."""
    if columns.size is not None:
        assert columns.center_x is not None and columns.center_y is not None
        cx, vx = _numbers(table, columns.center_x)
        cy, vy = _numbers(table, columns.center_y)
        x_min = np.floor(cx).astype(np.int64) - columns.size // 2
        y_min = np.floor(cy).astype(np.int64) - columns.size // 2
        return Boxes(x_min, x_min + columns.size, y_min, y_min + columns.size, vx & vy)
    values = [
        _numbers(table, getattr(columns, key)) for key in ("x_min", "x_max", "y_min", "y_max")
    ]
    x_min, x_max, y_min, y_max = (
        (np.floor if i % 2 == 0 else np.ceil)(v).astype(np.int64) for i, (v, _) in enumerate(values)
    )
    valid = np.logical_and.reduce([ok for _, ok in values])
    return Boxes(x_min, x_max, y_min, y_max, valid)
