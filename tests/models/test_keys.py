"""Identity keys: wells, dataset ids, image ids (property-based where it matters)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iceberg_bioimage.models import (
    default_dataset_id,
    image_id_for,
    normalize_unit,
    normalize_well_id,
    split_well_id,
    well_name,
)
from iceberg_bioimage.models.keys import row_index as row_index_of

rows = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=2)
columns = st.integers(min_value=1, max_value=99)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A1", "A01"),
        ("A01", "A01"),
        ("a01", "A01"),
        ("A/1", "A01"),
        ("AF48", "AF48"),
        ("P24", "P24"),
        ("b_3", "B03"),
    ],
)
def test_examples(raw, expected):
    assert normalize_well_id(raw) == expected


@given(rows, columns)
def test_every_spelling_of_a_well_normalises_alike(row, column):
    canonical = f"{row}{column:02d}"
    spellings = [
        f"{row}{column}",
        f"{row}{column:02d}",
        f"{row.lower()}{column:02d}",
        f"{row}/{column}",
        f"{row}_{column:03d}",
    ]
    assert {normalize_well_id(s) for s in spellings} == {canonical}


@given(rows, columns)
def test_normalisation_is_idempotent_and_splits_back(row, column):
    once = normalize_well_id(f"{row}/{column}")
    assert normalize_well_id(once) == once
    assert split_well_id(once) == (row, f"{column:02d}")


@given(st.integers(0, 700), st.integers(0, 98))
def test_well_name_of_indexes_round_trips(row_index, column_index):
    name = well_name(row_index, column_index)
    row, column = split_well_id(name)
    assert int(column) == column_index + 1
    assert row_index_of(row) == row_index


@pytest.mark.parametrize("bad", ["", "1A", "A", "//", "A/B"])
def test_rejects_non_wells(bad):
    with pytest.raises(ValueError, match="not a well"):
        normalize_well_id(bad)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/data/plate1.ome.zarr", "plate1"),
        ("s3://bucket/p/plate1.zarr/", "plate1"),
        ("stack.ome.tiff", "stack"),
        ("stack.OME.TIF", "stack"),
        ("img.tif", "img"),
        ("folder", "folder"),
    ],
)
def test_default_dataset_id(uri, expected):
    assert default_dataset_id(uri) == expected


def test_image_ids():
    assert image_id_for("plate1", "A/1/0") == "plate1:A/1/0"
    assert image_id_for("plate1", "") == "plate1"


def test_units():
    assert normalize_unit("µm") == "micrometer"
    assert normalize_unit("um") == "micrometer"
    assert normalize_unit("micrometer") == "micrometer"
    assert normalize_unit(None) is None
