"""Several plates in one warehouse: feature columns that differ, one compartment per table.

SPEC §6: a table's manifest ``columns`` is the union of its files' columns (readers
union by name) and every file's columns are listed; ``profiles.joined_profiles``
keeps the compartment it was first written with, and an export of another
compartment writes its ``profiles.<c>_profiles`` only and says so.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iceberg_bioimage import (
    WarehouseError,
    export_store_to_cytomining_warehouse,
    load_warehouse_manifest,
    validate_warehouse,
)
from iceberg_bioimage.models.warehouse import MANIFEST_NAME


def nuclei(wells: list[str], extra: dict[str, list[float]] | None = None) -> pa.Table:
    """Nuclei rows (one table, CellProfiler's ``Nuclei_`` measurement names), site 0."""
    n = len(wells)
    return pa.table(
        {
            "Metadata_Well": wells,
            "Metadata_Site": ["0"] * n,
            "ObjectNumber": list(range(1, n + 1)),
            "Nuclei_AreaShape_Area": [100.0 + i for i in range(n)],
            **(extra or {}),
        }
    )


def cells(wells: list[str]) -> pa.Table:
    n = len(wells)
    return pa.table(
        {
            "Metadata_Well": wells,
            "Metadata_Site": ["0"] * n,
            "ObjectNumber": list(range(1, n + 1)),
            "Cells_AreaShape_Area": [400.0 + i for i in range(n)],
        }
    )


def footer_columns(root, entry) -> list[set[str]]:
    return [set(pq.read_schema(root / entry.path / f.path).names) for f in entry.files]


def test_manifest_columns_are_the_union_of_the_plates_files(datasets, tmp_path):
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(
        str(datasets["plate04"].path), root, profiles=nuclei(["A01", "A02"])
    )
    extra = {"Nuclei_Intensity_MeanIntensity_DNA": [0.5, 0.25]}
    export_store_to_cytomining_warehouse(
        str(datasets["plate05"].path), root, profiles=nuclei(["A01", "B02"], extra)
    )
    result = validate_warehouse(root)
    assert result.is_valid, result.errors
    entry = load_warehouse_manifest(root).table("profiles.joined_profiles")
    assert entry is not None and set(entry.datasets) == {"plate04", "plate05"}
    listed = [c["name"] for c in entry.columns]
    files = footer_columns(root, entry)
    assert set(listed) == set().union(*files)  # the union, read from the footers
    assert len(listed) == len(set(listed))
    assert "Nuclei_Intensity_MeanIntensity_DNA" in listed
    assert any("Nuclei_Intensity_MeanIntensity_DNA" not in f for f in files)
    rows = duckdb.execute(
        "SELECT dataset_id, count(*), count(Nuclei_Intensity_MeanIntensity_DNA) "
        "FROM read_parquet(?, union_by_name=true) GROUP BY 1 ORDER BY 1",
        [str(root / entry.path / "*.parquet")],
    ).fetchall()
    assert rows == [("plate04", 2, 0), ("plate05", 2, 2)]


def test_another_compartment_goes_to_its_own_table(datasets, tmp_path):
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(
        str(datasets["plate04"].path), root, profiles=nuclei(["A01", "A02"])
    )
    second = export_store_to_cytomining_warehouse(
        str(datasets["plate05"].path), root, profiles=cells(["A01", "B02", "B02"])
    )
    assert any(
        "profiles.joined_profiles holds rows of compartment nuclei" in w
        and "profiles.cells_profiles only" in w
        for w in second.warnings
    ), second.warnings
    assert [t.table_name for t in second.tables if t.role in ("profiles", "joined_profiles")] == [
        "profiles.cells_profiles"
    ]
    result = validate_warehouse(root)
    assert result.is_valid, result.errors
    manifest = load_warehouse_manifest(root)
    joined = manifest.table("profiles.joined_profiles")
    own = manifest.table("profiles.cells_profiles")
    assert joined is not None and own is not None
    assert joined.grain["compartment"] == "nuclei" and joined.datasets == ("plate04",)
    assert own.grain["compartment"] == "cells" and own.datasets == ("plate05",)
    ids = pq.read_table(root / own.path / own.files[0].path)["object_id"].to_pylist()
    assert all(":cells:" in i for i in ids if i)
    held = pq.read_table(root / joined.path / joined.files[0].path)["object_id"].to_pylist()
    assert all(":nuclei:" in i for i in held if i)


def test_overwriting_the_only_dataset_may_change_the_compartment(datasets, tmp_path):
    root = tmp_path / "wh"
    store = str(datasets["plate04"].path)
    export_store_to_cytomining_warehouse(store, root, profiles=nuclei(["A01"]))
    result = export_store_to_cytomining_warehouse(store, root, profiles=cells(["A01"]))
    assert not any("holds rows of" in w for w in result.warnings)
    entry = load_warehouse_manifest(root).table("profiles.joined_profiles")
    assert entry is not None and entry.grain["compartment"] == "cells"
    assert "Nuclei_AreaShape_Area" not in [c["name"] for c in entry.columns]
    assert validate_warehouse(root).is_valid


def test_the_writer_refuses_mixing_kinds_in_a_profile_table(datasets, tmp_path):
    """Below the export's redirect, the writer itself never mixes compartments."""
    from iceberg_bioimage.warehouse.export import profiles_request
    from iceberg_bioimage.warehouse.write import read_table, write_tables

    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(
        str(datasets["plate04"].path), root, profiles=nuclei(["A01"])
    )
    export_store_to_cytomining_warehouse(str(datasets["plate05"].path), root)
    images = read_table(root, load_warehouse_manifest(root).table("images.image_assets"))
    before = (root / MANIFEST_NAME).read_bytes()
    request = profiles_request(
        cells(["A01"]),
        table_name="profiles.nuclei_profiles",
        role="profiles",
        profile_dataset_id="plate05",
        alias_map=None,
        image_assets=images,
        compartment=None,
    )
    write_tables(root, [request], mode="overwrite", layout="namespaced")  # a new table: fine
    request = profiles_request(
        nuclei(["A01"]),
        table_name="profiles.nuclei_profiles",
        role="profiles",
        profile_dataset_id="plate04",
        alias_map=None,
        image_assets=images,
        compartment=None,
    )
    after_first = (root / MANIFEST_NAME).read_bytes()
    assert after_first != before
    with pytest.raises(WarehouseError, match="holds rows of compartment cells"):
        write_tables(root, [request], mode="overwrite", layout="namespaced")
    assert (root / MANIFEST_NAME).read_bytes() == after_first
    assert validate_warehouse(root).is_valid
    assert json.loads(after_first)["warehouse_spec_version"]


def test_validator_rejects_a_file_column_the_manifest_does_not_list(datasets, tmp_path):
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(
        str(datasets["plate04"].path), root, profiles=nuclei(["A01", "A02"])
    )
    doc = json.loads((root / MANIFEST_NAME).read_text())
    entry = next(t for t in doc["tables"] if t["table_name"] == "profiles.joined_profiles")
    entry["columns"] = [c for c in entry["columns"] if c["name"] != "Nuclei_AreaShape_Area"]
    (root / MANIFEST_NAME).write_text(json.dumps(doc))
    result = validate_warehouse(root)
    assert not result.is_valid
    assert result.failed_requirements == ("files",)
    assert any(
        "holds columns the manifest does not list: Nuclei_AreaShape_Area" in e
        for e in result.errors
    ), result.errors


def test_a_column_typed_differently_by_two_plates_is_a_warning(datasets, tmp_path):
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(
        str(datasets["plate04"].path),
        root,
        profiles=nuclei(["A01"], {"Metadata_Dose": [1.5]}),
    )
    export_store_to_cytomining_warehouse(
        str(datasets["plate05"].path),
        root,
        profiles=nuclei(["A01"]).append_column("Metadata_Dose", pa.array(["high"])),
    )
    result = validate_warehouse(root)
    assert result.is_valid, result.errors
    assert any(
        "column Metadata_Dose is double in plate04." in w and "string in plate05." in w
        for w in result.warnings
    ), result.warnings
