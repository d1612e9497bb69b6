"""Other engines read our tables unchanged: daft, polars and Spark Connect (DuckDB in
test_iceberg_interop).

daft reads Parquet data files by Iceberg field id and does not apply the table's name
mapping, so it proves the data files carry their field ids (list elements included).
Spark runs as Sail's Spark Connect server (pysail, no JVM) on 127.0.0.1, queried with
``pyspark-client``; it loads a table by its folder (``format("iceberg").load(...)``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import daft
import polars as pl
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pysail.spark import SparkConnectServer
from pyspark.sql import SparkSession

from iceberg_bioimage import register_store

NAMESPACE = "bioimage"


@pytest.fixture(scope="module")
def two_registrations(datasets, tmp_path_factory):
    """plate04, then plate05, registered with chunks; the snapshot ids after the first."""
    folder: Path = tmp_path_factory.mktemp("engines")
    catalog = SqlCatalog("engines", uri=f"sqlite:///{folder}/c.db", warehouse=folder.as_uri())
    register_store(datasets["plate04"].path, catalog, NAMESPACE, publish_chunks=True)
    first = {
        name: catalog.load_table((NAMESPACE, name)).current_snapshot().snapshot_id
        for name in ("image_assets", "chunk_index")
    }
    register_store(datasets["plate05"].path, catalog, NAMESPACE, publish_chunks=True)
    return catalog, first


def expected_rows(datasets, table: str, names: tuple[str, ...]) -> int:
    """Arrays (``image_assets``) or chunks (``chunk_index``) the writers recorded."""
    if table == "image_assets":
        return sum(len(datasets[n].expected["array_paths"]) for n in names)
    return sum(len(k) for n in names for k in datasets[n].expected["chunk_keys"].values())


READERS = {
    "daft": lambda table, snapshot_id=None: daft.read_iceberg(
        table, snapshot_id=snapshot_id
    ).to_arrow(),
    "polars": lambda table, snapshot_id=None: (
        pl.scan_iceberg(table, snapshot_id=snapshot_id).collect().to_arrow()
    ),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("engine", sorted(READERS))
@pytest.mark.parametrize("table_name", ["image_assets", "chunk_index"])
def test_engine_reads_counts_lists_filters_and_time_travel(
    datasets, two_registrations, engine, table_name
):
    catalog, first = two_registrations
    read = READERS[engine]
    table = catalog.load_table((NAMESPACE, table_name))
    rows = read(table)
    assert rows.num_rows == expected_rows(datasets, table_name, ("plate04", "plate05"))
    assert sorted(set(rows["dataset_id"].to_pylist())) == ["plate04", "plate05"]
    list_column = "shape" if table_name == "image_assets" else "chunk_coords"
    values = rows[list_column].to_pylist()
    assert all(isinstance(v, list) and v and all(isinstance(i, int) for i in v) for v in values)
    if table_name == "image_assets":
        assert rows["channel_names"].null_count < rows.num_rows
        frame = (
            daft.read_iceberg(table).where(daft.col("well_id") == "B03").to_arrow()
            if engine == "daft"
            else pl.scan_iceberg(table).filter(pl.col("well_id") == "B03").collect().to_arrow()
        )
        assert frame.num_rows > 0 and set(frame["well_id"].to_pylist()) == {"B03"}
    old = read(table, first[table_name])
    assert old.num_rows == expected_rows(datasets, table_name, ("plate04",))
    assert set(old["dataset_id"].to_pylist()) == {"plate04"}


@pytest.fixture(scope="module")
def spark():
    """A Spark Connect session on a Sail server listening on 127.0.0.1 (free port)."""
    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    # pyspark takes a __main__ without __file__ (as in pytest-xdist workers) for its own
    # doctest runner and exits looking for SPARK_HOME; a script's __main__ has a file.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.modules["__main__"], "__file__", __file__, raising=False)
        session = SparkSession.builder.remote(f"sc://{host}:{port}").getOrCreate()
    try:
        yield session
    finally:
        session.stop()
        server.stop()


@pytest.mark.parametrize("table_name", ["image_assets", "chunk_index"])
def test_spark_connect_reads_counts_lists_filters_and_time_travel(
    datasets, two_registrations, spark, table_name
):
    catalog, first = two_registrations
    folder = catalog.load_table((NAMESPACE, table_name)).location()
    frame = spark.read.format("iceberg").load(folder)
    rows = frame.toArrow()
    assert rows.num_rows == expected_rows(datasets, table_name, ("plate04", "plate05"))
    assert sorted(set(rows["dataset_id"].to_pylist())) == ["plate04", "plate05"]
    list_column = "shape" if table_name == "image_assets" else "chunk_coords"
    values = rows[list_column].to_pylist()
    assert all(isinstance(v, list) and v and all(isinstance(i, int) for i in v) for v in values)
    if table_name == "image_assets":
        assert rows["channel_names"].null_count < rows.num_rows
        wells = frame.filter(frame.well_id == "B03").select("well_id", "image_id").toArrow()
        expected = {
            image_id
            for name in ("plate04", "plate05")
            for image_id, image in datasets[name].expected["images"].items()
            if image["well_id"] == "B03"
        }
        assert wells.num_rows > 0 and set(wells["well_id"].to_pylist()) == {"B03"}
        assert set(wells["image_id"].to_pylist()) == expected
    old = (
        spark.read.format("iceberg")
        .option("snapshot-id", str(first[table_name]))
        .load(folder)
        .toArrow()
    )
    assert old.num_rows == expected_rows(datasets, table_name, ("plate04",))
    assert set(old["dataset_id"].to_pylist()) == {"plate04"}
