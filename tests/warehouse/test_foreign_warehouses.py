"""validate_warehouse on an Iceberg warehouse laid out as CytoTable writes it (catalog.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

from iceberg_bioimage import validate_warehouse


def cytotable_like_warehouse(root: Path, catalog_db: Path) -> Path:
    """Tables written by pyiceberg into ``<ns>.db/<table>/``, registered in ``catalog.json``.

    CytoTable's own catalog is a registry file (``namespaces``, ``tables``: name →
    metadata location, ``views``) over pyiceberg's default table locations; the
    tables here are written by a real pyiceberg catalog, then registered the same way.
    """
    warehouse = root / "warehouse"
    warehouse.mkdir(parents=True)
    catalog = SqlCatalog("cytotable", uri=f"sqlite:///{catalog_db}", warehouse=warehouse.as_uri())
    profiles = pa.table(
        {
            "Metadata_ImageNumber": pa.array([1, 1, 2], pa.int64()),
            "Metadata_ObjectNumber": pa.array([1, 2, 1], pa.int64()),
            "Metadata_Well": ["A01", "A01", "A02"],
            "Cells_AreaShape_Area": [10.0, 12.0, 9.0],
        }
    )
    crops = pa.table(
        {
            "Metadata_ObjectID": ["a1", "a2", "b1"],
            "Metadata_ImageCropID": ["c1", "c2", "c3"],
            "source_bbox_x_min": pa.array([0, 5, 1], pa.int64()),
        }
    )
    registry: dict = {"namespaces": ["images", "profiles"], "tables": {}, "views": {}}
    for name, data in (("profiles.joined_profiles", profiles), ("images.image_crops", crops)):
        namespace = name.split(".")[0]
        catalog.create_namespace_if_not_exists(namespace)
        table = catalog.create_table(name, schema=data.schema)
        table.append(data)
        registry["tables"][name] = catalog.load_table(name).metadata_location
    registry["views"]["profiles.profile_with_images"] = {"sql": "SELECT 1"}
    (warehouse / "catalog.json").write_text(json.dumps(registry))
    return root


def test_cytotable_iceberg_warehouse_reports_exactly_what_is_missing(tmp_path: Path) -> None:
    root = cytotable_like_warehouse(tmp_path / "cytotable", tmp_path / "catalog.db")
    result = validate_warehouse(root)
    assert not result.is_valid
    assert result.failed_requirements == ("manifest", "layout", "image-assets", "profile-ids")
    tables = {t["table_name"]: t for t in result.tables}
    assert tables["profiles.joined_profiles"]["rows"] == 3
    folder = tables["profiles.joined_profiles"]["path"]  # pyiceberg's default table location
    assert folder.startswith("warehouse/profiles") and folder.endswith("joined_profiles")
    assert (root / folder / "metadata").is_dir()
    assert tables["images.image_crops"]["rows"] == 3
    errors = "\n".join(result.errors)
    assert "catalog.json registers Iceberg tables" in errors
    assert "table profiles.joined_profiles: lacks dataset_id, image_id, object_id" in errors
    assert "table images.image_crops: lacks dataset_id, image_id, object_id" in errors
    assert "no images.image_assets table" in errors
    assert any("view profiles.profile_with_images" in w for w in result.warnings)


def test_a_registry_pointing_outside_the_root_is_refused(tmp_path: Path) -> None:
    root = cytotable_like_warehouse(tmp_path / "cytotable", tmp_path / "catalog.db")
    registry = root / "warehouse" / "catalog.json"
    doc = json.loads(registry.read_text())
    doc["tables"]["profiles.joined_profiles"] = (tmp_path / "elsewhere.metadata.json").as_uri()
    registry.write_text(json.dumps(doc))
    result = validate_warehouse(root)
    assert any("lies outside the warehouse root" in e for e in result.errors)


# -- CytoTable's real Iceberg warehouse, committed without catalog.json or metadata/ --

REAL_CYTOTABLE = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "real"
    / "pycytominer"
    / "cytotable"
    / "examplehuman_iceberg_warehouse"
)
#: Rows of each data file, read with pyarrow (FACTS.md: 289 joined rows = Count_Cells).
REAL_TABLES = {
    "images.image_crops": "images/image_crops",
    "images.source_images": "images/source_images",
    "profiles.joined_profiles": "profiles/joined_profiles",
}


def _real_rows(table_folder: str) -> int:
    import pyarrow.parquet as pq

    files = sorted((REAL_CYTOTABLE / "warehouse" / table_folder / "data").glob("*.parquet"))
    return sum(pq.read_metadata(f).num_rows for f in files)


def _consistent(result) -> None:
    """The summary, failed_requirements and error lines say the same thing."""
    tagged = {e.split("]", 1)[0].lstrip("[") for e in result.errors}
    assert all(e.startswith("[") for e in result.errors), result.errors
    assert set(result.failed_requirements) == tagged
    assert result.is_valid == (not result.errors) == (not result.failed_requirements)


def test_real_cytotable_warehouse_without_catalog_lists_its_tables() -> None:
    for root in (REAL_CYTOTABLE, REAL_CYTOTABLE / "warehouse"):
        result = validate_warehouse(root)
        _consistent(result)
        assert not result.is_valid
        assert {t["table_name"]: t["rows"] for t in result.tables} == {
            name: _real_rows(folder) for name, folder in REAL_TABLES.items()
        }
        assert _real_rows("profiles/joined_profiles") == 289
        assert set(result.failed_requirements) == {
            "manifest",
            "layout",
            "image-assets",
            "profile-ids",
        }
        lacks = {t["table_name"]: " ".join(t["lacks"]) for t in result.tables}
        assert "lacks dataset_id, image_id, object_id" in lacks["profiles.joined_profiles"]
        assert "lacks dataset_id, image_id" in lacks["images.source_images"]
        assert "images/image_crops/data/), not images/image_crops/" in lacks["images.image_crops"]
        assert not any("no warehouse tables" in e for e in result.errors)


def test_validate_warehouse_cli_on_the_real_cytotable_warehouse() -> None:
    from click.testing import CliRunner

    from iceberg_bioimage.cli import main

    root = str(REAL_CYTOTABLE / "warehouse")
    human = CliRunner().invoke(main, ["validate-warehouse", root])
    assert human.exit_code == 2
    assert "INVALID (fails: manifest, layout, image-assets, profile-ids)" in human.output
    assert "all 9 requirements" not in human.output
    error_lines = [line for line in human.output.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1
    assert error_lines[0].count(root) == 1  # the root is named once, not repeated
    for name in REAL_TABLES:
        assert name in human.output
    as_json = CliRunner().invoke(main, ["validate-warehouse", root, "--json"])
    doc = json.loads(as_json.stdout)
    assert doc["is_valid"] is False and doc["failed_requirements"]


def test_an_empty_folder_fails_a_named_requirement(tmp_path: Path) -> None:
    result = validate_warehouse(tmp_path)
    _consistent(result)
    assert result.failed_requirements == ("manifest",)
