"""Catalog-free synthetic workflow: a tiny Zarr store and profile table, joined with DuckDB.

Run it with ``uv run python examples/synthetic_workflow.py [WORKDIR]``. It writes a
small Zarr store and a per-cell profile table into WORKDIR (a new temporary folder by
default), validates the join contract, derives the canonical metadata rows and joins
them with the optional DuckDB helpers. No Iceberg catalog is involved.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from iceberg_bioimage import (
    join_image_assets_with_profiles,
    join_report,
    query_metadata_table,
    scan_result_as_arrow_table,
    scan_store,
    validate_microscopy_profile_table,
)

FIELDS = ("field-0", "field-1", "field-2")
CELLS_PER_FIELD = 5


def main(workdir: Path) -> None:
    print(f"work directory: {workdir}")
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    # 1. A Zarr store with one (channel, y, x) image per microscope field, cut into
    #    32 x 32 chunks. Its dataset id is the store name minus ".zarr": "synthetic".
    store = workdir / "synthetic.zarr"
    group = zarr.open_group(store, mode="w")
    for name in FIELDS:
        pixels = rng.integers(100, 4000, size=(2, 64, 64), dtype=np.uint16)
        group.create_array(name, data=pixels, chunks=(1, 32, 32), dimension_names=("c", "y", "x"))

    # 2. A per-cell profile table, as a segmentation tool would write it. Each row
    #    names its image with the canonical id "<dataset id>:<image path>".
    n = len(FIELDS) * CELLS_PER_FIELD
    profiles_path = workdir / "cells.parquet"
    pq.write_table(
        pa.table(
            {
                "Metadata_ImageID": np.repeat([f"synthetic:{f}" for f in FIELDS], CELLS_PER_FIELD),
                "ObjectNumber": np.tile(np.arange(1, CELLS_PER_FIELD + 1), len(FIELDS)),
                "Cells_AreaShape_Area": rng.normal(1500, 300, n).round(),
                "Cells_Intensity_MeanIntensity_DNA": rng.lognormal(-4, 0.3, n),
            }
        ),
        profiles_path,
    )

    # 3. Validate the microscopy join contract. Without a dataset id the table is
    #    rejected; with profile_dataset_id every row belongs to "synthetic".
    contract = validate_microscopy_profile_table(profiles_path)
    missing = ", ".join(contract.missing_columns)
    print(f"contract without dataset id: valid={contract.is_valid}, missing {missing}")
    contract = validate_microscopy_profile_table(profiles_path, profile_dataset_id="synthetic")
    aliases = ", ".join(f"{k}={v}" for k, v in contract.resolved_aliases.items())
    keys = ", ".join(contract.join_keys)
    print(f"contract: valid={contract.is_valid}, join keys {keys} ({aliases})")

    # 4. Derive the canonical metadata rows by reading Zarr metadata only (no pixels).
    scan = scan_store(store)
    image_assets = scan_result_as_arrow_table(scan, table="image_assets")
    chunk_index = scan_result_as_arrow_table(scan, table="chunk_index")
    print(
        f"scanned {scan.dataset_id} ({scan.storage_variant}): {image_assets.num_rows} "
        f"image_assets rows, {chunk_index.num_rows} chunk_index rows"
    )

    # 5. Join every cell to its image with DuckDB; the report says how it matched.
    joined = join_image_assets_with_profiles(
        image_assets, profiles_path, profile_dataset_id="synthetic"
    )
    report = join_report(joined)
    print(
        f"joined profiles: {report['matched_rows']} of {report['profile_rows']} rows matched "
        f"on {', '.join(report['join_keys'])}"
    )
    joined_path = workdir / "joined.parquet"
    pq.write_table(joined, joined_path)
    print(f"wrote {joined_path}")

    # 6. Or one row per (cell, chunk): which stored objects hold each cell's image.
    per_chunk = join_image_assets_with_profiles(
        image_assets, profiles_path, chunk_index=chunk_index, profile_dataset_id="synthetic"
    )
    per_image = chunk_index.num_rows // image_assets.num_rows
    print(f"cells x chunks: {per_chunk.num_rows} rows ({n} cells x {per_image} chunks per image)")

    # 7. Filter the joined table with DuckDB: large cells and where their pixels live.
    large = query_metadata_table(
        joined,
        columns=["image_id", "ObjectNumber", "Cells_AreaShape_Area", "uri", "array_path"],
        filters=[("Cells_AreaShape_Area", ">", 1700)],
    )
    print(f"cells with area > 1700 px: {large.num_rows}")
    for row in large.to_pylist():
        print(f"  {row['image_id']} cell {row['ObjectNumber']}: {row['Cells_AreaShape_Area']:.0f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="synthetic-")))
