"""Scan a CellProfiler LoadData CSV as a file-set plate.

A LoadData CSV has one row per image (plate, well, site) and, per channel, either
``FileName_<Ch>`` + ``PathName_<Ch>`` or ``URL_<Ch>``. Channel names are the column
suffixes (``FileName_OrigDNA`` → ``OrigDNA``) in column order; the dataset root is
the files' common folder, and each chunk key is a file's path below it.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.formats.file_set.plate_files import (
    PlatePlanes,
    pick_plate,
    plate_dataset_id,
    scan_plate_files,
)
from iceberg_bioimage.formats.registry import FormatReader, Probe
from iceberg_bioimage.io.storage import Store, open_store
from iceberg_bioimage.models import ScanResult, normalize_well_id
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.instruments import PlaneName

_KEYS = ("Metadata_Plate", "Metadata_Well", "Metadata_Site")


def load_data_channels(columns: list[str]) -> list[str]:
    """Channel names of a LoadData header, in column order (empty: not LoadData)."""
    names: list[str] = []
    for column in columns:
        for prefix in ("FileName_", "URL_"):
            if column.startswith(prefix) and len(column) > len(prefix):
                name = column[len(prefix) :]
                if prefix == "URL_" or f"PathName_{name}" in columns:
                    names.append(name)
    return list(dict.fromkeys(names))


def is_load_data(head: bytes) -> bool:
    """Whether the first bytes of a file are a LoadData CSV header."""
    line = head.decode("utf-8-sig", errors="replace").splitlines()[0] if head else ""
    columns = next(csv.reader([line]), [])
    return "Metadata_Well" in columns and bool(load_data_channels(columns))


def _location(row: Mapping[str, str], channel: str, csv_folder: str | None) -> str:
    url = row.get(f"URL_{channel}")
    if url:
        parts = urlsplit(url)
        return unquote(parts.path) if parts.scheme == "file" else url
    folder, name = row.get(f"PathName_{channel}") or "", row.get(f"FileName_{channel}") or ""
    if "://" in folder:
        return f"{folder.rstrip('/')}/{name}"
    path = os.path.join(folder, name)
    if not os.path.isabs(path) and csv_folder is not None:
        path = os.path.join(csv_folder, path)
    return os.path.normpath(path)


def _common_root(locations: list[str]) -> str:
    """The deepest folder (or prefix) holding every location."""
    if all("://" not in loc for loc in locations):
        return os.path.commonpath([os.path.dirname(loc) for loc in locations])
    schemes = {loc.split("://", 1)[0] for loc in locations}
    if len(schemes) != 1:
        raise ValueError(f"files on several filesystems ({', '.join(sorted(schemes))})")
    scheme = schemes.pop()
    paths = [loc.split("://", 1)[1] for loc in locations]
    return f"{scheme}://" + posixpath.commonpath([posixpath.dirname(p) for p in paths])


def _relative(location: str, root: str) -> str:
    if "://" in root:
        return location[len(root) :].lstrip("/")
    return os.path.relpath(location, root).replace(os.sep, "/")


def scan_load_data(
    store: Store,
    dataset_id: str | None,
    options: FileSetOptions,
    storage_options: Mapping[str, Any] | None = None,
) -> ScanResult:
    """Scan the plate a LoadData CSV (the file ``store``) describes."""
    plate_id, channels, found, root = _plate_files(store, options)
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
    root_store = open_store(root, storage_options)
    return scan_plate_files(
        root_store,
        dataset_id=plate_dataset_id(dataset_id, plate_id, store.uri),
        uri=store.uri,
        plate=PlatePlanes(
            plate_id=plate_id,
            planes=planes,
            channels=channels,
            channel_names=options.channel_names or channels,
        ),
    )


def load_data_root(store: Store, options: FileSetOptions) -> str:
    """The folder (or URL prefix) the chunk keys of a LoadData plate are relative to."""
    return _plate_files(store, options)[3]


def _plate_files(
    store: Store, options: FileSetOptions
) -> tuple[str, list[str], list[tuple[str, str, str, str]], str]:
    """Plate id, channels, (well, site, channel, location) of each file, and their root."""
    data = store.read_ranges([("", 0, None)])[0] or b""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    columns = list(reader.fieldnames or [])
    channels = load_data_channels(columns)
    missing = [key for key in _KEYS if key not in columns]
    if missing or not channels:
        raise MetadataError(
            store.uri,
            f"not a LoadData CSV: missing {', '.join(missing) or 'FileName_/URL_ columns'}",
        )
    csv_folder = os.path.dirname(store.location("")) if "://" not in store.uri else None
    rows = list(reader)
    plate_id = pick_plate(store.uri, [row["Metadata_Plate"] for row in rows], options.plate_id)
    found: list[tuple[str, str, str, str]] = []
    for number, row in enumerate(rows, start=2):
        if row["Metadata_Plate"] != plate_id:
            continue
        try:
            well = normalize_well_id(row["Metadata_Well"])
        except ValueError as error:
            raise MetadataError(f"{store.uri} line {number}", str(error)) from None
        site = row["Metadata_Site"].strip()
        site = str(int(site)) if site.isdigit() else site
        found.extend((well, site, ch, _location(row, ch, csv_folder)) for ch in channels)
    try:
        root = _common_root([loc for *_, loc in found])
    except ValueError as error:
        raise MetadataError(store.uri, str(error)) from None
    return plate_id, channels, found, root


def _is_load_data(probe: Probe) -> bool:
    return not probe.is_dir and is_load_data(probe.head)


def _read_load_data(probe: Probe) -> ScanResult:
    return scan_load_data(
        probe.store, probe.given_dataset_id, probe.file_set, probe.storage_options
    )


#: CellProfiler LoadData tables naming the files of a plate.
LOAD_DATA = FormatReader(name="load-data", can_read=_is_load_data, read=_read_load_data)
