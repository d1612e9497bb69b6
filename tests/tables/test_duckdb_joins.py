"""DuckDB joins of profiles to images, and safe metadata queries (duckdb 1.x and 2.x)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from fixtures import writers
from iceberg_bioimage import (
    ContractError,
    InvalidNameError,
    join_catalog_image_assets_with_profiles,
    join_image_assets_with_profiles,
    join_profiles_with_store,
    join_report,
    query_metadata_table,
    register_store,
    scan_as_arrow_table,
)


@pytest.fixture(scope="module")
def profile_files(datasets, tmp_path_factory):
    root = tmp_path_factory.mktemp("profiles")
    return {
        name: writers.write_profiles(root / name, datasets[name], cells_per_field=7)
        for name in ("plate04", "plate05")
    }


@pytest.mark.parametrize("name", ["plate04", "plate05"])
def test_cellprofiler_profiles_join_every_row_to_one_image(datasets, profile_files, name):
    fixture, profiles = datasets[name], profile_files[name]
    source = pq.read_table(profiles.path)
    assert "dataset_id" not in source.column_names
    images = scan_as_arrow_table(fixture.path)
    joined = join_image_assets_with_profiles(images, profiles.path, profile_dataset_id=name)
    report = join_report(joined)
    assert report["join_keys"] == ["dataset_id", "well_id", "site_id", "plate_id"]
    assert report["matched_rows"] == source.num_rows == profiles.expected["n_rows"]
    assert report["unmatched_rows"] == 0
    assert joined.num_rows == source.num_rows
    for column in source.column_names:  # every original column kept, in row order
        assert joined[column].equals(source[column])
    assert joined["array_path"].null_count == 0
    per_image = joined.group_by("image_id").aggregate([("image_id", "count")])
    expected = profiles.expected["rows_per_image"]
    assert (
        dict(
            zip(
                per_image["image_id"].to_pylist(),
                per_image["image_id_count"].to_pylist(),
                strict=True,
            )
        )
        == expected
    )
    assert set(pc.unique(joined["array_path"]).to_pylist()) == {
        fixture.expected["images"][i]["array_paths"][0] for i in expected
    }


def test_store_join_defaults_the_dataset_to_the_store(datasets, profile_files):
    joined = join_profiles_with_store(datasets["plate04"].path, profile_files["plate04"].path)
    assert join_report(joined)["unmatched_rows"] == 0
    assert set(joined["dataset_id"].to_pylist()) == {"plate04"}


def test_unmatched_rows_are_counted_not_dropped(datasets, profile_files):
    source = pq.read_table(profile_files["plate04"].path)
    stray = source.slice(0, 3).set_column(
        source.column_names.index("Metadata_Well"), "Metadata_Well", pa.array(["H12"] * 3)
    )
    profiles = pa.concat_tables([source, stray])
    joined = join_profiles_with_store(datasets["plate04"].path, profiles)
    report = join_report(joined)
    assert joined.num_rows == profiles.num_rows
    assert report["unmatched_rows"] == 3
    assert joined.slice(source.num_rows)["image_id"].null_count == 3


def test_image_id_is_preferred_when_both_sides_have_it(datasets):
    images = scan_as_arrow_table(datasets["pyramid"].path)
    profiles = pa.table({"Metadata_ImageID": ["pyramid:1", "pyramid:0"], "Cells_x": [1.0, 2.0]})
    joined = join_image_assets_with_profiles(images, profiles, profile_dataset_id="pyramid")
    assert join_report(joined)["join_keys"] == ["dataset_id", "image_id"]
    assert joined["array_path"].to_pylist() == ["1/0", "0/0"]  # level 0 only, row order kept


def test_well_level_profiles_join_at_well_grain_with_every_field(datasets):
    images = scan_as_arrow_table(datasets["plate04"].path)
    profiles = pa.table({"Metadata_Well": ["A01", "Z99"], "Cells_x": [1.0, 2.0]})  # no site
    joined = join_image_assets_with_profiles(images, profiles, profile_dataset_id="plate04")
    report = join_report(joined)
    assert report["grain"] == "well"
    assert (report["matched_rows"], report["unmatched_rows"]) == (1, 1)
    assert joined.num_rows == 2  # one row per profile row, never one per field
    level0 = images.filter(
        pc.and_(pc.equal(images["well_id"], "A01"), pc.equal(images["multiscale_level"], 0))
    )
    expected = sorted(level0["image_id"].to_pylist(), key=lambda i: int(i.rsplit("/", 1)[1]))
    assert joined["image_ids"].to_pylist() == [expected, None]
    assert len(expected) == 2


def test_a_key_set_that_names_several_images_per_row_is_refused_with_chunks(datasets):
    images = scan_as_arrow_table(datasets["plate04"].path)
    chunks = scan_as_arrow_table(datasets["plate04"].path, table="chunk_index")
    profiles = pa.table({"Metadata_Well": ["A01"], "Cells_x": [1.0]})  # no site: 2 fields
    with pytest.raises(ContractError, match="site_id"):
        join_image_assets_with_profiles(
            images, profiles, profile_dataset_id="plate04", chunk_index=chunks
        )


def test_include_chunks_adds_one_row_per_chunk(datasets, profile_files):
    joined = join_profiles_with_store(
        datasets["plate04"].path, profile_files["plate04"].path, include_chunks=True
    )
    level0_chunks = datasets["plate04"].expected["chunk_counts"][0]
    assert joined.num_rows == profile_files["plate04"].expected["n_rows"] * level0_chunks
    assert "chunk_key" in joined.column_names


def test_seed_readme_minimal_tables():
    image_assets = pa.table(
        {"dataset_id": ["ds-1"], "image_id": ["img-1"], "array_path": ["0"], "uri": ["x.zarr"]}
    )
    profiles = pa.table({"dataset_id": ["ds-1"], "image_id": ["img-1"], "cell_count": [42]})
    joined = join_image_assets_with_profiles(image_assets, profiles)
    filtered = query_metadata_table(joined, filters=[("cell_count", ">", 10)])
    assert filtered.num_rows == 1
    assert filtered["uri"].to_pylist() == ["x.zarr"]


def test_catalog_join_loads_only_the_profiles_datasets(datasets, profile_files, tmp_path):
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=tmp_path.as_uri())
    register_store(datasets["plate04"].path, catalog, "bio", publish_chunks=True)
    register_store(datasets["pyramid"].path, catalog, "bio")
    joined = join_catalog_image_assets_with_profiles(
        catalog, "bio", profile_files["plate04"].path, profile_dataset_id="plate04"
    )
    assert join_report(joined)["unmatched_rows"] == 0
    assert joined.num_rows == profile_files["plate04"].expected["n_rows"]


@pytest.fixture
def metadata(datasets):
    return scan_as_arrow_table(datasets["plate04"].path)


def test_query_filters_and_columns(metadata):
    out = query_metadata_table(
        metadata,
        columns=["image_id", "well_id"],
        filters=[("well_id", "in", ["A01", "B03"]), ("multiscale_level", "==", 0)],
    )
    assert out.column_names == ["image_id", "well_id"]
    assert out.num_rows == 4
    assert query_metadata_table(metadata, filters=[("array_path", "like", "A/1/%")]).num_rows == 4
    assert query_metadata_table(metadata, filters=[("plate_id", "is null")]).num_rows == 0
    assert query_metadata_table(metadata, filters=[("well_id", "not in", [])]).num_rows == 16


def test_injected_values_are_bound_never_executed(metadata):
    attack = "x'; DROP TABLE metadata_table; --"
    assert query_metadata_table(metadata, filters=[("image_id", "=", attack)]).num_rows == 0
    assert (
        query_metadata_table(
            metadata, filters=[("image_id", "in", [attack, "1' OR '1'='1"])]
        ).num_rows
        == 0
    )
    assert (
        query_metadata_table(metadata, filters=[("image_id", "like", "%' OR 1=1 --")]).num_rows == 0
    )
    assert query_metadata_table(metadata).num_rows == 16


@pytest.mark.parametrize(
    "column", ["no_such", 'well_id" ; DROP TABLE metadata_table; --', "well_id OR 1=1"]
)
def test_unknown_or_hostile_column_names_are_refused(metadata, column):
    with pytest.raises(InvalidNameError):
        query_metadata_table(metadata, filters=[(column, "=", "A01")])
    with pytest.raises(InvalidNameError):
        query_metadata_table(metadata, columns=[column])


def test_bad_operators_are_refused(metadata):
    with pytest.raises(ValueError, match="operator"):
        query_metadata_table(metadata, filters=[("well_id", "; DROP", "A01")])
