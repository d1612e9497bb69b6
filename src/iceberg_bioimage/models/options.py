"""Options objects of the public verbs: what travels together, named once.

Each verb takes at most eight keywords; options that always travel together are one
frozen object here (``FileSetOptions`` for TIFF-folder plates lives in
:mod:`~iceberg_bioimage.models.file_sets`). The CLI builds the same objects from its
flags of the same names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from iceberg_bioimage.models.file_sets import FileSetOptions

if TYPE_CHECKING:
    import pyarrow as pa

#: Box columns: ``{"x_min": ..., "y_min": ..., "x_max": ..., "y_max": ...}`` or four names.
BoxColumnNames = Mapping[str, str] | Sequence[str]


@dataclass(frozen=True, kw_only=True)
class ProfileOptions:
    """How to read and join a profile source (CLI options of the same names).

    ``compartment`` picks one table (``cells``, ``nuclei``, ``cytoplasm``, ``image``);
    ``image_table`` is the Image table of object rows keyed by ``ImageNumber`` when
    the source has none (it wins over one found beside the objects); ``site_base``
    (0 or 1) is where the profiles' site numbers start; ``platemap`` is a
    ``barcode_platemap.csv`` (or one platemap file) whose columns annotate the joined
    rows; ``alias_map`` maps more column names onto the join keys (see
    :func:`~iceberg_bioimage.api.profiles.load_profile_column_aliases`).
    """

    compartment: str | None = None
    image_table: str | os.PathLike[str] | pa.Table | None = None
    site_base: int | None = None
    platemap: str | os.PathLike[str] | None = None
    alias_map: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class CropOptions:
    """What to cut from each profile row's image (SPEC §10).

    Boxes come from CellProfiler ``<Compartment>_AreaShape_BoundingBoxMinimum/Maximum_X/Y``
    columns (maximum exclusive), from ``bbox_columns`` (``x_min, y_min, x_max, y_max``),
    or ``size`` pixels around ``Location_Center_X/Y``; they are scaled to ``level`` and
    clipped at the image borders. ``channels`` are names or indices; ``compartment``
    chooses when several compartments carry boxes; ``source_images`` also returns each
    image whole, cut from the same decoded chunks.

    ``labels`` also cuts each object's segmentation with the same box: from the store's
    NGFF ``labels/`` images, or from CellProfiler label images in ``mask_dir`` (and
    outlines in ``outline_dir``), matched per site by name
    (``<plate>_<well>_s<site>_<Compartment>_mask.tiff`` / ``..._outlines.tiff``), by the
    profiles' ``ObjectsFileName_<Compartment>`` column, or by ``mask_pattern`` (a regex
    with named groups ``plate``, ``well``, ``site``, ``compartment``). Naming a folder
    implies ``labels``; the folders are local.
    """

    size: int | None = None
    bbox_columns: BoxColumnNames | None = None
    channels: Sequence[str | int] | None = None
    level: int = 0
    compartment: str | None = None
    source_images: bool = False
    labels: bool = False
    mask_dir: str | os.PathLike[str] | None = None
    outline_dir: str | os.PathLike[str] | None = None
    mask_pattern: str | None = None


@dataclass(frozen=True, kw_only=True)
class StoreOptions:
    """How to open and name a store that a verb scans on its way to somewhere else.

    ``dataset_id`` overrides the default (the store name minus its suffix);
    ``storage_options`` go to fsspec for remote stores; ``file_set`` says how to read a
    folder of single-image TIFFs or a LoadData table as a plate.
    """

    dataset_id: str | None = None
    storage_options: Mapping[str, Any] | None = None
    file_set: FileSetOptions | None = None


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """What the plate report shows (SPEC §12).

    ``thumbnail_size`` is the longer side of each field's thumbnail in pixels (the
    lowest pyramid level at least that large is read); ``channels`` are names or
    indices (default: every channel); ``percentiles`` set each channel's plate-wide
    auto-contrast; ``features`` are the profile columns offered as heatmaps and cell
    sort keys (default: the first ``max_features`` numeric columns);
    ``cells_per_well`` crops are shown per well (``crop_size`` pixels around
    ``Location_Center_X/Y`` when the profiles carry no bounding boxes); ``title``
    heads the page.
    """

    thumbnail_size: int = 96
    channels: Sequence[str | int] | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)
    features: Sequence[str] | None = None
    max_features: int = 64
    cells_per_well: int = 16
    crop_size: int = 32
    title: str | None = None
