"""``maintain``: expire snapshots and remove orphans left by concurrent writers, losing no data.

Eight writers register at once on one embedded catalog; the commits that lose a race
leave ``*.metadata.json`` files (and manifests) that no metadata version names.
``maintain_catalog`` removes them, but only those older than its safety cutoff, and
every snapshot it keeps still reads, with the rows it had before.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import zarr

from iceberg_bioimage import (
    embedded_catalog,
    load_catalog_table,
    maintain_catalog,
    register_store,
)

NS = "bioimage"
WRITERS = 8


def _stores(root: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = root / f"well{i:02d}.zarr"
        array = zarr.create_array(path, shape=(16, 16), chunks=(8, 8), dtype="uint8")
        array[:] = np.full((16, 16), i, dtype="uint8")
        paths.append(path)
    return paths


def _unreferenced_metadata(table) -> set[str]:
    """``*.metadata.json`` files in the table's metadata folder that no version names."""
    folder = Path(table.location().removeprefix("file://")) / "metadata"
    named = {table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)}
    named = {n.removeprefix("file://") for n in named}
    return {str(p) for p in folder.glob("*.metadata.json")} - named


def _race(catalog_dir: Path, stores: list[Path]) -> None:
    start = threading.Barrier(len(stores))

    def write(store: Path) -> None:
        catalog = embedded_catalog(catalog_dir)
        start.wait()
        register_store(store, catalog, NS, publish_chunks=True)

    with ThreadPoolExecutor(len(stores)) as pool:
        list(pool.map(write, stores))


@pytest.fixture
def raced(tmp_path):
    """A catalog after bursts of concurrent writers, with orphaned metadata files."""
    catalog_dir = tmp_path / "catalog"
    stores = _stores(tmp_path / "stores", WRITERS)
    register_store(stores[0], embedded_catalog(catalog_dir), NS, publish_chunks=True)
    catalog = embedded_catalog(catalog_dir)
    for _ in range(3):  # one burst nearly always loses races; three make sure
        _race(catalog_dir, stores)
        tables = [catalog.load_table((NS, t)) for t in ("image_assets", "chunk_index")]
        if any(_unreferenced_metadata(t) for t in tables):
            break
    return catalog, catalog_dir


def test_fresh_orphans_are_left_alone_by_default(raced):
    catalog, _ = raced
    names = ("image_assets", "chunk_index")
    before = {t: _unreferenced_metadata(catalog.load_table((NS, t))) for t in names}
    assert any(before.values()), "no commit lost a race: nothing to test"
    result = maintain_catalog(catalog, NS)
    assert result.total("snapshots_expired") == 0
    assert result.total("metadata_files_removed") == 0  # younger than the one-hour window
    assert {t: _unreferenced_metadata(catalog.load_table((NS, t))) for t in names} == before


def test_maintain_removes_orphans_and_every_kept_snapshot_reads(raced):
    catalog, _ = raced
    names = ("image_assets", "chunk_index")
    orphans = {t: _unreferenced_metadata(catalog.load_table((NS, t))) for t in names}
    assert any(orphans.values()), "no commit lost a race: nothing to test"
    newest = {
        t: sorted(catalog.load_table((NS, t)).metadata.snapshots, key=lambda s: s.timestamp_ms)[-4:]
        for t in names
    }
    rows_before = {
        (t, s.snapshot_id): load_catalog_table(catalog, NS, t, snapshot_id=s.snapshot_id).num_rows
        for t in names
        for s in newest[t]
    }
    cutoff = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)

    dry = maintain_catalog(catalog, NS, keep_last=4, older_than=cutoff, dry_run=True)
    assert {t: _unreferenced_metadata(catalog.load_table((NS, t))) for t in names} == orphans
    result = maintain_catalog(catalog, NS, keep_last=4, older_than=cutoff)
    assert result.to_dict()["tables"] == dry.to_dict()["tables"]

    by_table = {m.table.rsplit(".", 1)[-1]: m for m in result.tables}
    for name in names:
        table = catalog.load_table((NS, name))
        assert by_table[name].metadata_files_removed == len(orphans[name])
        assert by_table[name].snapshots_kept == len(table.metadata.snapshots) == 4
        assert by_table[name].snapshots_expired > 0
        assert _unreferenced_metadata(table) == set()
        kept = {s.snapshot_id for s in table.metadata.snapshots}
        assert kept == {s.snapshot_id for s in newest[name]}
        for snapshot_id in kept:
            got = load_catalog_table(catalog, NS, name, snapshot_id=snapshot_id)
            assert got.num_rows == rows_before[(name, snapshot_id)]
    images = load_catalog_table(catalog, NS, "image_assets")
    assert sorted(images["dataset_id"].to_pylist()) == [f"well{i:02d}" for i in range(WRITERS)]
    assert load_catalog_table(catalog, NS, "chunk_index").num_rows == WRITERS * 4
    assert any("not rewritten" in n for n in result.notes)

    again = maintain_catalog(catalog, NS, keep_last=4, older_than=cutoff, dry_run=True)
    for name in (
        "snapshots_expired",
        "metadata_files_removed",
        "manifest_files_removed",
        "data_files_removed",
    ):
        assert again.total(name) == 0, name


def test_cli_maintain_dry_run(raced):
    _, catalog_dir = raced
    env = {**os.environ, "ICEBERG_BIOIMAGE_WAREHOUSE": str(catalog_dir)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "iceberg_bioimage",
            "maintain",
            "--namespace",
            NS,
            "--keep-last",
            "2",
            "--dry-run",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["dry_run"] is True
    assert {t["table"] for t in payload["tables"]} == {f"{NS}.image_assets", f"{NS}.chunk_index"}
    assert all(t["snapshots_kept"] == 2 for t in payload["tables"])
    assert all(t["metadata_files_removed"] == 0 for t in payload["tables"])  # all too young


def test_maintain_on_an_s3_warehouse(s3_endpoint, tmp_path):
    """The same sweep through PyIceberg's S3 FileIO (moto): orphans go, kept snapshots read."""
    from pyiceberg.catalog.sql import SqlCatalog

    from s3_server import s3_filesystem

    fs = s3_filesystem(s3_endpoint)
    fs.call_s3("create_bucket", Bucket="maintained")
    catalog = SqlCatalog(
        "s3maint",
        uri=f"sqlite:///{tmp_path}/catalog.db",
        warehouse="s3://maintained/warehouse",
        **{
            "s3.endpoint": s3_endpoint,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
            "s3.region": "us-east-1",
        },
    )
    (store,) = _stores(tmp_path, 1)
    for _ in range(3):
        register_store(store, catalog, NS, publish_chunks=True)
    location = catalog.load_table((NS, "image_assets")).location().removeprefix("s3://")
    orphans = [f"{location}/metadata/99999-lost.metadata.json", f"{location}/data/lost.parquet"]
    fs.pipe({orphans[0]: b"{}", orphans[1]: b"PAR1"})

    cutoff = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    result = maintain_catalog(catalog, NS, keep_last=2, older_than=cutoff)
    by_table = {m.table.rsplit(".", 1)[-1]: m for m in result.tables}
    assert by_table["image_assets"].metadata_files_removed == 1
    assert by_table["image_assets"].data_files_removed >= 1
    assert not any(fs.exists(path) for path in orphans)
    for name in ("image_assets", "chunk_index"):
        table = catalog.load_table((NS, name))
        assert len(table.metadata.snapshots) == 2
        for snapshot in table.metadata.snapshots:
            load_catalog_table(catalog, NS, name, snapshot_id=snapshot.snapshot_id)
    assert load_catalog_table(catalog, NS, "chunk_index").num_rows == 4
