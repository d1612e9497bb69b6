"""Generated sample data for a first run."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iceberg_bioimage.samples.plate import SampleData

__all__ = ["write_sample_data"]


def write_sample_data(directory: str | os.PathLike[str], *, overwrite: bool = False) -> SampleData:
    """Write the sample plate, image, OME-TIFF, profiles and TIFF plate into ``directory``.

    See :func:`iceberg_bioimage.samples.plate.write_sample_data`.
    """
    from iceberg_bioimage.samples.plate import write_sample_data as write

    return write(directory, overwrite=overwrite)
