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


def test_cytodataframe_shows_crops_with_their_outlines(tmp_path):
    """``profiles.profile_with_images`` from ``export-crops --labels``: each row's crop and
    its CellProfiler outline render as images, the outline pixels where the file has them."""
    import base64
    import io

    import numpy as np
    import tifffile
    from cytodataframe import CytoDataFrame
    from PIL import Image

    yy, xx = np.mgrid[:96, :128]
    labels = np.zeros((96, 128), dtype=np.uint16)
    for n, (cy, cx) in enumerate([(20, 30), (50, 90), (75, 40)], start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 12**2] = n
    outline = np.zeros((96, 128), dtype=np.uint8)
    outline[:-1][labels[:-1] != labels[1:]] = 255
    outline[:, :-1][labels[:, :-1] != labels[:, 1:]] = 255
    image = tmp_path / "site.tiff"
    tifffile.imwrite(image, (labels * 300 + 50).astype(np.uint16), tile=(32, 32))
    masks, outlines = tmp_path / "masks", tmp_path / "outlines"
    masks.mkdir()
    outlines.mkdir()
    tifffile.imwrite(masks / "P1_A01_s1_Nuclei_mask.tiff", labels)
    tifffile.imwrite(outlines / "P1_A01_s1_Nuclei_outlines.tiff", outline)
    rows = []
    for n in (1, 2, 3):
        ys, xs = np.nonzero(labels == n)
        rows.append(
            {
                "image_id": "site:0",
                "Metadata_Plate": "P1",
                "Metadata_Well": "A01",
                "Metadata_Site": 1,
                "ObjectNumber": n,
                "Nuclei_AreaShape_BoundingBoxMinimum_X": int(xs.min()) - 2,
                "Nuclei_AreaShape_BoundingBoxMinimum_Y": int(ys.min()) - 2,
                "Nuclei_AreaShape_BoundingBoxMaximum_X": int(xs.max()) + 3,
                "Nuclei_AreaShape_BoundingBoxMaximum_Y": int(ys.max()) + 3,
            }
        )
    profiles = tmp_path / "profiles.parquet"
    pd.DataFrame(rows).to_parquet(profiles)
    root = tmp_path / "warehouse"
    cli(
        "export-crops",
        "--warehouse-root",
        str(root),
        "--profiles",
        str(profiles),
        "--labels",
        "--mask-dir",
        str(masks),
        "--outline-dir",
        str(outlines),
        str(image),
    )
    cli("validate-warehouse", str(root))
    cells = pq.read_table(root / "profiles" / "profile_with_images").to_pandas()
    shown = cells.sort_values("ObjectNumber")[
        ["ObjectNumber", "ome_arrow_image", "ome_arrow_outline"]
    ]
    frame = CytoDataFrame(pd.DataFrame(shown))
    html = frame._repr_html_(debug=True)
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(pngs) == 2 * len(shown)
    boxes = cells.sort_values("ObjectNumber").to_dict("records")
    for row, encoded in zip(boxes, pngs[1::2], strict=True):
        drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
        drawn = drawn if drawn.ndim == 2 else drawn[..., :3].max(axis=-1)
        expected = outline[
            row["source_bbox_y_min"] : row["source_bbox_y_max"],
            row["source_bbox_x_min"] : row["source_bbox_x_max"],
        ]
        assert drawn.shape == expected.shape
        np.testing.assert_array_equal(drawn > 0, expected > 0)
