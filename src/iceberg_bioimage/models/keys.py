"""Identity keys: dataset ids, image ids and well names.

These rules are shared by scanners, sinks and the join contract so that the
same well or image is spelled the same way everywhere.
"""

from __future__ import annotations

import re

#: The join keys of the microscopy contract, most general last (SPEC §5).
CANONICAL_KEYS = ("dataset_id", "image_id", "plate_id", "well_id", "site_id", "object_id")
STORE_SUFFIXES = (".companion.ome", ".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif")

_WELL_PATTERN = re.compile(r"^\s*([A-Za-z]+)\s*[/_\-\s]?\s*0*(\d+)\s*$")


def default_dataset_id(uri: str) -> str:
    """Return the default dataset id of a store: its name minus known suffixes.

    >>> default_dataset_id("s3://bucket/plates/plate1.ome.zarr/")
    'plate1'
    """
    name = uri.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    lowered = name.lower()
    for suffix in STORE_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def image_id_for(dataset_id: str, image_path: str) -> str:
    """Return the globally unique id of the image at ``image_path`` in a dataset.

    An image at the store root is identified by the dataset id alone.
    """
    image_path = image_path.strip("/")
    return f"{dataset_id}:{image_path}" if image_path else dataset_id


def split_well_id(well: str) -> tuple[str, str]:
    """Split a well name into normalised ``(row, column)``.

    Accepts ``A1``, ``A01``, ``a01``, ``A/1``, ``A_1``, ``AF48``; the row is upper
    case and the column has at least two digits. Raises ``ValueError`` otherwise.
    """
    match = _WELL_PATTERN.match(well)
    if match is None:
        raise ValueError(f"not a well name: {well!r} (expected e.g. 'A01' or 'A/1')")
    row, column = match.groups()
    return row.upper(), f"{int(column):02d}"


def normalize_well_id(well: str) -> str:
    """Return the canonical well id, e.g. ``A/1`` → ``A01``; ``AF48`` stays."""
    row, column = split_well_id(well)
    return row + column


_UNIT_NAMES = {
    "µm": "micrometer",
    "μm": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "in": "inch",
    "inch": "inch",
}


def normalize_unit(unit: str | None) -> str | None:
    """Return the OME-NGFF (UDUNITS) name of a length unit: ``µm`` → ``micrometer``."""
    if unit is None:
        return None
    text = unit.strip()
    return _UNIT_NAMES.get(text.lower(), _UNIT_NAMES.get(text, text)) if text else None


def row_letters(row_index: int) -> str:
    """Return the row letters of a 0-based row index (0 → ``A``, 26 → ``AA``)."""
    letters = ""
    value = row_index + 1
    while value:
        value, remainder = divmod(value - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def row_index(letters: str) -> int:
    """Return the 0-based index of row letters (``A`` → 0, ``AA`` → 26)."""
    value = 0
    for letter in letters.upper():
        value = value * 26 + (ord(letter) - 64)
    return value - 1


def well_name(row_index: int, column_index: int) -> str:
    """Return the canonical well id of 0-based row/column indexes (0, 0 → ``A01``)."""
    return f"{row_letters(row_index)}{column_index + 1:02d}"
