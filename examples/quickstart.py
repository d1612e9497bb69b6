"""Quickstart: register, summarise, validate, join, ingest and export a small plate.

Run it with ``uv run python examples/quickstart.py [WORKDIR]``. Everything is written
inside WORKDIR (a new temporary folder by default): the sample data, the embedded
Iceberg catalog and the Cytomining Parquet warehouse.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from pyiceberg.utils.config import Config

from iceberg_bioimage import (
    export_store_to_cytomining_warehouse,
    ingest_stores_to_warehouse,
    join_profiles_with_store,
    join_report,
    list_catalog_tables,
    register_store,
    summarize_store,
    validate_microscopy_profile_table,
)
from iceberg_bioimage.samples.plate import write_sample_data

NAMESPACE = "bioimage.cytotable"


def main(workdir: Path) -> None:
    # The catalog name "default" with no PyIceberg configuration is an embedded SQLite
    # catalog: keep it inside WORKDIR, never the current folder. If "default" names a
    # real catalog (~/.pyiceberg.yaml), stop rather than write demo data into it.
    if Config().get_catalog_config("default"):
        sys.exit("a PyIceberg catalog named 'default' is configured; not writing to it")
    os.environ["ICEBERG_BIOIMAGE_WAREHOUSE"] = str(workdir / "iceberg-warehouse")
    print(f"work directory: {workdir}")

    # A small OME-NGFF 0.4 HCS plate (2 rows x 3 columns, 2 fields per well) and a
    # CellProfiler-style per-cell table keyed by Metadata_Plate/Well/Site.
    sample = write_sample_data(workdir / "data", overwrite=True)
    plate, profiles = sample.plate, sample.profiles

    # 1. Register the plate's image metadata in the Iceberg catalog.
    registration = register_store(plate, "default", NAMESPACE).to_dict()
    written = ", ".join(f"{t['table']} {t['rows_written']} rows" for t in registration["tables"])
    print(
        f"registered {registration['dataset_id']}: {registration['image_count']} images, "
        f"{registration['array_count']} arrays -> {written}"
    )

    # 2. Summarise the store: formats, wells, fields and channels.
    summary = summarize_store(plate)
    print(
        f"summary: {summary.storage_variant}, {summary.well_count} wells x "
        f"{len(summary.site_ids)} fields, channels {', '.join(summary.channel_names)}, "
        f"{summary.multiscale_levels} resolution levels"
    )

    # 3. Check the profiles against the microscopy join contract. The table has no
    #    dataset_id column, so say which dataset all of its rows belong to.
    contract = validate_microscopy_profile_table(profiles, profile_dataset_id=summary.dataset_id)
    aliases = ", ".join(f"{k}={v}" for k, v in contract.resolved_aliases.items())
    print(
        f"contract: valid={contract.is_valid}, join keys {', '.join(contract.join_keys)} "
        f"({aliases})"
    )

    # 4. Join every profile row to the image (plate field) it was measured on.
    joined = join_profiles_with_store(plate, profiles)
    report = join_report(joined)
    print(
        f"joined profiles: {report['matched_rows']} of {report['profile_rows']} rows matched "
        f"on {', '.join(report['join_keys'])}"
    )

    # 5. Ingest two more experiments in one go (one commit per catalog table).
    #    Here they are copies of the plate under new names, hence new dataset ids.
    experiments = [workdir / "data" / f"experiment-{x}.ome.zarr" for x in ("a", "b")]
    for copy in experiments:
        shutil.copytree(plate, copy, dirs_exist_ok=True)
    warehouse = ingest_stores_to_warehouse(experiments, "default", NAMESPACE).to_dict()
    ids = ", ".join(d["dataset_id"] for d in warehouse["datasets"])
    written = ", ".join(f"{t['table']} {t['rows_written']} rows" for t in warehouse["tables"])
    print(f"ingested {warehouse['dataset_count']} datasets ({ids}): {written}")
    print(f"catalog tables in {NAMESPACE}: {', '.join(list_catalog_tables('default', NAMESPACE))}")

    # 6. Export experiment-a with its profiles as a Cytomining Parquet warehouse that
    #    pycytominer and friends can read without any catalog.
    export = export_store_to_cytomining_warehouse(
        experiments[0],
        workdir / "warehouse-root",
        profiles=profiles,
        profile_dataset_id="experiment-a",
    )
    for table in export.tables:
        print(f"exported {table.path}: {table.rows_written} rows")
    print(f"warehouse manifest: {export.manifest_path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="quickstart-")))
