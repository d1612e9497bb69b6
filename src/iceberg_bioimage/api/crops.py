"""Single-cell crops through the chunk index (SPEC §10)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from iceberg_bioimage.models.options import CropOptions
from iceberg_bioimage.models.results import CropExportResult

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from iceberg_bioimage.crops.run import ImageCrops

__all__ = ["export_image_crops", "read_image_crops"]


def read_image_crops(
    source: str | os.PathLike[str] | None,
    profiles: Any,
    *,
    crop: CropOptions | None = None,
    catalog: str | Catalog | None = None,
    namespace: str | None = None,
    profile_dataset_id: str | None = None,
    where: Iterable[Sequence[Any]] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ImageCrops:
    """Cut the single-cell crops of profile rows, reading only the chunks their boxes touch.

    Nothing is written. ``source`` is a store (local or fsspec URL), or ``None`` with
    ``catalog``/``namespace`` (the chunk index then comes from the catalog). ``crop``
    (:class:`~iceberg_bioimage.models.options.CropOptions`) says where the boxes come
    from, which channels and which level; boxes are scaled to the level and clipped at
    the image borders. ``where`` filters the profiles first (``(column, op, value)`` as
    in :func:`~iceberg_bioimage.api.profiles.query_metadata_table`).

    Returns:
        :class:`~iceberg_bioimage.crops.run.ImageCrops`: numpy arrays along
        the image's axes (``.to_xarray()`` for ``xarray.DataArray``), their rows and the
        read counts.
    """
    from iceberg_bioimage.crops.inputs import crop_inputs, crop_plan, crop_profiles
    from iceberg_bioimage.crops.labels import label_spec
    from iceberg_bioimage.crops.run import crop_objects

    crop = crop or CropOptions()
    folders = crop.mask_dir is not None or crop.outline_dir is not None
    labels = (
        label_spec(crop.mask_dir, crop.outline_dir, crop.mask_pattern)
        if crop.labels or folders
        else None
    )
    table, label, compartment = crop_profiles(profiles, crop.compartment)
    plan = crop_plan(
        table.column_names,
        size=crop.size,
        bbox_columns=crop.bbox_columns,
        channels=crop.channels,
        level=crop.level,
        compartment=crop.compartment,
        label=label,
        whole_images=crop.source_images,
        labels=labels,
    )
    objects, images, chunks = crop_inputs(
        source,
        table,
        label,
        compartment=compartment,
        catalog=catalog,
        namespace=namespace,
        profile_dataset_id=profile_dataset_id,
        where=where,
        storage_options=storage_options,
        plan=plan,
    )
    crops = crop_objects(
        objects, images, chunks, plan, storage_options=storage_options, label=label
    )
    return replace(crops, image_assets=images, chunk_index=chunks, objects=objects)


def export_image_crops(
    source: str | os.PathLike[str] | None,
    warehouse_root: str | os.PathLike[str],
    *,
    profiles: Any,
    crop: CropOptions | None = None,
    catalog: str | Catalog | None = None,
    namespace: str | None = None,
    profile_dataset_id: str | None = None,
    where: Iterable[Sequence[Any]] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> CropExportResult:
    """Write the crops of profile rows to ``images.image_crops`` (role ``image_crops``).

    Reads as :func:`read_image_crops`; each row holds ``dataset_id``, ``image_id``,
    ``object_id``, deterministic ``Metadata_ObjectID`` / ``Metadata_ImageCropID``, the
    ``source_bbox_*`` box (at the crop level; maxima exclusive) and ``ome_arrow_image``
    (the OME-Arrow struct, every requested channel). A re-run replaces the crops of the
    datasets it writes; other datasets' crops stay. ``crop.source_images`` also writes
    ``images.source_images`` (role ``source_images``): each cropped image whole, as
    OME-Arrow, read in the same pass. A warehouse that lacks the cropped datasets'
    ``images.image_assets`` rows (a fresh folder) gets them too (and, from a store,
    their ``images.chunk_index``), so that it validates; label images found in mask
    folders are added to those tables. Needs the ``ome-arrow`` extra.
    """
    from iceberg_bioimage.crops.catalog import catalog_requests, with_other_datasets
    from iceberg_bioimage.crops.inputs import crops_compartment, missing_image_requests
    from iceberg_bioimage.crops.labels import folder_label_ids
    from iceberg_bioimage.crops.table import (
        crops_table,
        profile_with_images_table,
        require_ome_arrow,
        source_images_table,
    )
    from iceberg_bioimage.warehouse.export import canonical_request, existing_layout
    from iceberg_bioimage.warehouse.write import write_tables

    crop = crop or CropOptions()
    require_ome_arrow(installed_only=True)  # before any pixel is read (imported when used)
    crops = read_image_crops(
        source,
        profiles,
        crop=crop,
        catalog=catalog,
        namespace=namespace,
        profile_dataset_id=profile_dataset_id,
        where=where,
        storage_options=storage_options,
    )
    names = [str(c) for c in crop.channels] if crop.channels is not None else ["*"]
    table = crops_table(crops, level=crop.level, channels=names)
    sources = sorted({os.fspath(source)} if source is not None else ())
    compartment = crops_compartment(crops)
    root = os.fspath(warehouse_root)
    written = with_other_datasets(root, "image_crops", table)
    requests = [canonical_request("image_crops", written, sources, compartment=compartment)]
    whole = source_images_table(crops) if crop.source_images else None
    if whole is not None:
        requests.append(canonical_request("source_images", whole, sources))
    joined = with_other_datasets(
        root, "profile_with_images", profile_with_images_table(crops, table, whole)
    )
    requests.append(
        canonical_request("profile_with_images", joined, sources, compartment=compartment)
    )
    assert crops.image_assets is not None and crops.chunk_index is not None
    # a warehouse lacking these datasets gets their images (label images included), so
    # that it validates; one that has them gets only the label images found in folders
    missing = missing_image_requests(
        root, crops.image_assets, crops.chunk_index if source is not None else None, sources
    )
    requests += missing or catalog_requests(
        root, crops.image_assets, crops.chunk_index, folder_label_ids(crops.image_assets), sources
    )
    manifest_path, writes = write_tables(
        warehouse_root, requests, mode="overwrite", layout=existing_layout(warehouse_root)
    )
    return CropExportResult(
        warehouse_root=os.fspath(warehouse_root),
        manifest_path=str(manifest_path),
        table=writes[0],
        source_images=writes[1] if crop.source_images else None,
        profile_with_images=writes[2 if crop.source_images else 1],
        labelled=sum(1 for plane in crops.labels or () if plane is not None),
        crops=table.num_rows,
        skipped=crops.skipped,
        unmatched=crops.unmatched,
        reads=crops.stats.to_dict(),
        warnings=crops.warnings,
    )
