"""Hostile ``export-crops`` options: filters, sizes, levels, channels and boxes.

Issue 20: ``--where 'ObjectNumber < abc'`` leaked DuckDB's ConversionException and
``--size 100000000000000000000`` an OverflowError. Each case here must end in one
``error:`` line naming the profiles file (or the channel / image it is about), exit 2,
and never a half-written warehouse. (Valid but extreme inputs — a filter value beyond
int64, a box coordinate of 1e30 — are tested in ``tests/crops``: a run that writes
crops imports ``ome_arrow``, which alone can take longer than this harness's 10 s.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CLASS = "crop_options"

#: Nuclei rows of the template plate's one image (well A01, field 0, 16×16 pixels).
PROFILES = (
    "Metadata_Plate,Metadata_Well,Metadata_Site,ObjectNumber,"
    "Nuclei_AreaShape_BoundingBoxMinimum_X,Nuclei_AreaShape_BoundingBoxMinimum_Y,"
    "Nuclei_AreaShape_BoundingBoxMaximum_X,Nuclei_AreaShape_BoundingBoxMaximum_Y,"
    "Nuclei_Location_Center_X,Nuclei_Location_Center_Y\n"
    "plate,A01,0,1,0,0,5,6,2.5,3.0\n"
    "plate,A01,0,2,4,8,12,16,8.0,12.0\n"
)


def build(b: Any) -> None:
    """Add the crop-option cases to the builder ``b`` (see :mod:`bad_inputs`)."""

    def setup(case_id: str) -> Path:
        d = b.case(case_id, CLASS)
        b.copy(b.plate(2), d / "plate.ome.zarr")
        (d / "cells.csv").write_text(PROFILES)
        return d

    def crops(*options: str) -> list[str]:
        return [
            "export-crops",
            "plate.ome.zarr",
            "--warehouse-root",
            "wh",
            "--profiles",
            "cells.csv",
            *options,
        ]

    errors = (
        (
            "crop_options-where-text-vs-number",
            ["--where", "ObjectNumber < abc"],
            "cells.csv",
            "a text value compared with an integer column (DuckDB ConversionException)",
        ),
        (
            "crop_options-where-like-on-number",
            ["--where", "ObjectNumber like 1%"],
            "cells.csv",
            "LIKE on an integer column",
        ),
        (
            "crop_options-where-unknown-column",
            ["--where", "Nope = 1"],
            "cells.csv",
            "a filter on a column the profiles lack",
        ),
        (
            "crop_options-size-overflow",
            ["--size", "100000000000000000000"],
            "cells.csv",
            "a crop size beyond int64 (OverflowError)",
        ),
        (
            "crop_options-size-huge",
            ["--size", "4294967296"],
            "cells.csv",
            "a crop side larger than any image can be",
        ),
        (
            "crop_options-level-overflow",
            ["--level", "100000000000000000000"],
            "cells.csv",
            "a pyramid level beyond int64",
        ),
        (
            "crop_options-channel-index-overflow",
            ["--channels", "99999999999999999999"],
            "plate:A/1/0",
            "a channel index beyond int64",
        ),
        (
            "crop_options-channel-unknown",
            ["--channels", "Golgi"],
            "Golgi",
            "a channel name the image does not have",
        ),
        (
            "crop_options-compartment-unknown",
            ["--compartment", "golgi"],
            "cells.csv",
            "a compartment whose boxes the profiles lack",
        ),
        (
            "crop_options-size-without-centres",
            ["--size", "8", "--compartment", "cells"],
            "cells.csv",
            "--size for a compartment without Location_Center columns",
        ),
    )
    for case_id, options, names, description in errors:
        setup(case_id)
        b.add(case_id, CLASS, crops(*options), "error", names, description=description)
