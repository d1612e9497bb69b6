"""Pure-Python data models shared by every layer (no pyarrow inside)."""

from iceberg_bioimage.models.keys import (
    default_dataset_id,
    image_id_for,
    normalize_unit,
    normalize_well_id,
    split_well_id,
    well_name,
)
from iceberg_bioimage.models.scan import (
    ChunkKeyEncoding,
    ImageAsset,
    ScanOptions,
    ScanResult,
    ScanStream,
    chunk_grid_shape,
)
from iceberg_bioimage.models.summary import DatasetSummary

__all__ = [
    "ChunkKeyEncoding",
    "DatasetSummary",
    "ImageAsset",
    "ScanOptions",
    "ScanResult",
    "ScanStream",
    "chunk_grid_shape",
    "default_dataset_id",
    "image_id_for",
    "normalize_unit",
    "normalize_well_id",
    "split_well_id",
    "well_name",
]
