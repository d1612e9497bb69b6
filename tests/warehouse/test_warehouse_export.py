"""Cytomining warehouse export: layout, manifest, overwrite/append, atomic failure."""

from __future__ import annotations

import hashlib
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from fixtures import writers
from iceberg_bioimage import (
    ContractError,
    StoreNotFoundError,
    WarehouseError,
    export_catalog_to_cytomining_warehouse,
    export_profiles_to_cytomining_warehouse,
    export_store_to_cytomining_warehouse,
    export_table_to_cytomining_warehouse,
    load_warehouse_manifest,
    register_store,
)
from iceberg_bioimage.warehouse.write import LOCK_NAME

pytestmark = pytest.mark.usefixtures("written_warehouses")  # every warehouse written validates


@pytest.fixture(scope="module")
def cells(datasets, tmp_path_factory):
    return writers.write_profiles(tmp_path_factory.mktemp("cells"), datasets["plate04"])


def snapshot(root):
    """Every file under root with its bytes' hash."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def rows(root, table_path):
    return pq.read_table(root / table_path).sort_by(
        [("image_id", "ascending"), ("array_path", "ascending")]
    )


def test_namespaced_layout_and_manifest(datasets, cells, tmp_path):
    root = tmp_path / "wh"
    result = export_store_to_cytomining_warehouse(
        datasets["plate04"].path, root, profiles=cells.path, profile_dataset_id="plate04"
    )
    assert [t.table_name for t in result.tables] == [
        "images.image_assets",
        "images.chunk_index",
        "profiles.joined_profiles",
    ]
    assert result.join["unmatched_rows"] == 0
    for folder in ("images/image_assets", "images/chunk_index", "profiles/joined_profiles"):
        names = [p.name for p in (root / folder).iterdir()]
        assert len(names) == 1 and re.fullmatch(r"plate04\.[0-9a-f]{12}\.parquet", names[0])
    manifest = json.loads((root / "warehouse_manifest.json").read_text())
    assert manifest["warehouse_spec_version"] == "1.0.0"
    assert "conformance_profiles" not in manifest  # the merged spec defines none
    entries = {t["table_name"]: t for t in manifest["tables"]}
    assert entries["images.image_assets"]["row_count"] == 16
    assert entries["images.chunk_index"]["row_count"] == 80
    joined = entries["profiles.joined_profiles"]
    assert joined["role"] == "joined_profiles"
    assert joined["row_count"] == cells.expected["n_rows"]
    assert joined["grain"]["profile_level"] == "object"
    assert set(joined["join_keys"]) >= {"dataset_id", "image_id", "well_id", "site_id"}
    assert {c["name"] for c in joined["columns"]} >= set(cells.expected["columns"])
    assert joined["provenance"]["sources"] == [str(datasets["plate04"].path)]
    assert load_warehouse_manifest(root).table("images.image_assets").datasets == ("plate04",)
    (written_file,) = (root / "images/image_assets").iterdir()
    written = pq.read_table(written_file)
    assert written.schema.metadata[b"iceberg-bioimage.producer"] == b"iceberg-bioimage"


def test_overwrite_twice_gives_the_same_rows(datasets, tmp_path):
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(datasets["plate04"].path, root)
    first = {t: rows(root, t).drop_columns(["scanned_at"]) for t in ("images/image_assets",)}
    first_chunks = pq.read_table(root / "images/chunk_index")
    export_store_to_cytomining_warehouse(datasets["plate04"].path, root, mode="overwrite")
    assert (
        rows(root, "images/image_assets")
        .drop_columns(["scanned_at"])
        .equals(first["images/image_assets"])
    )
    assert pq.read_table(root / "images/chunk_index").equals(first_chunks)
    assert len(load_warehouse_manifest(root).tables) == 2


def test_append_adds_a_second_plate_and_refuses_the_same_one(datasets, tmp_path):
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(datasets["plate04"].path, root)
    export_store_to_cytomining_warehouse(datasets["plate05"].path, root, mode="append")
    manifest = load_warehouse_manifest(root)
    assert manifest.table("images.image_assets").datasets == ("plate04", "plate05")
    assert pq.read_table(root / "images/image_assets").num_rows == 32
    before = snapshot(root)
    with pytest.raises(WarehouseError, match="--mode overwrite"):
        export_store_to_cytomining_warehouse(datasets["plate05"].path, root, mode="append")
    assert snapshot(root) == before


def test_failed_export_leaves_the_warehouse_byte_identical(datasets, cells, tmp_path):
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(
        datasets["plate04"].path, root, profiles=cells.path, profile_dataset_id="plate04"
    )
    before = snapshot(root)
    bad = pa.table({"Metadata_Well": ["A01", "A01"], "Metadata_well_id": ["A01", "A01"]})
    with pytest.raises(ContractError, match="Metadata_Well"):
        export_store_to_cytomining_warehouse(datasets["plate04"].path, root, profiles=bad)
    assert snapshot(root) == before
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == [LOCK_NAME]


def test_flat_layout(datasets, cells, tmp_path):
    root = tmp_path / "flat"
    export_store_to_cytomining_warehouse(
        datasets["plate04"].path, root, profiles=cells.path, layout="flat"
    )
    assert sorted(p.name for p in root.iterdir() if p.name != LOCK_NAME) == [
        "chunk_index",
        "image_assets",
        "joined_profiles",
        "warehouse_manifest.json",
    ]
    with pytest.raises(WarehouseError, match="flat layout"):
        export_store_to_cytomining_warehouse(datasets["plate05"].path, root, mode="append")


def test_catalog_export(datasets, tmp_path):
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=tmp_path.as_uri())
    register_store(datasets["plate04"].path, catalog, "bio", publish_chunks=True)
    register_store(datasets["pyramid"].path, catalog, "bio", publish_chunks=True)
    root = tmp_path / "wh"
    result = export_catalog_to_cytomining_warehouse(catalog, "bio", root, dataset_ids=["pyramid"])
    assert {t.table_name: t.rows_written for t in result.tables} == {
        "images.image_assets": 6,
        "images.chunk_index": 68,
    }
    assert load_warehouse_manifest(root).table("images.chunk_index").datasets == ("pyramid",)


def test_profiles_and_qc_tables(datasets, cells, tmp_path):
    root = tmp_path / "wh"
    export_store_to_cytomining_warehouse(datasets["plate04"].path, root)
    profiles = pq.read_table(cells.path)
    export_profiles_to_cytomining_warehouse(
        profiles, root, table_name="pycytominer_profiles", profile_dataset_id="plate04"
    )
    written = pq.read_table(root / "profiles/pycytominer_profiles")
    assert {"dataset_id", "well_id", "Metadata_Well"} <= set(written.column_names)
    with pytest.raises(WarehouseError, match="already holds dataset 'plate04'"):
        export_profiles_to_cytomining_warehouse(
            profiles, root, table_name="pycytominer_profiles", profile_dataset_id="plate04"
        )
    qc = profiles.append_column("QC_Pass", pa.array([i % 5 != 0 for i in range(profiles.num_rows)]))
    result = export_profiles_to_cytomining_warehouse(
        qc,
        root,
        table_name="cosmicqc_profiles",
        role="quality_control",
        profile_dataset_id="plate04",
    )
    assert result.tables[0].table_name == "quality_control.cosmicqc_profiles"
    stored = pq.read_table(root / "quality_control/cosmicqc_profiles")
    assert stored.schema.field("qc_pass").type == pa.bool_()
    assert stored["image_id"].null_count == 0  # looked up from the warehouse images
    with pytest.raises(ContractError, match="qc_pass"):
        export_profiles_to_cytomining_warehouse(
            profiles, root, table_name="qc2", role="quality_control", profile_dataset_id="plate04"
        )


def test_any_table_with_a_manifest_entry(datasets, tmp_path):
    table = pa.table({"dataset_id": ["d"], "image_id": ["d:0"], "embedding": [[0.1, 0.2]]})
    with pytest.raises(WarehouseError, match=r"no images\.image_assets"):  # it would not validate
        export_table_to_cytomining_warehouse(
            table, tmp_path, table_name="embeddings", role="embeddings", join_keys=["dataset_id"]
        )
    assert list(tmp_path.iterdir()) == []
    export_store_to_cytomining_warehouse(datasets["strips"].path, tmp_path, include_chunks=False)
    export_table_to_cytomining_warehouse(
        table,
        tmp_path,
        table_name="embeddings",
        role="embeddings",
        join_keys=["dataset_id", "image_id"],
    )
    entry = load_warehouse_manifest(tmp_path).table("profiles.embeddings")
    assert entry.role == "embeddings" and entry.row_count == 1
    with pytest.raises(WarehouseError, match="role"):
        export_table_to_cytomining_warehouse(
            table, tmp_path, table_name="x", role="banana", join_keys=["dataset_id"]
        )


@pytest.mark.invalid_warehouse("the manifest is rewritten to an unknown major version")
def test_unknown_major_version_fails_fast(datasets, tmp_path):
    export_store_to_cytomining_warehouse(datasets["strips"].path, tmp_path, include_chunks=False)
    manifest = json.loads((tmp_path / "warehouse_manifest.json").read_text())
    manifest["warehouse_spec_version"] = "2.0.0"
    (tmp_path / "warehouse_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WarehouseError, match=r"2\.0\.0"):
        load_warehouse_manifest(tmp_path)
    with pytest.raises(StoreNotFoundError):
        load_warehouse_manifest(tmp_path / "nowhere")


def test_flat_layout_refuses_two_tables_in_one_folder(datasets, tmp_path):
    export_store_to_cytomining_warehouse(datasets["plate04"].path, tmp_path, layout="flat")
    before = snapshot(tmp_path)
    clash = pq.read_table(tmp_path / "image_assets").slice(0, 3)
    with pytest.raises(WarehouseError, match=r"already holds table images\.image_assets"):
        export_table_to_cytomining_warehouse(
            clash,
            tmp_path,
            table_name="other.image_assets",
            role="annotations",
            join_keys=["dataset_id"],
        )
    assert snapshot(tmp_path) == before


def test_profile_tables_get_image_ids_from_the_warehouse(datasets, cells, tmp_path):
    export_store_to_cytomining_warehouse(datasets["plate04"].path, tmp_path)
    export_profiles_to_cytomining_warehouse(
        cells.path, tmp_path, table_name="normalized", profile_dataset_id="plate04"
    )
    stored = pq.read_table(tmp_path / "profiles/normalized")
    assert stored["image_id"].null_count == 0
    assert stored.schema.metadata.get(b"pandas") is None


def test_a_planted_lock_symlink_is_refused_and_nothing_outside_is_created(datasets, tmp_path):
    root = tmp_path / "wh"
    root.mkdir()
    outside = tmp_path / "outside.txt"
    (root / LOCK_NAME).symlink_to(outside)
    with pytest.raises(WarehouseError, match="writer lock"):
        export_store_to_cytomining_warehouse(datasets["plate04"].path, root)
    assert not outside.exists()
    assert sorted(p.name for p in root.iterdir()) == [LOCK_NAME]
