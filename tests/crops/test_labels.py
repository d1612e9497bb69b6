"""Masks, outlines and labels in crops (SPEC §10), read through the chunk index.

Every label plane is compared with the label image sliced by an independent reader
(zarr, tifffile) with the same box; the object's mask is ``label == ObjectNumber``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import tifffile
import zarr

from iceberg_bioimage import CropOptions, export_image_crops, read_image_crops
from iceberg_bioimage.api.warehouse import validate_warehouse
from iceberg_bioimage.exceptions import ContractError, StoreNotFoundError

REAL = Path(__file__).parents[1] / "data" / "real" / "cosmicqc" / "cytotable"
NF1 = REAL / "NF1_cellpainting_data_shrunken"
BOX = (
    "AreaShape_BoundingBoxMinimum_X",
    "AreaShape_BoundingBoxMinimum_Y",
    "AreaShape_BoundingBoxMaximum_X",
    "AreaShape_BoundingBoxMaximum_Y",
)


def _labels(height: int, width: int, count: int, seed: int = 3) -> np.ndarray:
    """Touching blobs labelled 1..count (boxes overlap their neighbours)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    out = np.zeros((height, width), dtype=np.uint16)
    for n in range(1, count + 1):
        cy, cx = rng.integers(8, height - 8), rng.integers(8, width - 8)
        r = rng.integers(4, 11)
        out[(yy - cy) ** 2 + ((xx - cx) / 1.4) ** 2 <= r * r] = n
    return out


def _profiles(labels: np.ndarray, image_id: str, **keys: object) -> pa.Table:
    rows = []
    for n in sorted(int(v) for v in np.unique(labels) if v):
        ys, xs = np.nonzero(labels == n)
        if len(ys) == 0:
            continue
        rows.append(
            {
                "image_id": image_id,
                "ObjectNumber": n,
                **keys,
                **dict(
                    zip(
                        (f"Nuclei_{b}" for b in BOX),
                        (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                        strict=True,
                    )
                ),
            }
        )
    return pa.Table.from_pylist(rows)


def _ngff(path: Path, image: np.ndarray, labels: np.ndarray) -> None:
    """An OME-Zarr v2 image (c, y, x) with ``labels/nuclei`` (y, x), written with zarr."""
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space"},
        {"name": "x", "type": "space"},
    ]
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}
            ],
        }
    ]
    array = root.create_array(
        "0",
        shape=image.shape,
        chunks=(1, 32, 32),
        dtype=image.dtype,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    array[:] = image
    group = root.create_group("labels")
    group.attrs["labels"] = ["nuclei"]
    nuclei = group.create_group("nuclei")
    nuclei.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes[1:],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}
            ],
        }
    ]
    nuclei.attrs["image-label"] = {"version": "0.4"}
    label_array = nuclei.create_array(
        "0",
        shape=labels.shape,
        chunks=(25, 40),
        dtype=labels.dtype,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    label_array[:] = labels


def _chunk_bytes(store: Path, array: str, chunks: tuple[int, int], boxes: pa.Table) -> int:
    """Stored bytes of the label chunks the boxes intersect (files on disk, each once)."""
    keys = set()
    for row in boxes.to_pylist():
        y0, y1 = row["source_bbox_y_min"] // chunks[0], (row["source_bbox_y_max"] - 1) // chunks[0]
        x0, x1 = row["source_bbox_x_min"] // chunks[1], (row["source_bbox_x_max"] - 1) // chunks[1]
        keys |= {(y, x) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)}
    return sum(
        (store / array / str(y) / str(x)).stat().st_size
        for y, x in keys
        if (store / array / str(y) / str(x)).exists()
    )


def test_ngff_labels_are_the_label_image_sliced_by_the_box(tmp_path):
    labels = _labels(200, 300, 40)
    image = (labels.astype(np.uint16) * 100 + 7)[np.newaxis]
    store = tmp_path / "cells.ome.zarr"
    _ngff(store, image, labels)
    profiles = _profiles(labels, "cells")
    crops = read_image_crops(store, profiles, crop=CropOptions(labels=True))
    plain = read_image_crops(store, profiles, crop=CropOptions())
    expected = zarr.open_array(str(store / "labels" / "nuclei" / "0"), mode="r")
    assert len(crops.crops) == profiles.num_rows
    for row, plane, mask in zip(
        crops.table.to_pylist(), crops.labels, crops.object_masks(), strict=True
    ):
        box = (
            slice(row["source_bbox_y_min"], row["source_bbox_y_max"]),
            slice(row["source_bbox_x_min"], row["source_bbox_x_max"]),
        )
        number = int(row["object_id"].rsplit(":", 1)[-1])
        np.testing.assert_array_equal(plane[0], expected[box])
        np.testing.assert_array_equal(mask[0], expected[box] == number)
        assert mask.sum() == (labels == number).sum()  # every pixel of the object is inside
    label_bytes = crops.stats.chunk_bytes - plain.stats.chunk_bytes
    intersecting = _chunk_bytes(store / "labels" / "nuclei", "0", (25, 40), crops.table)
    assert intersecting <= label_bytes <= 1.05 * intersecting
    assert crops.stats.max_decodes_per_chunk == 1


def test_sparse_label_query_reads_only_its_chunks(tmp_path):
    labels = _labels(400, 400, 100, seed=5)
    store = tmp_path / "big.ome.zarr"
    _ngff(store, labels[np.newaxis], labels)
    profiles = _profiles(labels, "big").slice(0, 1)
    crops = read_image_crops(store, profiles, crop=CropOptions(labels=True))
    whole = sum(
        p.stat().st_size
        for p in (store / "labels" / "nuclei" / "0").rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )
    intersecting = _chunk_bytes(store / "labels" / "nuclei", "0", (25, 40), crops.table)
    plain = read_image_crops(store, profiles, crop=CropOptions())
    label_bytes = crops.stats.chunk_bytes - plain.stats.chunk_bytes
    assert label_bytes <= 1.05 * intersecting
    assert label_bytes * 5 < whole


def _tiff_site(tmp_path: Path) -> tuple[Path, Path, Path, np.ndarray, np.ndarray]:
    labels = _labels(150, 210, 25, seed=11)
    outline = np.zeros_like(labels, dtype=np.uint8)
    outline[:-1][labels[:-1] != labels[1:]] = 255
    image = tmp_path / "site.tiff"
    tifffile.imwrite(image, (labels * 50).astype(np.uint16), tile=(32, 32))
    masks, outlines = tmp_path / "masks", tmp_path / "outlines"
    masks.mkdir()
    outlines.mkdir()
    tifffile.imwrite(masks / "P1_A01_s1_Nuclei_mask.tiff", labels, tile=(16, 32))
    tifffile.imwrite(masks / "P1_A02_s1_Nuclei_mask.tiff", labels[::-1].copy(), tile=(16, 32))
    tifffile.imwrite(outlines / "P1_A01_s1_Nuclei_outlines.tiff", outline, rowsperstrip=8)
    return image, masks, outlines, labels, outline


def test_cellprofiler_mask_and_outline_tiffs_into_the_warehouse(tmp_path):
    import ome_arrow

    image, masks, outlines, labels, _ = _tiff_site(tmp_path)
    profiles = _profiles(labels, "site:0", Metadata_Plate="P1", Metadata_Well="a1", Metadata_Site=1)
    root = tmp_path / "warehouse"
    crop = CropOptions(labels=True, mask_dir=masks, outline_dir=outlines)
    result = export_image_crops(image, root, profiles=profiles, crop=crop)
    assert result.crops == profiles.num_rows
    assert validate_warehouse(root).is_valid
    table = pq.read_table(root / "images" / "image_crops")
    mask_file = tifffile.imread(masks / "P1_A01_s1_Nuclei_mask.tiff")
    outline_file = tifffile.imread(outlines / "P1_A01_s1_Nuclei_outlines.tiff")
    for index, row in enumerate(
        table.select([c for c in table.column_names if not c.startswith("ome_arrow")]).to_pylist()
    ):
        box = (
            slice(row["source_bbox_y_min"], row["source_bbox_y_max"]),
            slice(row["source_bbox_x_min"], row["source_bbox_x_max"]),
        )
        number = int(row["object_id"].rsplit(":", 1)[-1])

        def plane(column: str, i: int = index) -> np.ndarray:
            return ome_arrow.OMEArrow(table[column][i]).export("numpy")[0, 0, 0]

        np.testing.assert_array_equal(plane("ome_arrow_label"), mask_file[box])
        np.testing.assert_array_equal(plane("ome_arrow_mask") == 1, mask_file[box] == number)
        np.testing.assert_array_equal(plane("ome_arrow_outline"), outline_file[box])


def test_mask_files_named_by_the_image_table_column(tmp_path):
    image, masks, _, labels, _ = _tiff_site(tmp_path)
    profiles = _profiles(
        labels, "site:0", Image_ObjectsFileName_Nuclei="P1_A02_s1_Nuclei_mask.tiff"
    )
    crops = read_image_crops(image, profiles, crop=CropOptions(labels=True, mask_dir=masks))
    other = tifffile.imread(masks / "P1_A02_s1_Nuclei_mask.tiff")
    row = crops.table.to_pylist()[0]
    box = (
        slice(row["source_bbox_y_min"], row["source_bbox_y_max"]),
        slice(row["source_bbox_x_min"], row["source_bbox_x_max"]),
    )
    np.testing.assert_array_equal(crops.labels[0][0], other[box])


def test_real_cellprofiler_masks_with_a_pattern():
    """coSMicQC's NF1 masks (CellProfiler SaveImages, binary 0/255), B7 site 3."""
    table = pq.read_table(NF1 / "Plate_2_with_image_data_shrunken.parquet")
    row = next(r for r in table.to_pylist() if r["ImageNumber"] == 31)
    profiles = pa.Table.from_pylist(
        [
            {
                "image_id": "B7_01_1_3_DAPI_001:0",
                "Metadata_Plate": row["Image_Metadata_Plate_x"],
                "Metadata_Well": row["Image_Metadata_Well_x"],
                "Metadata_Site": row["Image_Metadata_Site_x"],
                "ObjectNumber": row["Metadata_Nuclei_Number_Object_Number"],
                **{f"Nuclei_{b}": row[f"Nuclei_{b}"] for b in BOX},
            }
        ]
    )
    pattern = (
        r"^(?P<well>[A-Z]+\d+)_\d+_\d+_(?P<site>\d+)_[A-Z]+_\d+_Mask(?P<compartment>\w+)\.tiff$"
    )
    crop = CropOptions(labels=True, mask_dir=NF1 / "Plate_2_masks", mask_pattern=pattern)
    crops = read_image_crops(NF1 / "Plate_2_images" / "B7_01_1_3_DAPI_001.tif", profiles, crop=crop)
    mask = tifffile.imread(NF1 / "Plate_2_masks" / "B7_01_1_3_DAPI_001_MaskNuclei.tiff")
    got = crops.table.to_pylist()[0]
    box = (
        slice(got["source_bbox_y_min"], got["source_bbox_y_max"]),
        slice(got["source_bbox_x_min"], got["source_bbox_x_max"]),
    )
    np.testing.assert_array_equal(crops.labels[0][0], mask[box])
    assert int((crops.labels[0] != 0).sum()) == 1373  # FACTS.md: binary, 1373 mask pixels
    assert not crops.object_masks()[0].any()  # a binary mask holds no ObjectNumber


def test_bad_label_inputs_say_what_is_wrong(tmp_path):
    image, masks, _, labels, _ = _tiff_site(tmp_path)
    profiles = _profiles(labels, "site:0", Metadata_Well="A01", Metadata_Site=1)
    with pytest.raises(StoreNotFoundError, match="--mask-dir"):
        read_image_crops(
            image, profiles, crop=CropOptions(labels=True, mask_dir=tmp_path / "absent")
        )
    with pytest.raises(ContractError, match="named groups"):
        read_image_crops(
            image,
            profiles,
            crop=CropOptions(labels=True, mask_dir=masks, mask_pattern=r"(?P<well>\w+)\.tiff"),
        )
    with pytest.raises(ContractError, match="regular expression"):
        read_image_crops(
            image, profiles, crop=CropOptions(labels=True, mask_dir=masks, mask_pattern="(")
        )


def test_masks_are_catalogued_and_profile_with_images_is_readable(tmp_path):
    import duckdb
    from pycytominer.cyto_utils import load_profiles

    image, masks, outlines, labels, _ = _tiff_site(tmp_path)
    profiles = _profiles(
        labels, "site:0", Metadata_Plate="P1", Metadata_Well="A01", Metadata_Site=1
    )
    profiles = profiles.append_column(
        "Nuclei_AreaShape_Area", pa.array(np.arange(profiles.num_rows, dtype=np.float64))
    )
    root = tmp_path / "warehouse"
    crop = CropOptions(labels=True, mask_dir=masks, outline_dir=outlines, source_images=True)
    result = export_image_crops(image, root, profiles=profiles, crop=crop)
    assert result.labelled == profiles.num_rows
    assert validate_warehouse(root).is_valid
    assets = pq.read_table(root / "images" / "image_assets").to_pylist()
    by_id = {row["image_id"]: row for row in assets}
    mask_row = by_id["site:0/labels/nuclei"]
    assert mask_row["is_label"] is True
    assert json.loads(mask_row["metadata_json"])["compartment"] == "nuclei"
    assert "site:0/labels/nuclei_outlines" in by_id
    chunks = pq.read_table(root / "images" / "chunk_index").to_pylist()
    mask_chunks = [c for c in chunks if c["image_id"] == "site:0/labels/nuclei"]
    assert len(mask_chunks) == math.ceil(150 / 16) * math.ceil(210 / 32)  # its tiles

    folder = root / "profiles" / "profile_with_images"
    rows = duckdb.sql(
        f"select object_id, Nuclei_AreaShape_Area, ome_arrow_image is not null as has_crop, "
        f"ome_arrow_label is not null as has_label, "
        f"ome_arrow_source_image is not null as has_image "
        f"from read_parquet('{folder}/*.parquet') order by Nuclei_AreaShape_Area"
    ).fetchall()
    assert len(rows) == profiles.num_rows
    assert all(r[2] and r[3] and r[4] for r in rows)
    frame = load_profiles(str(folder))
    assert len(frame) == profiles.num_rows
    assert set(frame["Nuclei_AreaShape_Area"]) == set(range(profiles.num_rows))
    # a re-run gives the same rows, never duplicates
    export_image_crops(image, root, profiles=profiles, crop=crop)
    assert pq.read_table(folder).num_rows == profiles.num_rows
    assert pq.read_table(root / "images" / "image_assets").num_rows == len(assets)
    assert validate_warehouse(root).is_valid


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_export_crops_with_labels(tmp_path):
    image, masks, outlines, labels, _ = _tiff_site(tmp_path)
    profiles = tmp_path / "profiles.parquet"
    pq.write_table(
        _profiles(labels, "site:0", Metadata_Plate="P1", Metadata_Well="A01", Metadata_Site="1"),
        profiles,
    )
    root = tmp_path / "warehouse"
    args = ["export-crops", "--warehouse-root", str(root), "--profiles", str(profiles)]
    done = _cli(
        *args,
        "--labels",
        "--mask-dir",
        str(masks),
        "--outline-dir",
        str(outlines),
        "--json",
        str(image),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["labelled"] == report["crops"] > 0
    assert report["profile_with_images"]["table_name"] == "profiles.profile_with_images"
    assert _cli("validate-warehouse", str(root)).returncode == 0
    bad = _cli(
        *args, "--labels", "--mask-dir", str(masks), "--mask-pattern", "(?P<well>x", str(image)
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and "--mask-pattern" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_crops_with_and_without_labels_share_a_warehouse(tmp_path):
    image, masks, _, labels, _ = _tiff_site(tmp_path)
    other = tmp_path / "other.tiff"
    tifffile.imwrite(other, labels[::-1].copy(), tile=(32, 32))
    keys = {"Metadata_Plate": "P1", "Metadata_Well": "A01", "Metadata_Site": 1}
    root = tmp_path / "warehouse"
    export_image_crops(
        image,
        root,
        profiles=_profiles(labels, "site:0", **keys),
        crop=CropOptions(labels=True, mask_dir=masks),
    )
    plain = _profiles(labels[::-1], "other:0")
    plain = plain.append_column("Cells_Feature", pa.array([1.0] * plain.num_rows))
    export_image_crops(other, root, profiles=plain)
    report = validate_warehouse(root)
    assert report.is_valid, report.errors
    crops = pq.read_table(root / "images" / "image_crops")
    assert set(crops["dataset_id"].to_pylist()) == {"site", "other"}
    has_label = crops.filter(pc.is_valid(crops["ome_arrow_label"]))
    assert set(has_label["dataset_id"].to_pylist()) == {"site"}


def test_mask_folder_walk_stays_inside(tmp_path):
    image, masks, _, labels, _ = _tiff_site(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (masks / "P1_A01_s1_Nuclei_mask.tiff").rename(outside / "P1_A01_s1_Nuclei_mask.tiff")
    (masks / "P1_A01_s1_Nuclei_mask.tiff").symlink_to(outside / "P1_A01_s1_Nuclei_mask.tiff")
    keys = {"Metadata_Plate": "P1", "Metadata_Well": "A01", "Metadata_Site": 1}
    crops = read_image_crops(
        image, _profiles(labels, "site:0", **keys), crop=CropOptions(mask_dir=masks)
    )
    assert all(plane is None for plane in crops.labels)
    assert any("no label image" in w for w in crops.warnings)
    for name in ("../outside/x.tiff", "P1_A01_s1_Nuclei_mask.tiff"):  # absent; a link out
        named = _profiles(labels, "site:0", ObjectsFileName_Nuclei=name)
        with pytest.raises(StoreNotFoundError, match="ObjectsFileName_Nuclei"):
            read_image_crops(image, named, crop=CropOptions(mask_dir=masks))
