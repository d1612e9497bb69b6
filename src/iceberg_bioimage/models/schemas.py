"""Canonical table schemas, defined once for every sink (Arrow, Parquet, Iceberg).

Each column has a stable Iceberg field id, a type token, whether it is
required and a one-line meaning. Sinks derive their own schema objects from
these tuples; nothing else declares columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal[
    "string",
    "int32",
    "int64",
    "double",
    "boolean",
    "timestamp",
    "list<int64>",
    "list<string>",
]


@dataclass(frozen=True, kw_only=True)
class Column:
    """One column of a canonical table."""

    field_id: int
    name: str
    type: ColumnType
    required: bool
    doc: str


@dataclass(frozen=True, kw_only=True)
class TableSchema:
    """A canonical table: its name, columns, and key columns."""

    name: str
    columns: tuple[Column, ...]
    sort_columns: tuple[str, ...] = ("image_id", "array_path")
    partition_column: str = "dataset_id"

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in order."""
        return tuple(column.name for column in self.columns)


def _c(field_id: int, name: str, type_: ColumnType, doc: str, *, required: bool = False) -> Column:
    return Column(field_id=field_id, name=name, type=type_, required=required, doc=doc)


IMAGE_ASSETS = TableSchema(
    name="image_assets",
    columns=(
        _c(
            1,
            "dataset_id",
            "string",
            "Dataset the array belongs to (store name by default).",
            required=True,
        ),
        _c(
            2,
            "image_id",
            "string",
            "Globally unique image id, `<dataset_id>:<image path>`.",
            required=True,
        ),
        _c(
            3,
            "array_path",
            "string",
            "Store-relative path of the array (`A/1/0/0`; TIFF `<series>/<level>`).",
            required=True,
        ),
        _c(
            4,
            "uri",
            "string",
            "URI of the store (folder, prefix or TIFF file).",
            required=True,
        ),
        _c(
            5,
            "format",
            "string",
            "`zarr`, `ome-tiff` (TIFF with OME-XML) or `tiff` (plain/ImageJ TIFF, file sets).",
            required=True,
        ),
        _c(
            6,
            "storage_variant",
            "string",
            "`zarr-v2`, `zarr-v3`, `ome-tiff`, `tiff` or `tiff-files`.",
            required=True,
        ),
        _c(7, "shape", "list<int64>", "Array shape, unsqueezed."),
        _c(8, "chunks", "list<int64>", "Inner chunk shape (TIFF: tile or strip shape)."),
        _c(
            9,
            "shards",
            "list<int64>",
            "Shard shape of a sharded Zarr v3 array, else null.",
        ),
        _c(10, "dtype", "string", "Element type, numpy name (`uint16`)."),
        _c(11, "dimension_names", "list<string>", "Name of each dimension."),
        _c(
            12,
            "axes",
            "string",
            "Single-letter axes joined (`czyx`) when every name is one letter.",
        ),
        _c(
            13,
            "channel_names",
            "list<string>",
            "Channel labels (OME-NGFF omero, OME-XML).",
        ),
        _c(14, "multiscale_level", "int32", "Pyramid level, 0 = full resolution."),
        _c(15, "plate_id", "string", "Plate name (HCS)."),
        _c(16, "well_id", "string", "Well, normalised (`A01`)."),
        _c(
            17,
            "well_row",
            "string",
            "Well row letters (`A`); a plate's row name as written when rows are numbered.",
        ),
        _c(
            18,
            "well_column",
            "string",
            "Well column, two digits (`01`); as written when the plate's rows are numbered.",
        ),
        _c(19, "site_id", "string", "Field of view path as written (`0`)."),
        _c(20, "physical_size_x", "double", "Pixel size along x at this level."),
        _c(21, "physical_size_y", "double", "Pixel size along y at this level."),
        _c(22, "physical_size_z", "double", "Pixel size along z at this level."),
        _c(23, "physical_unit", "string", "Unit of the physical sizes (`micrometer`)."),
        _c(
            24,
            "codecs",
            "string",
            "Codec pipeline, comma-separated (`blosc:zstd`, `sharding_indexed(bytes,zstd)`).",
        ),
        _c(25, "chunk_count", "int64", "Number of inner chunks."),
        _c(26, "nbytes", "int64", "Uncompressed size in bytes."),
        _c(
            27,
            "metadata_json",
            "string",
            "Raw attributes of the image (NGFF) or series facts (TIFF), JSON.",
        ),
        _c(28, "scanned_at", "timestamp", "When the scan ran (UTC)."),
        _c(
            29,
            "is_label",
            "boolean",
            "Whether the image is an OME-NGFF label image (`<image>/labels/<name>`); "
            "null in rows written before the column existed.",
        ),
    ),
)

CHUNK_INDEX = TableSchema(
    name="chunk_index",
    columns=(
        _c(1, "dataset_id", "string", "Dataset the chunk belongs to.", required=True),
        _c(2, "image_id", "string", "Image of the array.", required=True),
        _c(
            3,
            "array_path",
            "string",
            "Store-relative path of the array.",
            required=True,
        ),
        _c(4, "uri", "string", "URI of the store.", required=True),
        _c(
            5,
            "chunk_key",
            "string",
            "Key of the stored object holding the chunk, relative to the store root "
            "(shard key when sharded; TIFF file name).",
            required=True,
        ),
        _c(6, "chunk_coords", "list<int64>", "Coordinates in the inner-chunk grid."),
        _c(
            7,
            "byte_offset",
            "int64",
            "Offset of the chunk inside the object, when known.",
        ),
        _c(8, "byte_length", "int64", "Stored length of the chunk, when known."),
        _c(
            9,
            "present",
            "boolean",
            "Whether the chunk is stored; null when not checked.",
        ),
    ),
)

TABLES = {schema.name: schema for schema in (IMAGE_ASSETS, CHUNK_INDEX)}
