"""validate_warehouse on real warehouses written by the exporters, then damaged one way each."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fixtures import writers
from iceberg_bioimage.api import (
    export_profiles_to_cytomining_warehouse,
    export_store_to_cytomining_warehouse,
)
from iceberg_bioimage.models.warehouse import MANIFEST_NAME, TableEntry, TableFile
from iceberg_bioimage.warehouse.validate import validate_warehouse
from iceberg_bioimage.warehouse.write import STAGING_PREFIX


def live(root: Path, folder: str) -> str:
    """The one live file of a table folder (``<dataset>.<token>.parquet``), root-relative."""
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    (entry,) = [t for t in manifest["tables"] if t["path"] == folder]
    return f"{folder}/{entry['files'][0]['path']}"


KEYS = ["dataset_id", "image_id", "plate_id", "well_id", "site_id", "object_id"]


@pytest.fixture(scope="module")
def profiles(datasets: dict[str, writers.Fixture], tmp_path_factory: pytest.TempPathFactory):
    """CellProfiler-style per-cell profiles of plate04."""
    return writers.write_profiles(tmp_path_factory.mktemp("profiles"), datasets["plate04"])


@pytest.fixture(scope="module")
def warehouse(datasets, profiles, tmp_path_factory) -> Path:
    """plate04 exported with joined profiles (namespaced layout)."""
    root = tmp_path_factory.mktemp("warehouse") / "wh"
    export_store_to_cytomining_warehouse(datasets["plate04"].path, root, profiles=profiles.path)
    return root


@pytest.fixture(scope="module")
def qc_warehouse(warehouse, tmp_path_factory) -> Path:
    """``warehouse`` plus a coSMicQC-style ``quality_control.cosmicqc_profiles`` QC table."""
    root = tmp_path_factory.mktemp("qc") / "wh"
    shutil.copytree(warehouse, root)
    joined = pq.read_table(root / "profiles" / "joined_profiles")
    qc = joined.select(KEYS).append_column(
        "qc_pass", pc.greater(joined["Nuclei_AreaShape_Area"], 150.0)
    )
    export_profiles_to_cytomining_warehouse(
        qc, root, table_name="cosmicqc_profiles", role="quality_control"
    )
    return root


@pytest.fixture
def damaged(qc_warehouse: Path, tmp_path: Path) -> Path:
    """A private copy of ``qc_warehouse`` for a test to damage."""
    return Path(shutil.copytree(qc_warehouse, tmp_path / "wh"))


def edit_manifest(root: Path, edit: Callable[[dict[str, Any]], object]) -> None:
    """Rewrite the manifest after ``edit`` changed its document in place."""
    path = root / MANIFEST_NAME
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def entry_of(doc: dict[str, Any], table_name: str) -> dict[str, Any]:
    return next(t for t in doc["tables"] if t["table_name"] == table_name)


def add_hand_written_qc(root: Path, qc_column: str | None) -> None:
    """A QC table written by hand (data file + manifest entry), with or without a QC column."""
    joined = pq.read_table(root / "profiles" / "joined_profiles")
    table = joined.select(KEYS)
    if qc_column is not None:
        table = table.append_column(qc_column, pa.array([True] * table.num_rows))
    (root / "quality_control" / "hand_qc").mkdir(parents=True)
    pq.write_table(table, root / "quality_control" / "hand_qc" / "plate04.parquet")
    entry = TableEntry(
        table_name="quality_control.hand_qc",
        role="quality_control",
        path="quality_control/hand_qc",
        join_keys=("dataset_id", "image_id"),
        columns=tuple({"name": f.name, "type": str(f.type)} for f in table.schema),
        grain={"profile_level": "object", "compartment": None},
        files=(TableFile(path="plate04.parquet", dataset_id="plate04", rows=table.num_rows),),
        provenance={"producer": "by hand"},
    )
    edit_manifest(root, lambda doc: doc["tables"].append(entry.to_dict()))


def only_error(root: Path, fragment: str) -> str:
    """Validate ``root``, expect it invalid with exactly one error containing ``fragment``."""
    result = validate_warehouse(root)
    assert not result.is_valid
    assert len(result.errors) == 1, result.errors
    assert fragment in result.errors[0]
    return result.errors[0]


# -- Valid warehouses --------------------------------------------------------------


def test_exported_warehouse_meets_every_requirement(warehouse: Path, profiles) -> None:
    result = validate_warehouse(warehouse)
    assert result.is_valid, result.errors
    assert result.errors == () and result.warnings == ()
    assert result.layout == "namespaced"
    assert result.spec_version == "1.0.0"
    assert result.failed_requirements == ()
    tables = {t["table_name"]: t for t in result.tables}
    assert set(tables) == {"images.image_assets", "images.chunk_index", "profiles.joined_profiles"}
    assert tables["profiles.joined_profiles"] == {
        "table_name": "profiles.joined_profiles",
        "role": "joined_profiles",
        "path": "profiles/joined_profiles",
        "rows": profiles.expected["n_rows"],
        "datasets": ("plate04",),
        "ok": True,
    }
    json.dumps(result.to_dict())


def test_qc_table_exported_through_the_api_keeps_the_warehouse_valid(qc_warehouse: Path) -> None:
    result = validate_warehouse(qc_warehouse)
    assert result.is_valid, result.errors
    assert result.failed_requirements == ()
    qc = next(t for t in result.tables if t["role"] == "quality_control")
    assert qc["table_name"] == "quality_control.cosmicqc_profiles"
    assert (qc_warehouse / "quality_control" / "cosmicqc_profiles").is_dir()
    assert not (qc_warehouse / "profiles" / "cosmicqc_profiles").exists()
    assert qc["ok"] and qc["rows"] > 0


def test_images_only_warehouse_is_valid(datasets, tmp_path: Path) -> None:
    export_store_to_cytomining_warehouse(datasets["pyramid"].path, tmp_path / "wh")
    result = validate_warehouse(tmp_path / "wh")
    assert result.is_valid, result.errors
    assert result.failed_requirements == ()


def test_flat_layout_export_is_valid(datasets, profiles, tmp_path: Path) -> None:
    root = tmp_path / "flat"
    export_store_to_cytomining_warehouse(
        datasets["plate04"].path, root, profiles=profiles.path, layout="flat"
    )
    result = validate_warehouse(root)
    assert result.is_valid, result.errors
    assert result.layout == "flat"
    assert {t["path"] for t in result.tables} == {"image_assets", "chunk_index", "joined_profiles"}
    assert result.failed_requirements == ()
    assert any("flat layout" in w for w in result.warnings)


def test_newer_minor_version_is_a_warning(damaged: Path) -> None:
    edit_manifest(damaged, lambda doc: doc.update(warehouse_spec_version="1.3.0"))
    result = validate_warehouse(damaged)
    assert result.is_valid, result.errors
    assert result.spec_version == "1.3.0"
    assert any("newer than 1.0.0" in w for w in result.warnings)


def test_qc_pass_spelled_qc_pass_upper_is_accepted_with_a_warning(damaged: Path) -> None:
    add_hand_written_qc(damaged, "QC_Pass")
    result = validate_warehouse(damaged)
    assert result.is_valid, result.errors
    assert any("quality_control.hand_qc" in w and "QC_Pass" in w for w in result.warnings)


def test_leftovers_of_interrupted_writes_are_warnings(damaged: Path) -> None:
    (damaged / f"{STAGING_PREFIX}0123abcd").mkdir()
    (damaged / f"{STAGING_PREFIX}0123abcd" / "0.parquet").write_bytes(b"half")
    (damaged / f".{MANIFEST_NAME}.0123abcd.tmp").write_text("{}")
    result = validate_warehouse(damaged)
    assert result.is_valid, result.errors
    assert len(result.warnings) == 2
    assert any(STAGING_PREFIX in w for w in result.warnings)
    assert any(".tmp" in w for w in result.warnings)


def test_table_folder_missing_from_the_manifest_is_a_warning(damaged: Path) -> None:
    shutil.copytree(damaged / "profiles" / "joined_profiles", damaged / "profiles" / "extra")
    result = validate_warehouse(damaged)
    assert result.is_valid, result.errors
    assert result.warnings == (
        f"{damaged / 'profiles' / 'extra'}: holds Parquet files but no manifest entry names it",
    )


# -- Broken warehouses: one specific error each ------------------------------------


def test_unknown_major_version_fails_fast(damaged: Path) -> None:
    edit_manifest(damaged, lambda doc: doc.update(warehouse_spec_version="2.0.0"))
    (damaged / "profiles" / "joined_profiles" / "notes.txt").write_text("not checked")
    message = only_error(damaged, "unknown major version")
    assert "2.0.0" in message and MANIFEST_NAME in message
    result = validate_warehouse(damaged)
    assert result.spec_version == "2.0.0"
    assert result.tables == () and result.failed_requirements == ("version",)


def test_missing_file(damaged: Path) -> None:
    name = live(damaged, "profiles/joined_profiles")
    (damaged / name).unlink()
    only_error(
        damaged,
        f"table profiles.joined_profiles: {name} is listed in the manifest but missing",
    )
    assert validate_warehouse(damaged).failed_requirements == ("files",)


def test_row_count_mismatch(damaged: Path) -> None:
    name = live(damaged, "images/image_assets")
    path = damaged / name
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)
    only_error(
        damaged,
        f"table images.image_assets: {name} has "
        f"{table.num_rows - 1} rows; the manifest says {table.num_rows}",
    )


def test_stray_non_parquet_file(damaged: Path) -> None:
    (damaged / "profiles" / "joined_profiles" / "notes.txt").write_text("hello")
    only_error(damaged, "table profiles.joined_profiles: stray profiles/joined_profiles/notes.txt")


def test_unlisted_parquet_file(damaged: Path) -> None:
    folder = damaged / "profiles" / "joined_profiles"
    shutil.copy(damaged / live(damaged, "profiles/joined_profiles"), folder / "plate99.parquet")
    only_error(damaged, "profiles/joined_profiles/plate99.parquet is not listed in the manifest")


def test_unreadable_parquet_file(damaged: Path) -> None:
    name = live(damaged, "images/chunk_index")
    (damaged / name).write_bytes(b"not parquet at all")
    only_error(damaged, f"table images.chunk_index: {name} is not a readable")


def test_qc_table_without_qc_pass_is_a_warning(damaged: Path) -> None:
    add_hand_written_qc(damaged, None)  # the spec says SHOULD carry a boolean flag
    result = validate_warehouse(damaged)
    assert result.is_valid, result.errors
    assert any(
        "quality_control.hand_qc: quality_control tables should carry a boolean qc_pass" in w
        for w in result.warnings
    )


def test_qc_table_outside_quality_control_breaks_the_namespace_requirement(
    damaged: Path,
) -> None:
    add_hand_written_qc(damaged, "qc_pass")
    edit_manifest(
        damaged,
        lambda doc: entry_of(doc, "quality_control.hand_qc").update(
            table_name="profiles.hand_qc", path="profiles/hand_qc"
        ),
    )
    shutil.move(damaged / "quality_control" / "hand_qc", damaged / "profiles" / "hand_qc")
    message = only_error(damaged, "table profiles.hand_qc: quality_control tables live in")
    assert message.startswith("[namespaces] ")
    result = validate_warehouse(damaged)
    assert result.failed_requirements == ("namespaces",)
    assert {t["table_name"]: t["ok"] for t in result.tables}["profiles.hand_qc"] is False


def test_missing_image_assets(damaged: Path) -> None:
    shutil.rmtree(damaged / "images" / "image_assets")
    edit_manifest(
        damaged,
        lambda doc: doc.update(
            tables=[t for t in doc["tables"] if t["table_name"] != "images.image_assets"]
        ),
    )
    message = only_error(damaged, "no images.image_assets table")
    assert message.startswith("[image-assets] ")


def test_missing_chunk_index_is_fine(damaged: Path) -> None:
    shutil.rmtree(damaged / "images" / "chunk_index")
    edit_manifest(
        damaged,
        lambda doc: doc.update(
            tables=[t for t in doc["tables"] if t["table_name"] != "images.chunk_index"]
        ),
    )
    assert validate_warehouse(damaged).is_valid


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            lambda doc: entry_of(doc, "quality_control.cosmicqc_profiles").update(role="banana"),
            "table quality_control.cosmicqc_profiles: unknown role 'banana'",
        ),
        (
            lambda doc: entry_of(doc, "images.image_assets").update(format="csv"),
            "table images.image_assets: format 'csv' is not parquet",
        ),
        (
            lambda doc: entry_of(doc, "images.chunk_index").update(join_keys=["dataset_id", "z"]),
            "table images.chunk_index: join_keys ['z'] are not among its columns",
        ),
        (
            lambda doc: entry_of(doc, "images.image_assets")["columns"].append(
                {"name": "ghost", "type": "string"}
            ),
            "table images.image_assets: no file holds the listed columns ['ghost']",
        ),
        (
            lambda doc: entry_of(doc, "profiles.joined_profiles").update(
                columns=[
                    c
                    for c in entry_of(doc, "profiles.joined_profiles")["columns"]
                    if c["name"] != "image_id"
                ],
                join_keys=["dataset_id"],
            ),
            "table profiles.joined_profiles: joined_profiles tables carry dataset_id and "
            "image_id; no ['image_id']",
        ),
        (
            lambda doc: doc["tables"].append(dict(entry_of(doc, "images.chunk_index"))),
            "table images.chunk_index is listed 2 times",
        ),
        (
            lambda doc: entry_of(doc, "images.chunk_index").update(path="chunk_index"),
            "table images.chunk_index: path 'chunk_index' does not match the namespaced layout",
        ),
        (
            lambda doc: entry_of(doc, "quality_control.cosmicqc_profiles")["files"][0].update(
                path="../joined_profiles/plate04.parquet"
            ),
            "(quality_control.cosmicqc_profiles) is malformed: ValueError: file "
            "'../joined_profiles/plate04.parquet' must be a plain .parquet file name",
        ),
    ],
    ids=["role", "format", "join-keys", "columns", "image-keys", "duplicate", "path", "file"],
)
def test_manifest_entry_problems(damaged: Path, edit, fragment: str) -> None:
    edit_manifest(damaged, edit)
    errors = validate_warehouse(damaged).errors
    assert any(fragment in e for e in errors), errors


def test_unparseable_manifest(damaged: Path) -> None:
    (damaged / MANIFEST_NAME).write_text("{not json")
    only_error(damaged, "unreadable manifest")


def test_missing_root(tmp_path: Path) -> None:
    result = validate_warehouse(tmp_path / "nowhere")
    assert not result.is_valid and result.layout is None
    assert "no warehouse folder" in result.errors[0]


# -- Warehouses without a manifest -------------------------------------------------


def test_manifest_less_flat_warehouse_reports_its_tables(datasets, profiles, tmp_path) -> None:
    root = tmp_path / "old"
    export_store_to_cytomining_warehouse(
        datasets["plate04"].path, root, profiles=profiles.path, layout="flat"
    )
    (root / MANIFEST_NAME).unlink()
    result = validate_warehouse(root)
    assert not result.is_valid
    assert len(result.errors) == 1 and f"no {MANIFEST_NAME}" in result.errors[0]
    assert result.layout == "flat" and result.failed_requirements == ("manifest",)
    tables = {t["table_name"]: t for t in result.tables}
    assert set(tables) == {"images.image_assets", "images.chunk_index", "profiles.joined_profiles"}
    assert tables["profiles.joined_profiles"]["path"] == "joined_profiles"
    assert tables["profiles.joined_profiles"]["rows"] == profiles.expected["n_rows"]
    assert all(t["datasets"] == ("plate04",) and t["ok"] for t in tables.values())


def test_manifest_less_folder_with_a_broken_table(datasets, tmp_path: Path) -> None:
    root = tmp_path / "old"
    export_store_to_cytomining_warehouse(datasets["plate04"].path, root)
    name = live(root, "images/chunk_index")
    (root / MANIFEST_NAME).unlink()
    (root / name).write_bytes(b"garbage")
    result = validate_warehouse(root)
    assert result.layout == "namespaced"
    assert any(f"{name} is not a readable" in e for e in result.errors)
    assert {t["table_name"]: t["ok"] for t in result.tables} == {
        "images.image_assets": True,
        "images.chunk_index": False,
    }


def test_folder_that_is_not_a_warehouse(tmp_path: Path) -> None:
    result = validate_warehouse(tmp_path)
    assert not result.is_valid and result.tables == ()
    assert f"no {MANIFEST_NAME} and no warehouse tables" in result.errors[0]
