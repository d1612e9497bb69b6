"""The local engine: scan stores on threads of this process, then publish from it."""

from __future__ import annotations

import os
from collections.abc import Sequence

from iceberg_bioimage.catalog.registration import (
    dataset_record,
    prepare_batch,
    publish_batch,
    scan_many,
)
from iceberg_bioimage.catalog.resolve import ResolvedCatalog
from iceberg_bioimage.engines.job import IngestJobOptions
from iceberg_bioimage.models.results import DatasetRecord, TableWrite


def ingest_locally(
    resolved: ResolvedCatalog,
    namespace: str,
    stores: Sequence[str | os.PathLike[str]],
    tables: Sequence[str],
    job: IngestJobOptions,
) -> tuple[tuple[DatasetRecord, ...], tuple[TableWrite, ...]]:
    """Scan on ``job.workers`` local threads, then commit once per table."""
    on_stored = job.on_stored
    results = scan_many(
        stores,
        options=job.scan,
        workers=job.workers,
        storage_options=job.storage_options,
        on_scanned=(lambda result: on_stored(dataset_record(result))) if on_stored else None,
    )
    batch = prepare_batch(results, tables)
    del results
    return batch.records, publish_batch(resolved, namespace, batch, replace=job.replace)
