"""The parts of OME-XML a scan needs: per image names, channels, pixel sizes, wells.

Channel names come only from ``Channel/@Name``: an image whose channels are not
all named has no channel names (an ``ID`` such as ``Channel:0:0`` is not a name).
Physical sizes must be finite and positive; others (``0.0``, negative, ``NaN``)
are dropped and listed in :attr:`OmeImage.invalid_sizes` for the scan to warn.
"""

from __future__ import annotations

import math
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
    invalid_sizes: tuple[str, ...] = ()
    modulo_along_c: int | None = None


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


def valid_size(value: float | None) -> float | None:
    """A physical size when it is a finite positive number, else ``None``."""
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return value


MODULO_NAMESPACE = "openmicroscopy.org/omero/dimension/modulo"


def _modulo_along_c(root: ElementTree.Element) -> dict[str, int]:
    """Length of each ``ModuloAlongC`` annotation, by annotation ID.

    The OME 6D/7D/8D convention splits ``SizeC`` into real channels times a
    modulo (lifetime bins, phases...) that varies fastest, so ``Channel``
    elements number ``SizeC``: the names of the real channels are not written.
    """
    out: dict[str, int] = {}
    for block in _children(root, "StructuredAnnotations"):
        for annotation in _children(block, "XMLAnnotation"):
            if annotation.get("Namespace") != MODULO_NAMESPACE:
                continue
            for node in annotation.iter():
                if _local(node.tag) != "ModuloAlongC":
                    continue
                labels = [c for c in node if _local(c.tag) == "Label"]
                start, end = _float(node.get("Start")), _float(node.get("End"))
                step = _float(node.get("Step")) or 1.0
                if labels:
                    out[annotation.get("ID", "")] = len(labels)
                elif start is not None and end is not None and step > 0:
                    out[annotation.get("ID", "")] = math.floor((end - start) / step) + 1
    return out


def _image(element: ElementTree.Element, modulo: dict[str, int]) -> OmeImage:
    pixels = next(iter(_children(element, "Pixels")), None)
    attrs = dict(pixels.attrib) if pixels is not None else {}
    channels = _children(pixels, "Channel") if pixels is not None else []
    named = [c.get("Name") for c in channels]
    names = tuple(n for n in named if n) if all(named) else ()
    unit = attrs.get("PhysicalSizeXUnit") or attrs.get("PhysicalSizeYUnit")
    has_size = any(f"PhysicalSize{a}" in attrs for a in "XYZ")
    sizes: dict[str, float | None] = {}
    invalid: list[str] = []
    for axis in "XYZ":
        key = f"PhysicalSize{axis}"
        raw = _float(attrs.get(key))
        sizes[axis] = valid_size(raw)
        if key in attrs and sizes[axis] is None:
            invalid.append(f"{key}={attrs[key]!r}")
    refs = [r.get("ID", "") for r in _children(element, "AnnotationRef")]
    modulo_c = next((modulo[r] for r in refs if r in modulo), None)
    return OmeImage(
        id=element.get("ID", ""),
        name=element.get("Name"),
        channel_names=names or None,
        physical_size_x=sizes["X"],
        physical_size_y=sizes["Y"],
        physical_size_z=sizes["Z"],
        physical_unit=normalize_unit(unit or ("µm" if has_size else None)),
        pixels=attrs,
        invalid_sizes=tuple(invalid),
        modulo_along_c=modulo_c,
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
    modulo = _modulo_along_c(root)
    images = tuple(_image(e, modulo) for e in _children(root, "Image"))
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
