"""Catalog bioimaging metadata with Apache Iceberg and export Cytomining warehouses."""

from iceberg_bioimage._version import __version__
from iceberg_bioimage.api import (
    deregister_store,
    ingest_stores_to_warehouse,
    list_catalog_tables,
    load_catalog_table,
    publish_chunk_index,
    register_store,
    scan_as_arrow_table,
    scan_result_as_arrow_table,
    scan_store,
    summarize_store,
)
from iceberg_bioimage.exceptions import (
    CatalogConfigError,
    ContractError,
    DatasetConflictError,
    DatasetNotFoundError,
    IcebergBioimageError,
    InvalidNameError,
    MetadataError,
    MissingDependencyError,
    SchemaConflictError,
    StoreNotFoundError,
    TableNotFoundError,
)
from iceberg_bioimage.models import DatasetSummary, ImageAsset, ScanResult
from iceberg_bioimage.models.results import (
    DeregistrationResult,
    RegistrationResult,
    WarehouseIngestResult,
)

__all__ = [
    "CatalogConfigError",
    "ContractError",
    "DatasetConflictError",
    "DatasetNotFoundError",
    "DatasetSummary",
    "DeregistrationResult",
    "IcebergBioimageError",
    "ImageAsset",
    "InvalidNameError",
    "MetadataError",
    "MissingDependencyError",
    "RegistrationResult",
    "ScanResult",
    "SchemaConflictError",
    "StoreNotFoundError",
    "TableNotFoundError",
    "WarehouseIngestResult",
    "__version__",
    "deregister_store",
    "ingest_stores_to_warehouse",
    "list_catalog_tables",
    "load_catalog_table",
    "publish_chunk_index",
    "register_store",
    "scan_as_arrow_table",
    "scan_result_as_arrow_table",
    "scan_store",
    "summarize_store",
]
