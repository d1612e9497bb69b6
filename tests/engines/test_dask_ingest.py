"""Distributed ingest on a real Dask cluster: 120 stores on moto S3 into PostgreSQL + S3.

A ``distributed.LocalCluster`` with 3 worker processes scans the stores and writes the
data files to an ``s3://`` warehouse; the test process commits. The stores (NGFF
plates, OME-TIFF files, TIFF-folder plates) and their expected row counts come from
:mod:`fixtures.dask_stores`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from typing import Any

import distributed
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from fixtures import writers
from fixtures.dask_stores import upload_screen
from iceberg_bioimage import ingest_stores_to_warehouse
from iceberg_bioimage.engines.dask import STORE_RETRIES
from iceberg_bioimage.exceptions import IcebergBioimageError
from s3_server import s3_filesystem, upload

pytestmark = pytest.mark.slow

BUCKET = "dask-stores"
WAREHOUSE_BUCKET = "dask-lake"
STORES_PER_KIND = 40
TABLES = ("image_assets", "chunk_index")


@pytest.fixture(scope="module")
def remote_stores(s3_endpoint, tmp_path_factory) -> dict[str, dict[str, int]]:
    """120 stores on S3 (40 NGFF plates, 40 OME-TIFFs, 40 TIFF-folder plates): uri → rows."""
    s3_filesystem(s3_endpoint).call_s3("create_bucket", Bucket=WAREHOUSE_BUCKET)
    root = tmp_path_factory.mktemp("dask-stores")
    return upload_screen(s3_endpoint, root, BUCKET, STORES_PER_KIND)


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


def _processing_counts(dask_scheduler) -> dict[str, int]:
    """How many times each task key was sent to a worker (scheduler transition log)."""
    return dict(Counter(str(entry[0]) for entry in dask_scheduler.transition_log
                        if entry[2] == "processing"))  # fmt: skip


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

    # the broken store's task ran 1 + STORE_RETRIES times, then the batch aborted
    broken_key = f"-{batch.index(broken)}"
    attempts = {
        key: n
        for key, n in cluster.run_on_scheduler(_processing_counts).items()
        if key.startswith("iceberg-bioimage-") and key.endswith(broken_key)
    }
    assert STORE_RETRIES + 1 in attempts.values(), attempts
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

    from iceberg_bioimage.engines.dask import require_distributed
    from iceberg_bioimage.exceptions import MissingDependencyError

    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import` does when absent
    with pytest.raises(MissingDependencyError, match=r"pip install 'iceberg-bioimage\[dask\]'"):
        require_distributed()


def _cli(*args: str, cwd, env=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_cli_ingest_on_a_scheduler(cluster, tmp_path):
    plate = writers.write_ngff04_plate(tmp_path)
    tiff = writers.write_pyramid_ome_tiff(tmp_path)
    env = {"ICEBERG_BIOIMAGE_WAREHOUSE": str(tmp_path / "warehouse")}
    address = cluster.scheduler.address
    done = _cli(
        "ingest", str(plate.path), str(tiff.path), "--scheduler", address, "--json",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sorted(d["dataset_id"] for d in result["datasets"]) == ["plate04", "pyramid"]
    rows = {t["table"].rsplit(".", 1)[-1]: t["rows_written"] for t in result["tables"]}
    assert rows["image_assets"] == len(plate.expected["array_paths"]) + len(
        tiff.expected["array_paths"]
    )

    both = _cli("ingest", str(plate.path), "--scheduler", address, "--dask-workers", "2",
                cwd=tmp_path, env=env)  # fmt: skip
    assert both.returncode == 2 and "--scheduler or --dask-workers" in both.stderr
    threads = _cli("ingest", str(plate.path), "--dask-workers", "2", "--workers", "2",
                   cwd=tmp_path, env=env)  # fmt: skip
    assert threads.returncode == 2 and "--workers" in threads.stderr


def test_version_does_not_import_dask(tmp_path):
    code = (
        "import sys; from iceberg_bioimage.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
