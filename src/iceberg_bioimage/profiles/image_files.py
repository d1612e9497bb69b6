"""Key an Image table by the files it names, when it names no well or site.

CellProfiler writes ``Image.csv`` without ``Metadata_Well``/``Metadata_Site`` when the
pipeline has no Metadata module; each row still names its channel files
(``FileName_<Ch>`` + ``PathName_<Ch>``, or ``URL_<Ch>``). A file-set scan records the
files of each image (``image_assets.metadata_json`` ``file_names``, paths relative to
the dataset root), so each Image row is matched to the one image that holds its
files, and gets that ``image_id``. Files the store does not hold (an overlay PNG, an
illumination function) are ignored; a row whose files belong to several images is an
error, never a guess.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import ContractError

_FILE_PREFIXES = ("Image_FileName_", "FileName_", "Image_URL_", "URL_")


def file_columns(names: Sequence[str]) -> list[tuple[str, str | None]]:
    """``(file column, path column or None)`` pairs of an Image table, in column order."""
    lowered = {n.lower(): n for n in names}
    pairs = []
    for name in names:
        low = name.lower()
        for prefix in _FILE_PREFIXES:
            if low.startswith(prefix.lower()) and len(name) > len(prefix):
                path = None
                if "filename_" in prefix.lower():
                    path_prefix = prefix.lower().replace("filename_", "pathname_")
                    path = lowered.get(path_prefix + low[len(prefix) :])
                pairs.append((name, path))
                break
    return pairs


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def store_files(image_assets: pa.Table) -> dict[str, list[tuple[list[str], str]]]:
    """File name → ``(folder parts, image_id)`` of every file of every file-set image."""
    found: dict[str, list[tuple[list[str], str]]] = {}
    if "metadata_json" not in image_assets.column_names:
        return found
    for image_id, text in zip(
        image_assets["image_id"].to_pylist(), image_assets["metadata_json"].to_pylist(), strict=True
    ):
        if not text or '"file_names"' not in text:
            continue
        try:
            names = json.loads(text).get("file_names") or []
        except (ValueError, AttributeError):
            continue
        for key in names:
            if isinstance(key, str) and key:
                parts = _parts(key)
                found.setdefault(parts[-1], []).append((parts[:-1], image_id))
    return found


def _image_of(
    name: str, folder: str | None, files: dict[str, list[tuple[list[str], str]]]
) -> set[str]:
    """Images holding the file ``name`` (in ``folder``, when several hold one so named)."""
    candidates = files.get(name, [])
    images = {image for _, image in candidates}
    if len(images) > 1 and folder:
        where = _parts(folder)
        narrowed = {
            image
            for parts, image in candidates
            if parts and len(parts) <= len(where) and where[-len(parts) :] == parts
        }
        images = narrowed or images
    return images


def _split(column: str, value: str, folder: str | None) -> tuple[str, str | None]:
    if "url_" in column.lower():
        path = unquote(urlsplit(value).path)
        return posixpath.basename(path), posixpath.dirname(path)
    parts = _parts(value)
    name = parts[-1] if parts else value
    inner = "/".join(parts[:-1])
    return name, "/".join(p for p in (folder or "", inner) if p) or None


def key_by_files(image: pa.Table, image_assets: pa.Table, label: str) -> pa.Table | None:
    """``image`` with ``image_id`` from the files each row names; ``None`` if it names none.

    Raises :class:`ContractError` naming the table and the image number when one row's
    files belong to several images.
    """
    pairs = file_columns(image.column_names)
    files = store_files(image_assets)
    if not pairs or not files:
        return None
    columns = {c: image[c].to_pylist() for pair in pairs for c in pair if c is not None}
    numbers = next(
        (image[c].to_pylist() for c in image.column_names if c.lower().endswith("imagenumber")),
        list(range(1, image.num_rows + 1)),
    )
    out: list[str | None] = []
    for row in range(image.num_rows):
        images: set[str] = set()
        for file_column, path_column in pairs:
            value = columns[file_column][row]
            if not value:
                continue
            folder = columns[path_column][row] if path_column else None
            images |= _image_of(*_split(file_column, str(value), folder), files)
        if len(images) > 1:
            raise ContractError(
                label,
                f"ImageNumber {numbers[row]}: its files belong to several images "
                f"({', '.join(sorted(images))}); add Metadata_Well/Metadata_Site to the "
                "Image table",
            )
        out.append(images.pop() if images else None)
    if all(v is None for v in out):
        return None
    keyed = image.drop_columns([c for c in image.column_names if c == "image_id"])
    return keyed.append_column("image_id", pa.array(out, pa.string()))


def unmatched_rows(image: pa.Table) -> int:
    """Image rows that no image of the store matched (after :func:`key_by_files`)."""
    return int(pc.sum(pc.is_null(image["image_id"])).as_py() or 0)
