"""Profile sources read from real files (tests/data/real), checked with independent readers.

* Cell Health cytominer-database SQLite (``test-SQ00014613.sqlite``): one text ``'nan'``
  in the FLOAT column ``Nuclei_Correlation_Costes_AGP_DNA`` (ImageNumber 3186,
  ObjectNumber 5) must not stop the Nuclei table.
* JUMP SQLite (``test_BR00126114.sqlite``): every column declared TEXT; numbers must
  come out as numbers (``max(ObjectNumber)`` is ``'9'`` as text, 10 as a number).
* JUMP LoadData Parquet: ``Metadata_Source`` = ``source_4`` is the contributing centre,
  never the dataset id.

Expected values come from ``sqlite3`` and ``pyarrow.parquet`` reading the same files.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fixtures import writers
from iceberg_bioimage import (
    ProfileOptions,
    api,
    validate_microscopy_profile_table,
    validate_warehouse,
)
from iceberg_bioimage.cli import main

REAL = Path(__file__).parents[1] / "data" / "real"
CELL_HEALTH = REAL / "cytotable" / "cytominer-database" / "Cell-Health" / "test-SQ00014613.sqlite"
JUMP = REAL / "pycytominer" / "cell_locations_example_data" / "test_BR00126114.sqlite"
JUMP_LOAD_DATA = JUMP.with_name("test_BR00126114_load_data_with_illum.parquet")
NAN_COLUMN = "Nuclei_Correlation_Costes_AGP_DNA"


def _sqlite(path: Path, sql: str) -> list[tuple]:
    """Rows from the standard library's sqlite3, opened read-only and immutable."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _plate(root: Path, name: str, wells: list[str], fields: int) -> Path:
    """An OME-NGFF 0.4 plate ``<name>.ome.zarr`` holding ``wells`` (``A/1``…)."""
    rows = sorted({w.split("/")[0] for w in wells})
    columns = sorted({w.split("/")[1] for w in wells}, key=int)
    plate = writers._write_ngff_plate(
        root,
        name=name,
        fmt=writers._ome_zarr().format.FormatV04(),
        rows=rows,
        columns=columns,
        wells=wells,
        fields=[str(f) for f in range(fields)],
    )
    return Path(plate.path)


@pytest.fixture(scope="module")
def cell_health_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plate SQ00014613 with the two wells the Cell Health SQLite names (A01, O18)."""
    return _plate(tmp_path_factory.mktemp("ch"), "SQ00014613", ["A/1", "O/18"], 10)


def test_cell_health_text_nan_does_not_stop_the_nuclei_table(
    cell_health_plate: Path, tmp_path: Path
) -> None:
    result = api.export_store_to_cytomining_warehouse(
        cell_health_plate,
        tmp_path / "wh",
        profiles=CELL_HEALTH,
        options=ProfileOptions(site_base=0),
        include_chunks=False,
    )
    counts = {t: _sqlite(CELL_HEALTH, f"SELECT count(*) FROM {t}")[0][0] for t in
              ("Nuclei", "Cells", "Cytoplasm")}  # fmt: skip
    assert counts == {"Nuclei": 12, "Cells": 12, "Cytoplasm": 12}  # FACTS.md
    for compartment, expected in counts.items():
        table = pq.read_table(tmp_path / "wh" / "profiles" / f"{compartment.lower()}_profiles")
        assert table.num_rows == expected, compartment
    nuclei = pq.read_table(tmp_path / "wh" / "profiles" / "nuclei_profiles")
    assert nuclei.schema.field(NAN_COLUMN).type == "double"
    at = nuclei.filter(
        pc.and_(pc.equal(nuclei["ImageNumber"], 3186), pc.equal(nuclei["ObjectNumber"], 5))
    )
    assert at.num_rows == 1 and math.isnan(at[NAN_COLUMN][0].as_py())
    # every other value of that column is the REAL sqlite3 holds, bit for bit
    sql = f"SELECT ImageNumber, ObjectNumber, {NAN_COLUMN} FROM Nuclei"
    expected = {(i, o): v for i, o, v in _sqlite(CELL_HEALTH, sql)}
    keys = ("ImageNumber", "ObjectNumber", NAN_COLUMN)
    got = zip(*(nuclei[c].to_pylist() for c in keys), strict=True)
    for image, obj, value in got:
        if (image, obj) != (3186, 5):
            assert value == expected[(image, obj)]
    # O18 site 9 is ImageNumber 3186 (FACTS.md): its nuclei reach field 9 of well O18
    assert set(at["image_id"].to_pylist()) == {"SQ00014613:O/18/9"}
    assert any("'nan' × 1" in w for w in result.warnings + _join_warnings(result))
    check = validate_warehouse(tmp_path / "wh")
    assert check.is_valid, check.errors


def _join_warnings(result: api.CytominingExportResult) -> tuple[str, ...]:
    return tuple(w for join in result.joins for w in join.get("warnings", []))


def test_jump_text_columns_come_out_as_numbers(tmp_path: Path) -> None:
    plate = _plate(tmp_path, "BR00126114", ["A/1"], 3)
    joined = api.join_profiles_with_store(plate, JUMP, options=ProfileOptions(site_base=0))
    assert _sqlite(JUMP, "SELECT max(ObjectNumber), count(*) FROM Nuclei")[0] == ("9", 20)
    assert joined.num_rows == 20
    assert joined.schema.field("ObjectNumber").type == "int64"
    assert max(joined["ObjectNumber"].to_pylist()) == 10
    assert joined.schema.field("Nuclei_Location_Center_X").type == "double"
    sql = "SELECT ImageNumber, ObjectNumber, Nuclei_Location_Center_X FROM Nuclei"
    expected = {(int(i), int(o)): float(x) for i, o, x in _sqlite(JUMP, sql)}
    keys = ("ImageNumber", "ObjectNumber", "Nuclei_Location_Center_X")
    got = zip(*(joined[c].to_pylist() for c in keys), strict=True)
    assert {(i, o): x for i, o, x in got} == expected
    # TableNumber names a table: it stays text even though these values are digits
    assert joined.schema.field("TableNumber").type == "string"
    assert set(joined["image_id"].to_pylist()) == {"BR00126114:A/1/1", "BR00126114:A/1/2"}


def test_jump_metadata_source_is_not_the_dataset(tmp_path: Path) -> None:
    source = pq.read_table(JUMP_LOAD_DATA)
    assert set(source["Metadata_Source"].to_pylist()) == {"source_4"}
    contract = validate_microscopy_profile_table(JUMP_LOAD_DATA)
    assert "dataset_id" not in contract.resolved_aliases
    assert contract.missing_columns == ("dataset_id",)
    contract = validate_microscopy_profile_table(JUMP_LOAD_DATA, profile_dataset_id="BR00126114")
    assert contract.is_valid and contract.profile_dataset_id == "BR00126114"
    plate = _plate(tmp_path, "BR00126114", ["A/1"], 3)
    joined = api.join_profiles_with_store(
        plate, JUMP_LOAD_DATA, options=ProfileOptions(site_base=0)
    )
    assert set(joined["dataset_id"].to_pylist()) == {"BR00126114"}
    assert joined.num_rows == source.num_rows


def test_explicit_dataset_id_wins_over_a_dataset_column(tmp_path: Path) -> None:
    table = pq.read_table(JUMP_LOAD_DATA).append_column(
        "Metadata_dataset_id", pc.cast(pq.read_table(JUMP_LOAD_DATA)["Metadata_Source"], "string")
    )
    path = tmp_path / "with_dataset_column.parquet"
    pq.write_table(table, path)
    result = CliRunner().invoke(
        main, ["validate-contract", "--json", str(path), "--profile-dataset-id", "BR00126114"]
    )
    assert result.exit_code == 0, result.output
    assert '"profile_dataset_id": "BR00126114"' in result.stdout
    assert "'Metadata_dataset_id' ignored" in result.stdout


def test_a_wal_database_is_read_without_a_file_beside_it(
    cell_health_plate: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "backend"
    folder.mkdir()
    copy = Path(shutil.copy(CELL_HEALTH, folder / "cp.sqlite"))
    con = sqlite3.connect(copy)
    assert con.execute("PRAGMA journal_mode=wal").fetchone() == ("wal",)
    con.close()
    assert os.listdir(folder) == ["cp.sqlite"]
    api.export_store_to_cytomining_warehouse(
        cell_health_plate,
        tmp_path / "wh",
        profiles=copy,
        options=ProfileOptions(site_base=0),
        include_chunks=False,
    )
    assert os.listdir(folder) == ["cp.sqlite"]  # no cp.sqlite-shm, no -wal
    nuclei = pq.read_table(tmp_path / "wh" / "profiles" / "nuclei_profiles")
    assert nuclei.num_rows == 12
    assert validate_warehouse(tmp_path / "wh").is_valid


_HOLD_LOCK = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
"""


def test_a_locked_database_is_refused_by_name(cell_health_plate: Path, tmp_path: Path) -> None:
    """Another process holds an exclusive lock: one error line naming the file, exit 2."""
    copy = Path(shutil.copy(CELL_HEALTH, tmp_path / "cp.sqlite"))
    holder = subprocess.Popen(  # POSIX locks are per process: the holder must be another
        [sys.executable, "-c", _HOLD_LOCK, str(copy)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            sqlite3.connect(copy, timeout=0).execute("SELECT count(*) FROM Nuclei").fetchall()
        result = CliRunner().invoke(
            main,
            ["join-profiles", "--json", str(cell_health_plate), str(copy),
             "--compartment", "nuclei", "--site-base", "0"],
        )  # fmt: skip
    finally:
        holder.communicate("done\n", timeout=30)
    assert os.listdir(tmp_path) == ["cp.sqlite"]
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(copy) in errors[0] and "locked by another process" in errors[0]


def test_real_per_site_tree_with_columns_written_twice():
    """cpg0043's per-site folders: preCells_Cellpose3.csv repeats four columns (same values)."""
    import csv

    from iceberg_bioimage.profiles.sources import read_profile_set

    root = REAL / "cytotable" / "cellprofiler" / "cpg0043-segmentation"
    profile_set = read_profile_set(root)
    sites = sorted(p for p in root.iterdir() if p.is_dir())
    for stem in ("preCells_Cellpose3", "preNuclei_Cellpose3"):
        rows = 0
        for site in sites:
            with (site / f"{stem}.csv").open(newline="") as handle:
                reader = csv.reader(handle)
                header = next(reader)
                rows += sum(1 for _ in reader)
        table = profile_set.tables[stem.lower()]
        assert table.num_rows == rows
        assert set(header) <= set(table.column_names)
        assert len(table.column_names) == len(set(table.column_names))
    with (sites[0] / "Image.csv").open(newline="") as handle:
        image_rows = sum(1 for _ in csv.DictReader(handle))
    assert profile_set.image is not None and profile_set.image.num_rows >= image_rows
