"""OME-Arrow records of images (extra ``ome-arrow``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ome_arrow import OMEArrow

__all__ = ["create_ome_arrow", "scan_ome_arrow"]


def create_ome_arrow(
    path: str | os.PathLike[str],
    *,
    image_path: str | int | None = None,
    image_id: str | None = None,
    image_type: str | None = None,
) -> OMEArrow:
    """Read one image (TIFF, OME-NGFF image or plate field, OME-Arrow Parquet) into OME-Arrow.

    See :func:`iceberg_bioimage.interop.ome_arrow.create_ome_arrow`.
    """
    from iceberg_bioimage.interop.ome_arrow import create_ome_arrow as create

    return create(path, image_path=image_path, image_id=image_id, image_type=image_type)


def scan_ome_arrow(
    path: str | os.PathLike[str],
    *,
    image_path: str | int | None = None,
    column_name: str = "ome_arrow",
    row_index: int = 0,
    image_type: str | None = None,
) -> OMEArrow:
    """Open an image lazily as OME-Arrow (nothing is read yet).

    See :func:`iceberg_bioimage.interop.ome_arrow.scan_ome_arrow`.
    """
    from iceberg_bioimage.interop.ome_arrow import scan_ome_arrow as scan

    return scan(
        path,
        image_path=image_path,
        column_name=column_name,
        row_index=row_index,
        image_type=image_type,
    )
