"""Folders of tables named as CellProfiler and CytoTable name them.

* an ExportToSpreadsheet folder (``Image.csv``, ``Nuclei.csv``…);
* CytoTable with ``join=False``: ``<root>/<table>/<table>.parquet``;
* a folder of per-site output folders (``<plate>-<well>-<site>/Image.csv``…), each
  its own source (image numbers restart at 1 in each).
"""

from __future__ import annotations

import os
from pathlib import Path

from iceberg_bioimage.profiles.sources.base import (
    COMPARTMENTS,
    IMAGE_TABLES,
    SourceReader,
    inside,
    is_cellprofiler_folder,
    map_threads,
    table_files,
    tables_source,
)


def _children(folder: Path) -> list[Path]:
    """Sub-folders of ``folder``; one that is a symlink out of it is refused by name."""
    children = [c for c in sorted(folder.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    return [inside(folder, c) for c in children]


def _table_folders(folder: Path) -> dict[str, Path]:
    return {
        c.name.lower(): c
        for c in _children(folder)
        if c.name.lower() in IMAGE_TABLES + COMPARTMENTS and any(c.glob("*.parquet"))
    }


def _sites(folder: Path) -> list[tuple[Path, dict[str, Path]]]:
    sites = [(c, table_files(c, folder)) for c in _children(folder)]
    return [(c, f) for c, f in sites if is_cellprofiler_folder(f)]


def _is_spreadsheet_folder(path: Path) -> bool:
    return path.is_dir() and is_cellprofiler_folder(table_files(path))


def _is_table_folders(path: Path) -> bool:
    return path.is_dir() and not table_files(path) and bool(_table_folders(path))


def _is_site_folders(path: Path) -> bool:
    return path.is_dir() and not table_files(path) and bool(_sites(path))


#: ExportToSpreadsheet output: ``Image.csv`` and one file per compartment.
SPREADSHEET_FOLDER = SourceReader(
    name="cellprofiler-folder",
    order=30,
    can_read=_is_spreadsheet_folder,
    read=lambda path, label: [tables_source(table_files(path), label)],
)
#: CytoTable ``join=False`` output: one folder of Parquet files per table.
TABLE_FOLDERS = SourceReader(
    name="cytotable-tables",
    order=50,
    can_read=_is_table_folders,
    read=lambda path, label: [tables_source(_table_folders(path), label)],
)
#: A folder of per-site CellProfiler output folders, each its own source.
SITE_FOLDERS = SourceReader(
    name="site-folders",
    order=60,
    can_read=_is_site_folders,
    read=lambda path, label: map_threads(
        lambda site: tables_source(site[1], os.fspath(site[0])), _sites(path)
    ),
)
