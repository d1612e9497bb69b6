"""Write Iceberg data files ourselves: one Parquet file per dataset, streamed from Arrow.

pyiceberg's own ``overwrite`` splits the table by partition with a filtered copy
even when there is a single partition (one dataset), doubling peak memory on a
plate's 857,088-row chunk index. Writing each dataset's rows straight to a data
file and committing them with ``add_files`` keeps one copy alive; a streamed
``chunk_index`` (:class:`ChunkIndexRows`) is written one record batch at a time,
so not even one whole copy is.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.io import FileIO
from pyiceberg.table import Table

from iceberg_bioimage._version import __version__
from iceberg_bioimage.exceptions import CatalogConfigError
from iceberg_bioimage.runtime import prefetched
from iceberg_bioimage.tables.build import ChunkIndexRows
from iceberg_bioimage.tables.stream import CanonicalStream

DATA_FOLDER = "data"


def with_field_ids(table: Table) -> pa.Schema:
    """The table's Arrow schema with its Iceberg field ids (``PARQUET:field_id``), stamped.

    The ids go into the Parquet schema of every data file, list elements included,
    so engines that read by field id without applying the table's name mapping
    (daft, some Spark and Trino readers) read our files; ``add_files`` accepts them.
    """
    schema = table.schema().as_arrow()
    return schema.with_metadata({b"iceberg-bioimage.version": __version__.encode()})


@dataclass(frozen=True, kw_only=True)
class DataFileTarget:
    """Where and how a process without the catalog writes a table's data files.

    Picklable: a Dask worker rebuilds the table's FileIO from ``io_properties``
    (the catalog's storage settings) and writes under ``location`` with ``schema``
    (the table's Arrow schema, field ids included).
    """

    table: str
    location: str
    schema: pa.Schema
    io_properties: dict[str, str]

    @classmethod
    def of(cls, table: Table) -> DataFileTarget:
        """The target of an Iceberg table loaded from its catalog."""
        return cls(
            table=".".join(table.name()),
            location=table.location(),
            schema=with_field_ids(table),
            io_properties=dict(table.io.properties),
        )

    @property
    def name(self) -> str:
        """The table's name without its namespace (``image_assets``)."""
        return self.table.rsplit(".", 1)[-1]

    def file_io(self) -> FileIO:
        """The table's FileIO, rebuilt from its properties."""
        from pyiceberg.io import load_file_io

        return load_file_io(self.io_properties, self.location)


def _dataset_parts(
    data: pa.Table | ChunkIndexRows, dataset_ids: Sequence[str]
) -> list[tuple[str, pa.Table | ChunkIndexRows]]:
    ids = sorted(set(dataset_ids))
    if isinstance(data, ChunkIndexRows):
        parts = [(ds, data if len(ids) == 1 else data.for_dataset(ds)) for ds in ids]
        return [(ds, rows) for ds, rows in parts if rows.num_rows]
    if len(ids) == 1:
        return [(ids[0], data)] if data.num_rows else []
    parts = [(ds, data.filter(pc.equal(data["dataset_id"], ds))) for ds in ids]
    return [(ds, rows) for ds, rows in parts if rows.num_rows]


def _tables(rows: pa.Table | ChunkIndexRows) -> Iterator[pa.Table]:
    if isinstance(rows, pa.Table):
        yield rows
        return
    for batch in rows.batches():
        yield pa.Table.from_batches([batch])


def write_data_files(
    table: Table,
    data: pa.Table | ChunkIndexRows,
    dataset_ids: Sequence[str],
    conform: Callable[[pa.Table], pa.Table],
) -> list[str]:
    """Write ``data`` as one data file per dataset, each part cast by ``conform`` first.

    ``conform`` casts rows to the table's Arrow schema; a streamed ``chunk_index``
    is cast and written one record batch at a time.
    """
    return write_dataset_files(
        table.io, table.location(), with_field_ids(table), data, dataset_ids, conform
    )


def write_dataset_files(
    io: FileIO,
    location: str,
    schema: pa.Schema,
    data: pa.Table | ChunkIndexRows,
    dataset_ids: Sequence[str],
    conform: Callable[[pa.Table], pa.Table],
    *,
    prefix: str = "",
) -> list[str]:
    """Write one data file per dataset under ``location``; on failure none is left.

    File names are ``<prefix><uuid>.parquet`` in ``data/dataset_id=<id>/``: a batch
    that names its files with one prefix can find every file it wrote.
    """
    paths: list[str] = []
    try:
        for dataset_id, rows in _dataset_parts(data, dataset_ids):
            folder = f"{location.rstrip('/')}/{DATA_FOLDER}/dataset_id={quote(dataset_id, safe='')}"
            path = f"{folder}/{prefix}{uuid.uuid4().hex}.parquet"
            paths.append(path)
            with (
                io.new_output(path).create(overwrite=True) as stream,
                pq.ParquetWriter(stream, schema, compression="zstd") as writer,
            ):
                for part in _tables(rows):
                    writer.write_table(conform(part).cast(schema))
    except BaseException:
        remove_paths(io, paths)
        raise
    return paths


def write_stream_files(
    targets: Mapping[str, Table], stream: CanonicalStream, dataset_id: str
) -> dict[str, tuple[list[str], int]]:
    """Write every table of a streamed scan to its data file in one pass.

    ``targets`` are the Iceberg tables by canonical name (each must be one of the
    stream's tables). Each scan batch's rows are cast to their table's schema and
    appended to its file, then dropped. Returns table → (paths, rows); a table
    that got no rows has no file. On failure no file is left.
    """
    paths: dict[str, str] = {}
    try:
        with contextlib.ExitStack() as stack:
            writers: dict[str, tuple[pq.ParquetWriter, pa.Schema]] = {}
            for name, table in targets.items():
                schema = with_field_ids(table)
                location = table.location().rstrip("/")
                folder = f"{location}/{DATA_FOLDER}/dataset_id={quote(dataset_id, safe='')}"
                paths[name] = f"{folder}/{uuid.uuid4().hex}.parquet"
                output = stack.enter_context(
                    table.io.new_output(paths[name]).create(overwrite=True)
                )
                writer = stack.enter_context(pq.ParquetWriter(output, schema, compression="zstd"))
                writers[name] = (writer, schema)
            for name, rows in prefetched(stream.batches()):
                if name in writers:
                    writer, schema = writers[name]
                    writer.write_table(conform_rows(rows, schema).cast(schema))
    except BaseException:
        for name, path in paths.items():
            remove_paths(targets[name].io, [path])
        raise
    out: dict[str, tuple[list[str], int]] = {}
    for name, path in paths.items():
        rows = stream.rows[name]
        if not rows:  # an empty table gets no data file (the commit only deletes)
            remove_paths(targets[name].io, [path])
        out[name] = ([path] if rows else [], rows)
    return out


def conform_rows(data: pa.Table, target: pa.Schema) -> pa.Table:
    """Cast ``data`` to ``target`` (columns it lacks → nulls of their declared type)."""
    if data.schema.equals(target, check_metadata=True):
        return data
    columns = [
        data[field.name].cast(field.type)
        if field.name in data.column_names
        else pa.nulls(data.num_rows, field.type)
        for field in target
    ]
    return pa.Table.from_arrays(columns, schema=target)


def remove_files(table: Table, paths: Sequence[str]) -> None:
    """Delete data files that no commit references (best effort)."""
    remove_paths(table.io, paths)


def remove_paths(io: FileIO, paths: Sequence[str]) -> None:
    """Delete files through ``io`` (best effort: a missing file is no error)."""
    for path in paths:
        try:
            io.delete(path)
        except OSError:
            continue


def table_file_system(io: FileIO, location: str, name: str) -> tuple[Any, str]:
    """The pyarrow filesystem of a table location and the path its listings spell."""
    if not hasattr(io, "fs_by_scheme") or not hasattr(io, "parse_location"):
        raise CatalogConfigError(
            f"table {name}",
            f"listing files needs pyiceberg's PyArrowFileIO, not {type(io).__name__}",
        )
    scheme, netloc, path = io.parse_location(location, io.properties)
    return io.fs_by_scheme(scheme, netloc), path


def sweep_data_files(
    target: DataFileTarget, prefix: str, keep: frozenset[str] = frozenset()
) -> list[str]:
    """Delete the table's data files named ``<prefix>...`` except those named in ``keep``.

    ``keep`` holds file names (no folders). Returns the listing paths removed. A
    batch that wrote every file with one prefix thus removes what it wrote but did
    not commit, including files of attempts whose worker died before reporting them.
    """
    from pyarrow import fs as pafs

    fs, root = table_file_system(target.file_io(), target.location, target.table)
    selector = pafs.FileSelector(
        f"{root.rstrip('/')}/{DATA_FOLDER}", recursive=True, allow_not_found=True
    )
    removed = []
    for info in fs.get_file_info(selector):
        name = info.base_name
        if info.type == pafs.FileType.File and name.startswith(prefix) and name not in keep:
            fs.delete_file(info.path)
            removed.append(info.path)
    return removed
