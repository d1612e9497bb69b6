"""Registration on a real SQLite SqlCatalog: idempotent, one commit per table, time travel."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, StringType

from iceberg_bioimage import (
    DatasetConflictError,
    DatasetNotFoundError,
    InvalidNameError,
    MetadataError,
    SchemaConflictError,
    deregister_store,
    ingest_stores_to_warehouse,
    list_catalog_tables,
    load_catalog_table,
    publish_chunk_index,
    register_store,
)

NS = "bioimage.cytotable"
IMAGE_ASSETS = ("bioimage", "cytotable", "image_assets")
CHUNK_INDEX = ("bioimage", "cytotable", "chunk_index")


@pytest.fixture
def catalog(tmp_path):
    return SqlCatalog("test", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=tmp_path.as_uri())


def commits(catalog, ident) -> int:
    """Number of commits: one metadata file per commit (the log holds the previous ones)."""
    return len(catalog.load_table(ident).metadata.metadata_log) + 1


def count(catalog, table, **filters) -> int:
    return load_catalog_table(catalog, NS, table, columns=["dataset_id"], **filters).num_rows


def test_register_reregister_second_store_deregister_and_time_travel(catalog, datasets):
    plate = datasets["plate04"]
    first = register_store(plate.path, catalog, NS, publish_chunks=True)
    assert [t.rows_written for t in first.tables] == [16, 80]
    assert sorted(list_catalog_tables(catalog, NS)) == ["chunk_index", "image_assets"]
    before = {ident: commits(catalog, ident) for ident in (IMAGE_ASSETS, CHUNK_INDEX)}
    snapshots_before = {i: len(catalog.load_table(i).snapshots()) for i in before}

    register_store(plate.path, catalog, NS, publish_chunks=True)
    assert count(catalog, "image_assets") == 16
    assert count(catalog, "chunk_index") == 80
    for ident, n in before.items():
        assert commits(catalog, ident) == n + 1
        assert len(catalog.load_table(ident).snapshots()) - snapshots_before[ident] <= 2

    register_store(datasets["pyramid"].path, catalog, NS, publish_chunks=True)
    ids = set(load_catalog_table(catalog, NS, "image_assets")["dataset_id"].to_pylist())
    assert ids == {"plate04", "pyramid"}
    assert count(catalog, "chunk_index", filters=[("dataset_id", "=", "pyramid")]) == 68

    removed = deregister_store("plate04", catalog, NS)
    assert removed.dataset_ids == ("plate04",)
    assert set(load_catalog_table(catalog, NS, "image_assets")["dataset_id"].to_pylist()) == {
        "pyramid"
    }
    assert count(catalog, "chunk_index") == 68

    old = load_catalog_table(catalog, NS, "image_assets", snapshot_id=first.tables[0].snapshot_id)
    assert old.num_rows == 16
    assert set(old["dataset_id"].to_pylist()) == {"plate04"}


def test_rows_read_back_equal_the_scan(catalog, datasets):
    from iceberg_bioimage import scan_as_arrow_table

    register_store(datasets["plate05"].path, catalog, NS, publish_chunks=True)
    for name in ("image_assets", "chunk_index"):
        stored = load_catalog_table(catalog, NS, name).drop_columns(
            ["scanned_at"] if name == "image_assets" else []
        )
        scanned = scan_as_arrow_table(datasets["plate05"].path, table=name).drop_columns(
            ["scanned_at"] if name == "image_assets" else []
        )
        keys = ["image_id", "array_path"] + (["chunk_key"] if name == "chunk_index" else [])
        order = [(k, "ascending") for k in keys]
        assert stored.sort_by(order).to_pylist() == scanned.sort_by(order).to_pylist()


def test_filters_columns_and_unknown_columns(catalog, datasets):
    register_store(datasets["plate04"].path, catalog, NS)
    table = load_catalog_table(
        catalog,
        NS,
        "image_assets",
        columns=["image_id", "well_id"],
        filters=[("well_id", "in", ["A01", "B03"]), ("multiscale_level", "==", 0)],
    )
    assert table.column_names == ["image_id", "well_id"]
    assert table.num_rows == 4
    assert count(catalog, "image_assets", filters=[("array_path", "like", "A/1%")]) == 4
    with pytest.raises(InvalidNameError, match="no_such"):
        load_catalog_table(catalog, NS, "image_assets", columns=["no_such"])


def test_dataset_pointing_at_another_store_needs_replace(catalog, datasets):
    register_store(datasets["plate04"].path, catalog, NS, dataset_id="run1", publish_chunks=True)
    with pytest.raises(DatasetConflictError, match="replace"):
        register_store(datasets["plate05"].path, catalog, NS, dataset_id="run1")
    assert set(load_catalog_table(catalog, NS, "image_assets")["uri"].to_pylist()) == {
        str(datasets["plate04"].path)
    }
    register_store(datasets["plate05"].path, catalog, NS, dataset_id="run1", replace=True)
    assert set(load_catalog_table(catalog, NS, "image_assets")["uri"].to_pylist()) == {
        str(datasets["plate05"].path)
    }
    assert count(catalog, "chunk_index") == 0  # chunks of the old store are gone


def test_publish_chunks_alone(catalog, datasets):
    result = publish_chunk_index(datasets["sharded"].path, catalog, NS)
    assert [t.table for t in result.tables] == ["bioimage.cytotable.chunk_index"]
    assert count(catalog, "chunk_index") == 270


def test_deregister_by_uri_and_unknown(catalog, datasets):
    register_store(datasets["strips"].path, catalog, NS)
    assert deregister_store(datasets["strips"].path, catalog, NS).dataset_ids == ("strips",)
    with pytest.raises(DatasetNotFoundError):
        deregister_store("strips", catalog, NS)


def _small_stores(root, n):
    paths = []
    for i in range(n):
        path = root / f"store{i:02d}.zarr"
        array = zarr.create_array(path, shape=(8, 8), chunks=(4, 4), dtype="uint8")
        array[:] = np.full((8, 8), i, dtype="uint8")
        paths.append(path)
    return paths


def test_ingest_twenty_stores_makes_one_commit_per_table(catalog, tmp_path):
    stores = _small_stores(tmp_path / "stores", 20)
    register_store(stores[0], catalog, NS, publish_chunks=True)  # tables exist
    before = {ident: commits(catalog, ident) for ident in (IMAGE_ASSETS, CHUNK_INDEX)}
    result = ingest_stores_to_warehouse(tmp_path / "stores", catalog, NS, glob="*.zarr", workers=4)
    assert len(result.datasets) == 20
    for ident, n in before.items():
        assert commits(catalog, ident) == n + 1
    assert count(catalog, "image_assets") == 20
    assert count(catalog, "chunk_index") == 80


def test_ingest_aborts_on_a_bad_store_and_commits_nothing(catalog, tmp_path):
    stores = _small_stores(tmp_path, 5)
    register_store(stores[0], catalog, NS)
    location = catalog.load_table(IMAGE_ASSETS).metadata_location
    (stores[3] / "zarr.json").write_text('{"zarr_format": 3, "node_type": "arr')
    with pytest.raises(MetadataError) as info:
        ingest_stores_to_warehouse(stores, catalog, NS)
    assert str(stores[3] / "zarr.json") in str(info.value)
    assert "nothing committed" in str(info.value)
    assert catalog.load_table(IMAGE_ASSETS).metadata_location == location
    assert not catalog.table_exists(CHUNK_INDEX)


def test_conflicting_existing_schema_is_refused_and_nothing_written(catalog, datasets):
    catalog.create_namespace(("bioimage", "cytotable"))
    catalog.create_table(
        IMAGE_ASSETS,
        schema=Schema(
            NestedField(1, "dataset_id", StringType(), required=True),
            NestedField(2, "shape", StringType(), required=False),
        ),
    )
    with pytest.raises(SchemaConflictError, match="shape") as info:
        register_store(datasets["plate04"].path, catalog, NS, publish_chunks=True)
    assert "bioimage.cytotable.image_assets" in str(info.value)
    assert catalog.load_table(IMAGE_ASSETS).current_snapshot() is None
    assert not catalog.table_exists(CHUNK_INDEX)


def test_older_table_missing_a_nullable_column_is_evolved(catalog, datasets):
    from iceberg_bioimage.catalog.schema import iceberg_schema, partition_spec
    from iceberg_bioimage.models.schemas import IMAGE_ASSETS as DECLARED

    older = [c for c in iceberg_schema(DECLARED).fields if c.name != "physical_unit"]
    catalog.create_namespace(("bioimage", "cytotable"))
    catalog.create_table(
        IMAGE_ASSETS, schema=Schema(*older), partition_spec=partition_spec(DECLARED)
    )
    register_store(datasets["plate04"].path, catalog, NS)
    table = catalog.load_table(IMAGE_ASSETS)
    assert "physical_unit" in {f.name for f in table.schema().fields}
    assert len(table.schemas()) == 2
    units = load_catalog_table(catalog, NS, "image_assets", columns=["physical_unit"])
    assert set(units["physical_unit"].to_pylist()) == {"micrometer"}


@pytest.mark.parametrize("namespace", ["bad name", "a..b", "", "x/y", "ns;drop"])
def test_illegal_namespaces(catalog, datasets, namespace):
    with pytest.raises(InvalidNameError):
        register_store(datasets["strips"].path, catalog, namespace)
    assert catalog.list_namespaces() == []


def test_unknown_catalog_name_says_how_to_configure(datasets, monkeypatch, tmp_path):
    from iceberg_bioimage import CatalogConfigError

    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(CatalogConfigError, match="PYICEBERG_CATALOG__LAB__URI"):
        register_store(datasets["strips"].path, "lab", NS)


def test_named_catalog_from_environment(datasets, monkeypatch, tmp_path):
    monkeypatch.setenv("PYICEBERG_CATALOG__LAB__TYPE", "sql")
    monkeypatch.setenv("PYICEBERG_CATALOG__LAB__URI", f"sqlite:///{tmp_path}/lab.db")
    monkeypatch.setenv("PYICEBERG_CATALOG__LAB__WAREHOUSE", tmp_path.as_uri())
    register_store(datasets["strips"].path, "lab", NS)
    assert count("lab", "image_assets") == 1
    assert (tmp_path / "lab.db").exists()


def test_catalog_reads_have_the_scan_types_and_accept_arrow_scalars(catalog, datasets):
    from iceberg_bioimage import FilterError, scan_as_arrow_table

    register_store(datasets["plate04"].path, catalog, NS)
    stored = load_catalog_table(catalog, NS, "image_assets")
    scanned = scan_as_arrow_table(datasets["plate04"].path)
    assert stored.schema.equals(scanned.schema)
    first = stored["array_path"][0]
    assert count(catalog, "image_assets", filters=[("array_path", "=", first)]) == 1
    with pytest.raises(FilterError, match="prefix"):
        load_catalog_table(catalog, NS, "image_assets", filters=[("well_id", "like", "%1")])


def test_embedded_catalog_even_when_default_is_configured(tmp_path, monkeypatch, datasets):
    from iceberg_bioimage import embedded_catalog

    monkeypatch.setenv("PYICEBERG_CATALOG__DEFAULT__URI", "sqlite:////nonexistent/x.db")
    catalog = embedded_catalog(tmp_path / "wh")
    register_store(datasets["strips"].path, catalog, NS)
    assert (tmp_path / "wh" / "catalog.db").exists()
