"""Label images found in mask folders become ``image_assets``/``chunk_index`` rows.

A crop export writes them into the warehouse beside the store's own rows (the images'
``dataset_id``, ``is_label`` true, ``<image_id>/labels/<compartment>`` ids), so every
engine that reads the warehouse finds the masks as it finds the images. Into a fresh
warehouse, the export writes the images' rows too, so the warehouse validates.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.exceptions import IcebergBioimageError
from iceberg_bioimage.models.warehouse import TABLE_SPECS
from iceberg_bioimage.warehouse.export import canonical_request, warehouse_image_assets
from iceberg_bioimage.warehouse.write import TableRequest, load_manifest, read_table


def catalog_requests(
    root: str, images: pa.Table, chunks: pa.Table, label_ids: Sequence[str], sources: list[str]
) -> list[TableRequest]:
    """``image_assets`` and ``chunk_index`` requests that add the label images' rows.

    ``images``/``chunks`` are what the crop run read (the store's rows and the label
    images' rows); ``label_ids`` the label images found in mask folders. The datasets
    they belong to are rewritten whole: their rows in the warehouse plus the new ones.
    """
    existing = warehouse_image_assets(root)
    if existing is None:
        return [
            canonical_request("image_assets", images, sources),
            canonical_request("chunk_index", chunks, sources),
        ]
    if not label_ids:
        return []
    wanted = pa.array(sorted(set(label_ids)), pa.string())
    new_assets = images.filter(pc.is_in(images["image_id"], value_set=wanted))
    new_chunks = chunks.filter(pc.is_in(chunks["image_id"], value_set=wanted))
    datasets = pc.unique(new_assets["dataset_id"])
    old_assets = _rows_of(existing, datasets, wanted)
    entry = next((t for t in load_manifest(root).tables if t.role == "chunk_index"), None)
    old_chunks = _rows_of(read_table(root, entry), datasets, wanted) if entry is not None else None
    requests = [canonical_request("image_assets", _concat(old_assets, new_assets), sources)]
    chunk_rows = new_chunks if old_chunks is None else _concat(old_chunks, new_chunks)
    requests.append(canonical_request("chunk_index", chunk_rows, sources))
    return requests


def _rows_of(table: pa.Table, datasets: pa.Array, replaced: pa.Array) -> pa.Table:
    """Rows of ``datasets`` other than the ``replaced`` images."""
    keep = pc.and_(
        pc.is_in(table["dataset_id"], value_set=datasets),
        pc.invert(pc.is_in(table["image_id"], value_set=replaced)),
    )
    return table.filter(keep)


def _concat(old: pa.Table, new: pa.Table) -> pa.Table:
    columns = [c for c in new.column_names if c in old.column_names]
    return pa.concat_tables(
        [old.select(columns).cast(new.select(columns).schema), new.select(columns)]
    )


def with_other_datasets(root: str, role: str, table: pa.Table) -> pa.Table:
    """``table``, plus the other datasets' rows of the warehouse's table of ``role`` when
    their columns differ (a crop export with labels beside one without, profiles with
    other features): every file of a table then holds the same columns, nulls where a
    dataset has none.
    """
    try:
        manifest = load_manifest(root)
    except IcebergBioimageError:
        return table
    name = TABLE_SPECS[role].table_name
    entry = next((t for t in manifest.tables if t.table_name == name), None)
    if entry is None:
        return table
    listed = {(c["name"], c["type"]) for c in entry.columns}
    if listed == {(f.name, str(f.type)) for f in table.schema}:
        return table
    datasets = pc.unique(table["dataset_id"])
    others = read_table(root, entry)
    others = others.filter(pc.invert(pc.is_in(others["dataset_id"], value_set=datasets)))
    if others.num_rows == 0:
        return table
    return pa.concat_tables([table, others], promote_options="permissive")
