"""Write Iceberg data files ourselves: one Parquet file per dataset, streamed from Arrow.

pyiceberg's own ``overwrite`` splits the table by partition with a filtered copy
even when there is a single partition (one dataset), doubling peak memory on a
plate's 857,088-row chunk index. Writing each dataset's rows straight to a data
file and committing them with ``add_files`` keeps one copy alive; a streamed
``chunk_index`` (:class:`ChunkIndexRows`) is written one record batch at a time,
so not even one whole copy is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.table import Table

from iceberg_bioimage._version import __version__
from iceberg_bioimage.publishing.arrow_tables import ChunkIndexRows


def with_field_ids(table: Table) -> pa.Schema:
    """The table's Arrow schema with its Iceberg field ids (``PARQUET:field_id``), stamped.

    The ids go into the Parquet schema of every data file, list elements included,
    so engines that read by field id without applying the table's name mapping
    (daft, some Spark and Trino readers) read our files; ``add_files`` accepts them.
    """
    schema = table.schema().as_arrow()
    return schema.with_metadata({b"iceberg-bioimage.version": __version__.encode()})


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
    schema = with_field_ids(table)
    paths = []
    try:
        for dataset_id, rows in _dataset_parts(data, dataset_ids):
            folder = f"{table.location().rstrip('/')}/data/dataset_id={quote(dataset_id, safe='')}"
            path = f"{folder}/{uuid.uuid4().hex}.parquet"
            paths.append(path)
            with (
                table.io.new_output(path).create(overwrite=True) as stream,
                pq.ParquetWriter(stream, schema, compression="zstd") as writer,
            ):
                for part in _tables(rows):
                    writer.write_table(conform(part).cast(schema))
    except BaseException:
        remove_files(table, paths)
        raise
    return paths


def remove_files(table: Table, paths: Sequence[str]) -> None:
    """Delete data files that no commit references (best effort)."""
    for path in paths:
        try:
            table.io.delete(path)
        except OSError:
            continue
