"""Ingest engines: where stores are scanned and their data files written.

Each engine is one module with one function of the :class:`~.job.Engine` signature,
named in :data:`ENGINES` (module, function); adding an engine is one module and one
entry. Engines are imported when chosen, so a local ingest never imports Dask.
"""

from __future__ import annotations

import importlib

from iceberg_bioimage.engines.job import Engine, IngestJobOptions

#: Engine name → (module, function).
ENGINES: dict[str, tuple[str, str]] = {
    "local": ("iceberg_bioimage.engines.local", "ingest_locally"),
    "dask": ("iceberg_bioimage.engines.dask", "ingest_with_client"),
}


def engine_for(job: IngestJobOptions) -> Engine:
    """The engine a job asks for: Dask when it carries a client, else local threads."""
    module, function = ENGINES["dask" if job.client is not None else "local"]
    engine: Engine = getattr(importlib.import_module(module), function)
    return engine


__all__ = ["ENGINES", "Engine", "IngestJobOptions", "engine_for"]
