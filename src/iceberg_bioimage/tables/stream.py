"""The canonical tables of a streamed scan, built batch by batch in one pass.

A :class:`~iceberg_bioimage.models.ScanStream` yields a plate's arrays a few
wells at a time. :class:`CanonicalStream` turns each batch into its
``image_assets`` rows and the ``chunk_index`` batches it completes, interleaved,
so a sink writes every table in the same pass (one Parquet writer per table) and
each batch is dropped before the next is scanned: memory stays flat in the plate
size, and the store is read once. The rows (and their order) are those of the
whole-scan builders (:func:`~iceberg_bioimage.tables.build.image_assets_table`,
:func:`~iceberg_bioimage.tables.build.chunk_index_rows`).

A sink asks each table's rows as a :class:`StreamPart` (what a table request
holds) and writes every part of one stream at once through :meth:`CanonicalStream.batches`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa

from iceberg_bioimage.models import ScanStream
from iceberg_bioimage.tables.build import ChunkIndexBuilder, image_assets_rows
from iceberg_bioimage.tables.schema import arrow_schema

STREAMED_TABLES = ("image_assets", "chunk_index")
#: ``chunk_index`` rows per batch (and Parquet row group) of a streamed scan: half of
#: :data:`~iceberg_bioimage.tables.build.CHUNK_BATCH_ROWS`, ~20 MiB of Arrow on the
#: benchmark plate. The sinks build batches a step ahead of the writer, so up to
#: three are alive (built, queued, written) beside the writers' buffers: at
#: 262,144 rows that alone took a 6,144-well registration to the 350 MiB budget.
#: 131,072 rows is still a large row group (DuckDB writes 122,880).
STREAM_CHUNK_ROWS = 1 << 17


class CanonicalStream:
    """The ``tables`` of a streamed scan, built batch by batch when iterated (once)."""

    def __init__(
        self, scan: ScanStream, tables: Sequence[str], batch_rows: int = STREAM_CHUNK_ROWS
    ) -> None:
        unknown = [t for t in tables if t not in STREAMED_TABLES]
        if unknown:
            raise ValueError(f"unknown table {unknown[0]!r}; expected one of {STREAMED_TABLES}")
        self.scan = scan
        self.tables = tuple(tables)
        self.batch_rows = batch_rows
        self.rows = dict.fromkeys(self.tables, 0)

    def part(self, table: str) -> StreamPart:
        """The rows of one of the tables, for a table request."""
        if table not in self.tables:
            raise ValueError(f"table {table!r} is not built by this stream ({self.tables})")
        return StreamPart(self, table)

    def batches(self) -> Iterator[tuple[str, pa.Table]]:
        """``(table, rows)`` in scan order; :attr:`rows` counts them as they pass.

        Each scan batch gives its ``image_assets`` rows, then the ``chunk_index``
        batches of at most ``batch_rows`` rows it completes (the last one at the end).
        """
        chunks = (
            ChunkIndexBuilder(self.scan.uri, self.batch_rows)
            if "chunk_index" in self.tables
            else None
        )
        for assets in self.scan.batches():
            if "image_assets" in self.tables:
                yield self._counted("image_assets", image_assets_rows(assets, self.scan.scanned_at))
            if chunks is not None:
                for batch in chunks.add(assets):
                    yield self._counted("chunk_index", pa.Table.from_batches([batch]))
            del assets
        if chunks is not None:
            for batch in chunks.finish():
                yield self._counted("chunk_index", pa.Table.from_batches([batch]))

    def _counted(self, table: str, rows: pa.Table) -> tuple[str, pa.Table]:
        self.rows[table] += rows.num_rows
        return table, rows


class StreamPart:
    """One table of a :class:`CanonicalStream`: its schema and dataset now, rows once written.

    Sinks write every part of a stream in one pass (:meth:`CanonicalStream.batches`);
    :attr:`num_rows` is the count of rows that pass gave this table.
    """

    def __init__(self, stream: CanonicalStream, table: str) -> None:
        self.stream = stream
        self.table = table

    @property
    def schema(self) -> pa.Schema:
        """The canonical Arrow schema of the table."""
        return arrow_schema(self.table)

    @property
    def column_names(self) -> list[str]:
        """Column names, as :attr:`pyarrow.Table.column_names`."""
        return self.schema.names

    @property
    def num_rows(self) -> int:
        """Rows written so far (all of them once the stream was written)."""
        return self.stream.rows[self.table]

    @property
    def dataset_ids(self) -> list[str]:
        """The scan's dataset id (a stream is one store)."""
        return [self.stream.scan.dataset_id]

    def batches(self) -> Iterator[pa.RecordBatch]:
        """This table's rows alone (the stream's other tables are built and dropped).

        For a sink that writes one table; a stream is read once, so its other
        parts cannot be written after this.
        """
        for table, rows in self.stream.batches():
            if table == self.table:
                yield from rows.to_batches()

    def for_dataset(self, dataset_id: str) -> StreamPart:
        """The rows of one dataset: all of them (a stream is one dataset)."""
        if dataset_id != self.stream.scan.dataset_id:
            raise ValueError(f"the stream holds dataset {self.stream.scan.dataset_id!r} only")
        return self
