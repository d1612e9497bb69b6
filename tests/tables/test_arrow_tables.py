"""Canonical Arrow tables: schema contract and vectorised chunk keys."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.writers import chunk_grid_keys
from iceberg_bioimage import scan_result_as_arrow_table, scan_store
from iceberg_bioimage.models import ChunkKeyEncoding, ImageAsset, ScanResult
from iceberg_bioimage.models.schemas import CHUNK_INDEX, IMAGE_ASSETS
from iceberg_bioimage.tables.schema import arrow_schema


def _result(shape, chunks, encoding, shards=None, array_path="A/1/0/0"):
    asset = ImageAsset(
        dataset_id="ds",
        image_id="ds:A/1/0",
        array_path=array_path,
        uri="/x/ds.zarr",
        format="zarr",
        storage_variant="zarr-v3",
        shape=tuple(shape),
        chunks=tuple(chunks),
        shards=tuple(shards) if shards else None,
        dtype="uint8",
        itemsize=1,
        chunk_key_encoding=encoding,
    )
    return ScanResult(
        dataset_id="ds",
        uri="/x/ds.zarr",
        format="zarr",
        storage_variant="zarr-v3",
        image_assets=(asset,),
        scanned_at=datetime.now(UTC),
    )


grids = st.lists(st.tuples(st.integers(1, 40), st.integers(1, 12)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(
    grids,
    st.sampled_from(["default", "v2"]),
    st.sampled_from(["/", "."]),
    st.sampled_from(["", "A/1/0/0", "raw"]),
)
def test_vectorised_keys_match_the_scalar_encoding(dims, name, separator, array_path):
    shape = [s for s, _ in dims]
    chunks = [c for _, c in dims]
    encoding = ChunkKeyEncoding(name=name, separator=separator)
    table = scan_result_as_arrow_table(
        _result(shape, chunks, encoding, array_path=array_path), table="chunk_index"
    )
    keys = table["chunk_key"].to_pylist()
    coords = table["chunk_coords"].to_pylist()
    assert keys == [encoding.encode(array_path, c) for c in coords]
    assert sorted(keys) == chunk_grid_keys(
        array_path, shape, chunks, encoding=name, separator=separator
    )
    grid = [range(-(-s // c)) for s, c in zip(shape, chunks, strict=True)]
    assert coords == [list(c) for c in itertools.product(*grid)]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 3)),
        min_size=1,
        max_size=3,
    )
)
def test_sharded_rows_carry_their_shard_key(dims):
    chunks = [c for c, _, _ in dims]
    shards = [c * f for c, f, _ in dims]
    shape = [s * n for s, (_, _, n) in zip(shards, dims, strict=True)]
    encoding = ChunkKeyEncoding(name="default", separator="/")
    table = scan_result_as_arrow_table(
        _result(shape, chunks, encoding, shards=shards), table="chunk_index"
    )
    factor = [s // c for s, c in zip(shards, chunks, strict=True)]
    for key, coords in zip(
        table["chunk_key"].to_pylist(), table["chunk_coords"].to_pylist(), strict=True
    ):
        assert key == encoding.encode(
            "A/1/0/0", [c // f for c, f in zip(coords, factor, strict=True)]
        )


def test_zero_dimensional_array_has_one_chunk():
    table = scan_result_as_arrow_table(
        _result([], [], ChunkKeyEncoding(name="default")), table="chunk_index"
    )
    assert table["chunk_key"].to_pylist() == ["A/1/0/0/c"]
    assert table["chunk_coords"].to_pylist() == [[]]


def test_schemas_match_the_declarations(datasets):
    for declared, name in (
        (IMAGE_ASSETS, "image_assets"),
        (CHUNK_INDEX, "chunk_index"),
    ):
        table = scan_result_as_arrow_table(scan_store(datasets["plate04"].path), table=name)
        assert table.schema == arrow_schema(name)
        assert table.column_names == list(declared.names)
        for column in declared.columns:
            field = table.schema.field(column.name)
            assert field.nullable is not column.required
            assert field.type != pa.null()


def test_all_null_columns_keep_their_type(datasets):
    table = scan_result_as_arrow_table(scan_store(datasets["slash"].path))
    assert table["plate_id"].null_count == table.num_rows
    assert table.schema.field("plate_id").type == pa.string()
    assert table.schema.field("shards").type == arrow_schema("image_assets").field("shards").type
    assert table.schema.field("scanned_at").type == pa.timestamp("us", tz="UTC")
