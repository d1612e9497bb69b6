"""Tables read back unchanged by an engine we did not write.

Stores are registered into a real PyIceberg ``SqlCatalog`` (SQLite + local
warehouse), then read back by DuckDB twice: through pyiceberg's ``to_duckdb`` and
through DuckDB's own ``iceberg_scan`` (extensions loaded offline). Expectations
come from the fixture writers' ground truth and from the in-process scan.
A DuckDB iceberg extension that cannot load FAILS these tests; nothing is skipped.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import tifffile
from pyiceberg.catalog.sql import SqlCatalog

from catalog.duckdb_iceberg import (
    ExtensionUnavailableError,
    iceberg_connection,
    local_path,
    normalise,
    query_arrow,
)
from fixtures.writers import Fixture
from iceberg_bioimage import (
    list_catalog_tables,
    load_catalog_table,
    register_store,
    scan_result_as_arrow_table,
    scan_store,
)

NAMESPACE = "bioimage.cytotable"
NS = tuple(NAMESPACE.split("."))
LIST_COLUMNS = {
    "image_assets": ("shape", "chunks", "shards", "dimension_names", "channel_names"),
    "chunk_index": ("chunk_coords",),
}
#: Row order used on both sides; each key is unique within its table.
ORDER = {
    "image_assets": ("image_id", "array_path"),
    "chunk_index": ("image_id", "array_path", "chunk_key", "chunk_coords"),
}

# --------------------------------------------------------------------------- #
# fixtures and helpers
# --------------------------------------------------------------------------- #


def make_catalog(folder: Path) -> SqlCatalog:
    folder.mkdir(parents=True, exist_ok=True)
    return SqlCatalog("test", uri=f"sqlite:///{folder}/c.db", warehouse=folder.as_uri())


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    """DuckDB with iceberg + avro loaded from the wheels; failing to load is a FAILURE."""
    try:
        con = iceberg_connection()
    except ExtensionUnavailableError as exc:
        pytest.fail(f"DuckDB's iceberg extension is unavailable offline: {exc}", pytrace=False)
    yield con
    con.close()


@pytest.fixture(scope="module")
def plate04_catalog(datasets, tmp_path_factory) -> SqlCatalog:
    """plate04 registered with its chunk index into a fresh catalog (not mutated by tests)."""
    catalog = make_catalog(tmp_path_factory.mktemp("interop04"))
    result = register_store(datasets["plate04"].path, catalog, NAMESPACE, publish_chunks=True)
    assert {w.table for w in result.tables} == {f"{NAMESPACE}.{t}" for t in ORDER}
    return catalog


def metadata_location(catalog: SqlCatalog, table: str) -> str:
    return catalog.load_table((*NS, table)).metadata_location


def duck_rows(con: duckdb.DuckDBPyConnection, location: str, table: str) -> pa.Table:
    """The whole table as DuckDB's ``iceberg_scan`` reads it, in ``ORDER[table]`` order."""
    order = ", ".join(ORDER[table])
    return query_arrow(
        con, f"SELECT * FROM iceberg_scan(?) ORDER BY {order}", [local_path(location)]
    )


def ordered_pylist(table: pa.Table, name: str) -> list[dict[str, Any]]:
    """Rows as Python dicts sorted by ``ORDER[name]`` (lists compare lexicographically)."""
    rows = normalise(table).to_pylist()
    return sorted(rows, key=lambda r: tuple(r[c] for c in ORDER[name]))


def key_count(con: duckdb.DuckDBPyConnection, location: str, table: str) -> tuple[int, int]:
    """(rows, distinct keys) as DuckDB's reader counts them."""
    keys = ", ".join(ORDER[table])
    return con.execute(
        f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {keys} FROM iceberg_scan(?))) "
        "FROM iceberg_scan(?)",
        [local_path(location)] * 2,
    ).fetchone()


def expected_chunk_rows(fixture: Fixture) -> int:
    arrays = fixture.expected["arrays"]
    return sum(a.get("chunk_count", a.get("tiles", 0)) for a in arrays.values())


def assert_same_contents(duck_table: pa.Table, arrow_table: pa.Table, name: str) -> None:
    """DuckDB's rows equal the Arrow rows, column for column, after normalising types."""
    assert duck_table.column_names == arrow_table.column_names
    # only representation differs: after normalising, the schemas are identical
    assert normalise(duck_table).schema == normalise(arrow_table).schema, (
        f"{name}: DuckDB types {duck_table.schema} vs pyiceberg {arrow_table.schema}"
    )
    for column in LIST_COLUMNS[name]:
        assert pa.types.is_list(duck_table.schema.field(column).type), column
    got, want = ordered_pylist(duck_table, name), ordered_pylist(arrow_table, name)
    # DuckDB's own ORDER BY agrees with Python's ordering of the same keys
    assert [tuple(r[c] for c in ORDER[name]) for r in normalise(duck_table).to_pylist()] == [
        tuple(r[c] for c in ORDER[name]) for r in got
    ]
    assert len(got) == len(want)
    for column in duck_table.column_names:
        differing = [
            (tuple(g[c] for c in ORDER[name]), g[column], w[column])
            for g, w in zip(got, want, strict=True)
            if g[column] != w[column]
        ]
        assert not differing, f"{name}.{column} differs (key, duckdb, pyiceberg): {differing[:3]}"


# --------------------------------------------------------------------------- #
# 1a. pyiceberg scan -> DuckDB (no extension)
# --------------------------------------------------------------------------- #


def test_pyiceberg_to_duckdb_matches_scan_and_ground_truth(datasets, plate04_catalog):
    fixture = datasets["plate04"]
    expected = fixture.expected
    assert sorted(list_catalog_tables(plate04_catalog, NAMESPACE)) == sorted(ORDER)

    con = plate04_catalog.load_table((*NS, "image_assets")).scan().to_duckdb("image_assets")
    rows, images = con.execute(
        "SELECT count(*), count(DISTINCT image_id) FROM image_assets"
    ).fetchone()
    scanned = scan_result_as_arrow_table(scan_store(fixture.path))

    assert rows == scanned.num_rows == len(expected["array_paths"])
    assert images == len(set(scanned["image_id"].to_pylist())) == len(expected["image_ids"])

    via_duck = con.execute(
        "SELECT image_id, array_path, shape, well_id FROM image_assets "
        "ORDER BY image_id, array_path"
    ).fetchall()
    via_scan = sorted(
        zip(
            *(scanned[c].to_pylist() for c in ("image_id", "array_path", "shape", "well_id")),
            strict=True,
        )
    )
    assert [(i, a) for i, a, _, _ in via_duck] == [(i, a) for i, a, _, _ in via_scan]
    assert [list(s) for _, _, s, _ in via_duck] == [list(s) for _, _, s, _ in via_scan]
    assert {w for *_, w in via_duck} == {w for *_, w in via_scan} == set(expected["wells"].values())

    # against the writer's own record: ids, paths, shapes
    prefix = f"{expected['dataset_id']}:"
    assert [a for _, a, _, _ in via_duck] == sorted(expected["array_paths"])
    for image_id, array_path, shape, _ in via_duck:
        truth = expected["arrays"][array_path]
        assert image_id == truth["image_id"]
        assert image_id.startswith(prefix)
        assert tuple(shape) == tuple(truth["shape"])

    # a well filter answers with exactly that well's fields x levels
    per_well = len(expected["sites"]) * len(expected["level_paths"])
    for well_path, well_id in expected["wells"].items():
        got = con.execute(
            "SELECT DISTINCT image_id, count(*) OVER () FROM image_assets WHERE well_id = ?",
            [well_id],
        ).fetchall()
        assert {i for i, _ in got} == {f"{prefix}{well_path}/{site}" for site in expected["sites"]}
        assert {n for _, n in got} == {per_well}
    absent = con.execute("SELECT count(*) FROM image_assets WHERE well_id = 'A03'").fetchone()
    assert absent == (0,), "A03 is not in the sparse plate"


# --------------------------------------------------------------------------- #
# 1b. DuckDB's own iceberg_scan == load_catalog_table, every column
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("table", ["image_assets", "chunk_index"])
def test_iceberg_scan_reads_tables_unchanged(duck, datasets, plate04_catalog, table):
    location = metadata_location(plate04_catalog, table)
    assert location.endswith(".metadata.json")
    from_duck = duck_rows(duck, location, table)
    from_pyiceberg = load_catalog_table(plate04_catalog, NAMESPACE, table)

    assert_same_contents(from_duck, from_pyiceberg, table)

    fixture = datasets["plate04"]
    if table == "image_assets":
        assert from_duck.num_rows == len(fixture.expected["array_paths"])
        assert sorted(from_duck["array_path"].to_pylist()) == fixture.expected["array_paths"]
        # timestamps survive as tz-aware UTC instants
        assert from_duck.schema.field("scanned_at").type.tz in {"UTC", "Etc/UTC"}
        assert from_duck["scanned_at"].null_count == 0
    else:
        assert from_duck.num_rows == expected_chunk_rows(fixture)
        for array_path, keys in fixture.expected["chunk_keys"].items():
            got = pc.filter(from_duck["chunk_key"], pc.equal(from_duck["array_path"], array_path))
            assert sorted(got.to_pylist()) == sorted(keys), array_path


def test_iceberg_scan_accepts_the_file_uri_as_pyiceberg_writes_it(duck, plate04_catalog):
    location = metadata_location(plate04_catalog, "image_assets")
    assert location.startswith("file://")
    n = duck.execute("SELECT count(*) FROM iceberg_scan(?)", [location]).fetchone()[0]
    assert (
        n
        == duck.execute("SELECT count(*) FROM iceberg_scan(?)", [local_path(location)]).fetchone()[
            0
        ]
    )


# --------------------------------------------------------------------------- #
# 1c. re-registering is idempotent, as DuckDB sees it
# --------------------------------------------------------------------------- #


def test_reregister_gives_same_rows_no_duplicates(duck, datasets, tmp_path):
    catalog = make_catalog(tmp_path / "cat")
    path = datasets["plate04"].path
    register_store(path, catalog, NAMESPACE, publish_chunks=True)
    first = {t: metadata_location(catalog, t) for t in ORDER}
    before = {t: duck_rows(duck, first[t], t) for t in ORDER}

    register_store(path, catalog, NAMESPACE, publish_chunks=True)
    second = {t: metadata_location(catalog, t) for t in ORDER}

    for table in ORDER:
        rows, distinct = key_count(duck, second[table], table)
        assert rows == distinct == before[table].num_rows, (
            f"{table}: {rows} rows, {distinct} distinct keys after re-registering "
            f"(expected {before[table].num_rows})"
        )
        # same rows, except when they were scanned
        after = duck_rows(duck, second[table], table)
        drop = [c for c in ("scanned_at",) if c in after.column_names]
        assert normalise(after.drop_columns(drop)).equals(
            normalise(before[table].drop_columns(drop))
        ), table
        # the earlier metadata file still reads the earlier state
        assert key_count(duck, first[table], table)[0] == before[table].num_rows


# --------------------------------------------------------------------------- #
# 2. NGFF 0.5 plate and OME-TIFF pyramid through iceberg_scan
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def mixed_catalog(datasets, tmp_path_factory) -> SqlCatalog:
    catalog = make_catalog(tmp_path_factory.mktemp("interop_mixed"))
    for name in ("plate05", "pyramid"):
        register_store(datasets[name].path, catalog, NAMESPACE, publish_chunks=True)
    return catalog


@pytest.mark.parametrize("name", ["plate05", "pyramid"])
def test_iceberg_scan_plate05_and_ome_tiff(duck, datasets, mixed_catalog, name):
    fixture = datasets[name]
    dataset_id = fixture.expected["dataset_id"]
    assets = query_arrow(
        duck,
        "SELECT * FROM iceberg_scan(?) WHERE dataset_id = ? ORDER BY image_id, array_path",
        [local_path(metadata_location(mixed_catalog, "image_assets")), dataset_id],
    )
    chunks = query_arrow(
        duck,
        "SELECT * FROM iceberg_scan(?) WHERE dataset_id = ? "
        "ORDER BY image_id, array_path, chunk_key, chunk_coords",
        [local_path(metadata_location(mixed_catalog, "chunk_index")), dataset_id],
    )
    assert assets["array_path"].to_pylist() == fixture.expected["array_paths"]
    assert sorted(set(assets["image_id"].to_pylist())) == fixture.expected["image_ids"]
    assert chunks.num_rows == expected_chunk_rows(fixture)
    assert sum(assets["chunk_count"].to_pylist()) == chunks.num_rows
    per_array = collections.Counter(chunks["array_path"].to_pylist())
    for array_path, truth in fixture.expected["arrays"].items():
        assert per_array[array_path] == truth.get("chunk_count", truth.get("tiles")), array_path

    # DuckDB's full read equals pyiceberg's for this dataset, every column
    for table, duck_table in (("image_assets", assets), ("chunk_index", chunks)):
        from_pyiceberg = load_catalog_table(
            mixed_catalog, NAMESPACE, table, filters=[("dataset_id", "=", dataset_id)]
        )
        assert_same_contents(duck_table, from_pyiceberg, table)

    if name == "pyramid":
        # every tile has a byte range, and it is the range tifffile reports
        assert chunks["byte_offset"].null_count == 0
        assert chunks["byte_length"].null_count == 0
        assert set(chunks["chunk_key"].to_pylist()) == {fixture.expected["chunk_key"]}
        with tifffile.TiffFile(fixture.path) as tif:
            ranges = collections.Counter(
                (offset, length)
                for series in tif.series
                for level in series.levels
                for page in level.pages
                for offset, length in zip(page.dataoffsets, page.databytecounts, strict=True)
            )
        got = collections.Counter(
            zip(chunks["byte_offset"].to_pylist(), chunks["byte_length"].to_pylist(), strict=True)
        )
        assert got == ranges
        size = fixture.expected["file_size"]
        assert all(o + n <= size for o, n in got)
        assert assets["format"].to_pylist() == ["ome-tiff"] * assets.num_rows
    else:
        assert fixture.expected["zarr_format"] == 3
        assert assets["storage_variant"].to_pylist() == ["zarr-v3"] * assets.num_rows


def test_duckdb_iceberg_extension_loads_offline():
    """CI proof: the extensions come from the wheels, with autoinstall off."""
    try:
        con = iceberg_connection()
    except ExtensionUnavailableError as exc:
        pytest.fail(f"DuckDB's iceberg extension is unavailable offline: {exc}", pytrace=False)
    loaded = dict(
        con.execute(
            "SELECT extension_name, loaded FROM duckdb_extensions() "
            "WHERE extension_name IN ('iceberg', 'avro')"
        ).fetchall()
    )
    con.close()
    assert loaded == {"iceberg": True, "avro": True}
