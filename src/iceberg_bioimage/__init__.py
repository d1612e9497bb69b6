"""Catalog bioimaging metadata with Apache Iceberg and export Cytomining warehouses.

Names are imported on first use (PEP 562), so ``import iceberg_bioimage`` and the CLI start
fast: pyarrow, pyiceberg and DuckDB load only when a verb that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from iceberg_bioimage._version import __version__
from iceberg_bioimage.exceptions import (
    CatalogConfigError,
    ContractError,
    DatasetConflictError,
    DatasetNotFoundError,
    FilterError,
    IcebergBioimageError,
    InvalidNameError,
    MetadataError,
    MissingDependencyError,
    SchemaConflictError,
    StoreNotFoundError,
    TableNotFoundError,
    WarehouseError,
)

#: Public name → the module that defines it (imported on first access).
_LAZY = {
    "ContractValidationResult": "iceberg_bioimage.profiles.contract",
    "CropExportResult": "iceberg_bioimage.models.results",
    "CytominingExportResult": "iceberg_bioimage.models.results",
    "DatasetSummary": "iceberg_bioimage.models",
    "DeregistrationResult": "iceberg_bioimage.models.results",
    "ImageAsset": "iceberg_bioimage.models",
    "ImageCrops": "iceberg_bioimage.integrations.crops.run",
    "RegistrationResult": "iceberg_bioimage.models.results",
    "ScanResult": "iceberg_bioimage.models",
    "WarehouseIngestResult": "iceberg_bioimage.models.results",
    "WarehouseManifest": "iceberg_bioimage.models.warehouse",
    "WarehouseValidationResult": "iceberg_bioimage.validation.warehouse",
    "create_ome_arrow": "iceberg_bioimage.api",
    "deregister_store": "iceberg_bioimage.api",
    "embedded_catalog": "iceberg_bioimage.integrations.catalog",
    "export_catalog_to_cytomining_warehouse": "iceberg_bioimage.api",
    "export_image_crops": "iceberg_bioimage.api",
    "export_profiles_to_cytomining_warehouse": "iceberg_bioimage.api",
    "export_store_to_cytomining_warehouse": "iceberg_bioimage.api",
    "export_table_to_cytomining_warehouse": "iceberg_bioimage.api",
    "ingest_stores_to_warehouse": "iceberg_bioimage.api",
    "join_catalog_image_assets_with_profiles": "iceberg_bioimage.api",
    "join_image_assets_with_profiles": "iceberg_bioimage.api",
    "join_profiles_with_store": "iceberg_bioimage.api",
    "join_report": "iceberg_bioimage.profiles.join",
    "list_catalog_tables": "iceberg_bioimage.api",
    "load_catalog_table": "iceberg_bioimage.api",
    "load_profile_column_aliases": "iceberg_bioimage.profiles.contract",
    "load_warehouse_manifest": "iceberg_bioimage.api",
    "maintain_catalog": "iceberg_bioimage.api",
    "publish_chunk_index": "iceberg_bioimage.api",
    "read_image_crops": "iceberg_bioimage.api",
    "query_metadata_table": "iceberg_bioimage.integrations.duckdb",
    "register_store": "iceberg_bioimage.api",
    "scan_as_arrow_table": "iceberg_bioimage.api",
    "scan_ome_arrow": "iceberg_bioimage.api",
    "scan_result_as_arrow_table": "iceberg_bioimage.api",
    "scan_store": "iceberg_bioimage.api",
    "summarize_store": "iceberg_bioimage.api",
    "validate_microscopy_profile_table": "iceberg_bioimage.profiles.contract",
    "validate_warehouse": "iceberg_bioimage.validation.warehouse",
}

if TYPE_CHECKING:
    from iceberg_bioimage.api import (
        create_ome_arrow,
        deregister_store,
        export_catalog_to_cytomining_warehouse,
        export_image_crops,
        export_profiles_to_cytomining_warehouse,
        export_store_to_cytomining_warehouse,
        export_table_to_cytomining_warehouse,
        ingest_stores_to_warehouse,
        join_catalog_image_assets_with_profiles,
        join_image_assets_with_profiles,
        join_profiles_with_store,
        list_catalog_tables,
        load_catalog_table,
        load_warehouse_manifest,
        maintain_catalog,
        publish_chunk_index,
        read_image_crops,
        register_store,
        scan_as_arrow_table,
        scan_ome_arrow,
        scan_result_as_arrow_table,
        scan_store,
        summarize_store,
    )
    from iceberg_bioimage.integrations.catalog import (
        embedded_catalog,
    )
    from iceberg_bioimage.integrations.crops.run import ImageCrops
    from iceberg_bioimage.integrations.duckdb import (
        query_metadata_table,
    )
    from iceberg_bioimage.models import (
        DatasetSummary,
        ImageAsset,
        ScanResult,
    )
    from iceberg_bioimage.models.results import (
        CropExportResult,
        CytominingExportResult,
        DeregistrationResult,
        RegistrationResult,
        WarehouseIngestResult,
    )
    from iceberg_bioimage.models.warehouse import (
        WarehouseManifest,
    )
    from iceberg_bioimage.profiles.contract import (
        ContractValidationResult,
        load_profile_column_aliases,
        validate_microscopy_profile_table,
    )
    from iceberg_bioimage.profiles.join import (
        join_report,
    )
    from iceberg_bioimage.validation.warehouse import (
        WarehouseValidationResult,
        validate_warehouse,
    )


def __getattr__(name: str) -> Any:
    """Import a public name on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Every public name, loaded or not."""
    return sorted({*globals(), *_LAZY})


__all__ = [
    "CatalogConfigError",
    "ContractError",
    "ContractValidationResult",
    "CropExportResult",
    "CytominingExportResult",
    "DatasetConflictError",
    "DatasetNotFoundError",
    "DatasetSummary",
    "DeregistrationResult",
    "FilterError",
    "IcebergBioimageError",
    "ImageAsset",
    "ImageCrops",
    "InvalidNameError",
    "MetadataError",
    "MissingDependencyError",
    "RegistrationResult",
    "ScanResult",
    "SchemaConflictError",
    "StoreNotFoundError",
    "TableNotFoundError",
    "WarehouseError",
    "WarehouseIngestResult",
    "WarehouseManifest",
    "WarehouseValidationResult",
    "__version__",
    "create_ome_arrow",
    "deregister_store",
    "embedded_catalog",
    "export_catalog_to_cytomining_warehouse",
    "export_image_crops",
    "export_profiles_to_cytomining_warehouse",
    "export_store_to_cytomining_warehouse",
    "export_table_to_cytomining_warehouse",
    "ingest_stores_to_warehouse",
    "join_catalog_image_assets_with_profiles",
    "join_image_assets_with_profiles",
    "join_profiles_with_store",
    "join_report",
    "list_catalog_tables",
    "load_catalog_table",
    "load_profile_column_aliases",
    "load_warehouse_manifest",
    "maintain_catalog",
    "publish_chunk_index",
    "query_metadata_table",
    "read_image_crops",
    "register_store",
    "scan_as_arrow_table",
    "scan_ome_arrow",
    "scan_result_as_arrow_table",
    "scan_store",
    "summarize_store",
    "validate_microscopy_profile_table",
    "validate_warehouse",
]
