"""SQLite cell values made to fit one Arrow type per column."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from iceberg_bioimage.profiles.sqlite_values import (
    INTEGER,
    NULL,
    REAL,
    TEXT,
    TextCounts,
    column_as,
    is_identifier,
    text_column_type,
    value_kind,
)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, NULL),
        ("", NULL),
        (7, INTEGER),
        ("7", INTEGER),
        ("-12", INTEGER),
        ("007", TEXT),  # leading zeros: a name (plate '0012'), not a number
        ("0.5", REAL),
        ("0", INTEGER),
        (1.5, REAL),
        ("1.5e3", REAL),
        ("nan", REAL),
        ("-inf", REAL),
        ("Infinity", REAL),
        (" 7", TEXT),
        ("A01", TEXT),
        (b"\x00", TEXT),
    ],
)
def test_value_kind(value: object, kind: int) -> None:
    assert value_kind(value) == kind


def test_identifiers_keep_their_text() -> None:
    for name in ("Metadata_Plate", "Image_Metadata_Well", "TableNumber", "Image_FileName_OrigDNA",
                 "PathName_OrigDNA", "URL_OrigDNA", "ObjectsFileName_Nuclei"):  # fmt: skip
        assert is_identifier(name), name
    for name in ("ImageNumber", "ObjectNumber", "Nuclei_Location_Center_X", "Image_Count_Cells"):
        assert not is_identifier(name), name
    assert text_column_type(INTEGER) == pa.int64()
    assert text_column_type(REAL) == pa.float64()
    assert text_column_type(TEXT) == pa.string()
    assert text_column_type(NULL) == pa.string()


def test_text_in_a_float_column_becomes_nan_inf_or_null_and_is_counted() -> None:
    counts = TextCounts()
    array = column_as([1.5, "nan", "inf", "", "abc", None, 2], pa.float64(), "x", counts)
    values = array.to_pylist()
    assert values[0] == 1.5 and math.isnan(values[1]) and values[2] == math.inf
    assert values[3:] == [None, None, None, 2.0]
    assert counts.counts["x"] == {"nan": 1, "inf": 1, "": 1, "abc": 1}
    warning = counts.warning("db:Nuclei")
    assert warning is not None and warning.startswith("db:Nuclei: 4 text value(s) in 1 ")


def test_numbers_written_as_text_are_read_without_a_warning() -> None:
    counts = TextCounts()
    assert column_as(["1", "10", "9"], pa.int64(), "n", counts).to_pylist() == [1, 10, 9]
    strings = pa.array(["1.25", "", "3"])
    assert column_as(strings, pa.float64(), "f", counts).to_pylist() == [1.25, None, 3.0]
    assert counts.warning("t") is None


def test_untyped_bytes_are_text_and_non_utf8_is_an_error() -> None:
    counts = TextCounts()
    assert column_as(pa.array([b"A01"]), pa.string(), "w", counts).to_pylist() == ["A01"]
    assert column_as(pa.array([b"12"]), pa.int64(), "n", counts).to_pylist() == [12]
    with pytest.raises(pa.ArrowInvalid):
        column_as(pa.array([b"\xff"]), pa.string(), "w", counts)
