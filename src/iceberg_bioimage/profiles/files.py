"""Read a profile table from a file, a folder of Parquet files, Arrow or pandas."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from iceberg_bioimage.exceptions import ContractError, StoreNotFoundError
from iceberg_bioimage.models.paths import is_inside

if TYPE_CHECKING:
    import pandas as pd

    ProfileSource: TypeAlias = (
        str | os.PathLike[str] | pa.Table | pa.RecordBatchReader | pd.DataFrame
    )

#: File suffixes of single profile tables.
TABLE_SUFFIXES = (".parquet", ".csv.gz", ".csv", ".tsv.gz", ".tsv")
_SUPPORTED = (
    "expected .parquet, .csv, .csv.gz, .tsv, .tsv.gz, a CellProfiler SQLite, "
    "a folder of .parquet files or CellProfiler output folders"
)


def read_profile_table(table_or_path: ProfileSource) -> tuple[pa.Table, str]:
    """Return a profile table and a label naming it in messages.

    Paths may name a ``.parquet``, ``.csv``, ``.csv.gz``, ``.tsv`` or ``.tsv.gz`` file,
    or a folder whose direct children are ``.parquet`` files. Arrow tables, record
    batch readers and pandas DataFrames (index dropped) are taken as they are.
    Raises :class:`StoreNotFoundError` for a missing path and :class:`ContractError`
    for one that cannot be read.
    """
    if isinstance(table_or_path, pa.Table):
        return table_or_path, "<arrow table>"
    if isinstance(table_or_path, pa.RecordBatchReader):
        return table_or_path.read_all(), "<arrow record batches>"
    pandas = sys.modules.get("pandas")  # a DataFrame implies pandas is already imported
    if pandas is not None and isinstance(table_or_path, pandas.DataFrame):
        return pa.Table.from_pandas(table_or_path, preserve_index=False), "<pandas DataFrame>"
    if isinstance(table_or_path, str | os.PathLike):
        label = os.fspath(table_or_path)
        return _read_path(Path(label), label), label
    raise TypeError(
        f"profiles must be a path, pyarrow Table, RecordBatchReader or pandas DataFrame, "
        f"not {type(table_or_path).__name__}"
    )


def _read_path(path: Path, label: str) -> pa.Table:
    """Read the file or Parquet folder at ``path``."""
    if not path.exists():
        raise StoreNotFoundError(label, "no such file or folder")
    name = path.name.lower()
    if not path.is_dir() and not path.is_file():
        raise ContractError(label, "not a regular file or folder (FIFO, device or socket); refused")
    try:
        if path.is_dir():
            return _read_parquet_folder(path, label)
        if name.endswith(".parquet"):
            return pq.read_table(path)
        if name.endswith(TABLE_SUFFIXES[1:]):
            delimiter = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
            return _text_columns(
                pacsv.read_csv(
                    path,
                    parse_options=pacsv.ParseOptions(delimiter=delimiter),
                    convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
                ),
                label,
            )
    except (pa.ArrowException, OSError) as error:
        raise ContractError(label, f"cannot read profiles: {error}") from error
    except UnicodeDecodeError as error:  # pyarrow decodes the header row's names
        raise ContractError(
            label, f"the header row is not UTF-8 text ({error.reason}); re-save the file as UTF-8"
        ) from error
    raise ContractError(label, f"cannot read profiles: unsupported file type; {_SUPPORTED}")


def _text_columns(table: pa.Table, label: str) -> pa.Table:
    """Refuse CSV columns that are not UTF-8 (pyarrow reads them as binary).

    The header's names are decoded here, once: a name that is not UTF-8 raises
    :class:`UnicodeDecodeError`, which the caller reports naming the file.
    """
    table.column_names  # noqa: B018  (decoding the names is the check)
    binary = [f.name for f in table.schema if pa.types.is_binary(f.type)]
    if binary:
        raise ContractError(
            label,
            f"column(s) {', '.join(map(repr, binary))} are not UTF-8 text; "
            "re-save the file as UTF-8",
        )
    return _without_repeated_columns(table, label)


def _without_repeated_columns(table: pa.Table, label: str) -> pa.Table:
    """Drop later copies of a column that CellProfiler wrote twice with the same values.

    Some CellProfiler object tables (cpg0043's ``preCells_Cellpose3.csv``) repeat
    ``Location_Center_X``… and ``Number_Object_Number``; the copies hold the same values,
    so the first is kept. Copies that differ are refused by name: no column can be chosen.
    """
    first: dict[str, int] = {}
    drop: list[int] = []
    for index, name in enumerate(table.column_names):
        if name not in first:
            first[name] = index
        elif table.column(index).equals(table.column(first[name])):
            drop.append(index)
        else:
            raise ContractError(label, f"column {name!r} appears twice with different values")
    if not drop:
        return table
    keep = [i for i in range(table.num_columns) if i not in set(drop)]
    return table.select(keep)


def _read_parquet_folder(folder: Path, label: str) -> pa.Table:
    """Read the ``.parquet`` files directly inside ``folder`` as one dataset."""
    files = sorted(
        str(child)
        for child in folder.iterdir()
        if child.is_file()
        and child.name.lower().endswith(".parquet")
        and not child.name.startswith((".", "_"))
    )
    base = os.path.realpath(folder)
    for file in files:  # a part that is a symlink out of the folder is refused by name
        real = os.path.realpath(file)
        if not is_inside(base, real):
            raise ContractError(file, f"resolves to {real}, outside {base}; refused")
    if not files:
        raise ContractError(
            label, f"cannot read profiles: the folder holds no .parquet files; {_SUPPORTED}"
        )
    import pyarrow.dataset as ds  # imports pandas when installed: only when needed

    return ds.dataset(files, format="parquet").to_table()
