"""Hostile CellProfiler SQLite files: foreign, damaged, huge values, odd modes.

Each case joins a good plate with ``cp.sqlite``, a CellProfiler-style database
(``Image`` with ``Image_Metadata_Plate/Well/Site``, ``Nuclei`` keyed by
``ImageNumber``) written by the standard library's ``sqlite3``, then damaged.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bad_inputs import _fifo, _ngff_plate, _symlink, _truncate

CLASS = "sqlite"
ARGV = ["join-profiles", "plate.ome.zarr", "cp.sqlite"]


def _plate(b: Any) -> Path:
    return b.template("sqlite-plate2.ome.zarr", lambda p: _ngff_plate(p, 2))


def write_database(
    path: Path,
    *,
    nuclei_columns: str = "ImageNumber INTEGER, ObjectNumber INTEGER, Nuclei_AreaShape_Area REAL",
    nuclei_rows: list[tuple[Any, ...]] | None = None,
    wal: bool = False,
    extra: Callable[[sqlite3.Connection], None] | None = None,
) -> Path:
    """A small CellProfiler database: 1 image (plate A01 site 0), 3 nuclei."""
    con = sqlite3.connect(path)
    if wal:
        con.execute("PRAGMA journal_mode=wal")
    con.execute(
        "CREATE TABLE Image (ImageNumber INTEGER, Image_Metadata_Plate TEXT, "
        "Image_Metadata_Well TEXT, Image_Metadata_Site INTEGER)"
    )
    con.execute("INSERT INTO Image VALUES (1, 'plate', 'A01', 0)")
    con.execute(f"CREATE TABLE Nuclei ({nuclei_columns})")
    rows = nuclei_rows or [(1, 1, 10.5), (1, 2, 11.0), (1, 3, 12.25)]
    marks = ", ".join("?" * len(rows[0]))
    con.executemany(f"INSERT INTO Nuclei VALUES ({marks})", rows)
    if extra is not None:
        extra(con)
    con.commit()
    con.close()
    return path


def _setup(b: Any, case_id: str) -> Path:
    d = b.case(case_id, CLASS)
    b.copy(_plate(b), d / "plate.ome.zarr")
    return d


def _add(b: Any, case_id: str, expect: str, names: str, what: str, **kw: Any) -> None:
    argv = kw.pop("argv", ARGV)
    b.add(case_id, CLASS, argv, expect, names, description=what, **kw)


def build(b: Any) -> None:
    """Add the SQLite cases."""
    d = _setup(b, "sqlite-not-a-database")
    (d / "cp.sqlite").write_bytes(bytes(range(256)) * 16)
    _add(b, d.name, "error", "cp.sqlite", "binary garbage named .sqlite")

    d = _setup(b, "sqlite-header-then-garbage")
    (d / "cp.sqlite").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    _add(b, d.name, "error", "cp.sqlite", "the SQLite magic, then garbage")

    d = _setup(b, "sqlite-truncated-half")
    write_database(d / "cp.sqlite")
    _truncate(d / "cp.sqlite")
    _add(b, d.name, "error", "cp.sqlite", "a database cut in half (malformed)")

    d = _setup(b, "sqlite-truncated-header")
    write_database(d / "cp.sqlite")
    _truncate(d / "cp.sqlite", 100)
    _add(b, d.name, "error", "cp.sqlite", "only the 100-byte header is left")

    d = _setup(b, "sqlite-empty-file")
    (d / "cp.sqlite").write_bytes(b"")
    _add(b, d.name, "error", "cp.sqlite", "a zero-byte .sqlite")

    d = _setup(b, "sqlite-no-tables")
    con = sqlite3.connect(d / "cp.sqlite")
    con.execute("CREATE TABLE gone (x)")
    con.execute("DROP TABLE gone")
    con.commit()
    con.close()
    _add(b, d.name, "error", "cp.sqlite", "a valid database without tables")

    d = _setup(b, "sqlite-fifo")
    _fifo(d / "cp.sqlite")
    _add(b, d.name, "error", "cp.sqlite", "cp.sqlite is a FIFO", hazard=True)

    d = _setup(b, "sqlite-dev-zero")
    _symlink(d / "cp.sqlite", "/dev/zero")
    _add(b, d.name, "error", "cp.sqlite", "cp.sqlite links to /dev/zero", hazard=True)

    def generated(table: str) -> Callable[[sqlite3.Connection], None]:
        def add(con: sqlite3.Connection) -> None:
            con.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
            columns = {
                "Nuclei": "ImageNumber INTEGER, ObjectNumber INTEGER, Nuclei_AreaShape_Area REAL",
                "Image": "ImageNumber INTEGER, Image_Metadata_Plate TEXT, "
                "Image_Metadata_Well TEXT, Image_Metadata_Site INTEGER",
            }[table]
            con.execute(
                f"CREATE TABLE {table} ({columns}, Huge TEXT GENERATED ALWAYS AS "
                "(printf('%.*c', 400000000, 'x')) VIRTUAL)"
            )
            con.execute(f"INSERT INTO {table} SELECT * FROM old_{table}")
            con.execute(f"DROP TABLE old_{table}")

        return add

    for table in ("Nuclei", "Image"):
        d = _setup(b, f"sqlite-generated-400mb-{table.lower()}")
        write_database(d / "cp.sqlite", extra=generated(table))
        _add(
            b,
            d.name,
            "error",
            "cp.sqlite",
            f"{table} has a generated column of 400 MB per row",
            hazard=True,
        )

    d = _setup(b, "sqlite-value-over-field-limit")
    write_database(
        d / "cp.sqlite",
        nuclei_columns="ImageNumber INTEGER, ObjectNumber INTEGER, Nuclei_Note TEXT",
        nuclei_rows=[(1, 1, "x" * 5000)],
    )
    _add(
        b,
        d.name,
        "error",
        "cp.sqlite",
        "a 5,000-byte value over ICEBERG_BIOIMAGE_MAX_FIELD_BYTES=1000",
        env={"ICEBERG_BIOIMAGE_MAX_FIELD_BYTES": "1000"},
    )

    d = _setup(b, "sqlite-text-nan-in-real")
    write_database(d / "cp.sqlite", nuclei_rows=[(1, 1, "nan"), (1, 2, "inf"), (1, 3, "")])
    _add(b, d.name, "warning", "cp.sqlite:Nuclei", "text 'nan', 'inf', '' in a REAL column")

    d = _setup(b, "sqlite-all-text-columns")
    write_database(
        d / "cp.sqlite",
        nuclei_columns="ImageNumber TEXT, ObjectNumber TEXT, Nuclei_AreaShape_Area TEXT",
        nuclei_rows=[("1", str(n), f"{n}.5") for n in range(1, 11)],
    )
    _add(b, d.name, "ok", "", "every column TEXT (JUMP style): read as numbers")

    d = _setup(b, "sqlite-wal-mode")
    write_database(d / "cp.sqlite", wal=True)
    _add(b, d.name, "ok", "", "a WAL-mode database: read immutable, no -shm beside it")

    d = _setup(b, "sqlite-hot-journal-beside")
    write_database(d / "cp.sqlite")
    (d / "cp.sqlite-journal").write_bytes(bytes(range(256)) * 4)
    _add(b, d.name, "error", "cp.sqlite", "a hot -journal beside the file: refused, never replayed")

    d = _setup(b, "sqlite-wal-pending")
    write_database(d / "cp.sqlite", wal=True)
    (d / "cp.sqlite-wal").write_bytes(bytes(range(256)) * 4)
    _add(b, d.name, "error", "cp.sqlite", "a non-empty -wal beside the file: refused")

    d = _setup(b, "sqlite-symlink-outside-table")
    write_database(d / "cp.sqlite")
    os.symlink(os.path.realpath(b.outside / "victim.txt"), d / "Nuclei.csv")
    _add(b, d.name, "ok", "", "a symlink out beside the SQLite: not part of the source")
