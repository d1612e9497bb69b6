"""CLI options of the profile side, platemaps, and warehouses written by 0.2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fixtures import instrument_plates as ip
from fixtures.cellprofiler_outputs import (
    PlateProfiles,
    write_cellprofiler_sqlite,
    write_platemap,
)
from iceberg_bioimage import ProfileOptions, api, validate_warehouse
from iceberg_bioimage.cli import main
from iceberg_bioimage.models.warehouse import MANIFEST_NAME

PLATE = ip.PLATES[0]
WELLS = [ip.well_id(r, c) for r, c in ip.WELLS]
SPEC = PlateProfiles(
    plate=PLATE,
    sites=tuple((well, site) for well in WELLS for site in range(1, ip.SITES + 1)),
    objects_per_image=2,
    seed=5,
    image_size=(ip.WIDTH, ip.HEIGHT),
)


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ip.write_phenix(tmp_path_factory.mktemp("plate"))[PLATE].path


@pytest.fixture(scope="module")
def sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cellprofiler_sqlite(tmp_path_factory.mktemp("sqlite") / "plate.sqlite", SPEC).path


@pytest.fixture(scope="module")
def platemap(tmp_path_factory: pytest.TempPathFactory):
    return write_platemap(tmp_path_factory.mktemp("metadata"), {PLATE: "C-7161-01-LM6-001"}, WELLS)


def run(*args: str) -> dict:
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_joins_one_compartment_of_a_sqlite_with_its_platemap(
    plate: Path, sqlite: Path, platemap, tmp_path: Path
) -> None:
    output = tmp_path / "nuclei.parquet"
    report = run(
        "join-profiles",
        str(plate),
        str(sqlite),
        "--compartment",
        "nuclei",
        "--site-base",
        "1",
        "--platemap",
        str(platemap.path),
        "--output",
        str(output),
    )
    assert report["grain"] == "object" and report["compartment"] == "nuclei"
    assert report["unmatched_rows"] == 0 and report["site_base"] == 1
    joined = pq.read_table(output)
    assert joined.num_rows == len(SPEC.sites) * 2
    assert joined["Metadata_pert_type"].null_count == 0  # every well is in the platemap
    truth = platemap.annotations
    wells = truth["well_position"].to_pylist() if "well_position" in truth.column_names else None
    assert wells is None or set(joined["well_id"].to_pylist()) <= {
        w if len(w) == 3 else f"{w[0]}{int(w[1:]):02d}" for w in wells
    }


def test_cli_refuses_a_missing_compartment_in_one_line(plate: Path, sqlite: Path) -> None:
    result = CliRunner().invoke(main, ["join-profiles", str(plate), str(sqlite)])
    assert result.exit_code == 2
    assert "several compartments (cells, cytoplasm, nuclei)" in result.stderr
    assert "--compartment" in result.stderr and "Traceback" not in result.output


def test_export_writes_the_platemap_as_annotations(
    plate: Path, sqlite: Path, platemap, tmp_path: Path
) -> None:
    root = tmp_path / "wh"
    report = run(
        "export-cytomining",
        str(plate),
        "--warehouse-root",
        str(root),
        "--profiles",
        str(sqlite),
        "--platemap",
        str(platemap.path),
    )
    names = {t["table_name"] for t in report["tables"]}
    assert {"images.platemap", "profiles.nuclei_profiles", "profiles.cells_profiles"} <= names
    assert len(report["joins"]) == 3 and report["join"] is None
    entry = api.load_warehouse_manifest(root).table("images.platemap")
    assert entry.role == "annotations" and entry.row_count == len(WELLS)
    nuclei = pq.read_table(root / "profiles" / "nuclei_profiles")
    assert "Metadata_pert_type" in nuclei.column_names
    assert validate_warehouse(root).is_valid


# -- Warehouses written by 0.2 ---------------------------------------------------------


def as_written_by_0_2(root: Path) -> None:
    """Rewrite a warehouse the way 0.2 laid it out: QC under ``profiles.``, conformance claims."""
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    for entry in manifest["tables"]:
        if entry["role"] == "quality_control":
            name = entry["table_name"].split(".", 1)[1]
            shutil.move(root / entry["path"], root / "profiles" / name)
            (root / "quality_control").rmdir()
            entry["table_name"], entry["path"] = f"profiles.{name}", f"profiles/{name}"
    manifest["conformance_profiles"] = ["core", "profiles-qc"]
    manifest["producer"] = {"name": "iceberg-bioimage", "version": "0.2.0"}
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))


def test_a_0_2_warehouse_is_read_then_migrated_on_the_next_write(
    plate: Path, sqlite: Path, tmp_path: Path
) -> None:
    root = tmp_path / "wh"
    api.export_store_to_cytomining_warehouse(
        plate,
        root,
        profiles=sqlite,
        options=ProfileOptions(compartment="nuclei", site_base=1),
    )
    joined = pq.read_table(root / "profiles" / "joined_profiles")
    qc = joined.select(["dataset_id", "image_id", "object_id"]).append_column(
        "qc_pass", pc.greater(joined["Nuclei_AreaShape_Area"], 0)
    )
    api.export_profiles_to_cytomining_warehouse(
        qc, root, table_name="cosmicqc_profiles", role="quality_control"
    )
    as_written_by_0_2(root)

    old = validate_warehouse(root)  # read: the draft layout is reported, not crashed on
    assert old.failed_requirements == ("namespaces",)
    assert any("conformance profiles" in w for w in old.warnings)
    manifest = api.load_warehouse_manifest(root)
    qc_rows = pq.read_table(root / "profiles" / "cosmicqc_profiles").num_rows
    assert manifest.table("profiles.cosmicqc_profiles").row_count == qc_rows

    extra = pa.table({"dataset_id": [PLATE], "image_id": [f"{PLATE}:A/1/1"], "x": [1.0]})
    api.export_table_to_cytomining_warehouse(
        extra, root, table_name="reports.note", role="reports", join_keys=["dataset_id"]
    )
    migrated = json.loads((root / MANIFEST_NAME).read_text())
    assert "conformance_profiles" not in migrated
    names = {t["table_name"] for t in migrated["tables"]}
    assert "quality_control.cosmicqc_profiles" in names
    assert "profiles.cosmicqc_profiles" not in names
    assert not (root / "profiles" / "cosmicqc_profiles").exists()
    assert pq.read_table(root / "quality_control" / "cosmicqc_profiles").num_rows == qc_rows
    result = validate_warehouse(root)
    assert result.is_valid, result.errors
    assert result.warnings == ()


def test_sqlite_columns_without_a_declared_type_are_read_as_text(
    plate: Path, tmp_path: Path
) -> None:
    import sqlite3

    path = tmp_path / "untyped.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE Image (ImageNumber, Image_Metadata_Plate, Image_Metadata_Well, "
                "Image_Metadata_Site)")  # fmt: skip
    con.execute("CREATE TABLE Nuclei (ImageNumber, ObjectNumber, Nuclei_AreaShape_Area)")
    con.execute("INSERT INTO Image VALUES (1, ?, 'A01', 1), (2, ?, 'C10', 3)", [PLATE, PLATE])
    con.executemany("INSERT INTO Nuclei VALUES (?, ?, 10.5)", [(1, 1), (1, 2), (2, 1)])
    con.commit()
    con.close()
    joined = api.join_profiles_with_store(plate, path)
    assert joined["image_id"].to_pylist() == [f"{PLATE}:A/1/1", f"{PLATE}:A/1/1", f"{PLATE}:C/10/3"]
    assert joined["object_id"][2].as_py() == f"{PLATE}:C/10/3:nuclei:1"


def test_validate_contract_reads_sqlite_and_folder_sources(sqlite: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["validate-contract", str(sqlite), "--compartment", "nuclei", "--profile-dataset-id", "d"],
    )
    assert result.exit_code == 0, result.output
    assert "valid" in result.output and "Image_Metadata_Well" in result.output
    refused = CliRunner().invoke(main, ["validate-contract", str(sqlite)])
    assert refused.exit_code == 2 and "several compartments" in refused.stderr
