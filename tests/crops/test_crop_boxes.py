"""Boxes from profile columns, and the chunk sets they give (checked against brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

from iceberg_bioimage import ContractError
from iceberg_bioimage.crops.boxes import compute_boxes, resolve_box_columns
from iceberg_bioimage.crops.plan import ArrayLayout, needed_chunk_ids


def layout(shape, chunks, axes) -> ArrayLayout:
    return ArrayLayout.from_row(
        {
            "dataset_id": "d",
            "image_id": "d:0",
            "array_path": "0",
            "uri": "/nowhere",
            "storage_variant": "zarr-v2",
            "shape": list(shape),
            "chunks": list(chunks),
            "dtype": "uint16",
            "axes": axes,
            "channel_names": ["DNA", "ER", "Mito"],
        }
    )


def test_bbox_columns_floor_minima_ceil_maxima_and_nulls_are_invalid():
    table = pa.table(
        {
            "a": [1.7, None, 3.0],
            "b": [2.2, 0.0, 4.0],
            "c": [9.1, 5.0, 6.0],
            "d": [7.0, 5.0, 8.5],
        }
    )
    columns = resolve_box_columns(
        table.column_names,
        size=None,
        bbox_columns=("a", "b", "c", "d"),
        compartment="Cells",
        label="t",
    )
    boxes = compute_boxes(table, columns)
    assert boxes.x_min.tolist()[::2] == [1, 3] and boxes.x_max.tolist()[::2] == [10, 6]
    assert boxes.y_min.tolist()[::2] == [2, 4] and boxes.y_max.tolist()[::2] == [7, 9]
    assert boxes.valid.tolist() == [True, False, True]
    clipped = boxes.clipped(3, 8)  # the third box (x 3..6) is empty once clipped at x = 3
    assert clipped.x_max.tolist()[0] == 3
    assert clipped.valid.tolist() == [True, False, False]
    scaled = boxes.scaled(2.0, 2.0)
    assert scaled.x_min.tolist()[0] == 0 and scaled.x_max.tolist()[0] == 5


def test_size_boxes_around_the_floored_centre():
    table = pa.table({"Location_Center_X": [10.9, 0.2], "Location_Center_Y": [3.0, 99.5]})
    columns = resolve_box_columns(
        table.column_names, size=5, bbox_columns=None, compartment="nuclei", label="t"
    )
    boxes = compute_boxes(table, columns)
    assert boxes.x_min.tolist() == [8, -2] and boxes.x_max.tolist() == [13, 3]
    assert boxes.y_min.tolist() == [1, 97] and boxes.y_max.tolist() == [6, 102]
    with pytest.raises(ContractError, match="positive"):
        resolve_box_columns(
            table.column_names, size=0, bbox_columns=None, compartment=None, label="t"
        )


def test_chunk_sets_match_brute_force():
    rng = np.random.default_rng(3)
    lay = layout((3, 2, 300, 270), (1, 1, 64, 50), "czyx")
    table = pa.table(
        {
            "AreaShape_BoundingBoxMinimum_X": rng.integers(0, 260, 40),
            "AreaShape_BoundingBoxMinimum_Y": rng.integers(0, 290, 40),
        }
    )
    table = table.append_column(
        "AreaShape_BoundingBoxMaximum_X", pa.array(table[0].to_numpy() + rng.integers(1, 90, 40))
    ).append_column(
        "AreaShape_BoundingBoxMaximum_Y", pa.array(table[1].to_numpy() + rng.integers(1, 90, 40))
    )
    columns = resolve_box_columns(
        table.column_names, size=None, bbox_columns=None, compartment="cells", label="t"
    )
    boxes = compute_boxes(table, columns).clipped(270, 300)
    channels = lay.channel_indices(["Mito", 0])
    got = set(needed_chunk_ids(lay, boxes, channels).tolist())
    expected = set()
    for x0, x1, y0, y1 in zip(boxes.x_min, boxes.x_max, boxes.y_min, boxes.y_max, strict=True):
        for c, z, y, x in itertools.product([2, 0], range(2), range(y0, y1), range(x0, x1)):
            expected.add(np.ravel_multi_index((c, z, y // 64, x // 50), lay.grid))
    assert got == expected


def test_unknown_channel_names_the_choices():
    with pytest.raises(ContractError, match="DNA"):
        layout((3, 10, 10), (1, 5, 5), "cyx").channel_indices(["GFP"])


def test_coordinates_beyond_int64_leave_the_row_without_a_box():
    table = pa.table(
        {
            "AreaShape_BoundingBoxMinimum_X": [0.0, 1e30, float("inf")],
            "AreaShape_BoundingBoxMaximum_X": [5.0, 1e31, 9.0],
            "AreaShape_BoundingBoxMinimum_Y": [0.0, 2.0, 2.0],
            "AreaShape_BoundingBoxMaximum_Y": [6.0, 9.0, 9.0],
        }
    )
    columns = resolve_box_columns(
        table.column_names, size=None, bbox_columns=None, compartment="nuclei", label="t"
    )
    boxes = compute_boxes(table, columns)
    assert boxes.valid.tolist() == [True, False, False]
    assert (boxes.x_min[0], boxes.x_max[0], boxes.y_min[0], boxes.y_max[0]) == (0, 5, 0, 6)


@pytest.mark.parametrize("size", [0, -3, 2**31, 10**20])
def test_sizes_outside_one_to_max_are_refused(size):
    with pytest.raises(
        ContractError,
        match=r"cells\.csv: size must be a positive number of pixels, at most 2,147,483,647",
    ):
        resolve_box_columns(
            ["Location_Center_X", "Location_Center_Y"],
            size=size,
            bbox_columns=None,
            compartment=None,
            label="cells.csv",
        )
