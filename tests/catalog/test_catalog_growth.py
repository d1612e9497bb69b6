"""A catalog that grows plate by plate (issue 23): what one registration reads and leaves.

Counts, never times: metadata.json loads per registration, deletes planned for a
new dataset, metadata files kept and manifests in the current snapshot after many
registrations, and the properties an older table gains at its next commit.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zarr
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Transaction

from iceberg_bioimage import load_catalog_table, register_store, scan_store
from iceberg_bioimage.api import find_interrupted_registrations
from iceberg_bioimage.catalog.registration import (
    REGISTRATION_DATASETS,
    REGISTRATION_ID,
    REGISTRATION_TABLES,
    prepare_batch,
)
from iceberg_bioimage.catalog.sink import GROWTH_PROPERTIES, MAX_SNAPSHOTS, replace_datasets
from iceberg_bioimage.exceptions import CatalogConfigError

NS = "bioimage.growth"
PARTS = ("bioimage", "growth")
IMAGE_ASSETS = (*PARTS, "image_assets")
CHUNK_INDEX = (*PARTS, "chunk_index")
#: More registrations than ``commit.manifest.min-count-to-merge`` and
#: ``write.metadata.previous-versions-max`` (both 20).
MANY = 24


@pytest.fixture
def catalog(tmp_path):
    return SqlCatalog("test", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=tmp_path.as_uri())


def _stores(root: Path, n: int) -> list[Path]:
    """``n`` tiny zarr arrays, one dataset each (dataset id = folder stem)."""
    paths = []
    for i in range(n):
        path = root / f"plate{i:02d}.zarr"
        array = zarr.create_array(path, shape=(8, 8), chunks=(4, 4), dtype="uint8")
        array[:] = np.full((8, 8), i, dtype="uint8")
        paths.append(path)
    return paths


def _count(catalog, table: str, dataset_id: str | None = None) -> int:
    filters = [("dataset_id", "=", dataset_id)] if dataset_id else None
    return load_catalog_table(catalog, NS, table, columns=["dataset_id"], filters=filters).num_rows


def _metadata_files(catalog, ident) -> list[Path]:
    folder = Path(catalog.load_table(ident).location().removeprefix("file://")) / "metadata"
    return sorted(folder.glob("*.metadata.json"))


def test_a_registration_loads_each_table_once(catalog, tmp_path, monkeypatch):
    stores = _stores(tmp_path / "stores", 2)
    register_store(stores[0], catalog, NS, publish_chunks=True)
    loads: Counter[tuple[str, ...]] = Counter()
    load_table = catalog.load_table

    def counting(ident):
        loads[tuple(ident)] += 1
        return load_table(ident)

    monkeypatch.setattr(catalog, "load_table", counting)
    register_store(stores[1], catalog, NS, publish_chunks=True)
    # one load by us, one by SqlCatalog.commit_table (the table as stored, to commit on)
    assert loads == {IMAGE_ASSETS: 2, CHUNK_INDEX: 2}


def test_a_new_dataset_plans_no_delete_a_registered_one_does(catalog, tmp_path, monkeypatch):
    stores = _stores(tmp_path / "stores", 2)
    register_store(stores[0], catalog, NS, publish_chunks=True)
    deletes = []
    delete = Transaction.delete

    def spying(self, *args, **kwargs):
        deletes.append(".".join(self._table.name()))
        return delete(self, *args, **kwargs)

    monkeypatch.setattr(Transaction, "delete", spying)
    register_store(stores[1], catalog, NS, publish_chunks=True)
    assert deletes == []
    register_store(stores[1], catalog, NS, publish_chunks=True)
    assert sorted(deletes) == [".".join(CHUNK_INDEX), ".".join(IMAGE_ASSETS)]
    assert _count(catalog, "image_assets", "plate01") == 1
    assert _count(catalog, "chunk_index", "plate01") == 4


def test_a_new_dataset_committed_meanwhile_by_another_writer_is_replaced(catalog, tmp_path):
    """The delete is skipped on the state checked; a commit landing in between is seen."""
    stores = _stores(tmp_path / "stores", 2)
    register_store(stores[0], catalog, NS, publish_chunks=True)
    stale = catalog.load_table(IMAGE_ASSETS)  # plate01 is not in it
    register_store(stores[1], catalog, NS, publish_chunks=True)  # the other writer
    batch = prepare_batch([scan_store(stores[1])], ["image_assets"])
    replace_datasets(
        catalog, PARTS, "image_assets", batch.tables["image_assets"], ["plate01"], table=stale
    )
    assert _count(catalog, "image_assets", "plate01") == 1  # replaced, not duplicated
    assert _count(catalog, "image_assets") == 2


def test_many_registrations_keep_metadata_and_manifests_bounded(catalog, tmp_path):
    stores = _stores(tmp_path / "stores", MANY)
    snapshots = []
    for store in stores:
        register_store(store, catalog, NS, publish_chunks=True)
        snapshots.append(catalog.load_table(CHUNK_INDEX).current_snapshot().snapshot_id)
    max_versions = int(GROWTH_PROPERTIES["write.metadata.previous-versions-max"])
    merge_count = int(GROWTH_PROPERTIES["commit.manifest.min-count-to-merge"])
    for ident in (IMAGE_ASSETS, CHUNK_INDEX):
        assert len(_metadata_files(catalog, ident)) <= max_versions + 1
        table = catalog.load_table(ident)
        assert len(table.current_snapshot().manifests(table.io)) < merge_count
    assert _count(catalog, "chunk_index") == 4 * MANY

    # a registered dataset's files sit in a merged manifest: re-registering replaces them
    register_store(stores[0], catalog, NS, publish_chunks=True)
    assert _count(catalog, "chunk_index", "plate00") == 4
    assert _count(catalog, "chunk_index") == 4 * MANY
    # time travel across the merge still reads each state's rows
    for n in (1, merge_count - 1, merge_count, MANY):
        old = load_catalog_table(catalog, NS, "chunk_index", snapshot_id=snapshots[n - 1])
        assert old.num_rows == 4 * n


def test_an_older_table_gains_the_growth_properties_at_its_next_commit(catalog, tmp_path):
    stores = _stores(tmp_path / "stores", 2)
    register_store(stores[0], catalog, NS, publish_chunks=True)
    for ident in (IMAGE_ASSETS, CHUNK_INDEX):
        with catalog.load_table(ident).transaction() as transaction:
            transaction.remove_properties(*GROWTH_PROPERTIES)
        assert not set(GROWTH_PROPERTIES) & set(catalog.load_table(ident).properties)
    register_store(stores[1], catalog, NS, publish_chunks=True)
    for ident in (IMAGE_ASSETS, CHUNK_INDEX):
        properties = catalog.load_table(ident).properties
        assert {key: properties.get(key) for key in GROWTH_PROPERTIES} == GROWTH_PROPERTIES


def _bound_history(catalog, limits: dict[tuple[str, ...], str]) -> None:
    for ident, value in limits.items():
        with catalog.load_table(ident).transaction() as transaction:
            transaction.set_properties({MAX_SNAPSHOTS: value})


def _sequence_numbers(catalog, ident) -> list[int]:
    return sorted(s.sequence_number for s in catalog.load_table(ident).snapshots())


def test_registrations_keep_the_newest_snapshots_and_every_row(catalog, tmp_path):
    assert GROWTH_PROPERTIES[MAX_SNAPSHOTS] == "50"
    stores = _stores(tmp_path / "stores", 8)
    register_store(stores[0], catalog, NS, publish_chunks=True)
    _bound_history(catalog, {IMAGE_ASSETS: "3", CHUNK_INDEX: "5"})
    heads = []
    for store in stores[1:]:
        register_store(store, catalog, NS, publish_chunks=True)
        heads.append(catalog.load_table(CHUNK_INDEX).current_snapshot().snapshot_id)
    # the newest 3 and 5 commits of each table stay, in one commit each: no extra snapshot
    assert _sequence_numbers(catalog, IMAGE_ASSETS) == [6, 7, 8]
    assert _sequence_numbers(catalog, CHUNK_INDEX) == [4, 5, 6, 7, 8]
    assert _count(catalog, "image_assets") == 8
    for i in range(8):
        assert _count(catalog, "chunk_index", f"plate{i:02d}") == 4
    # time travel reaches the kept snapshots; a re-registration (delete + append) keeps 5 too
    old = load_catalog_table(catalog, NS, "chunk_index", snapshot_id=heads[-5])
    assert old.num_rows == 4 * 4
    register_store(stores[7], catalog, NS, publish_chunks=True)
    assert _sequence_numbers(catalog, CHUNK_INDEX) == [6, 7, 8, 9, 10]
    assert _count(catalog, "chunk_index", "plate07") == 4
    # expired history is not taken for interrupted registrations (image_assets keeps fewer)
    assert find_interrupted_registrations(catalog, NS) == {}


def test_a_history_bound_of_zero_keeps_every_snapshot(catalog, tmp_path):
    stores = _stores(tmp_path / "stores", 4)
    register_store(stores[0], catalog, NS, publish_chunks=True)
    _bound_history(catalog, {IMAGE_ASSETS: "0", CHUNK_INDEX: "1"})
    for store in stores[1:]:
        register_store(store, catalog, NS, publish_chunks=True)
    assert _sequence_numbers(catalog, IMAGE_ASSETS) == [1, 2, 3, 4]
    assert _sequence_numbers(catalog, CHUNK_INDEX) == [4]


def test_a_bad_history_bound_is_refused_before_anything_is_committed(catalog, tmp_path):
    stores = _stores(tmp_path / "stores", 2)
    register_store(stores[0], catalog, NS, publish_chunks=True)
    _bound_history(catalog, {CHUNK_INDEX: "ten"})
    with pytest.raises(CatalogConfigError, match=r"chunk_index.*max-snapshots.*'ten'"):
        register_store(stores[1], catalog, NS, publish_chunks=True)
    assert _count(catalog, "chunk_index") == 4
    assert _count(catalog, "image_assets") == 1


def test_an_interrupted_registration_after_expired_history_is_still_found(catalog, tmp_path):
    stores = _stores(tmp_path / "stores", 5)
    register_store(stores[0], catalog, NS, publish_chunks=True)
    _bound_history(catalog, {IMAGE_ASSETS: "2", CHUNK_INDEX: "2"})
    for store in stores[1:4]:
        register_store(store, catalog, NS, publish_chunks=True)
    # plate04's chunk_index commit lands, its image_assets commit never does
    summary = {
        REGISTRATION_ID: "interrupted",
        REGISTRATION_TABLES: "chunk_index,image_assets",
        REGISTRATION_DATASETS: '["plate04"]',
    }
    batch = prepare_batch([scan_store(stores[4])], ["chunk_index"])
    replace_datasets(
        catalog, PARTS, "chunk_index", batch.tables["chunk_index"], ["plate04"], summary
    )
    assert find_interrupted_registrations(catalog, NS) == {"plate04": "interrupted"}
