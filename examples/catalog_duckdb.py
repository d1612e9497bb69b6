"""Catalog-backed query workflow: publish metadata to Iceberg, read it back, join, query.

Run it with ``uv run python examples/catalog_duckdb.py [WORKDIR]``. Everything is
written inside WORKDIR (a new temporary folder by default), including the embedded
Iceberg catalog. The joins and queries use the optional DuckDB integration.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from pyiceberg.utils.config import Config

from iceberg_bioimage import (
    join_catalog_image_assets_with_profiles,
    join_report,
    load_catalog_table,
    query_metadata_table,
    register_store,
)
from iceberg_bioimage.samples.plate import write_sample_data

CATALOG, NAMESPACE = "default", "bioimage.cytotable"
LARGE_CELL_AREA = 2000  # pixels; the median cell here is about 1550


def main(workdir: Path) -> None:
    # The catalog name "default" with no PyIceberg configuration is an embedded SQLite
    # catalog: keep it inside WORKDIR, never the current folder. If "default" names a
    # real catalog (~/.pyiceberg.yaml), stop rather than write demo data into it.
    if Config().get_catalog_config(CATALOG):
        sys.exit("a PyIceberg catalog named 'default' is configured; not writing to it")
    os.environ["ICEBERG_BIOIMAGE_WAREHOUSE"] = str(workdir / "iceberg-warehouse")
    print(f"work directory: {workdir}")
    sample = write_sample_data(workdir / "data", overwrite=True)

    # 1. Publish the plate's image_assets and chunk_index tables, then two more stores.
    #    Each registration is an Iceberg snapshot we can come back to later.
    first = register_store(sample.plate, CATALOG, NAMESPACE, publish_chunks=True)
    for write in first.tables:
        print(f"registered {first.dataset_id}: {write.table} {write.rows_written} rows")
    plate_only = next(w.snapshot_id for w in first.tables if w.table.endswith("image_assets"))
    for store in (sample.image, sample.ome_tiff):
        print(f"registered {register_store(store, CATALOG, NAMESPACE).dataset_id}")

    # 2. Read back only what is needed: full-resolution arrays of well A01, and the
    #    stored chunk objects of the first one (e.g. to fetch its pixels in parallel).
    a01 = load_catalog_table(
        CATALOG,
        NAMESPACE,
        "image_assets",
        columns=["image_id", "array_path", "site_id", "shape"],
        filters=[("well_id", "=", "A01"), ("multiscale_level", "=", 0)],
    )
    rows = a01.to_pylist()
    for row in rows:
        print(
            f"well A01 site {row['site_id']}: {row['image_id']}, array {row['array_path']}, "
            f"shape {row['shape']}"
        )
    first_array = rows[0]["array_path"]
    chunks = load_catalog_table(
        CATALOG, NAMESPACE, "chunk_index", filters=[("array_path", "=", first_array)]
    )
    keys = chunks["chunk_key"].to_pylist()
    print(f"chunks of {first_array}: {len(keys)} ({keys[0]} ... {keys[-1]})")

    # 3. Time travel: the table as it was right after the plate was registered.
    now = load_catalog_table(CATALOG, NAMESPACE, "image_assets", columns=["dataset_id"])
    then = load_catalog_table(
        CATALOG, NAMESPACE, "image_assets", columns=["dataset_id"], snapshot_id=plate_only
    )
    for label, table in (("now", now), (f"at snapshot {plate_only}", then)):
        ids = sorted(set(table["dataset_id"].to_pylist()))
        print(f"image_assets {label}: {table.num_rows} rows from {', '.join(ids)}")

    # 4. Join the CellProfiler profiles to the catalog's images. The profiles carry
    #    plate, well and site but no dataset id, so name the dataset they belong to.
    joined = join_catalog_image_assets_with_profiles(
        CATALOG, NAMESPACE, sample.profiles, profile_dataset_id="plate"
    )
    report = join_report(joined)
    print(
        f"joined profiles: {report['matched_rows']} of {report['profile_rows']} rows matched "
        f"on {', '.join(report['join_keys'])}"
    )

    # 5. Query the joined table with DuckDB: large cells in well A01, and where to
    #    find their pixels.
    large = query_metadata_table(
        joined,
        columns=["image_id", "ObjectNumber", "Cells_AreaShape_Area", "uri", "array_path"],
        filters=[("well_id", "=", "A01"), ("Cells_AreaShape_Area", ">", LARGE_CELL_AREA)],
    )
    print(f"cells in A01 with area > {LARGE_CELL_AREA} px: {large.num_rows}")
    for row in large.to_pylist():
        print(
            f"  {row['image_id']} cell {row['ObjectNumber']}: "
            f"{row['Cells_AreaShape_Area']:.0f} px ({row['array_path']})"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="catalog-")))
