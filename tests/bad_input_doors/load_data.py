"""Bad LoadData tables (CSV and Parquet): damaged, huge, hostile, or naming files outside.

Each case folder holds ``load_data.csv`` (or ``.parquet``) and, where it scans, small
TIFFs written by tifffile in ``images/``. Case ids start with ``load_data-``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tifffile

CLASS = "load_data"

HEADER = (
    "Metadata_Plate,Metadata_Well,Metadata_Site,FileName_OrigDNA,PathName_OrigDNA,"
    "FileName_OrigRNA,PathName_OrigRNA,FileName_IllumDNA,PathName_IllumDNA"
)
COLUMNS = HEADER.split(",")


def _row(plate: str = "P1", well: str = "A01", site: str = "1", folder: str = "images") -> str:
    return (
        f"{plate},{well},{site},{well}_s{site}_DNA.tif,{folder},{well}_s{site}_RNA.tif,{folder},"
        f"{plate}_IllumDNA.npy,illum"
    )


def _tiffs(folder: Path, sites: tuple[str, ...] = ("1", "2"), well: str = "A01") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for site in sites:
        for channel in ("DNA", "RNA"):
            tifffile.imwrite(
                folder / f"{well}_s{site}_{channel}.tif",
                np.full((16, 16), int(site), dtype="uint16"),
                photometric="minisblack",
            )


def _table(d: Path, lines: list[str], name: str = "load_data.csv") -> Path:
    path = d / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _scan(b: Any, case_id: str, expect: str, names: str, description: str, **kw: Any) -> None:
    table = kw.pop("table", "load_data.csv")
    b.add(case_id, CLASS, ["scan", "--json", table], expect, names, description=description, **kw)


def build(b: Any) -> None:
    """Add the LoadData cases to the builder ``b`` (see :mod:`bad_inputs`)."""
    _readable(b)
    _damaged(b)
    _huge(b)
    _hostile_values(b)
    _outside(b)


def _readable(b: Any) -> None:
    d = b.case("load_data-illum-columns", CLASS)
    _tiffs(d / "images")
    _table(d, [HEADER, _row(site="1"), _row(site="2")])
    _scan(b, d.name, "warning", "FileName_IllumDNA", "illumination .npy columns: warned, not read")

    d = b.case("load_data-parquet-with-illum", CLASS)
    _tiffs(d / "images")
    rows = [_row(site=s).split(",") for s in ("1", "2")]
    table = pa.table({name: [r[i] for r in rows] for i, name in enumerate(COLUMNS)})
    pq.write_table(table, d / "load_data.parquet")
    _scan(
        b,
        d.name,
        "warning",
        "FileName_IllumDNA",
        "a LoadData table in Parquet (JUMP ships them so)",
        table="load_data.parquet",
    )

    d = b.case("load_data-long-field-unused-column", CLASS)
    _tiffs(d / "images", sites=("1",))
    notes = "x" * 200_000  # over csv's default 131,072 field limit, in a column not used
    _table(d, [HEADER + ",Metadata_Notes", _row() + f',"{notes}"'])
    _scan(b, d.name, "warning", "FileName_IllumDNA", "a 200 kB field in a column the scan skips")


def _damaged(b: Any) -> None:
    d = b.case("load_data-not-utf8", CLASS)
    (d / "load_data.csv").write_bytes(
        (HEADER + "\n").encode() + _row(plate="Pl\xe4te").encode("latin-1") + b"\n"
    )
    _scan(b, d.name, "error", "load_data.csv line 2", "a Latin-1 row")

    d = b.case("load_data-short-row", CLASS)
    _table(d, [HEADER, _row(), "P1,A01"])
    _scan(b, d.name, "error", "load_data.csv line 3", "a row of 2 fields under a 9-column header")

    d = b.case("load_data-header-only", CLASS)
    _table(d, [HEADER])
    _scan(b, d.name, "error", "load_data.csv", "a header and no rows")

    d = b.case("load_data-unclosed-quote", CLASS)
    _table(d, [HEADER, '"P1,A01,1,a.tif,images,b.tif,images,c.npy,illum'])
    _scan(b, d.name, "error", "load_data.csv", "a quote that never closes")

    d = b.case("load_data-parquet-truncated", CLASS)
    table = pa.table({name: ["x"] for name in COLUMNS})
    pq.write_table(table, d / "load_data.parquet")
    data = (d / "load_data.parquet").read_bytes()
    (d / "load_data.parquet").write_bytes(data[: len(data) // 2])
    _scan(b, d.name, "error", "load_data.parquet", "Parquet cut in half", table="load_data.parquet")

    d = b.case("load_data-parquet-float-site", CLASS)
    table = pa.table({name: [1.5] if name == "Metadata_Site" else ["x.tif"] for name in COLUMNS})
    pq.write_table(table, d / "load_data.parquet")
    _scan(b, d.name, "error", "Metadata_Site", "a double Metadata_Site", table="load_data.parquet")


def _sparse(path: Path, head: bytes, size: int) -> None:
    with open(path, "wb") as handle:
        handle.write(head)
        handle.seek(size - 1)
        handle.write(b"x")


def _huge(b: Any) -> None:
    d = b.case("load_data-3gib-without-newline", CLASS)
    _sparse(d / "load_data.csv", (HEADER + "\n" + "P1,A01,").encode(), 3 * 2**30)
    _scan(b, d.name, "error", "load_data.csv line 2", "3 GiB row (sparse)", hazard=True)

    d = b.case("load_data-3gib-no-newline-at-all", CLASS)
    _sparse(d / "load_data.csv", HEADER.encode(), 3 * 2**30)
    _scan(b, d.name, "error", "load_data.csv", "3 GiB without one newline (sparse)", hazard=True)

    d = b.case("load_data-million-duplicate-rows", CLASS)
    with open(d / "load_data.csv", "w", encoding="utf-8") as handle:
        handle.write(HEADER + "\n")
        line = _row() + "\n"
        for _ in range(100):
            handle.write(line * 10_000)
    _scan(b, d.name, "error", "load_data.csv row 2", "10^6 rows naming one image", hazard=True)

    d = b.case("load_data-over-the-row-limit", CLASS)
    with open(d / "load_data.csv", "w", encoding="utf-8") as handle:
        handle.write(HEADER + "\n")
        handle.writelines(f"P1,A01,{site},a.tif,images,b.tif,images,,\n" for site in range(300_000))
    _scan(b, d.name, "error", "ICEBERG_BIOIMAGE_MAX_TABLE_ROWS", "300,000 rows", hazard=True)

    d = b.case("load_data-row-limit-from-environment", CLASS)
    _tiffs(d / "images")
    _table(d, [HEADER, _row(site="1"), _row(site="2")])
    _scan(
        b,
        d.name,
        "error",
        "ICEBERG_BIOIMAGE_MAX_TABLE_ROWS",
        "two rows under a one-row limit",
        env={"ICEBERG_BIOIMAGE_MAX_TABLE_ROWS": "1"},
    )


def _hostile_values(b: Any) -> None:
    for case_id, row, names, description in (
        ("load_data-nul-in-site", _row(site="1\x00"), "Metadata_Site", "NUL in Metadata_Site"),
        ("load_data-escape-in-plate", _row(plate="P\x1b[2J"), "Metadata_Plate", "ESC in a plate"),
        (
            "load_data-nul-in-pathname",
            _row(folder="images\x00/x"),
            "PathName_OrigDNA",
            "NUL in a PathName_",
        ),
        ("load_data-empty-site", _row(site=""), "Metadata_Site", "an empty Metadata_Site"),
        ("load_data-bad-well", _row(well="A1B2"), "Metadata_Well", "a well that is no well"),
        (
            "load_data-huge-site-value",
            _row(site="9" * 10_000),
            "ICEBERG_BIOIMAGE_MAX_VALUE_CHARS",
            "a 10,000-character Metadata_Site",
        ),
    ):
        d = b.case(case_id, CLASS)
        _tiffs(d / "images", sites=("1",))
        _table(d, [HEADER, row])
        _scan(b, d.name, "error", names, description)

    d = b.case("load_data-same-image-two-spellings", CLASS)
    _tiffs(d / "images", sites=("1",))
    _table(d, [HEADER, _row(well="A01"), _row(well="a1")])
    _scan(b, d.name, "error", "load_data.csv row 2", "A01 and a1, site 1: one image twice")

    d = b.case("load_data-two-plates", CLASS)
    _tiffs(d / "images", sites=("1",))
    _table(d, [HEADER, _row(plate="P1"), _row(plate="P2")])
    _scan(b, d.name, "error", "--plate-id", "two plates and no --plate-id")


def _outside(b: Any) -> None:
    up = f"../{b.outside.name}"  # from the case folder to OUTDIR/outside
    d = b.case("load_data-names-outside-non-tiff", CLASS)
    _table(
        d,
        [
            "Metadata_Plate,Metadata_Well,Metadata_Site,FileName_DNA,PathName_DNA",
            f"P1,A01,1,victim.txt,{up}",
        ],
    )
    _scan(b, d.name, "error", "no column names TIFF images", "only a non-TIFF outside file")

    d = b.case("load_data-tiff-column-names-outside-text", CLASS)
    _tiffs(d / "images", sites=("1",))
    _table(
        d,
        [
            HEADER,
            _row(),
            f"P1,A01,2,victim.txt,{up},A01_s1_RNA.tif,images,P1_IllumDNA.npy,illum",
        ],
    )
    _scan(b, d.name, "error", "FileName_OrigDNA", "a TIFF column naming ../outside/victim.txt")

    d = b.case("load_data-names-a-fifo", CLASS)
    _tiffs(d / "images", sites=("1",))
    os.remove(d / "images" / "A01_s1_DNA.tif")
    os.mkfifo(d / "images" / "A01_s1_DNA.tif")
    _table(d, [HEADER, _row()])
    _scan(b, d.name, "error", "images/A01_s1_DNA.tif", "a FIFO named as a TIFF", hazard=True)

    d = b.case("load_data-names-dev-zero", CLASS)
    _tiffs(d / "images", sites=("1",))
    _table(d, [HEADER, "P1,A01,1,zero,/dev,A01_s1_RNA.tif,images,P1_IllumDNA.npy,illum"])
    _scan(b, d.name, "error", "/dev/zero:", "/dev/zero named as a channel file", hazard=True)
