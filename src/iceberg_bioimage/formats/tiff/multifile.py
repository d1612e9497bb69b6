"""Multi-file OME-TIFF: one image whose planes live in several TIFF files.

Two shapes occur: a ``.companion.ome`` OME-XML document beside ``BinaryOnly``
TIFFs (whose own OME-XML only points at the companion with ``MetadataFile``),
and a master OME-XML inside one TIFF whose ``TiffData/UUID/@FileName`` name
other files. A reference is matched by UUID first: one carrying the file's own
root UUID is the file itself, even when its ``FileName`` is stale (a renamed
file). Either way tifffile reads the series across the files; the dataset root
is the folder of the named file, and every referenced file must resolve inside it
(``..`` and symlinks out are refused with :class:`MetadataError`).
Missing files are warned about; arrays missing planes are skipped.
Multi-file reading needs a local store (tifffile opens the sibling files).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.io.storage import LocalStore, Store
from iceberg_bioimage.models.paths import resolve_inside


@dataclass(frozen=True, kw_only=True)
class MultiFile:
    """How to open a multi-file OME-TIFF: which TIFF, which OME-XML, from which folder."""

    folder: str
    tiff_path: str
    omexml: str | None
    #: Paths of the referenced files that are present (tifffile opens each).
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _root(text: str, where: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise MetadataError(where, f"invalid OME-XML: {error}") from error


def _uuid(value: str | None) -> str:
    """A UUID as compared: ``urn:uuid:`` prefix and case do not matter."""
    text = (value or "").strip().lower()
    return text.removeprefix("urn:uuid:")


def referenced_files(text: str, where: str, *, own_uuid: str | None = None) -> tuple[str, ...]:
    """File names of ``TiffData/UUID/@FileName`` in document order, each once.

    A reference is matched by its UUID first: one whose UUID is ``own_uuid`` (the
    root ``OME/@UUID`` of the file holding this OME-XML) is that file itself,
    whatever its ``FileName`` says. Renamed OME-TIFFs keep a stale ``FileName``
    (the OME specification's ``FLIM-modulo-sample.ome.tif`` names ``FLIM.ome.tif``).
    """
    own = _uuid(own_uuid) if own_uuid else None
    names = [
        node.get("FileName", "")
        for node in _root(text, where).iter()
        if _local(node.tag) == "UUID"
        and node.get("FileName")
        and not (own and _uuid(node.text) == own)
    ]
    return tuple(dict.fromkeys(names))


def root_uuid(text: str, where: str) -> str | None:
    """The ``UUID`` attribute of the root ``OME`` element, if any."""
    return _root(text, where).get("UUID")


def binary_only_companion(text: str, where: str) -> str | None:
    """The ``MetadataFile`` a ``BinaryOnly`` OME-XML points at, or ``None``."""
    for node in _root(text, where).iter():
        if _local(node.tag) == "BinaryOnly" and node.get("MetadataFile"):
            return node.get("MetadataFile")
    return None


def is_ome_xml(head: bytes) -> bool:
    """Whether the first bytes of a file look like an OME-XML document."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith((b"<?xml", b"<OME")) and b"<OME" in head


def _resolve(folder: str, name: str, where: str, warnings: list[str]) -> str | None:
    """The path of a referenced file inside ``folder``; ``None`` (warned) when absent."""
    path = resolve_inside(folder, name, what="referenced file")
    if not path.is_file():
        warnings.append(f"{where}: referenced file {name!r} is missing; its planes are skipped")
        return None
    return str(path)


def _present(
    folder: str, names: tuple[str, ...], where: str, warnings: list[str]
) -> tuple[str, ...]:
    """Paths of the named files that are present inside ``folder`` (missing ones warned)."""
    return tuple(found for name in names if (found := _resolve(folder, name, where, warnings)))


def local_file(store: Store) -> str | None:
    """The local path of a store that is one file, else ``None``."""
    if isinstance(store, LocalStore) and os.path.isfile(store.root):
        return store.root
    return None


def plan_from_tiff(path: str, own_xml: str) -> MultiFile | None:
    """The multi-file plan of a TIFF whose OME-XML names other files or a companion.

    ``None`` when the TIFF holds all its planes itself.
    """
    folder = os.path.dirname(path)
    name = os.path.basename(path)
    warnings: list[str] = []
    try:
        companion = binary_only_companion(own_xml, path)
    except MetadataError:
        return None  # unparseable OME-XML: the single-file scan warns about it
    if companion is not None:
        found = _resolve(folder, companion, path, warnings)
        if found is None:
            raise MetadataError(path, f"BinaryOnly OME-TIFF: companion {companion!r} is missing")
        with open(found, encoding="utf-8") as handle:
            text = handle.read()
        present = _present(folder, referenced_files(text, found), found, warnings)
        return MultiFile(
            folder=folder, tiff_path=path, omexml=text, files=present, warnings=tuple(warnings)
        )
    files = referenced_files(own_xml, path, own_uuid=root_uuid(own_xml, path))
    if not any(other.lower() != name.lower() for other in files):
        return None
    present = _present(folder, files, path, warnings)
    return MultiFile(
        folder=folder, tiff_path=path, omexml=None, files=present, warnings=tuple(warnings)
    )


def plan_from_companion(path: str, text: str) -> MultiFile:
    """The multi-file plan of a ``.companion.ome`` document: open its first present TIFF."""
    folder = os.path.dirname(path)
    warnings: list[str] = []
    present = _present(folder, referenced_files(text, path), path, warnings)
    if not present:
        raise MetadataError(path, "OME-XML companion references no present TIFF file")
    return MultiFile(
        folder=folder, tiff_path=present[0], omexml=text, files=present, warnings=tuple(warnings)
    )
