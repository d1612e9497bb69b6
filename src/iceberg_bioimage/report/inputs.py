"""The report's inputs: a plate's ``image_assets`` and ``chunk_index``, scanned or loaded."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pyarrow as pa

from iceberg_bioimage.catalog.read import load_named_table
from iceberg_bioimage.exceptions import ContractError
from iceberg_bioimage.formats import scan
from iceberg_bioimage.models import ScanOptions
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
        return canonical_table(result, "image_assets"), canonical_table(result, "chunk_index"), label
    if catalog is None or namespace is None or dataset_id is None:
        raise ContractError("report", "give a store, or a catalog, a namespace and a dataset_id")
    label = f"{namespace}.image_assets (dataset {dataset_id})"
    filters = [("dataset_id", "=", dataset_id)]
    images = load_named_table(catalog, namespace, "image_assets", filters=filters)
    if images.num_rows == 0:
        raise ContractError(label, f"no images of dataset {dataset_id!r} in {namespace}")
    chunks = load_named_table(catalog, namespace, "chunk_index", filters=filters)
    return images, chunks, label
