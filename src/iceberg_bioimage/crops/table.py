"""The ``images.image_crops`` table: identity, source boxes and OME-Arrow pixels."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

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


def require_ome_arrow() -> None:
    """Raise :class:`MissingDependencyError` naming the extra unless ``ome_arrow`` imports."""
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
