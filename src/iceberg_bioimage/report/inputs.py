"""The report's inputs: a plate's ``image_assets`` and ``chunk_index``, scanned or loaded."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pyarrow as pa

from iceberg_bioimage.catalog.read import load_named_table
from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.formats import scan
from iceberg_bioimage.formats.file_set.load_data import load_data_root
from iceberg_bioimage.io.storage import open_store
from iceberg_bioimage.models import ScanOptions
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.options import StoreOptions
from iceberg_bioimage.tables.build import canonical_table

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def report_inputs(
    source: str | os.PathLike[str] | None,
    *,
    catalog: str | Catalog | None,
    namespace: str | None,
    store: StoreOptions,
) -> tuple[pa.Table, pa.Table, str]:
    """``image_assets``, ``chunk_index`` and a label naming where they came from."""
    dataset_id = store.dataset_id
    if source is not None:
        options = ScanOptions(read_shard_index=True, file_set=store.file_set)
        result = scan(
            source, dataset_id=dataset_id, options=options, storage_options=store.storage_options
        )
        label = os.fspath(source)
        images = canonical_table(result, "image_assets")
        chunks = canonical_table(result, "chunk_index")
        if result.storage_variant == "tiff-files":
            images, chunks = _at_file_root(source, images, chunks, store)
        return images, chunks, label
    if catalog is None or namespace is None or dataset_id is None:
        raise ContractError("report", "give a store, or a catalog, a namespace and a dataset_id")
    label = f"{namespace}.image_assets (dataset {dataset_id})"
    filters = [("dataset_id", "=", dataset_id)]
    images = load_named_table(catalog, namespace, "image_assets", filters=filters)
    if images.num_rows == 0:
        raise ContractError(label, f"no images of dataset {dataset_id!r} in {namespace}")
    chunks = load_named_table(catalog, namespace, "chunk_index", filters=filters)
    return images, chunks, label


def _at_file_root(
    source: str | os.PathLike[str], images: pa.Table, chunks: pa.Table, store: StoreOptions
) -> tuple[pa.Table, pa.Table]:
    """A LoadData table's rows name the table as ``uri``; pixels are read from the files' root."""
    opened = open_store(os.fspath(source), store.storage_options)
    if opened.is_dir():
        return images, chunks
    root = load_data_root(opened, store.file_set or FileSetOptions())

    def rooted(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("uri")
        return table.set_column(index, "uri", pa.array([root] * table.num_rows, pa.string()))

    return rooted(images), rooted(chunks)
