"""The microscopy join contract: alias resolution, validation rules and canonical keys."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iceberg_bioimage.exceptions import ContractError, StoreNotFoundError
from iceberg_bioimage.models.keys import normalize_well_id, row_letters
from iceberg_bioimage.profiles.contract import (
    CANONICAL_KEYS,
    DEFAULT_ALIASES,
    canonical_profile_keys,
    load_profile_column_aliases,
    validate_microscopy_profile_table,
)
from iceberg_bioimage.profiles.files import read_profile_table


def cellprofiler_table() -> pa.Table:
    """A CellProfiler-style single-cell table without a dataset column."""
    return pa.table(
        {
            "Metadata_Plate": ["P1", "P1", "P1"],
            "Metadata_Well": ["A01", "A1", "b/3"],
            "Metadata_Site": [0, 1, 0],
            "ObjectNumber": [1, 2, 1],
            "Cells_AreaShape_Area": [10.0, 12.5, 9.0],
            "Nuclei_Intensity_MeanIntensity_DNA": [0.1, 0.2, 0.3],
        }
    )


def test_cellprofiler_table_is_valid_with_profile_dataset_id():
    result = validate_microscopy_profile_table(cellprofiler_table(), profile_dataset_id="plate1")

    assert result.is_valid, result.errors
    assert result.source == "<arrow table>"
    assert result.row_count == 3
    assert result.join_keys == ("dataset_id", "plate_id", "well_id", "site_id")
    assert result.resolved_aliases == {
        "plate_id": "Metadata_Plate",
        "well_id": "Metadata_Well",
        "site_id": "Metadata_Site",
        "object_id": "ObjectNumber",
    }
    assert result.profile_dataset_id == "plate1"
    assert result.object_key == "ObjectNumber"
    assert result.errors == result.warnings == result.missing_columns == ()
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()
    result.raise_for_errors()


def test_canonical_keys_of_cellprofiler_table():
    table = cellprofiler_table()
    result = validate_microscopy_profile_table(table, profile_dataset_id="plate1")

    keys = canonical_profile_keys(table, result)

    assert keys.column_names == ["dataset_id", "plate_id", "well_id", "site_id", "object_id"]
    assert all(field.type == pa.string() for field in keys.schema)
    assert keys.to_pydict() == {
        "dataset_id": ["plate1"] * 3,
        "plate_id": ["P1"] * 3,
        "well_id": ["A01", "A01", "B03"],
        "site_id": ["0", "1", "0"],
        "object_id": ["1", "2", "1"],
    }


def test_image_id_table_needs_no_well():
    table = pa.table({"dataset_id": ["ds-1"], "image_id": ["img-1"], "cell_count": [42]})

    result = validate_microscopy_profile_table(table)

    assert result.is_valid
    assert result.join_keys == ("dataset_id", "image_id")
    assert result.resolved_aliases == {"dataset_id": "dataset_id", "image_id": "image_id"}
    assert result.profile_dataset_id is None
    assert canonical_profile_keys(table, result).to_pydict() == {
        "dataset_id": ["ds-1"],
        "image_id": ["img-1"],
    }


def test_profile_dataset_id_wins_over_a_dataset_column():
    """SPEC §5: an explicit profile_dataset_id wins over any column (it used to lose)."""
    table = pa.table({"Metadata_DatasetID": ["ds-1"], "Metadata_ImageID": ["img-1"]})

    result = validate_microscopy_profile_table(table, profile_dataset_id="other")

    assert result.is_valid
    assert result.profile_dataset_id == "other"
    assert "dataset_id" not in result.resolved_aliases
    assert any("'Metadata_DatasetID' ignored" in warning for warning in result.warnings)
    assert canonical_profile_keys(table, result)["dataset_id"].to_pylist() == ["other"]


def test_metadata_source_is_not_a_dataset_alias():
    """In JUMP tables Metadata_Source names the contributing centre (source_4)."""
    table = pa.table({"Metadata_Source": ["source_4"], "Metadata_Well": ["A01"]})

    result = validate_microscopy_profile_table(table)

    assert not result.is_valid
    assert result.missing_columns == ("dataset_id",)
    assert "Metadata_Source" not in result.resolved_aliases.values()


@pytest.mark.parametrize("name", ["metadata_well", "METADATA_WELL", "Well_ID", "metadata_WELL_id"])
def test_aliases_are_case_insensitive(name):
    table = pa.table({"DATASET_ID": ["ds"], name: ["a1"]})

    result = validate_microscopy_profile_table(table)

    assert result.is_valid
    assert result.resolved_aliases == {"dataset_id": "DATASET_ID", "well_id": name}
    assert canonical_profile_keys(table, result)["well_id"].to_pylist() == ["A01"]


def test_two_columns_for_one_key_is_an_error():
    table = pa.table({"Metadata_Well": ["A01"], "Metadata_well_id": ["A01"]})

    result = validate_microscopy_profile_table(table, profile_dataset_id="ds")

    assert not result.is_valid
    assert "well_id" not in result.resolved_aliases
    assert any(
        "'Metadata_Well'" in error and "'Metadata_well_id'" in error for error in result.errors
    )
    with pytest.raises(ContractError, match="Metadata_well_id"):
        result.raise_for_errors()
    with pytest.raises(ContractError):
        canonical_profile_keys(table, result)


def test_one_column_for_two_keys_is_an_error():
    table = pa.table({"dataset_id": ["ds"], "Well": ["A01"]})

    result = validate_microscopy_profile_table(
        table, alias_map={"well_id": "Well", "site_id": ["well"]}
    )

    assert not result.is_valid
    assert any("'Well' matches several keys" in error for error in result.errors)


def test_missing_keys_are_reported():
    table = pa.table({"Cells_AreaShape_Area": [1.0], "Metadata_Site": [1]})

    result = validate_microscopy_profile_table(table)

    assert not result.is_valid
    assert result.missing_columns == ("dataset_id", "image_id or well_id")
    assert any("--profile-dataset-id" in error for error in result.errors)
    assert any("Metadata_Well" in e and "Metadata_ImageID" in e for e in result.errors)
    assert any("site_id" in warning and "unused" in warning for warning in result.warnings)
    assert result.join_keys == ("site_id",)
    with pytest.raises(ContractError, match=r"^<arrow table>: no dataset_id column"):
        result.raise_for_errors()


def test_invalid_wells_and_nulls():
    table = pa.table(
        {
            "Metadata_Well": ["A01", "not a well", None, "7", "A01", None],
            "Metadata_Site": [1.0, 2.0, None, float("nan"), 1.0, 3.0],
        }
    )

    result = validate_microscopy_profile_table(table, profile_dataset_id="ds")

    assert not result.is_valid
    assert any("'not a well'" in e and "'7'" in e for e in result.errors)
    assert "well_id: 2 null values; those rows cannot join" in result.warnings
    assert "site_id: 2 null values; those rows cannot join" in result.warnings


def test_unsupported_key_type_is_an_error():
    table = pa.table({"dataset_id": ["ds"], "image_id": [[1, 2]]})

    result = validate_microscopy_profile_table(table)

    assert not result.is_valid
    assert any("image_id: column 'image_id' has type list" in e for e in result.errors)


def test_empty_table_is_valid_with_a_warning():
    table = cellprofiler_table().slice(0, 0)

    result = validate_microscopy_profile_table(table, profile_dataset_id="ds")

    assert result.is_valid
    assert result.warnings == ("the table has no rows",)
    keys = canonical_profile_keys(table, result)
    assert keys.num_rows == 0
    assert keys.column_names == ["dataset_id", "plate_id", "well_id", "site_id", "object_id"]


def test_empty_profile_dataset_id_is_an_error():
    result = validate_microscopy_profile_table(cellprofiler_table(), profile_dataset_id=" ")

    assert not result.is_valid
    assert "profile_dataset_id is empty" in result.errors


def test_float_dictionary_and_large_string_keys_become_strings():
    table = pa.table(
        {
            "dataset_id": pa.array(["ds", "ds", "ds"], pa.large_string()),
            "Metadata_Plate": pa.array(["P1", "P2", "P1"]).dictionary_encode(),
            "Metadata_Field": [1.0, 2.0, float("nan")],
            "Metadata_Well": pa.array(["a01", "A/2", "A_01"]).dictionary_encode(),
        }
    )
    result = validate_microscopy_profile_table(table)

    keys = canonical_profile_keys(table, result)

    assert all(field.type == pa.string() for field in keys.schema)
    assert keys.to_pydict() == {
        "dataset_id": ["ds"] * 3,
        "plate_id": ["P1", "P2", "P1"],
        "well_id": ["A01", "A02", "A01"],
        "site_id": ["1", "2", None],
    }


def test_alias_map_adds_names():
    table = pa.table({"WellName": ["C4"], "FieldNo": [2]})

    default = validate_microscopy_profile_table(table, profile_dataset_id="ds")
    extended = validate_microscopy_profile_table(
        table, profile_dataset_id="ds", alias_map={"well_id": "WellName", "site_id": ["fieldno"]}
    )

    assert not default.is_valid
    assert extended.is_valid
    assert extended.join_keys == ("dataset_id", "well_id", "site_id")
    assert canonical_profile_keys(table, extended).to_pydict() == {
        "dataset_id": ["ds"],
        "well_id": ["C04"],
        "site_id": ["2"],
    }


def test_alias_map_with_unknown_key_is_refused():
    with pytest.raises(ContractError, match="unknown key 'wells'"):
        validate_microscopy_profile_table(cellprofiler_table(), alias_map={"wells": "W"})


def test_toml_aliases(tmp_path):
    path = tmp_path / "aliases.toml"
    path.write_text(
        '[microscopy.aliases]\nwell_id = "WellName"\nsite_id = ["FieldNo", "Fld"]\n',
        encoding="utf-8",
    )
    aliases = load_profile_column_aliases(path)
    table = pa.table({"Metadata_dataset_id": ["ds"], "WellName": ["C4"], "Fld": [0]})

    result = validate_microscopy_profile_table(table, alias_map=aliases)

    assert aliases == {"well_id": ("WellName",), "site_id": ("FieldNo", "Fld")}
    assert result.is_valid
    assert result.resolved_aliases["site_id"] == "Fld"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[microscopy.aliases]\nwells = "W"\n', "unknown key 'wells'"),
        ("[microscopy.aliases]\nwell_id = 3\n", "must be a column name"),
        ("[microscopy.aliases]\nwell_id = ['W', '']\n", "must be a column name"),
        ("[other]\nx = 1\n", r"no \[microscopy.aliases\] table"),
        ("microscopy = 1\n", r"no \[microscopy.aliases\] table"),
        ("[microscopy.aliases\n", "cannot read aliases"),
    ],
)
def test_bad_toml_aliases(tmp_path, text, problem):
    path = tmp_path / "aliases.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ContractError, match=problem) as caught:
        load_profile_column_aliases(path)
    assert caught.value.subject == str(path)


def test_missing_toml_file(tmp_path):
    with pytest.raises(StoreNotFoundError):
        load_profile_column_aliases(tmp_path / "absent.toml")


def test_pandas_dataframe_input():
    frame = pd.DataFrame(
        {"Metadata_Well": ["A1", None], "Metadata_Site": [1.0, np.nan], "x": [1, 2]},
        index=[10, 20],
    )

    result = validate_microscopy_profile_table(frame, profile_dataset_id="ds")
    table, label = read_profile_table(frame)

    assert result.source == label == "<pandas DataFrame>"
    assert result.is_valid
    assert table.column_names == ["Metadata_Well", "Metadata_Site", "x"]
    assert canonical_profile_keys(table, result).to_pydict() == {
        "dataset_id": ["ds", "ds"],
        "well_id": ["A01", None],
        "site_id": ["1", None],
    }


def test_record_batch_reader_input():
    table = cellprofiler_table()

    read, _ = read_profile_table(
        pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    )

    assert read.equals(table)


@pytest.mark.parametrize("name", ["cells.parquet", "cells.csv", "cells.csv.gz", "cells.tsv"])
def test_file_inputs(tmp_path, name):
    path = tmp_path / name
    table = cellprofiler_table()
    if name.endswith(".parquet"):
        pq.write_table(table, path)
    else:
        delimiter = "\t" if name.endswith(".tsv") else ","
        with (
            pa.CompressedOutputStream(path, "gzip")
            if name.endswith(".gz")
            else open(path, "wb") as sink
        ):
            pacsv.write_csv(table, sink, pacsv.WriteOptions(delimiter=delimiter))

    result = validate_microscopy_profile_table(path, profile_dataset_id="ds")
    read, label = read_profile_table(str(path))

    assert result.source == label == str(path)
    assert result.is_valid, result.errors
    assert read.num_rows == 3
    assert canonical_profile_keys(read, result)["well_id"].to_pylist() == ["A01", "A01", "B03"]


def test_csv_empty_cells_are_nulls(tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text("Metadata_Well,Metadata_Site\nA01,1\n,\n", encoding="utf-8")

    result = validate_microscopy_profile_table(path, profile_dataset_id="ds")

    assert result.is_valid
    assert "well_id: 1 null values; those rows cannot join" in result.warnings


def test_parquet_folder_input(tmp_path):
    folder = tmp_path / "profiles"
    folder.mkdir()
    table = cellprofiler_table()
    pq.write_table(table.slice(0, 2), folder / "part-0.parquet")
    pq.write_table(table.slice(2), folder / "part-1.parquet")
    (folder / "_SUCCESS").write_text("", encoding="utf-8")

    read, label = read_profile_table(folder)

    assert label == str(folder)
    assert read.equals(table)


def test_bad_paths(tmp_path):
    with pytest.raises(StoreNotFoundError, match="no such file or folder"):
        read_profile_table(tmp_path / "absent.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ContractError, match=r"no \.parquet files"):
        read_profile_table(tmp_path / "empty")
    (tmp_path / "cells.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ContractError, match="unsupported file type"):
        read_profile_table(tmp_path / "cells.json")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(ContractError, match="cannot read profiles"):
        read_profile_table(tmp_path / "broken.parquet")
    with pytest.raises(TypeError, match="not int"):
        read_profile_table(3)


def test_canonical_keys_refuse_a_table_without_the_resolved_column():
    result = validate_microscopy_profile_table(cellprofiler_table(), profile_dataset_id="ds")

    with pytest.raises(ContractError, match="no column 'Metadata_Plate'"):
        canonical_profile_keys(pa.table({"x": [1]}), result)


def test_default_aliases_cover_every_key():
    assert set(DEFAULT_ALIASES) == set(CANONICAL_KEYS)


rows = st.integers(min_value=0, max_value=31).map(row_letters)  # A … AF
columns = st.integers(min_value=1, max_value=48)
spellings = st.sampled_from(
    [
        lambda row, col: f"{row}{col}",
        lambda row, col: f"{row}{col:02d}",
        lambda row, col: f"{row.lower()}{col:02d}",
        lambda row, col: f"{row}/{col}",
        lambda row, col: f"{row}_{col:02d}",
    ]
)
wells = st.builds(lambda row, col, spell: spell(row, col), rows, columns, spellings)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(wells, st.none()), max_size=40))
def test_canonical_wells_match_normalize_well_id(values):
    table = pa.table({"Metadata_Well": pa.array(values, pa.string()), "row": range(len(values))})
    result = validate_microscopy_profile_table(table, profile_dataset_id="ds")

    keys = canonical_profile_keys(table, result)

    assert result.is_valid
    assert keys.num_rows == len(values)
    assert keys["well_id"].to_pylist() == [
        None if value is None else normalize_well_id(value) for value in values
    ]


def test_a_million_rows_canonicalise_quickly():
    size = 1_000_000
    generator = np.random.default_rng(0)
    well_names = np.array([f"{row_letters(r)}{c}" for r in range(16) for c in range(1, 25)])
    table = pa.table(
        {
            "Metadata_Plate": pa.array(np.full(size, "P1")),
            "Metadata_Well": pa.array(well_names[generator.integers(0, len(well_names), size)]),
            "Metadata_Site": generator.integers(0, 9, size),
            "ObjectNumber": np.arange(size),
        }
    )

    # CPU time, not wall time: another job's load must not fail this. Vectorised, the
    # million rows take ~0.1 s of CPU; a per-row Python path takes seconds.
    start = time.process_time()
    result = validate_microscopy_profile_table(table, profile_dataset_id="ds")
    keys = canonical_profile_keys(table, result)
    elapsed = time.process_time() - start

    assert result.is_valid
    assert keys.num_rows == size
    assert keys["well_id"][0].as_py() == normalize_well_id(table["Metadata_Well"][0].as_py())
    assert keys["object_id"][size - 1].as_py() == str(size - 1)
    assert elapsed < 3.0, f"{elapsed:.2f} s of CPU"


def test_canonical_column_beside_its_aliases_is_the_key():
    """Tables we write keep Metadata_* originals next to canonical keys; both validate."""
    table = pa.table(
        {
            "Metadata_Well": ["A1", "B2"],
            "well_id": ["A01", "B02"],
            "Metadata_Plate": ["p", "p"],
            "plate_id": ["p", "p"],
            "dataset_id": ["d", "d"],
        }
    )
    result = validate_microscopy_profile_table(table)
    assert result.is_valid, result.errors
    assert result.resolved_aliases["well_id"] == "well_id"
    ambiguous = pa.table(
        {"Metadata_Well": ["A1"], "Metadata_well_id": ["A01"], "dataset_id": ["d"]}
    )
    assert not validate_microscopy_profile_table(ambiguous).is_valid
