"""Shared catalogs: PostgreSQL SqlCatalog, an S3 warehouse, and many writers at once."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import zarr
from pyiceberg.catalog.sql import SqlCatalog

from iceberg_bioimage import load_catalog_table, register_store

NS = "bioimage.cytotable"


@pytest.fixture
def pg_catalog_factory(pg_uri, tmp_path):
    """New SqlCatalog objects on one PostgreSQL catalog (one per writer, like separate hosts)."""
    name = f"lab_{uuid.uuid4().hex[:8]}"

    def make() -> SqlCatalog:
        return SqlCatalog(name, uri=pg_uri, warehouse=tmp_path.as_uri())

    return make


def _stores(root, n):
    paths = []
    for i in range(n):
        path = root / f"well{i:02d}.zarr"
        array = zarr.create_array(path, shape=(16, 16), chunks=(8, 8), dtype="uint8")
        array[:] = np.full((16, 16), i, dtype="uint8")
        paths.append(path)
    return paths


def _counts(catalog):
    images = load_catalog_table(catalog, NS, "image_assets", columns=["dataset_id", "image_id"])
    chunks = load_catalog_table(catalog, NS, "chunk_index", columns=["dataset_id", "chunk_key"])
    return images, chunks


def test_postgres_catalog_register_and_reregister(pg_catalog_factory, datasets):
    catalog = pg_catalog_factory()
    register_store(datasets["plate04"].path, catalog, NS, publish_chunks=True)
    register_store(datasets["plate04"].path, catalog, NS, publish_chunks=True)
    images, chunks = _counts(catalog)
    assert (images.num_rows, chunks.num_rows) == (16, 80)


def test_many_writers_at_once_lose_and_duplicate_nothing(pg_catalog_factory, tmp_path):
    stores = _stores(tmp_path / "stores", 8)
    register_store(stores[0], pg_catalog_factory(), NS, publish_chunks=True)  # tables exist
    start = threading.Barrier(len(stores))

    def write(store):
        catalog = pg_catalog_factory()
        start.wait()
        return register_store(store, catalog, NS, publish_chunks=True)

    with ThreadPoolExecutor(len(stores)) as pool:
        results = list(pool.map(write, stores))
    assert len(results) == 8
    images, chunks = _counts(pg_catalog_factory())
    assert sorted(images["dataset_id"].to_pylist()) == sorted(s.name[:-5] for s in stores)
    assert chunks.num_rows == 8 * 4
    assert (
        len(
            set(zip(chunks["dataset_id"].to_pylist(), chunks["chunk_key"].to_pylist(), strict=True))
        )
        == 32
    )


def test_concurrent_reregistration_of_one_dataset_keeps_one_copy(pg_catalog_factory, tmp_path):
    (store,) = _stores(tmp_path, 1)
    register_store(store, pg_catalog_factory(), NS, publish_chunks=True)
    start = threading.Barrier(4)

    def write(_):
        catalog = pg_catalog_factory()
        start.wait()
        register_store(store, catalog, NS, publish_chunks=True)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    images, chunks = _counts(pg_catalog_factory())
    assert (images.num_rows, chunks.num_rows) == (1, 4)


def test_s3_warehouse(s3_endpoint, tmp_path, datasets):
    from s3_server import s3_filesystem

    s3_filesystem(s3_endpoint).call_s3("create_bucket", Bucket="lake")
    catalog = SqlCatalog(
        "s3lab",
        uri=f"sqlite:///{tmp_path}/catalog.db",
        warehouse="s3://lake/warehouse",
        **{
            "s3.endpoint": s3_endpoint,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
            "s3.region": "us-east-1",
        },
    )
    register_store(datasets["pyramid"].path, catalog, NS, publish_chunks=True)
    images, chunks = _counts(catalog)
    assert (images.num_rows, chunks.num_rows) == (6, 68)
    assert (
        catalog.load_table(("bioimage", "cytotable", "image_assets"))
        .location()
        .startswith("s3://lake/")
    )


def test_first_connections_to_a_new_postgres_catalog_race_safely(pg_uri, tmp_path, monkeypatch):
    """Writers that connect at once to a database with no catalog tables yet all succeed."""
    import sqlalchemy

    from iceberg_bioimage.catalog.resolve import resolve_catalog

    database = f"fresh_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(pg_uri, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {database}"))
    uri = pg_uri.rsplit("/", 1)[0] + f"/{database}"
    monkeypatch.setenv("PYICEBERG_CATALOG__RACE__TYPE", "sql")
    monkeypatch.setenv("PYICEBERG_CATALOG__RACE__URI", uri)
    monkeypatch.setenv("PYICEBERG_CATALOG__RACE__WAREHOUSE", tmp_path.as_uri())
    start = threading.Barrier(6)

    def connect(_):
        start.wait()
        return resolve_catalog("race").catalog.list_namespaces()

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(connect, range(6))) == [[]] * 6
    admin.dispose()
