"""Distributed ingest on a real Dask cluster: 120 stores on moto S3 into PostgreSQL + S3.

A ``distributed.LocalCluster`` with 3 worker processes scans the stores and writes the
data files to an ``s3://`` warehouse; the test process commits. The stores are NGFF
plates (Zarr v2 and v3, written by ome-zarr), OME-TIFF files (tifffile) and TIFF-folder
plates (ImageXpress names, tifffile), every expected count coming from the writers.
NGFF copies are uploaded without their chunk objects: a Zarr array whose chunks are
absent is valid (they read as the fill value), and a metadata scan never reads them.
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import distributed
import pyarrow.compute as pc
import pytest
import zarr
from pyiceberg.catalog.sql import SqlCatalog

import fixtures.instrument_plates as ip
from fixtures import writers
from iceberg_bioimage import ingest_stores_to_warehouse
from iceberg_bioimage.exceptions import IcebergBioimageError
from s3_server import s3_filesystem, upload

pytestmark = pytest.mark.slow

BUCKET = "dask-stores"
WAREHOUSE_BUCKET = "dask-lake"
STORES_PER_KIND = 40
TABLES = ("image_assets", "chunk_index")
TIFF_FOLDER_WELLS = ip.WELLS[:2]


def _tiff_folder_plate(folder: Path, plate: str) -> dict[str, int]:
    """One ImageXpress plate: 2 wells × 1 site × 2 channels; returns its expected rows."""
    chunks = 0
    for row, column in TIFF_FOLDER_WELLS:
        for channel in range(2):
            name = ip.imagexpress_name(plate, row, column, 1, channel, 0, 0)
            data = ip.pixels(plate, row, column, channel)
            chunks += ip.write_plane(folder / name, data, tiled=row == 0 and column == 0)
    return {"image_assets": len(TIFF_FOLDER_WELLS), "chunk_index": chunks}


def _zarr_rows(fixture: writers.Fixture) -> dict[str, int]:
    chunks = sum(len(keys) for keys in fixture.expected["chunk_keys"].values())
    return {"image_assets": len(fixture.expected["array_paths"]), "chunk_index": chunks}


def _tiff_rows(fixture: writers.Fixture) -> dict[str, int]:
    arrays = fixture.expected["arrays"]
    return {"image_assets": len(arrays), "chunk_index": sum(a["tiles"] for a in arrays.values())}


def _metadata_files(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*") if p.is_file() and p.name in writers.METADATA_FILES)


def _consolidated_root(plate: writers.Fixture, target: Path) -> list[Path]:
    """A consolidated copy of ``plate``; its root documents (all a scan of it reads)."""
    shutil.copytree(plate.path, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: v3 consolidated metadata not in the spec yet
        zarr.consolidate_metadata(str(target))
    return [p for p in sorted(target.iterdir()) if p.is_file() and p.name in writers.METADATA_FILES]


@pytest.fixture(scope="module")
def remote_stores(s3_endpoint, tmp_path_factory) -> dict[str, dict[str, int]]:
    """120 stores on S3 (40 NGFF plates, 40 OME-TIFFs, 40 TIFF-folder plates): uri → rows.

    One NGFF plate in four is uploaded with every metadata document; the others are
    consolidated copies, uploaded with their root documents only.
    """
    root: Path = tmp_path_factory.mktemp("dask-stores")
    plates = [writers.write_ngff04_plate(root), writers.write_ngff05_plate(root)]
    plain = [(plate.path, _metadata_files(plate.path)) for plate in plates]
    consolidated = [
        (root / f"c{plate.path.name}", _consolidated_root(plate, root / f"c{plate.path.name}"))
        for plate in plates
    ]
    tiff = writers.write_pyramid_ome_tiff(root)
    local: list[str] = []
    remote: list[str] = []
    expected: dict[str, dict[str, int]] = {}
    for index in range(STORES_PER_KIND):
        name = f"{BUCKET}/ngff/screen{index:03d}.ome.zarr"
        folder, files = (plain if index % 4 == 0 else consolidated)[index % 2]
        local.extend(map(str, files))
        remote.extend(f"{name}/{path.relative_to(folder).as_posix()}" for path in files)
        expected[f"s3://{name}"] = _zarr_rows(plates[index % 2])
        name = f"{BUCKET}/tiff/stack{index:03d}.ome.tiff"
        local.append(str(tiff.path))
        remote.append(name)
        expected[f"s3://{name}"] = _tiff_rows(tiff)
        plate_id = f"PL{index:03d}"
        folder = root / "folders" / plate_id
        expected[f"s3://{BUCKET}/folders/{plate_id}"] = _tiff_folder_plate(folder, plate_id)
        for path in sorted(folder.iterdir()):
            local.append(str(path))
            remote.append(f"{BUCKET}/folders/{plate_id}/{path.name}")
    fs = s3_filesystem(s3_endpoint)
    for bucket in (BUCKET, WAREHOUSE_BUCKET):
        fs.call_s3("create_bucket", Bucket=bucket)
    fs.put(local, remote)
    return expected


@pytest.fixture(scope="module")
def cluster():
    """Three worker processes, one thread each (the machine has two cores)."""
    with (
        distributed.LocalCluster(
            n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


def _catalog(pg_uri: str, s3_endpoint: str) -> SqlCatalog:
    name = f"dask_{uuid.uuid4().hex[:8]}"
    return SqlCatalog(
        name,
        uri=pg_uri,
        warehouse=f"s3://{WAREHOUSE_BUCKET}/{name}",
        **{
            "s3.endpoint": s3_endpoint,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
            "s3.region": "us-east-1",
        },
    )


def _data_files(s3_endpoint: str, catalog: SqlCatalog, namespace: str) -> set[str]:
    """Every object below the tables' ``data/`` folders on S3 (not folder markers)."""
    fs = s3_filesystem(s3_endpoint)
    found: set[str] = set()
    for table in TABLES:
        location = catalog.load_table((namespace, table)).location().removeprefix("s3://")
        found.update(key for key in fs.find(f"{location}/data") if not key.endswith("/"))
    return found


def _referenced(catalog: SqlCatalog, namespace: str) -> set[str]:
    return {
        task.file.file_path.removeprefix("s3://")
        for table in TABLES
        for task in catalog.load_table((namespace, table)).scan().plan_files()
    }


def _kill_one_busy_worker(client: Any, pids: dict[str, int]) -> list[int]:
    """SIGKILL the process of a worker that is running a task now."""
    busy = [address for address, keys in client.processing().items() if keys]
    victim = pids[(busy or sorted(pids))[0]]
    os.kill(victim, signal.SIGKILL)
    return [victim]


def test_120_stores_one_commit_per_table_with_a_worker_killed(
    cluster, remote_stores, pg_uri, s3_endpoint, s3_options
):
    catalog = _catalog(pg_uri, s3_endpoint)
    namespace = "screen"
    pids = cluster.run(os.getpid)
    killed: list[int] = []
    done: list[str] = []

    def on_scanned(dataset) -> None:
        done.append(dataset.dataset_id)
        if len(done) == len(remote_stores) // 4 and not killed:
            killed.extend(_kill_one_busy_worker(cluster, pids))

    result = ingest_stores_to_warehouse(
        sorted(remote_stores),
        catalog,
        namespace,
        storage_options=s3_options,
        on_scanned=on_scanned,
        client=cluster,
    )

    assert killed, "no worker was killed"
    assert killed[0] not in cluster.run(os.getpid).values()
    assert len(result.datasets) == len(remote_stores) == 120
    for table in TABLES:
        iceberg = catalog.load_table((namespace, table))
        snapshots = iceberg.snapshots()
        assert len(snapshots) == 1, f"{table}: {len(snapshots)} snapshots"
        rows = iceberg.scan().to_arrow()
        assert rows.num_rows == sum(expected[table] for expected in remote_stores.values())
        assert pc.count_distinct(rows["dataset_id"]).as_py() == 120
        per_store = Counter(rows["uri"].to_pylist())
        assert {uri.rstrip("/"): n for uri, n in per_store.items()} == {
            uri: expected[table] for uri, expected in remote_stores.items()
        }
        key = ["dataset_id", "image_id", "array_path"]
        if table == "chunk_index":
            key = [*key, "chunk_key", "chunk_coords"]
        keys = rows.select(key).to_pylist()
        assert len({tuple(map(str, k.values())) for k in keys}) == rows.num_rows
    assert {w.rows_written for w in result.tables} == {
        sum(e[t] for e in remote_stores.values()) for t in TABLES
    }
    # the killed attempt's files, never reported, were removed after the commit
    assert _data_files(s3_endpoint, catalog, namespace) == _referenced(catalog, namespace)


def test_a_broken_store_aborts_with_nothing_committed_and_no_file_left(
    cluster, remote_stores, pg_uri, s3_endpoint, s3_options, tmp_path
):
    catalog = _catalog(pg_uri, s3_endpoint)
    namespace = "broken"
    good = sorted(remote_stores)
    ingest_stores_to_warehouse(
        good[:3], catalog, namespace, storage_options=s3_options, client=cluster
    )
    before = {t: catalog.load_table((namespace, t)).current_snapshot().snapshot_id for t in TABLES}
    files_before = _data_files(s3_endpoint, catalog, namespace)

    corrupt = writers.write_corrupt_zarray(tmp_path)
    broken = upload(s3_endpoint, corrupt.path, f"{BUCKET}/broken/{corrupt.path.name}")
    batch = [*good[3:30], broken, *good[30:45]]

    with pytest.raises(IcebergBioimageError) as raised:
        ingest_stores_to_warehouse(
            batch, catalog, namespace, storage_options=s3_options, client=cluster
        )

    message = str(raised.value)
    assert f"{BUCKET}/broken/{corrupt.path.name}" in message
    assert "nothing committed" in message
    for table in TABLES:
        iceberg = catalog.load_table((namespace, table))
        assert iceberg.current_snapshot().snapshot_id == before[table]
        assert len(iceberg.snapshots()) == 1
    assert _data_files(s3_endpoint, catalog, namespace) == files_before


def test_missing_dask_names_the_extra(monkeypatch):
    import sys

    from iceberg_bioimage.exceptions import MissingDependencyError
    from iceberg_bioimage.integrations.dask_ingest import require_distributed

    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import` does when absent
    with pytest.raises(MissingDependencyError, match=r"pip install 'iceberg-bioimage\[dask\]'"):
        require_distributed()
