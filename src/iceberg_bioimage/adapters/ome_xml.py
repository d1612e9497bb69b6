"""The parts of OME-XML a scan needs: per image names, channels, pixel sizes, wells."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from iceberg_bioimage.models import normalize_unit, normalize_well_id, well_name


@dataclass(frozen=True, kw_only=True)
class OmeImage:
    """One ``Image`` element."""

    id: str
    name: str | None
    channel_names: tuple[str, ...] | None
    physical_size_x: float | None
    physical_size_y: float | None
    physical_size_z: float | None
    physical_unit: str | None
    pixels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class OmeWellSample:
    """Where an image sits on a plate."""

    plate_id: str
    well_id: str
    site_id: str


@dataclass(frozen=True, kw_only=True)
class OmeDocument:
    """Images in document order, and plate placements by image id."""

    images: tuple[OmeImage, ...]
    placements: dict[str, OmeWellSample]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag) == name]


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _image(element: ElementTree.Element) -> OmeImage:
    pixels = next(iter(_children(element, "Pixels")), None)
    attrs = dict(pixels.attrib) if pixels is not None else {}
    channels = _children(pixels, "Channel") if pixels is not None else []
    names = tuple(c.get("Name") or c.get("ID") or f"channel{i}" for i, c in enumerate(channels))
    unit = attrs.get("PhysicalSizeXUnit") or attrs.get("PhysicalSizeYUnit")
    has_size = any(f"PhysicalSize{a}" in attrs for a in "XYZ")
    return OmeImage(
        id=element.get("ID", ""),
        name=element.get("Name"),
        channel_names=names or None,
        physical_size_x=_float(attrs.get("PhysicalSizeX")),
        physical_size_y=_float(attrs.get("PhysicalSizeY")),
        physical_size_z=_float(attrs.get("PhysicalSizeZ")),
        physical_unit=normalize_unit(unit or ("µm" if has_size else None)),
        pixels=attrs,
    )


def _well_id(well: ElementTree.Element) -> str:
    """The canonical well id (``A01``) of 0-based ``Row``/``Column`` indexes.

    ``RowNamingConvention`` only says how the instrument labels rows; well ids are
    always ``<row letters><column>``. ``ValueError`` when the indexes are not numbers.
    """
    row, column = well.get("Row", "0"), well.get("Column", "0")
    if row.isascii() and row.isdigit() and column.isascii() and column.isdigit():
        return well_name(int(row), int(column))
    return normalize_well_id(f"{row}{column}")


def parse_ome_xml(text: str) -> OmeDocument:
    """Parse an OME-XML document; ``ValueError`` when it is not XML."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise ValueError(f"invalid OME-XML: {error}") from error
    images = tuple(_image(e) for e in _children(root, "Image"))
    placements: dict[str, OmeWellSample] = {}
    for plate in _children(root, "Plate"):
        plate_id = plate.get("Name") or plate.get("ID") or ""
        for well in _children(plate, "Well"):
            try:
                well_id = _well_id(well)
            except ValueError:
                continue
            for site, sample in enumerate(_children(well, "WellSample")):
                for ref in _children(sample, "ImageRef"):
                    placements[ref.get("ID", "")] = OmeWellSample(
                        plate_id=plate_id, well_id=well_id, site_id=str(site)
                    )
    return OmeDocument(images=images, placements=placements)
