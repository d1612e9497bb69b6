"""The scripts in examples/, run as real processes the way a user runs them.

Each example must exit 0, report the join it made (every profile row matched) and
write only inside the WORKDIR it is given: not in the working directory, not in HOME.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from iceberg_bioimage import load_warehouse_manifest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(tmp_path: Path, name: str, *args: str, **env: str) -> str:
    """Run ``examples/<name>`` from an empty cwd and HOME; check both stay empty."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("PYICEBERG_", "ICEBERG_BIOIMAGE_"))
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env={**clean, "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(cwd.iterdir()) == [], "example wrote into its working directory"
    assert list(home.iterdir()) == [], "example wrote into HOME"
    assert "unmatched" not in done.stdout
    return done.stdout


def profile_rows(path: Path) -> int:
    return pq.read_metadata(path).num_rows


def test_quickstart(tmp_path, written_warehouses):
    work = tmp_path / "work"
    written_warehouses.add(work / "warehouse-root")  # validated when the test passes
    out = run_example(tmp_path, "quickstart.py", str(work))
    n = profile_rows(work / "data" / "cells.parquet")
    assert f"work directory: {work}" in out
    assert "registered plate: 12 images, 24 arrays" in out
    assert "summary: zarr-v2, 6 wells x 2 fields" in out
    assert "contract: valid=True" in out
    assert f"joined profiles: {n} of {n} rows matched on dataset_id, well_id" in out
    assert "ingested 2 datasets (experiment-a, experiment-b)" in out
    assert f"exported profiles/joined_profiles: {n} rows" in out
    assert (work / "iceberg-warehouse" / "catalog.db").is_file()
    manifest = load_warehouse_manifest(work / "warehouse-root")
    assert {t.table_name for t in manifest.tables} == {
        "images.image_assets",
        "images.chunk_index",
        "profiles.joined_profiles",
    }


def test_quickstart_reruns_in_the_same_workdir(tmp_path, written_warehouses):
    work = tmp_path / "work"
    written_warehouses.add(work / "warehouse-root")  # validated when the test passes
    first = run_example(tmp_path, "quickstart.py", str(work))
    second = run_example(tmp_path, "quickstart.py", str(work))
    assert second == first  # same rows written again, never duplicated


def test_catalog_duckdb(tmp_path):
    work = tmp_path / "work"
    out = run_example(tmp_path, "catalog_duckdb.py", str(work))
    cells = pq.read_table(work / "data" / "cells.parquet")
    n = cells.num_rows
    assert "registered plate: bioimage.cytotable.chunk_index 120 rows" in out
    assert "well A01 site 0: plate:A/1/0, array A/1/0/0" in out
    assert "chunks of A/1/0/0: 8 " in out
    assert "image_assets now: 30 rows from image, plate, stack" in out
    assert re.search(r"image_assets at snapshot \d+: 24 rows from plate\n", out)
    assert f"joined profiles: {n} of {n} rows matched on dataset_id, well_id" in out
    threshold, count = re.search(r"cells in A01 with area > (\d+) px: (\d+)", out).groups()
    large = cells.filter(
        pc.and_(
            pc.equal(cells["Metadata_Well"], "A01"),
            pc.greater(cells["Cells_AreaShape_Area"], int(threshold)),
        )
    )
    assert int(count) == large.num_rows > 0


def test_synthetic_workflow(tmp_path):
    work = tmp_path / "work"
    out = run_example(tmp_path, "synthetic_workflow.py", str(work))
    cells = pq.read_table(work / "cells.parquet")
    n = cells.num_rows
    assert "contract without dataset id: valid=False, missing dataset_id" in out
    assert "contract: valid=True, join keys dataset_id, image_id" in out
    assert "scanned synthetic (zarr-v3): 3 image_assets rows, 24 chunk_index rows" in out
    assert f"joined profiles: {n} of {n} rows matched on dataset_id, image_id" in out
    assert f"cells x chunks: {n * 8} rows" in out
    assert pq.read_metadata(work / "joined.parquet").num_rows == n
    threshold, count = re.search(r"cells with area > (\d+) px: (\d+)", out).groups()
    assert int(count) == pc.sum(pc.greater(cells["Cells_AreaShape_Area"], int(threshold))).as_py()
    assert not (work / "iceberg-warehouse").exists()  # catalog-free


def test_default_workdir_is_a_fresh_temporary_folder(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = run_example(tmp_path, "synthetic_workflow.py", TMPDIR=str(temp))
    work = Path(re.search(r"work directory: (.+)", out).group(1))
    assert work.parent == temp
    assert (work / "synthetic.zarr").is_dir()


@pytest.mark.parametrize("name", ["quickstart.py", "catalog_duckdb.py"])
def test_catalog_examples_refuse_a_configured_default_catalog(tmp_path, name):
    work = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), str(work)],
        cwd=tmp_path,
        env={**os.environ, "PYICEBERG_CATALOG__DEFAULT__URI": f"sqlite:///{tmp_path}/x.db"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "catalog named 'default' is configured" in done.stderr
    assert not work.exists()
