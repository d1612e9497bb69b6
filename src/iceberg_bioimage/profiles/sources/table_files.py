"""One table in a file (``.parquet``, ``.csv``/``.csv.gz``, ``.tsv``) or a folder of Parquet parts.

``Nuclei.csv`` is the ``nuclei`` compartment; an object file without plate/well keys
uses the ``Image`` table beside it (or ``image_table=``).
"""

from __future__ import annotations

from pathlib import Path

from iceberg_bioimage.profiles.sources.base import (
    RawSource,
    SourceReader,
    file_source,
    is_cellprofiler_folder,
    table_files,
)


def _is_parquet_folder(path: Path) -> bool:
    if not path.is_dir():
        return False
    files = table_files(path)
    return bool(files) and not is_cellprofiler_folder(files)


def _read(path: Path, label: str) -> list[RawSource]:
    return [file_source(path, label)]


#: A single table file.
TABLE_FILE = SourceReader(
    name="table-file", order=20, can_read=lambda path: path.is_file(), read=_read
)
#: A folder of tables that are parts of one table (Parquet parts), not named by compartment.
PARQUET_FOLDER = SourceReader(
    name="parquet-folder", order=40, can_read=_is_parquet_folder, read=_read
)
