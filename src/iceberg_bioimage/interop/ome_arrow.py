"""OME-Arrow helpers: hand our images to the optional ``ome-arrow`` package.

OME-Arrow keeps image pixels as Arrow records (one struct per image) and writes
them to Parquet. These helpers are deliberately thin: they accept the inputs the
rest of iceberg-bioimage understands, point :class:`ome_arrow.OMEArrow` at the
right file or Zarr group, and return ome-arrow's own objects.

What is added on top of ome-arrow (0.1.0) is only what it cannot do by itself:

* **HCS plates.** ome-arrow reads one OME-NGFF image group. A plate or well
  root is refused with the field paths to use instead; ``image_path="A/1/0"``
  (the part of our ``image_id`` after ``<dataset_id>:``) points ome-arrow at
  that field of the plate.
* **Identity.** The record's ``id`` is our ``image_id`` (``plate04:A/1/0``,
  ``pyramid:0``), and OME-TIFF channel names come from the OME-XML (ome-arrow
  would call them ``C0, C1``).
* **No silent loss.** ome-arrow stores pixels as ``uint16`` and reads only the
  first TIFF series at full resolution. Inputs it would clamp (``float32``,
  ``int16``...) or a series it cannot select raise :class:`MetadataError`
  instead of returning different pixels.

ome-arrow is imported lazily; without the ``ome-arrow`` extra every helper
raises :class:`MissingDependencyError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

import numpy as np

from iceberg_bioimage.exceptions import (
    MetadataError,
    MissingDependencyError,
    StoreNotFoundError,
)
from iceberg_bioimage.formats.tiff.ome_xml import parse_ome_xml
from iceberg_bioimage.formats.tiff.scan import is_tiff
from iceberg_bioimage.formats.zarr import ngff
from iceberg_bioimage.io.storage import LocalStore
from iceberg_bioimage.models import default_dataset_id, image_id_for
from iceberg_bioimage.models.limits import load_json

if TYPE_CHECKING:
    from types import ModuleType

    from ome_arrow import OMEArrow

__all__ = ["create_ome_arrow", "scan_ome_arrow"]

#: ome-arrow 0.1.0's TIFF and OME-Zarr readers store every pixel as uint16
#: (``clamp_to_uint16``); sources whose dtype does not cast safely are refused.
OME_ARROW_PIXEL_DTYPE = np.dtype("uint16")

#: The manifest ``OMEArrow.export(how="parquet")`` writes into its dataset folder;
#: ``OMEArrow`` opens such a folder as a typed chunk dataset when it is present.
OME_ARROW_DATASET_MANIFEST = "_ome_arrow_dataset.json"

_PARQUET_MAGIC = b"PAR1"
_PARQUET_SUFFIXES = (".parquet", ".pq")
_TIFF_SUFFIXES = (".tif", ".tiff")

SourceKind = Literal["tiff", "zarr", "parquet", "dataset"]


@dataclass(frozen=True, kw_only=True)
class _Source:
    """An input resolved to what ome-arrow should open."""

    kind: SourceKind
    path: Path
    image_id: str | None = None
    name: str | None = None
    channel_names: tuple[str, ...] | None = None


def _import_ome_arrow() -> ModuleType:
    try:
        import ome_arrow
    except ImportError as error:
        raise MissingDependencyError("OME-Arrow helpers", "ome-arrow") from error
    return ome_arrow


def create_ome_arrow(
    path: str | os.PathLike[str],
    *,
    image_path: str | int | None = None,
    image_id: str | None = None,
    image_type: str | None = None,
) -> OMEArrow:
    """Read one image into an in-memory :class:`ome_arrow.OMEArrow` record.

    Args:
        path: a local OME-TIFF / TIFF file, an OME-NGFF (0.4 or 0.5) image group
            (the store root, or a plate field such as ``plate.ome.zarr/A/1/0``),
            an HCS plate root together with ``image_path``, or an OME-Arrow
            Parquet file / dataset folder (read with ome-arrow's defaults).
        image_path: which image of the store, relative to the store root, as in
            ``image_id`` after ``<dataset_id>:`` -- a plate field ``"A/1/0"``, or a
            TIFF series number (ome-arrow reads series ``0`` only).
        image_id: ``id`` of the record; defaults to our canonical image id,
            ``<dataset_id>:<image path>`` (e.g. ``plate04:A/1/0``, ``pyramid:0``).
        image_type: ome-arrow's free-form image kind (``"image"``, ``"label"``...).

    Returns:
        The ``OMEArrow`` object; ``.export(how="numpy")`` gives a ``TCZYX``
        ``uint16`` array of the full-resolution level.

    Raises:
        MissingDependencyError: the ``ome-arrow`` extra is not installed.
        StoreNotFoundError: ``path`` (or the selected image) does not exist.
        MetadataError: ``path`` is not an image ome-arrow can read without loss.
    """
    ome_arrow = _import_ome_arrow()
    source = _resolve(path, image_path=image_path, image_id=image_id)
    if source.kind == "tiff":
        record = ome_arrow.from_tiff(
            str(source.path),
            image_id=source.image_id,
            image_type=image_type,
            channel_names=list(source.channel_names) if source.channel_names else None,
        )
        return ome_arrow.OMEArrow(record)
    if source.kind == "zarr":
        record = ome_arrow.from_ome_zarr(
            str(source.path), image_id=source.image_id, name=source.name, image_type=image_type
        )
        return ome_arrow.OMEArrow(record)
    return ome_arrow.OMEArrow(str(source.path), image_type=image_type)


def scan_ome_arrow(
    path: str | os.PathLike[str],
    *,
    image_path: str | int | None = None,
    column_name: str = "ome_arrow",
    row_index: int = 0,
    image_type: str | None = None,
) -> OMEArrow:
    """Open an image lazily with :meth:`ome_arrow.OMEArrow.scan` (nothing is read yet).

    Typical input is an ``.ome.parquet`` written by ome-arrow: a single Parquet
    file holding OME-Arrow struct rows (``ome_arrow.to_ome_parquet``), or the
    dataset folder ``OMEArrow.export(how="parquet", out=...)`` writes. TIFF
    files and OME-NGFF images are accepted as in :func:`create_ome_arrow`
    (ome-arrow then reads planes on demand).

    Pixels are read on ``.collect()``, ``.export(...)`` or by executing a
    ``.tensor_view(...)``. For dataset folders use ``.collect()`` first:
    ome-arrow 0.1.0's lazy ``tensor_view`` opens them as a single file and fails.

    Args:
        path: ``.parquet`` / ``.pq`` file, OME-Arrow dataset folder, TIFF file or
            OME-NGFF image group (or plate root with ``image_path``).
        image_path: image inside a TIFF or Zarr store, as in :func:`create_ome_arrow`.
        column_name: struct column of a Parquet file (ome-arrow auto-detects
            another OME-Arrow struct column, with a warning, if it is absent).
        row_index: which row of a Parquet file.
        image_type: ome-arrow's free-form image kind.

    Raises:
        MissingDependencyError: the ``ome-arrow`` extra is not installed.
        StoreNotFoundError: ``path`` does not exist.
        MetadataError: ``path`` is not something ome-arrow can open lazily.
    """
    ome_arrow = _import_ome_arrow()
    source = _resolve(path, image_path=image_path, image_id=None)
    text = str(source.path)
    lowered = text.lower()
    if source.kind == "tiff" and not lowered.endswith(_TIFF_SUFFIXES):
        raise MetadataError(
            text, "ome-arrow opens a TIFF lazily only when its name ends in .tif or .tiff"
        )
    if source.kind == "zarr" and not (lowered.endswith(".zarr") or ".zarr/" in lowered):
        raise MetadataError(
            text, "ome-arrow opens an OME-Zarr image lazily only when its path contains '.zarr'"
        )
    return ome_arrow.OMEArrow.scan(
        text, column_name=column_name, row_index=row_index, image_type=image_type
    )


# -- resolution -----------------------------------------------------------------


def _local_path(path: str | os.PathLike[str]) -> Path:
    text = os.fspath(path)
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme != "file":
            raise MetadataError(
                text,
                "OME-Arrow helpers read local files only (ome-arrow 0.1.0 opens paths "
                "with pathlib, which breaks URLs); copy the image to a local folder first",
            )
        text = unquote(parts.path)
    local = Path(text)
    if not local.exists():
        raise StoreNotFoundError(text, "no such file or folder")
    return local


def _resolve(
    path: str | os.PathLike[str], *, image_path: str | int | None, image_id: str | None
) -> _Source:
    local = _local_path(path)
    if local.is_dir():
        if (local / OME_ARROW_DATASET_MANIFEST).is_file():
            return _ome_arrow_input(local, "dataset", image_path, image_id)
        if _zarr_node(local) is not None:
            return _resolve_zarr(local, image_path, image_id)
        raise MetadataError(
            str(local),
            "not an image: neither an OME-Zarr group (no zarr.json, .zgroup or .zarray) "
            f"nor an OME-Arrow dataset folder (no {OME_ARROW_DATASET_MANIFEST})",
        )
    with local.open("rb") as handle:
        head = handle.read(8)
    if is_tiff(head):
        return _resolve_tiff(local, image_path, image_id)
    if head.startswith(_PARQUET_MAGIC):
        if not local.name.lower().endswith(_PARQUET_SUFFIXES):
            raise MetadataError(
                str(local), "ome-arrow opens Parquet files only when named .parquet or .pq"
            )
        return _ome_arrow_input(local, "parquet", image_path, image_id)
    raise MetadataError(
        str(local), "not an image: neither a TIFF, an OME-Zarr group nor an OME-Arrow Parquet file"
    )


def _ome_arrow_input(
    path: Path, kind: SourceKind, image_path: str | int | None, image_id: str | None
) -> _Source:
    if image_path is not None or image_id is not None:
        raise MetadataError(
            str(path),
            "an OME-Arrow Parquet input already holds OME-Arrow records: image_path and "
            "image_id apply only to TIFF and OME-Zarr sources (use scan_ome_arrow's "
            "row_index to pick a row)",
        )
    return _Source(kind=kind, path=path)


def _resolve_tiff(path: Path, image_path: str | int | None, image_id: str | None) -> _Source:
    import tifffile

    from iceberg_bioimage.formats.tiff.guard import open_tiff

    series = 0 if image_path is None else _series_number(path, image_path)
    try:
        with open_tiff(path, str(path)) as tif:
            count = len(tif.series)
            if series >= count:
                raise MetadataError(
                    str(path), f"has {count} series (0..{count - 1}); series {series} requested"
                )
            if series != 0:
                raise MetadataError(
                    str(path),
                    f"ome-arrow reads only the first series of a TIFF; series {series} "
                    f"(of {count}) cannot be selected",
                )
            first = tif.series[0]
            _check_dtype(path, first.dtype)
            channel_names = _ome_channel_names(tif, count)
    except tifffile.TiffFileError as error:
        raise MetadataError(str(path), f"unreadable TIFF: {error}") from error
    dataset_id = default_dataset_id(path.name)
    return _Source(
        kind="tiff",
        path=path,
        image_id=image_id or image_id_for(dataset_id, "0"),
        channel_names=channel_names,
    )


def _series_number(path: Path, image_path: str | int) -> int:
    text = str(image_path).strip("/")
    if not text.isdigit():
        raise MetadataError(
            str(path), f"TIFF images are selected by series number, got image_path={image_path!r}"
        )
    return int(text)


def _ome_channel_names(tif: Any, series_count: int) -> tuple[str, ...] | None:
    """Channel names of series 0 from OME-XML, or ``None`` (ome-arrow's ``C0, C1``)."""
    if not (tif.is_ome and tif.ome_metadata):
        return None
    try:
        document = parse_ome_xml(tif.ome_metadata)
    except ValueError:
        return None
    if len(document.images) != series_count:
        return None
    return document.images[0].channel_names


def _resolve_zarr(path: Path, image_path: str | int | None, image_id: str | None) -> _Source:
    path = path.resolve()
    root = _store_root(path)
    if image_path is None:
        target = path
        relative = path.relative_to(root).as_posix()
        relative = "" if relative == "." else relative
    else:
        relative = str(image_path).strip("/")
        target = root / relative if relative else root
        if not target.is_dir() or _zarr_node(target) is None:
            raise StoreNotFoundError(
                str(target), f"no Zarr group {relative!r} in the store {root.name}"
            )
    kind, attributes = _zarr_node(target) or ("group", {})
    if kind == "array":
        raise MetadataError(
            str(target), "is a Zarr array, not an OME-NGFF image group: pass the image folder"
        )
    block, _version = ngff.ngff_attributes(attributes)
    if "multiscales" not in block:
        raise MetadataError(str(target), _not_an_image(target, block))
    try:
        multiscale = ngff.parse_multiscale(block)
    except ValueError as error:
        raise MetadataError(str(target), f"invalid OME-NGFF multiscales: {error}") from error
    level0 = target / multiscale.dataset_paths[0]
    try:
        import zarr

        dtype = zarr.open_array(store=str(level0), mode="r").dtype
    except Exception as error:
        raise MetadataError(str(level0), f"unreadable full-resolution array: {error}") from error
    _check_dtype(level0, dtype)
    dataset_id = default_dataset_id(root.name)
    name = f"{root.name}/{relative}" if relative else root.name
    return _Source(
        kind="zarr",
        path=target,
        image_id=image_id or image_id_for(dataset_id, relative),
        name=name,
    )


def _not_an_image(path: Path, block: Any) -> str:
    if "plate" in block:
        try:
            wells = ngff.parse_plate(block).wells
        except ValueError as error:
            return f"is an HCS plate with invalid metadata ({error}), not an image"
        example = _first_field(path, wells[0].path) if wells else None
        hint = f", e.g. {path.name}/{example} or image_path={example!r}" if example else ""
        return f"is an HCS plate, not an image: pass one of its fields{hint}"
    if "well" in block:
        try:
            fields = ngff.parse_well_images(block)
        except ValueError as error:
            return f"is an HCS well with invalid metadata ({error}), not an image"
        if not fields:
            return "is an HCS well without fields, not an image"
        listed = ", ".join(f"{path.name}/{field}" for field in fields)
        return f"is an HCS well, not an image: pass one of its fields ({listed})"
    return "is a Zarr group without OME-NGFF multiscales, not an image"


def _first_field(plate: Path, well_path: str) -> str | None:
    node = _zarr_node(plate / well_path)
    if node is None:
        return None
    block, _version = ngff.ngff_attributes(node[1])
    try:
        fields = ngff.parse_well_images(block)
    except ValueError:
        return None
    return f"{well_path}/{fields[0]}" if fields else None


def _store_root(path: Path) -> Path:
    """The outermost folder of the contiguous Zarr hierarchy holding ``path`` (resolved)."""
    root = path
    while root.parent != root and _zarr_node(root.parent) is not None:
        root = root.parent
    return root


def _zarr_node(path: Path) -> tuple[str, dict[str, Any]] | None:
    """``(node_type, attributes)`` of a local Zarr v2/v3 node, or ``None``."""
    v3 = path / "zarr.json"
    if v3.is_file():
        document = _read_json(v3)
        return str(document.get("node_type", "group")), dict(document.get("attributes") or {})
    attributes = _read_json(path / ".zattrs") if (path / ".zattrs").is_file() else {}
    if (path / ".zarray").is_file():
        return "array", attributes
    if (path / ".zgroup").is_file():
        return "group", attributes
    return None


def _read_json(path: Path) -> dict[str, Any]:
    """A metadata document read as every scanner reads one: within the store and the limits."""
    store = LocalStore(path.parent)
    data = store.read_many([path.name])[0]
    if data is None:
        raise MetadataError(str(path), "unreadable metadata: the file is missing")
    document = load_json(data, str(path), store.limits)
    if not isinstance(document, dict):
        raise MetadataError(str(path), "metadata is not a JSON object")
    return document


def _check_dtype(path: Path, dtype: Any) -> None:
    source = np.dtype(dtype)
    if not np.can_cast(source, OME_ARROW_PIXEL_DTYPE, casting="safe"):
        raise MetadataError(
            str(path),
            f"pixels are {source}; ome-arrow stores {OME_ARROW_PIXEL_DTYPE} and would clamp "
            "them, so the image cannot be converted without loss",
        )
