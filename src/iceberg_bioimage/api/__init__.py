"""The public verbs: thin, each taking options objects, each delegating to one room.

Importing the API is cheap: every verb imports the layer it uses (pyarrow, pyiceberg,
DuckDB and what is built on them) when it is called, so ``scan`` never pays for the
catalog and a catalog command never pays for DuckDB. Each module lists its public names
once, in its ``__all__``; this package and ``iceberg_bioimage`` re-export them.
"""

from __future__ import annotations

from iceberg_bioimage.api import (
    catalog,
    crops,
    interop,
    profiles,
    report,
    samples,
    scan,
    warehouse,
)
from iceberg_bioimage.api.catalog import *  # noqa: F403
from iceberg_bioimage.api.crops import *  # noqa: F403
from iceberg_bioimage.api.interop import *  # noqa: F403
from iceberg_bioimage.api.profiles import *  # noqa: F403
from iceberg_bioimage.api.report import *  # noqa: F403
from iceberg_bioimage.api.samples import *  # noqa: F403
from iceberg_bioimage.api.scan import *  # noqa: F403
from iceberg_bioimage.api.warehouse import *  # noqa: F403
from iceberg_bioimage.models import DatasetSummary, ImageAsset, ScanResult
from iceberg_bioimage.models.crops import ImageCrops
from iceberg_bioimage.models.file_sets import FileSetOptions
from iceberg_bioimage.models.options import (
    CropOptions,
    ProfileOptions,
    ReportOptions,
    StoreOptions,
)
from iceberg_bioimage.models.results import (
    ContractValidationResult,
    CropExportResult,
    CytominingExportResult,
    DeregistrationResult,
    PlateReportResult,
    RegistrationResult,
    WarehouseIngestResult,
    WarehouseValidationResult,
)
from iceberg_bioimage.models.warehouse import WarehouseManifest

# The classes the verbs take and return, then the verbs of each module.
__all__ = [
    "ContractValidationResult",
    "CropExportResult",
    "CropOptions",
    "CytominingExportResult",
    "DatasetSummary",
    "DeregistrationResult",
    "FileSetOptions",
    "ImageAsset",
    "ImageCrops",
    "PlateReportResult",
    "ProfileOptions",
    "RegistrationResult",
    "ReportOptions",
    "ScanResult",
    "StoreOptions",
    "WarehouseIngestResult",
    "WarehouseManifest",
    "WarehouseValidationResult",
]
__all__ += catalog.__all__
__all__ += crops.__all__
__all__ += interop.__all__
__all__ += profiles.__all__
__all__ += report.__all__
__all__ += samples.__all__
__all__ += scan.__all__
__all__ += warehouse.__all__
