"""Scan a CellProfiler LoadData table (CSV or Parquet) as a file-set plate.

A LoadData table has one row per image (plate, well, site) and, per channel, either
``FileName_<Ch>`` + ``PathName_<Ch>`` or ``URL_<Ch>``. It is detected by content: a
CSV header, or the Parquet magic number and schema, holding ``Metadata_Well`` and
such columns. Channel names are the column suffixes (``FileName_OrigDNA`` →
``OrigDNA``) in column order, for the columns whose files are TIFF images; columns
naming other files (JUMP's ``FileName_Illum*`` ``.npy`` illumination functions,
outline PNGs) are not channels and are named in a warning. The dataset root is the
files' common folder, and each chunk key is a file's path below it.

The table is streamed (:mod:`.load_data_table`): rows are checked as they come (key
values present, without control characters, within
:attr:`~iceberg_bioimage.models.limits.Limits.max_value_chars`), and a second row for
the same (plate, well, site) is refused at once.

Paths: the table names each file, so the files it names are what the user named
(``docs/safety.md``): absolute paths and ``..`` are allowed, relative paths are read
from the table's folder, and symlinks are followed like any named path. Only regular
files are opened, only TIFF headers are read, and nothing else: no folder is listed.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.formats.file_set.load_data_table import (
    TableBatch,
    csv_header,
    is_parquet,
    iter_table,
    parquet_columns,
)
from iceberg_bioimage.formats.file_set.plate_files import (
    PlatePlanes,
    SeveralPlatesError,
    pick_plate,
    plate_dataset_id,
    scan_plate_files,
)
from iceberg_bioimage.formats.registry import HEAD_BYTES, FormatReader, Probe
from iceberg_bioimage.io.storage import LocalStore, Store, open_store
from iceberg_bioimage.models import ScanResult, normalize_well_id
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.instruments import PlaneName
from iceberg_bioimage.models.limits import Limits

_KEYS = ("Metadata_Plate", "Metadata_Well", "Metadata_Site")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: File suffixes of the images a channel column may name (no suffix: a URL, tried).
IMAGE_SUFFIXES = (".tif", ".tiff")


def load_data_channels(columns: Sequence[str]) -> list[str]:
    """Channel candidates of a LoadData header, in column order (empty: not LoadData)."""
    present = set(columns)
    names: list[str] = []
    for column in columns:
        for prefix in ("FileName_", "URL_"):
            if column.startswith(prefix) and len(column) > len(prefix):
                name = column[len(prefix) :]
                if prefix == "URL_" or f"PathName_{name}" in present:
                    names.append(name)
    return list(dict.fromkeys(names))


def is_load_data_header(columns: Sequence[str]) -> bool:
    """Whether a table's columns are a LoadData header."""
    return "Metadata_Well" in columns and bool(load_data_channels(columns))


def is_image_name(name: str) -> bool:
    """Whether a file name (or URL) names a TIFF image (no suffix: maybe; tried)."""
    if name.lower().endswith(IMAGE_SUFFIXES):
        return True
    base = name.rsplit("/", 1)[-1].split("?", 1)[0]
    if "." not in base:
        return True
    return base.lower().endswith(IMAGE_SUFFIXES)


@dataclass(frozen=True)
class TableShape:
    """What detection learned of a LoadData table: its format and columns."""

    parquet: bool
    columns: list[str]


def table_shape(store: Store, head: bytes, limits: Limits) -> TableShape | None:
    """The format and columns of a LoadData table (``None``: not one)."""
    if is_parquet(head):
        columns = parquet_columns(store)
        parquet = True
    else:
        columns = csv_header(store, head, limits)
        parquet = False
    if columns is None or not is_load_data_header(columns):
        return None
    return TableShape(parquet=parquet, columns=columns)


# --------------------------------------------------------------------------- #
# rows → planes
# --------------------------------------------------------------------------- #


@dataclass
class _Rows:
    """Planes of the chosen plate gathered as the table streams, and what was seen."""

    uri: str
    table_folder: str | None  # local folder of the table (relative paths), else None
    table_parent: str | None  # remote "folder" URI of the table, else None
    channels: list[str]
    wanted_plate: str | None
    limits: Limits
    plate: str | None = None
    plates: set[str] = field(default_factory=set)
    image_kind: dict[str, bool] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    seen: dict[tuple[str, str], int] = field(default_factory=dict)
    found: list[tuple[str, str, str, str]] = field(default_factory=list)
    wells: dict[str, str] = field(default_factory=dict)  # as written → normalised
    folders: dict[str, str] = field(default_factory=dict)  # PathName_ → resolved

    def where(self, row: int, column: str) -> str:
        return f"{self.uri} row {row}, column {column}"

    def check(self, batch: TableBatch) -> None:
        """Every value of ``batch``: within the length limit, no control characters.

        Checked column by column in bulk (C speed); the offending row is looked for only
        when a column fails.
        """
        limit = self.limits.max_value_chars
        for column, values in batch.columns.items():
            texts = [v or "" for v in values]
            if max(map(len, texts), default=0) > limit:
                index = next(i for i, t in enumerate(texts) if len(t) > limit)
                raise MetadataError(
                    self.where(batch.first_row + index, column),
                    f"{len(texts[index]):,} characters is over the {limit:,}-character limit "
                    "of a value (ICEBERG_BIOIMAGE_MAX_VALUE_CHARS)",
                )
            if _CONTROL.search("".join(texts)):
                index = next(i for i, t in enumerate(texts) if _CONTROL.search(t))
                bad = _CONTROL.search(texts[index])
                assert bad is not None
                raise MetadataError(
                    self.where(batch.first_row + index, column),
                    f"value {texts[index]!r:.60} holds the control character "
                    f"{bad.group()!r}; refused",
                )

    def key(self, batch: TableBatch, column: str, index: int) -> str:
        """A key value (plate, well, site): present and not blank."""
        text = (batch.columns[column][index] or "").strip()
        if not text:
            raise MetadataError(
                self.where(batch.first_row + index, column), "empty; every row needs a value"
            )
        return text

    def take(self, batch: TableBatch) -> None:
        """Check each row of ``batch`` and keep the planes of the chosen plate."""
        self.check(batch)
        for index in range(batch.num_rows):
            plate = self.key(batch, "Metadata_Plate", index)
            self.plates.add(plate)
            if self.wanted_plate is not None and plate != self.wanted_plate:
                continue
            if self.plate is None:
                self.plate = plate
            elif plate != self.plate:
                continue  # several plates: named after the stream, nothing more kept
            self._row(batch, index, plate)

    def _well(self, text: str, row: int) -> str:
        well = self.wells.get(text)
        if well is None:
            try:
                well = self.wells[text] = normalize_well_id(text)
            except ValueError as error:
                raise MetadataError(self.where(row, "Metadata_Well"), str(error)) from None
        return well

    def _row(self, batch: TableBatch, index: int, plate: str) -> None:
        row = batch.first_row + index
        well = self._well(self.key(batch, "Metadata_Well", index), row)
        site = self.key(batch, "Metadata_Site", index)
        site = str(int(site)) if site.isdigit() else site
        earlier = self.seen.get((well, site))
        if earlier is not None:
            raise MetadataError(
                f"{self.uri} row {row}",
                f"plate {plate} well {well} site {site} again (first on row {earlier}); "
                "each image is one row",
            )
        self.seen[(well, site)] = row
        for channel in self.channels:
            location = self._location(batch, index, channel)
            if location is not None:
                self.found.append((well, site, channel, location))

    def _location(self, batch: TableBatch, index: int, channel: str) -> str | None:
        """Where the file of ``channel`` is, or ``None`` (no file, or not an image column)."""
        columns = batch.columns
        url_column = f"URL_{channel}"
        url = (columns[url_column][index] or "") if url_column in columns else ""
        if url:
            name, column = url, url_column
        else:
            column = f"FileName_{channel}"
            if column not in columns:
                return None
            name = columns[column][index] or ""
            if not name:
                return None
        image = is_image_name(name)
        kind = self.image_kind.setdefault(channel, image)
        if channel not in self.examples:
            self.examples[channel] = name.rsplit("/", 1)[-1]
        if not kind:
            return None
        if not image:
            raise MetadataError(
                self.where(batch.first_row + index, column),
                f"names {name!r:.80}, not a TIFF image, while the column's other files are "
                "TIFF images",
            )
        if url:
            parts = urlsplit(url)
            if parts.scheme == "file":
                return os.path.normpath(unquote(parts.path))
            return self._resolve(url)
        folder = columns[f"PathName_{channel}"][index] or ""
        if "://" in folder:
            return f"{folder.rstrip('/')}/{name}"
        if "/" in name or name in (".", ".."):
            return self._resolve(os.path.join(folder, name))
        resolved = self.folders.get(folder)
        if resolved is None:
            resolved = self.folders[folder] = self._resolve(folder or ".")
        return f"{resolved.rstrip('/')}/{name}"

    def _resolve(self, path: str) -> str:
        """A named path made absolute: against the table's folder when relative."""
        if "://" in path:
            return path
        if self.table_folder is not None:
            return os.path.normpath(os.path.join(self.table_folder, path))
        if self.table_parent is not None and not path.startswith("/"):
            scheme, rest = self.table_parent.split("://", 1)
            return f"{scheme}://{posixpath.normpath(posixpath.join(rest, path))}"
        return os.path.normpath(path)

    def image_channels(self) -> tuple[list[str], list[str]]:
        """(channels whose files are images, columns naming other files)."""
        images = [ch for ch in self.channels if self.image_kind.get(ch, True)]
        others = [ch for ch in self.channels if not self.image_kind.get(ch, True)]
        return images, others


def _common_root(locations: list[str]) -> str:
    """The deepest folder (or prefix) holding every location."""
    if all("://" not in loc for loc in locations):
        return os.path.commonpath([os.path.dirname(loc) for loc in locations])
    schemes = {loc.split("://", 1)[0] if "://" in loc else "local" for loc in locations}
    if len(schemes) != 1:
        raise ValueError(f"files on several filesystems ({', '.join(sorted(schemes))})")
    scheme = schemes.pop()
    paths = [loc.split("://", 1)[1] for loc in locations]
    return f"{scheme}://" + posixpath.commonpath([posixpath.dirname(p) for p in paths])


def _relative(location: str, root: str) -> str:
    if "://" in root:
        return location[len(root) :].lstrip("/")
    return os.path.relpath(location, root).replace(os.sep, "/")


def read_load_data_rows(
    store: Store, shape: TableShape, plate_id: str | None, limits: Limits | None = None
) -> tuple[str, list[str], list[tuple[str, str, str, str]], list[str]]:
    """Stream a LoadData table: (plate id, image channels, planes, warnings).

    Each plane is ``(well, site, channel, location)``; ``location`` is an absolute
    path or a URI. Refused with :class:`MetadataError` (naming the table, its row and
    column) on the first bad row.
    """
    limits = limits or getattr(store, "limits", None) or Limits.from_env()
    remote = "://" in store.uri
    rows = _Rows(
        uri=store.uri,
        table_folder=None if remote else os.path.dirname(store.location("")),
        table_parent=store.uri.rsplit("/", 1)[0] if remote else None,
        channels=load_data_channels(shape.columns),
        wanted_plate=plate_id,
        limits=limits,
    )
    missing = [key for key in _KEYS if key not in shape.columns]
    if missing:
        raise MetadataError(store.uri, f"not a LoadData table: missing {', '.join(missing)}")
    used = [
        c for c in shape.columns if c in _KEYS or c.startswith(("FileName_", "PathName_", "URL_"))
    ]
    for batch in iter_table(store, list(dict.fromkeys(used)), parquet=shape.parquet, limits=limits):
        rows.take(batch)
    if not rows.plates:
        raise MetadataError(store.uri, "holds a header and no rows: no image to scan")
    plate = pick_plate(store.uri, sorted(rows.plates), plate_id)
    channels, others = rows.image_channels()
    warnings: list[str] = []
    if others:
        named = ", ".join(f"FileName_{ch} ({rows.examples[ch]})" for ch in others)
        warnings.append(
            f"{store.uri}: {len(others)} columns name files that are not TIFF images, so "
            f"they are not channels: {named}"
        )
    if not channels:
        raise MetadataError(store.uri, "no column names TIFF images: no channel to scan")
    planes = [item for item in rows.found if item[2] in set(channels)]
    if not planes:
        raise MetadataError(store.uri, f"plate {plate}: no row names an image file")
    return plate, channels, planes, warnings


def scan_load_data(
    store: Store,
    dataset_id: str | None,
    options: FileSetOptions,
    storage_options: Mapping[str, Any] | None = None,
    *,
    shape: TableShape | None = None,
) -> ScanResult:
    """Scan the plate a LoadData table (the file ``store``, CSV or Parquet) describes."""
    plate_id, channels, found, warnings, root = _plate_rows(store, options, shape)
    planes = [
        PlaneName(
            key=_relative(loc, root),
            plate=plate_id,
            well_id=well,
            well_number=None,
            site=site,
            channel=channel,
            z=0,
            t=0,
        )
        for well, site, channel, loc in found
    ]
    root_store = _files_store(root, storage_options)
    return scan_plate_files(
        root_store,
        dataset_id=plate_dataset_id(dataset_id, plate_id, store.uri),
        uri=store.uri,
        plate=PlatePlanes(
            plate_id=plate_id,
            planes=planes,
            channels=channels,
            channel_names=options.channel_names or channels,
            warnings=warnings,
        ),
    )


def load_data_root(store: Store, options: FileSetOptions) -> str:
    """The folder (or URL prefix) the chunk keys of a LoadData plate are relative to."""
    return _plate_rows(store, options, None)[4]


def _plate_rows(
    store: Store, options: FileSetOptions, shape: TableShape | None
) -> tuple[str, list[str], list[tuple[str, str, str, str]], list[str], str]:
    """Plate id, channels, (well, site, channel, location) rows, warnings, and their root."""
    limits = getattr(store, "limits", None) or Limits.from_env()
    if shape is None:
        head = store.read_ranges([("", 0, HEAD_BYTES)])[0] or b""
        shape = table_shape(store, head, limits)
        if shape is None:
            raise MetadataError(
                store.uri, "not a LoadData table: no Metadata_Well and FileName_/URL_ columns"
            )
    plate_id, channels, found, warnings = read_load_data_rows(
        store, shape, options.plate_id, limits
    )
    try:
        root = _common_root([loc for *_, loc in found])
    except ValueError as error:
        raise MetadataError(store.uri, str(error)) from None
    return plate_id, channels, found, warnings, root


def _files_store(root: str, storage_options: Mapping[str, Any] | None) -> Store:
    """The store of the files a table names (local: read where they are, as named)."""
    if "://" in root:
        return open_store(root, storage_options)
    return LocalStore(root, named_files=True)


def _is_load_data(probe: Probe) -> bool:
    if probe.is_dir:
        return False
    limits = getattr(probe.store, "limits", None) or Limits.from_env()
    return table_shape(probe.store, probe.head, limits) is not None


def _read_load_data(probe: Probe) -> ScanResult:
    return scan_load_data(
        probe.store, probe.given_dataset_id, probe.file_set, probe.storage_options
    )


#: CellProfiler LoadData tables (CSV or Parquet) naming the files of a plate.
LOAD_DATA = FormatReader(name="load-data", can_read=_is_load_data, read=_read_load_data)

__all__ = [
    "LOAD_DATA",
    "SeveralPlatesError",
    "TableShape",
    "is_image_name",
    "is_load_data_header",
    "load_data_channels",
    "read_load_data_rows",
    "scan_load_data",
    "table_shape",
]
