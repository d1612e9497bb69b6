"""Remote scanning through fsspec: a real S3 endpoint (moto server) and ``memory://``.

Every dataset is uploaded unchanged, scanned through ``s3://`` and compared with
the local scan of the same files: both canonical tables must be identical except
the ``uri`` column (a local path vs the ``s3://`` URI) and ``scanned_at`` (the
clock). There is no other legitimate difference: the scanners see the same
bytes and listings through :class:`FsspecStore` as through :class:`LocalStore`.
"""

from __future__ import annotations

import shutil
import uuid
import warnings
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import tifffile
import zarr

from iceberg_bioimage import StoreNotFoundError, scan_result_as_arrow_table, scan_store
from iceberg_bioimage.io.storage import FsspecStore

# dataset -> scan options; each is uploaded once per session to s3://bucket/<store name>
REMOTE_CASES = {
    "plate04": {},
    "plate05": {},
    "sharded": {"stat_chunks": True, "read_shard_index": True},
    "slash": {"stat_chunks": True},
    "pyramid": {},
}
_ZARR_METADATA = frozenset({".zattrs", ".zgroup", ".zarray", "zarr.json"})


def _tables(result) -> tuple[pa.Table, pa.Table]:
    """Both canonical tables minus the columns that name the location or the clock."""
    assets = scan_result_as_arrow_table(result, table="image_assets")
    chunks = scan_result_as_arrow_table(result, table="chunk_index")
    return assets.drop_columns(["uri", "scanned_at"]), chunks.drop_columns(["uri"])


def assert_same_tables(remote, local) -> None:
    """The remote scan's tables equal the local scan's (``uri``/``scanned_at`` aside)."""
    for name, got, want in zip(
        ("image_assets", "chunk_index"), _tables(remote), _tables(local), strict=True
    ):
        assert got.schema == want.schema, name
        assert got.num_rows == want.num_rows > 0, name
        if not got.equals(want):
            assert got.to_pylist() == want.to_pylist(), name
    assert remote.dataset_id == local.dataset_id
    assert remote.storage_variant == local.storage_variant
    assert len(remote.warnings) == len(local.warnings)


def assert_uri_column(result, uri: str) -> None:
    for table in ("image_assets", "chunk_index"):
        column = scan_result_as_arrow_table(result, table=table)["uri"]
        assert set(column.to_pylist()) == {uri}, table


@pytest.fixture(scope="session")
def remote_datasets(datasets, s3_upload):
    """``remote_datasets(name)`` → ``s3://bucket/<store name>``, uploaded on first use."""
    uploaded: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in uploaded:
            path = datasets[name].path
            uploaded[name] = s3_upload(path, f"bucket/{path.name}")
        return uploaded[name]

    return get


# --------------------------------------------------------------------------- #
# same tables as the local scan
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", list(REMOTE_CASES))
def test_s3_scan_equals_local_scan(datasets, remote_datasets, s3_options, name):
    options = REMOTE_CASES[name]
    uri = remote_datasets(name)
    remote = scan_store(uri, storage_options=s3_options, **options)
    local = scan_store(datasets[name].path, **options)
    assert remote.uri == uri
    assert_uri_column(remote, uri)
    assert_same_tables(remote, local)


def test_s3_sharded_scan_fills_chunk_facts(remote_datasets, s3_options, datasets):
    """The equality above is not vacuous: listing and shard-index reads found data."""
    expected = datasets["sharded"].expected
    result = scan_store(
        remote_datasets("sharded"),
        storage_options=s3_options,
        stat_chunks=True,
        read_shard_index=True,
    )
    chunks = scan_result_as_arrow_table(result, table="chunk_index")
    assert chunks.num_rows == expected["chunk_count"]
    assert pc.sum(chunks["present"]).as_py() == expected["written_inner_chunks"]
    assert pc.count(chunks["byte_offset"]).as_py() == expected["written_inner_chunks"]
    assert set(chunks.filter(chunks["present"])["chunk_key"].to_pylist()) == set(
        expected["shard_keys"]
    )


def test_s3_stat_chunks_on_a_plate(datasets, remote_datasets, s3_options):
    remote = scan_store(remote_datasets("plate05"), storage_options=s3_options, stat_chunks=True)
    local = scan_store(datasets["plate05"].path, stat_chunks=True)
    assert_same_tables(remote, local)
    chunks = scan_result_as_arrow_table(remote, table="chunk_index")
    assert pc.all(chunks["present"]).as_py()


def test_memory_filesystem_scan_equals_local_scan(datasets):
    """``memory://`` goes through the same FsspecStore, with no server."""
    local_path = datasets["plate04"].path
    fs = fsspec.filesystem("memory")
    prefix = f"/iceberg-bioimage-{uuid.uuid4().hex}"
    remote = f"{prefix}/{local_path.name}"
    files = sorted(p for p in local_path.rglob("*") if p.is_file())
    fs.put(
        [str(p) for p in files], [f"{remote}/{p.relative_to(local_path).as_posix()}" for p in files]
    )
    try:
        for options in ({}, {"stat_chunks": True}):
            result = scan_store(f"memory://{remote}", **options)
            assert_uri_column(result, f"memory://{remote}")
            assert_same_tables(result, scan_store(local_path, **options))
    finally:
        fs.rm(prefix, recursive=True)


# --------------------------------------------------------------------------- #
# consolidated metadata
# --------------------------------------------------------------------------- #


def _consolidated_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    with warnings.catch_warnings():
        # zarr warns that v3 consolidated metadata is not yet part of the spec
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(target))
    return target


@pytest.mark.parametrize(
    ("name", "consolidated_key"), [("plate04", ".zmetadata"), ("plate05", "zarr.json")]
)
def test_s3_consolidated_metadata_replaces_per_node_documents(
    datasets, s3_upload, s3_fs, s3_options, tmp_path, name, consolidated_key
):
    local = datasets[name]
    copy = _consolidated_copy(local.path, tmp_path / local.path.name)
    if name == "plate05":
        assert b"consolidated_metadata" in (copy / "zarr.json").read_bytes()
    uri = s3_upload(copy, f"bucket/consolidated/{copy.name}")
    prefix = uri.removeprefix("s3://")

    # every metadata document below the root goes: wells, fields and arrays
    doomed = [
        key
        for key in s3_fs.find(prefix)
        if key.rsplit("/", 1)[-1] in _ZARR_METADATA and "/" in key[len(prefix) + 1 :]
    ]
    wells = [
        f"{prefix}/{w}/{'.zattrs' if name == 'plate04' else 'zarr.json'}"
        for w in local.expected["wells"]
    ]
    assert set(wells) <= set(doomed)
    s3_fs.rm(doomed)
    assert not any(s3_fs.exists(key) for key in wells)

    for options in ({}, {"stat_chunks": True}):
        remote = scan_store(uri, storage_options=s3_options, **options)
        assert_same_tables(remote, scan_store(local.path, **options))

    # control: without the consolidated document the same bucket has no images left
    if consolidated_key == ".zmetadata":
        s3_fs.rm(f"{prefix}/.zmetadata")
    else:
        s3_fs.pipe(f"{prefix}/zarr.json", (local.path / "zarr.json").read_bytes())
    bare = scan_store(uri, storage_options=s3_options)
    assert bare.image_assets == ()
    assert any("no metadata" in warning for warning in bare.warnings)


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "uri", ["s3://bucket/no-such-plate.ome.zarr", "s3://no-such-bucket/plate.ome.zarr"]
)
def test_missing_s3_prefix_raises_store_not_found(s3_options, remote_datasets, uri):
    remote_datasets("plate04")  # the bucket exists and holds something else
    with pytest.raises(StoreNotFoundError) as caught:
        scan_store(uri, storage_options=s3_options)
    assert uri in str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)


# --------------------------------------------------------------------------- #
# FsspecStore regressions
# --------------------------------------------------------------------------- #


def test_s3_glob_characters_in_names_are_literal(datasets, s3_upload, s3_options, tmp_path):
    """Keys are read literally: ``[1]`` is not a glob pattern (fsspec ``cat`` globbed)."""
    copy = tmp_path / "slash[1].zarr"
    shutil.copytree(datasets["slash"].path, copy)
    uri = s3_upload(copy, f"bucket/globbing/{copy.name}")
    local = scan_store(copy, stat_chunks=True)
    remote = scan_store(uri, storage_options=s3_options, stat_chunks=True)
    assert remote.dataset_id == "slash[1]"
    assert_same_tables(remote, local)


def test_s3_rescan_sees_objects_written_since_the_last_scan(
    datasets, s3_upload, s3_options, tmp_path
):
    """fsspec caches filesystem instances and their listings; a new scan must not."""
    copy = tmp_path / datasets["slash"].path.name
    shutil.copytree(datasets["slash"].path, copy)
    uri = s3_upload(copy, f"bucket/rescan/{copy.name}")
    first = scan_store(uri, storage_options=s3_options, stat_chunks=True)
    assert sorted(a.array_path for a in first.image_assets) == ["labels/seg", "raw"]

    group = zarr.open_group(copy, mode="a", zarr_format=2)
    group.create_array("extra", shape=(4,), chunks=(2,), dtype="uint8")[:] = 5
    group["raw"][4:8, 8:16] = 9  # one more chunk object: raw/1/1
    s3_upload(copy, f"bucket/rescan/{copy.name}")

    second = scan_store(uri, storage_options=s3_options, stat_chunks=True)
    assert sorted(a.array_path for a in second.image_assets) == ["extra", "labels/seg", "raw"]
    assert_same_tables(second, scan_store(copy, stat_chunks=True))


def test_s3_tiff_scan_reads_metadata_not_the_whole_file(s3_upload, s3_options, tmp_path):
    """Opening a remote TIFF must not pull fsspec's default 50 MiB read-ahead blocks."""
    s3fs_core = pytest.importorskip("s3fs.core")
    path = tmp_path / "big.ome.tif"
    tifffile.imwrite(
        path, np.zeros((2, 2048, 2048), "uint16"), tile=(256, 256), metadata={"axes": "ZYX"}
    )
    size = path.stat().st_size
    uri = s3_upload(path, f"bucket/fetch/{path.name}")

    fetched: list[int] = []
    original = s3fs_core.S3File._fetch_range

    def counting(self, start, end):
        data = original(self, start, end)
        fetched.append(len(data))
        return data

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(s3fs_core.S3File, "_fetch_range", counting)
        result = scan_store(uri, storage_options=s3_options)
    assert result.array_count == 1
    assert fetched, "the TIFF was not read through S3File"
    assert sum(fetched) < size // 8, (sum(fetched), size)


def test_fsspec_store_read_many_keeps_order_and_reads_keys_literally():
    fs = fsspec.filesystem("memory")
    prefix = f"/iceberg-bioimage-{uuid.uuid4().hex}"
    objects = {"b": b"B", "a": b"A", "x[1]": b"X", "x1": b"wrong"}
    fs.pipe({f"{prefix}/s.zarr/{key}": data for key, data in objects.items()})
    try:
        store = FsspecStore(f"memory://{prefix}/s.zarr", None)
        got = store.read_many(["b", "missing", "a", "x[1]", "b"])
        assert got == [b"B", None, b"A", b"X", b"B"]
        assert store.read_many(["a"]) == [b"A"]
        assert store.read_many([]) == []
    finally:
        fs.rm(prefix, recursive=True)
