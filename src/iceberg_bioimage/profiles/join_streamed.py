"""Join a large object table batch by batch, through its Image table.

A CellProfiler SQLite holds millions of object rows but only one Image row per
site. The join therefore runs once, on the Image table (its keys → the image's
``image_id``, ``uri``…, sites mapped by ``site_base``); each object batch then takes
its image's columns by ``ImageNumber`` [+ ``TableNumber``]. Memory stays at one
batch, whatever the table's size, and the rows equal those of the in-memory join.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.profiles.contract import (
    AliasMap,
    _alias_candidates,
    _resolve_columns,
    resolve_object_column,
)
from iceberg_bioimage.profiles.image_numbers import (
    HOPPED_KEYS,
    image_rows_of,
    key_columns,
    target_name,
    unique_key_table,
)
from iceberg_bioimage.profiles.join_tables import (
    CANONICAL_OUTPUT,
    JOIN_METADATA_KEY,
    join_image_assets_with_profiles,
    join_report,
)
from iceberg_bioimage.profiles.object_ids import object_ids
from iceberg_bioimage.profiles.sqlite import SqliteTable

_IMAGE_ROW = "__ib_image_row"
#: Image columns each object row takes from its image.
IMAGE_COLUMNS = ("uri", "array_path")


@dataclass
class _Counts:
    rows: int = 0
    matched: int = 0
    no_image_row: int = 0


@dataclass
class StreamedJoin:
    """Joined object rows, produced batch by batch (re-iterable: each pass reads again).

    Has what the warehouse writer needs of a table: ``schema``, ``column_names``,
    ``num_rows``, ``dataset_ids``, :meth:`for_dataset` and :meth:`batches`. The join
    report (``join_report``-style) counts the rows of the last complete pass.
    """

    source: SqliteTable
    compartment: str | None
    image_rows: pa.Table  # per Image row: hop columns, canonical keys, uri, array_path
    object_column: str | None
    keys: tuple[str, ...]  # the object table's image-number [+ table-number] columns
    base_report: dict[str, Any]
    annotate: Any = None  # a function of a table, e.g. the platemap annotation
    only_dataset: str | None = None
    _counts: _Counts = field(default_factory=_Counts)

    @property
    def schema(self) -> pa.Schema:
        """The schema of every batch."""
        empty = pa.RecordBatch.from_pylist([], schema=self.source.schema)
        return self._join_batch(empty, _Counts()).schema

    @property
    def column_names(self) -> list[str]:
        """Column names, as :attr:`pyarrow.Table.column_names`."""
        return self.schema.names

    @property
    def num_rows(self) -> int:
        """Rows written by a pass (every object row, matched or not)."""
        if self.only_dataset is None:
            return self.source.num_rows
        return sum(b.num_rows for b in self.batches())

    @property
    def dataset_ids(self) -> list[str]:
        """Dataset ids of the rows (taken from the Image rows), sorted."""
        if self.only_dataset is not None:
            return [self.only_dataset]
        ids = pc.unique(self.image_rows["dataset_id"]).drop_null().to_pylist()
        return sorted(ids)

    def for_dataset(self, dataset_id: str) -> StreamedJoin:
        """The rows of one dataset."""
        return StreamedJoin(
            self.source,
            self.compartment,
            self.image_rows,
            self.object_column,
            self.keys,
            self.base_report,
            self.annotate,
            only_dataset=dataset_id,
        )

    @property
    def report(self) -> dict[str, Any]:
        """Keys, grain and counts of the last complete pass."""
        counts = self._counts
        warnings = list(self.base_report.get("warnings", []))
        if counts.no_image_row:
            warnings.append(
                f"{self.source.label}: {counts.no_image_row:,} object rows have an image "
                "number that the Image table does not list"
            )
        text_values = self.source.text_warning()
        if text_values is not None:
            warnings.append(text_values)
        return {
            **self.base_report,
            "grain": "object" if self.object_column else "image",
            "compartment": self.compartment,
            "profile_rows": counts.rows,
            "matched_rows": counts.matched,
            "unmatched_rows": counts.rows - counts.matched,
            "warnings": warnings,
        }

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The joined rows, one source batch at a time; counts the pass when it completes."""
        counts = _Counts()
        for batch in self.source.batches():
            joined = self._join_batch(batch, counts)
            if self.only_dataset is not None:
                joined = joined.filter(pc.equal(joined["dataset_id"], self.only_dataset))
            if joined.num_rows:
                yield joined
        self._counts = counts

    def to_table(self) -> pa.Table:
        """Every joined row in one table, with the join report in its schema metadata."""
        table = pa.Table.from_batches(list(self.batches()), schema=self.schema)
        metadata = {JOIN_METADATA_KEY: json.dumps(self.report).encode()}
        return table.replace_schema_metadata(metadata)

    def _join_batch(self, batch: pa.RecordBatch, counts: _Counts) -> pa.RecordBatch:
        table = pa.Table.from_batches([batch])
        found = image_rows_of(table, self.keys, self.image_rows)
        rows = _take_rows(found, self.image_rows)
        out = table.drop_columns(
            [c for c in (*CANONICAL_OUTPUT, "object_id", *IMAGE_COLUMNS) if c in table.column_names]
        )
        for name in self.image_rows.column_names:
            if not name.startswith("__ib_") and name not in out.column_names:
                out = out.append_column(name, self.image_rows[name].take(rows))
        image_ids = out["image_id"]
        if self.object_column is not None:
            ids = object_ids(image_ids, _strings(table[self.object_column]), self.compartment)
            out = out.append_column("object_id", ids)
        order = [c for c in out.column_names if c not in IMAGE_COLUMNS] + [
            c for c in IMAGE_COLUMNS if c in out.column_names
        ]
        out = out.select(order)
        if self.annotate is not None:
            out = self.annotate(out)
        counts.rows += table.num_rows
        counts.matched += table.num_rows - image_ids.null_count
        counts.no_image_row += found.null_count
        return out.combine_chunks().to_batches()[0] if out.num_rows else _empty(out)


def _empty(table: pa.Table) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=table.schema)


def _strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(pa.string())


def _take_rows(rows: pa.Array, image_rows: pa.Table) -> pa.Array:
    """``rows`` with no Image row pointed at the last (missing) row of ``image_rows``."""
    return pc.fill_null(rows, image_rows.num_rows - 1)


def join_streamed(
    image_assets: pa.Table,
    source: SqliteTable,
    image: pa.Table,
    *,
    image_label: str,
    compartment: str | None,
    profile_dataset_id: str | None,
    alias_map: AliasMap | None,
    site_base: int | None,
) -> StreamedJoin:
    """Join the Image table to the images once; object batches then take their image's columns.

    Raises :class:`ContractError` naming the table when the object table has no image
    number or the Image table cannot key it.
    """
    names = source.schema.names
    keys, image_keys = key_columns(
        names, image.column_names, label=source.label, image_label=image_label
    )
    joined = join_image_assets_with_profiles(
        image_assets,
        image,
        profile_dataset_id=profile_dataset_id,
        alias_map=dict(alias_map) if alias_map else None,
        site_base=site_base,
        label=image_label,
    )
    report = join_report(joined)
    resolved, _errors = _resolve_columns(image.column_names, _alias_candidates(alias_map))
    image_rows = unique_key_table(image, image_keys, image_label)
    image_rows = image_rows.append_column(
        _IMAGE_ROW, pa.array(np.arange(image.num_rows, dtype=np.int64))
    )
    for key in HOPPED_KEYS:
        if key in resolved and target_name(resolved[key]) not in names:
            image_rows = image_rows.append_column(target_name(resolved[key]), image[resolved[key]])
    for name in (*CANONICAL_OUTPUT, *IMAGE_COLUMNS):
        if name in joined.column_names:
            image_rows = image_rows.append_column(name, joined[name])
    image_rows = _with_missing_row(image_rows, profile_dataset_id)
    object_column = resolve_object_column(names, alias_map)
    base = {k: report[k] for k in ("join_keys", "resolved_aliases", "site_base") if k in report}
    base["warnings"] = [w for w in report.get("warnings", []) if "site" in w]
    return StreamedJoin(
        source=source,
        compartment=compartment,
        image_rows=image_rows,
        object_column=object_column,
        keys=tuple(keys),
        base_report=base,
    )


def _with_missing_row(image_rows: pa.Table, profile_dataset_id: str | None) -> pa.Table:
    """One more row, taken by object rows whose image number no Image row lists.

    It is null but for ``dataset_id`` (``profile_dataset_id``), as in the in-memory join.
    """
    values: dict[str, Any] = {name: [None] for name in image_rows.column_names}
    values[_IMAGE_ROW] = [None]
    if "dataset_id" in values:
        values["dataset_id"] = [profile_dataset_id]
    missing = pa.table(values, schema=image_rows.schema)
    return pa.concat_tables([image_rows, missing])
