"""Catalog bioimaging metadata with Apache Iceberg and export Cytomining warehouses."""

from iceberg_bioimage.api import (
    scan_as_arrow_table,
    scan_result_as_arrow_table,
    scan_store,
    summarize_store,
)
from iceberg_bioimage.exceptions import (
    ContractError,
    IcebergBioimageError,
    MetadataError,
    MissingDependencyError,
    StoreNotFoundError,
)
from iceberg_bioimage.models import DatasetSummary, ImageAsset, ScanResult

__version__ = "0.2.0"

__all__ = [
    "ContractError",
    "DatasetSummary",
    "IcebergBioimageError",
    "ImageAsset",
    "MetadataError",
    "MissingDependencyError",
    "ScanResult",
    "StoreNotFoundError",
    "__version__",
    "scan_as_arrow_table",
    "scan_result_as_arrow_table",
    "scan_store",
    "summarize_store",
]
