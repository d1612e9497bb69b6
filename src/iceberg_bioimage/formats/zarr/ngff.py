"""Light typed parsing of OME-NGFF 0.4 / 0.5 attributes.

Full pydantic validation costs ~1 ms per image and rejects the partial ``omero``
blocks many writers produce, so scanning parses only the fields it needs:
``multiscales`` strictly (they define the arrays), ``omero`` best-effort (it is
transitional in NGFF), ``plate`` and ``well`` strictly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iceberg_bioimage.models.paths import relative_key


@dataclass(frozen=True, kw_only=True)
class Axis:
    """One NGFF axis."""

    name: str
    type: str | None = None
    unit: str | None = None


@dataclass(frozen=True, kw_only=True)
class Multiscale:
    """The first multiscale of an NGFF image."""

    axes: tuple[Axis, ...]
    dataset_paths: tuple[str, ...]
    dataset_scales: tuple[tuple[float, ...] | None, ...]
    global_scale: tuple[float, ...] | None


@dataclass(frozen=True, kw_only=True)
class PlateWell:
    """A well listed in plate metadata."""

    path: str
    row: str
    column: str
    row_index: int | None = None
    column_index: int | None = None


@dataclass(frozen=True, kw_only=True)
class Plate:
    """HCS plate metadata."""

    name: str | None
    wells: tuple[PlateWell, ...]


def ngff_attributes(
    attributes: Mapping[str, Any],
) -> tuple[Mapping[str, Any], str | None]:
    """Return the NGFF block of group attributes and its version.

    NGFF 0.5 nests everything under ``ome``; 0.4 keeps it at the top level with
    versions inside each object.
    """
    ome = attributes.get("ome")
    if isinstance(ome, dict):
        return ome, str(ome.get("version")) if ome.get("version") else None
    for key in ("multiscales", "plate", "well"):
        value = attributes.get(key)
        first = value[0] if isinstance(value, list) and value else value
        if isinstance(first, dict) and first.get("version"):
            return attributes, str(first["version"])
    return attributes, None


def _scale_of(transforms: Any, where: str) -> tuple[float, ...] | None:
    if transforms is None:
        return None
    if not isinstance(transforms, list):
        raise ValueError(f"{where}: 'coordinateTransformations' must be a list")
    for transform in transforms:
        if isinstance(transform, dict) and transform.get("type") == "scale":
            return _numbers(transform.get("scale"), f"{where}: 'scale'")
    return None


def _numbers(raw: Any, field: str) -> tuple[float, ...]:
    """A list of JSON numbers as floats; ``ValueError`` (naming ``field``) otherwise."""
    if not isinstance(raw, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in raw
    ):
        raise ValueError(f"{field} must be a list of numbers")
    try:
        return tuple(float(v) for v in raw)
    except OverflowError:
        raise ValueError(f"{field} holds a number too large for a float") from None


def _parse_axes(raw: Any, ndim_hint: int | None) -> tuple[Axis, ...]:
    if raw is None:
        # NGFF <= 0.3 had no axes: 5D tczyx.
        return tuple(Axis(name=n) for n in "tczyx"[-(ndim_hint or 5) :])
    if not isinstance(raw, list):
        raise ValueError("'axes' must be a list")
    axes = []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            axes.append(Axis(name=item))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            kind, unit = item.get("type"), item.get("unit")
            for key, value in (("type", kind), ("unit", unit)):
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"'axes[{index}].{key}' must be a string, got {value!r:.80}")
            axes.append(Axis(name=item["name"], type=kind, unit=unit))
        else:
            raise ValueError(f"invalid axis {item!r:.80}")
    return tuple(axes)


def parse_multiscale(ngff: Mapping[str, Any]) -> Multiscale:
    """Parse the first entry of ``multiscales``; ``ValueError`` when malformed."""
    multiscales = ngff.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        raise ValueError("'multiscales' must be a non-empty list")
    first = multiscales[0]
    datasets = first.get("datasets") if isinstance(first, dict) else None
    if not isinstance(datasets, list) or not datasets:
        raise ValueError("'multiscales[0].datasets' must be a non-empty list")
    paths, scales = [], []
    for index, dataset in enumerate(datasets):
        if not isinstance(dataset, dict) or not isinstance(dataset.get("path"), str):
            raise ValueError(f"'datasets[{index}]' needs a string 'path'")
        paths.append(_child_path(dataset["path"], f"datasets[{index}].path"))
        scales.append(_scale_of(dataset.get("coordinateTransformations"), f"datasets[{index}]"))
    axes = _parse_axes(first.get("axes"), None)
    for index, scale in enumerate(scales):
        if scale is not None and len(scale) != len(axes):
            raise ValueError(
                f"'datasets[{index}]' scale has {len(scale)} values for {len(axes)} axes"
            )
    return Multiscale(
        axes=axes,
        dataset_paths=tuple(paths),
        dataset_scales=tuple(scales),
        global_scale=_scale_of(first.get("coordinateTransformations"), "multiscales[0]"),
    )


def physical_sizes(
    multiscale: Multiscale, level: int
) -> tuple[float | None, float | None, float | None, str | None]:
    """Return ``(x, y, z, unit)`` physical pixel sizes of one level."""
    scale = multiscale.dataset_scales[level]
    glob = multiscale.global_scale
    sizes: dict[str, float] = {}
    unit = None
    for index, axis in enumerate(multiscale.axes):
        name = axis.name.lower()
        if name not in ("x", "y", "z") or (axis.type not in (None, "space")):
            continue
        if scale is not None:
            value = scale[index]
            if glob is not None and len(glob) == len(multiscale.axes):
                value *= glob[index]
            sizes[name] = value
        if axis.unit and (unit is None or name == "x"):
            unit = axis.unit
    return sizes.get("x"), sizes.get("y"), sizes.get("z"), unit


def channel_labels(ngff: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Best-effort channel names from ``omero.channels[].label``."""
    omero = ngff.get("omero")
    channels = omero.get("channels") if isinstance(omero, dict) else None
    if not isinstance(channels, list) or not channels:
        return None
    labels = [c.get("label") if isinstance(c, dict) else None for c in channels]
    return tuple(
        str(label) if label is not None else f"channel{index}" for index, label in enumerate(labels)
    )


def parse_plate(ngff: Mapping[str, Any]) -> Plate:
    """Parse HCS ``plate`` metadata; ``ValueError`` when malformed."""
    plate = ngff.get("plate")
    if not isinstance(plate, dict):
        raise ValueError("'plate' must be an object")
    rows = _names(plate.get("rows"), "rows")
    columns = _names(plate.get("columns"), "columns")
    wells = plate.get("wells")
    if not isinstance(wells, list):
        raise ValueError("'plate.wells' must be a list")
    parsed = []
    for index, well in enumerate(wells):
        path = well.get("path") if isinstance(well, dict) else None
        if not isinstance(path, str) or path.count("/") != 1:
            raise ValueError(f"'plate.wells[{index}].path' must look like 'A/1', got {path!r}")
        row, column = path.split("/")
        if _child_path(path, f"plate.wells[{index}].path") != path:
            raise ValueError(f"'plate.wells[{index}].path' must look like 'A/1', got {path!r}")
        row_index = _index_in(well.get("rowIndex"), row, rows)
        column_index = _index_in(well.get("columnIndex"), column, columns)
        if row_index is not None:
            row = rows[row_index]
        if column_index is not None:
            column = columns[column_index]
        parsed.append(
            PlateWell(
                path=path,
                row=row,
                column=column,
                row_index=row_index,
                column_index=column_index,
            )
        )
    name = plate.get("name")
    return Plate(name=str(name) if name else None, wells=tuple(parsed))


def _index_in(index: Any, name: str, names: tuple[str, ...]) -> int | None:
    """A well's 0-based row (or column) index: ``rowIndex`` when valid, else its name's place."""
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(names):
        return index
    return names.index(name) if name in names else None


def label_names(attributes: Mapping[str, Any]) -> tuple[str, ...]:
    """Names listed by a ``labels`` group (``labels: [...]``); ``ValueError`` when malformed."""
    block = ngff_attributes(attributes)[0]
    labels = block.get("labels")
    if labels is None:
        return ()
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise ValueError("'labels' must be a list of strings")
    return tuple(_child_path(v, f"labels[{i}]") for i, v in enumerate(labels))


def _child_path(path: str, field: str) -> str:
    """A path below the group that names it; ``..`` and empty paths are refused."""
    try:
        key = relative_key(path)
    except ValueError as error:
        raise ValueError(f"'{field}': {error}") from None
    if not key:
        raise ValueError(f"'{field}' must name a child, got {path!r}")
    return key


def _names(raw: Any, key: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"'plate.{key}' must be a list")
    return tuple(str(item.get("name")) for item in raw if isinstance(item, dict))


def parse_well_images(ngff: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the field paths listed in ``well.images``."""
    well = ngff.get("well")
    images = well.get("images") if isinstance(well, dict) else None
    if not isinstance(images, list):
        raise ValueError("'well.images' must be a list")
    paths = []
    for index, image in enumerate(images):
        path = image.get("path") if isinstance(image, dict) else None
        if not isinstance(path, str) or not path:
            raise ValueError(f"'well.images[{index}].path' must be a non-empty string")
        paths.append(_child_path(path, f"well.images[{index}].path"))
    return tuple(paths)


def axis_names(multiscale: Multiscale) -> Sequence[str]:
    """Names of the axes, in order."""
    return [axis.name for axis in multiscale.axes]
