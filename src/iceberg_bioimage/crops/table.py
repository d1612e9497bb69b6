"""The ``images.image_crops`` table: identity, source boxes and OME-Arrow pixels."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iceberg_bioimage.crops.objects import image_crop_ids, metadata_object_ids
from iceberg_bioimage.crops.run import ImageCrops
from iceberg_bioimage.exceptions import ContractError, MissingDependencyError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # fixed: a re-run writes identical rows


def _ome_arrow_image(crop: np.ndarray, axes: str, channel_names: list[str], name: str) -> pa.Array:
    import ome_arrow

    keep = [i for i, a in enumerate(axes) if a != "s" or crop.shape[i] != 1]
    pixels = crop.reshape([crop.shape[i] for i in keep])
    dims = "".join(axes[i] for i in keep).upper()
    record = ome_arrow.from_numpy(
        pixels,
        dim_order=dims,
        image_id=name,
        name=name,
        channel_names=channel_names,
        acquisition_datetime=_EPOCH,
        build_chunks=False,
    )
    return pa.repeat(record, 1)


def require_ome_arrow(*, installed_only: bool = False) -> None:
    """Raise :class:`MissingDependencyError` naming the extra unless ``ome_arrow`` imports.

    ``installed_only``: only look for the package (``importlib.util.find_spec``),
    without importing it (seconds), so that a run with bad options fails at once.
    """
    if installed_only:
        import importlib.util

        if importlib.util.find_spec("ome_arrow") is None:
            raise MissingDependencyError("image crops (OME-Arrow)", "ome-arrow")
        return
    try:
        import ome_arrow  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError("image crops (OME-Arrow)", "ome-arrow") from error


def crops_table(crops: ImageCrops, *, level: int, channels: list[str]) -> pa.Table:
    """One row per crop with the SPEC §10 columns (``ome_arrow_image`` holds the pixels)."""
    require_ome_arrow()
    table = crops.table
    ids = metadata_object_ids(
        table["dataset_id"].to_pylist(),
        table["image_id"].to_pylist(),
        table["object_id"].to_pylist(),
    )
    crop_ids = image_crop_ids(table, level, channels)
    axes = table["axes"].to_pylist()
    names = table["channel_names"].to_pylist()
    images = [
        _ome_arrow_image(crop, a, n, crop_id)
        for crop, a, n, crop_id in zip(crops.crops, axes, names, crop_ids, strict=True)
    ]
    column = pa.concat_arrays(images) if images else None
    out = pa.table(
        {
            "dataset_id": table["dataset_id"],
            "image_id": table["image_id"],
            "object_id": table["object_id"],
            "Metadata_ObjectID": pa.array(ids, pa.string()),
            "Metadata_ImageCropID": pa.array(crop_ids, pa.string()),
            "source_bbox_x_min": table["source_bbox_x_min"],
            "source_bbox_x_max": table["source_bbox_x_max"],
            "source_bbox_y_min": table["source_bbox_y_min"],
            "source_bbox_y_max": table["source_bbox_y_max"],
        }
    )
    if column is None:
        from ome_arrow.meta import OME_ARROW_STRUCT

        column = pa.array([], type=OME_ARROW_STRUCT)
    out = out.append_column("ome_arrow_image", column)
    if crops.labels is not None:
        out = _with_labels(out, crops, crop_ids)
    return out


#: Largest label an OME-Arrow plane holds (its pixels are 16-bit).
MAX_OME_ARROW_LABEL = 65535


def _plane_column(planes: list[np.ndarray | None], names: list[str], what: str) -> pa.Array:
    """One OME-Arrow struct per plane (``z, y, x``), null where there is none."""
    from ome_arrow.meta import OME_ARROW_STRUCT

    values = []
    for plane, name in zip(planes, names, strict=True):
        if plane is None:
            values.append(pa.nulls(1, OME_ARROW_STRUCT))
            continue
        if plane.size and (int(plane.max()) > MAX_OME_ARROW_LABEL or int(plane.min()) < 0):
            raise ContractError(
                name, f"{what} values outside 0..{MAX_OME_ARROW_LABEL} (OME-Arrow holds 16 bits)"
            )
        values.append(_ome_arrow_image(plane[np.newaxis], "czyx", [what], f"{name}:{what}"))
    if not values:
        return pa.array([], type=OME_ARROW_STRUCT)
    return pa.concat_arrays([v.cast(OME_ARROW_STRUCT) for v in values])


def _with_labels(out: pa.Table, crops: ImageCrops, crop_ids: list[str]) -> pa.Table:
    """``ome_arrow_label`` (the label image cut with the box), ``ome_arrow_mask`` (1 where
    the label is the object's ``ObjectNumber``) and ``ome_arrow_outline``: CytoTable's names."""
    assert crops.labels is not None and crops.outlines is not None
    masks = [None if m is None else m.astype(np.uint8) for m in crops.object_masks()]
    out = out.append_column("ome_arrow_label", _plane_column(crops.labels, crop_ids, "label"))
    out = out.append_column("ome_arrow_mask", _plane_column(masks, crop_ids, "mask"))
    return out.append_column(
        "ome_arrow_outline", _plane_column(crops.outlines, crop_ids, "outline")
    )


def source_images_table(crops: ImageCrops) -> pa.Table:
    """``images.source_images``: one row per image, the whole image as OME-Arrow."""
    require_ome_arrow()
    table = crops.source_images
    assert table is not None
    images = [
        _ome_arrow_image(pixels, axes, names, image_id)
        for pixels, axes, names, image_id in zip(
            crops.source_pixels,
            table["axes"].to_pylist(),
            table["channel_names"].to_pylist(),
            table["image_id"].to_pylist(),
            strict=True,
        )
    ]
    out = table.select(["dataset_id", "image_id", "multiscale_level"])
    if images:
        return out.append_column("ome_arrow_image", pa.concat_arrays(images))
    from ome_arrow.meta import OME_ARROW_STRUCT

    return out.append_column("ome_arrow_image", pa.array([], type=OME_ARROW_STRUCT))


def profile_with_images_table(
    crops: ImageCrops, crop_table: pa.Table, source_images: pa.Table | None
) -> pa.Table:
    """``profiles.profile_with_images``: each profile row with an image and its crop.

    A materialised table (DuckDB, polars and pycytominer's ``load_profiles`` read it as
    Parquet): the profile's columns, then the crop's ids, box and OME-Arrow columns
    (null where the object's box was empty), and ``ome_arrow_source_image`` (the whole
    image) when ``source_images`` is given.
    """
    objects = crops.objects
    assert objects is not None
    keep = pc.and_(pc.is_valid(objects["image_id"]), pc.is_valid(objects["object_id"]))
    rows = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
    out = objects.take(pa.array(rows, pa.int64()))
    position = np.full(objects.num_rows, -1, dtype=np.int64)
    position[crops.table["profile_row"].to_numpy()] = np.arange(crops.table.num_rows)
    at = position[rows]
    index = pa.array(at, pa.int64(), mask=at < 0)
    added = [c for c in crop_table.column_names if c not in ("dataset_id", "image_id", "object_id")]
    out = out.drop_columns([c for c in added if c in out.column_names])
    if "dataset_id" not in out.column_names:
        out = out.append_column("dataset_id", crop_table["dataset_id"].take(index))
    for name in added:
        out = out.append_column(name, crop_table[name].take(index))
    if source_images is not None:
        ids = source_images["image_id"].to_pylist()
        where = {image_id: i for i, image_id in enumerate(ids)}
        found = [where.get(v) for v in out["image_id"].to_pylist()]
        out = out.append_column(
            "ome_arrow_source_image",
            source_images["ome_arrow_image"].take(pa.array(found, pa.int64())),
        )
    return out
