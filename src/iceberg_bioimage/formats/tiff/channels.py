"""Channel names of a TIFF series, from OME-XML, ImageJ or MetaSeries metadata.

Names come from OME ``Channel/@Name`` (never an ``ID``), else from ImageJ
``Labels`` (one per plane, channels varying fastest; kept only when they repeat
with the channel period, since labels that change along z or t name slices), or
the ``_IllumSetting_`` of a single-channel MetaSeries (MetaMorph) TIFF. They are
kept only when they match the size of the ``c`` axis (one name when there is none).

OME ``ModuloAlongC`` (the 6D/7D/8D convention, e.g. FLIM lifetime bins) splits
``SizeC`` into channels times bins, the bins varying fastest, and the
``Channel`` elements number ``SizeC``: a real channel gets the name its bins
share, and the image no names (with a warning) when they differ.
"""

from __future__ import annotations

from typing import Any

import tifffile

from iceberg_bioimage.formats.tiff.ome_xml import OmeImage


def channel_names(
    tif: tifffile.TiffFile, image: OmeImage | None, shape: tuple[int, ...], axes: str
) -> tuple[tuple[str, ...] | None, str | None]:
    """``(names, problem)``: names matching the ``c`` axis, or ``None`` and why (if warned)."""
    size_c = shape[axes.index("c")] if "c" in axes else 1
    if image is not None:
        names = image.channel_names
        if names and image.modulo_along_c and len(names) != size_c:
            names = modulo_channel_names(names, size_c)
            if names is None:
                return None, (
                    f"OME ModuloAlongC gives {len(image.channel_names or ())} channel names "
                    f"for {size_c} channels and the bins of a channel are named differently"
                )
    else:
        names = imagej_channel_labels(tif, size_c) or metaseries_channel_name(tif, size_c)
    if names is not None and len(names) != size_c:
        return None, f"{len(names)} channel names for {size_c} channels"
    return names, None


def modulo_channel_names(names: tuple[str, ...], size_c: int) -> tuple[str, ...] | None:
    """Names of the real channels of a ``ModuloAlongC`` image; ``None`` when bins differ."""
    if size_c <= 0 or len(names) % size_c:
        return names
    step = len(names) // size_c
    groups = [names[c * step : (c + 1) * step] for c in range(size_c)]
    if all(len(set(group)) == 1 for group in groups):
        return tuple(group[0] for group in groups)
    return None


def imagej_channel_labels(tif: tifffile.TiffFile, size_c: int) -> tuple[str, ...] | None:
    """ImageJ ``Labels`` of the first ``size_c`` planes, when they repeat per channel."""
    meta = tif.imagej_metadata or {}
    labels = meta.get("Labels")
    if not isinstance(labels, list | tuple) or not labels or len(labels) < size_c:
        return None
    if any(label != labels[i % size_c] for i, label in enumerate(labels)):
        return None
    names = tuple(str(label) for label in labels[:size_c])
    return names if all(names) else None


def metaseries_channel_name(tif: tifffile.TiffFile, size_c: int) -> tuple[str, ...] | None:
    """The illumination setting of a single-channel MetaSeries (MetaMorph) TIFF."""
    if size_c != 1 or not tif.is_metaseries:
        return None
    try:
        meta = tif.metaseries_metadata or {}
    except Exception:  # a damaged description is not worth failing the scan
        return None
    found = _find_key(meta, "_IllumSetting_")
    return (found,) if isinstance(found, str) and found else None


def _find_key(meta: Any, key: str) -> Any:
    """The first value of ``key`` in nested MetaSeries metadata dictionaries."""
    if not isinstance(meta, dict):
        return None
    if key in meta:
        return meta[key]
    for value in meta.values():
        found = _find_key(value, key)
        if found is not None:
            return found
    return None
