"""What every ingest engine is given, and the signature each one has."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from iceberg_bioimage.models import ScanOptions
from iceberg_bioimage.models.results import DatasetRecord, TableWrite

if TYPE_CHECKING:
    from iceberg_bioimage.catalog.resolve import ResolvedCatalog


@dataclass(frozen=True, kw_only=True)
class IngestJobOptions:
    """How to scan and publish a batch of stores, whichever engine runs it.

    ``workers`` are local threads (the local engine); ``client`` is a
    ``dask.distributed.Client`` (the Dask engine).
    """

    scan: ScanOptions = field(default_factory=ScanOptions)
    storage_options: Mapping[str, Any] | None = None
    replace: bool = False
    on_stored: Callable[[DatasetRecord], None] | None = None
    workers: int | None = None
    client: Any = None


class Engine(Protocol):
    """Scan ``stores`` and publish their ``tables`` with one commit per table."""

    def __call__(
        self,
        resolved: ResolvedCatalog,
        namespace: str,
        stores: Sequence[str | os.PathLike[str]],
        tables: Sequence[str],
        job: IngestJobOptions,
    ) -> tuple[tuple[DatasetRecord, ...], tuple[TableWrite, ...]]:
        """Return the datasets (in store order) and the table writes."""
        ...
