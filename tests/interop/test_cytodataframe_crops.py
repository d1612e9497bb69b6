"""CytoDataFrame shows profiles beside the crops our warehouse holds.

The sample plate is exported (``export-cytomining``) and its cells cropped
(``export-crops``) by the CLI; the joined profiles and ``images.image_crops`` are read
back from the Parquet warehouse, joined on the object, and handed to
``cytodataframe.CytoDataFrame``, whose HTML rendering must show an image per row.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from iceberg_bioimage.samples.plate import write_sample_data

pytestmark = pytest.mark.slow


def cli(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_cytodataframe_renders_crops_from_the_warehouse(tmp_path):
    from cytodataframe import CytoDataFrame

    sample = write_sample_data(tmp_path / "sample")
    root = tmp_path / "warehouse"
    cli(
        "export-cytomining",
        "--warehouse-root",
        str(root),
        "--profiles",
        str(sample.profiles),
        str(sample.plate),
    )
    cli(
        "export-crops",
        "--warehouse-root",
        str(root),
        "--profiles",
        str(sample.profiles),
        "--channels",
        "DNA",
        str(sample.plate),
    )
    cli("validate-warehouse", str(root))
    profiles = pq.read_table(root / "profiles" / "joined_profiles").to_pandas()
    crops = pq.read_table(root / "images" / "image_crops").to_pandas()
    crops["ObjectNumber"] = crops["object_id"].str.rsplit(":", n=1).str[-1].astype("int64")
    joined = profiles.merge(
        crops[["image_id", "ObjectNumber", "ome_arrow_image"]], on=["image_id", "ObjectNumber"]
    )
    assert len(joined) == len(profiles) == len(crops)
    shown = joined[
        [
            "Metadata_Well",
            "Metadata_Site",
            "ObjectNumber",
            "Nuclei_AreaShape_Area",
            "ome_arrow_image",
        ]
    ].head(5)
    frame = CytoDataFrame(pd.DataFrame(shown))
    assert frame.find_ome_arrow_columns(frame) == ["ome_arrow_image"]
    html = frame._repr_html_(debug=True)  # the HTML string (not the notebook widget)
    images = re.findall(r'<img[^>]+src="data:image/png;base64,', html)
    assert len(images) == len(shown)
