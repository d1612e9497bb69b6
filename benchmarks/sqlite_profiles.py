"""Join a CellProfiler SQLite's nuclei to the 384-well plate and export them, against its floor.

Usage::

    uv run python benchmarks/sqlite_profiles.py [--repeat 3] [--warmup 1] [--json] [--check]

Input (generated once, cached under ``benchmarks/.cache``): the 384-well × 9-field
benchmark plate (``plate.py``, OME-NGFF fields ``0..8``) and the cytominer-database
SQLite of a CellProfiler run over it (``_cellprofiler_sqlite.py``): ``Image`` (3,456
rows, ``Image_Metadata_Plate/Well/Site`` with 1-based sites, ``TableNumber`` +
``ImageNumber``), ``Nuclei`` (1,000,000 objects × 100 features) and ``Cells``.

Cases, alternated A/B in fresh processes (imports excluded from the time):

* ``floor``: DuckDB's ``sqlite_scan`` reads the ``Image`` and ``Nuclei`` tables into
  Arrow: the cost of getting the rows out of SQLite at all.
* ``ours``: ``export_store_to_cytomining_warehouse(plate, out, profiles=sqlite,
  options=ProfileOptions(compartment="nuclei", site_base=1), include_chunks=False)``:
  scan the plate, read the SQLite, reach each nucleus's image through ``TableNumber`` +
  ``ImageNumber``, map 1-based sites to the fields, add object ids, write ``images.image_assets``,
  ``profiles.nuclei_profiles`` and ``profiles.joined_profiles``, manifest last.
  The child checks (untimed) that all 1,000,000 nuclei matched.

Bar: ours <= 2x the floor (median wall), peak RSS <= 1.5 GiB.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from _cellprofiler_sqlite import SqliteParameters, ensure_benchmark_sqlite
from _measure import run_once
from _report import AB, parse_args, prepare_plate, report, verdict

TARGET_RATIO = 2.0
TARGET_RSS_MIB = 1536.0
RUN_TIMEOUT_S = 1800.0

SETUP = """\
import duckdb, pyarrow
from iceberg_bioimage.api import ProfileOptions, export_store_to_cytomining_warehouse
from iceberg_bioimage.profiles.sqlite import _duckdb_scanner
"""

FLOOR = """\
con = _duckdb_scanner()
assert con is not None, "DuckDB's sqlite_scanner is not available"
image = con.execute("SELECT * FROM sqlite_scan(?, 'Image')", [sqlite_path]).to_arrow_table()
nuclei = con.execute("SELECT * FROM sqlite_scan(?, 'Nuclei')", [sqlite_path]).to_arrow_table()
"""

CHECK_FLOOR = """\
assert nuclei.num_rows == n_nuclei, nuclei.num_rows
"""

OURS = """\
r = export_store_to_cytomining_warehouse(
    plate_path, out, profiles=sqlite_path,
    options=ProfileOptions(compartment="nuclei", site_base=1), include_chunks=False,
)
"""

CHECK_OURS = """\
assert r.join["matched_rows"] == n_nuclei and r.join["unmatched_rows"] == 0, r.join
_rows = {w.table_name: w.rows_written for w in r.tables}
assert _rows["profiles.nuclei_profiles"] == n_nuclei, _rows
"""


def _run(name: str, variables: dict) -> object:
    out = Path(tempfile.mkdtemp(prefix="iceberg-bioimage-sqlite-"))
    try:
        work, check = (OURS, CHECK_OURS) if name == "ours" else (FLOOR, CHECK_FLOOR)
        return run_once(
            work, SETUP, {**variables, "out": str(out / "wh")}, RUN_TIMEOUT_S, check=check
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Alternate ours and the floor; report medians, the ratio and the verdicts."""
    args = parse_args("Join a CellProfiler SQLite's nuclei to a 384-well plate.", argv)
    plate_path, info = prepare_plate(args.cache_dir)
    start = time.perf_counter()
    params = SqliteParameters()
    sqlite_path = ensure_benchmark_sqlite(args.cache_dir, params=params)
    ensure_s = time.perf_counter() - start
    variables = {
        "plate_path": str(plate_path),
        "sqlite_path": str(sqlite_path),
        "n_nuclei": params.nuclei,
    }
    ab = AB.measure(args, lambda name: _run(name, variables), ("floor", "ours"))
    ours, floor, ratio = ab.ours, ab.floor, ab.ratio
    results = [
        {**verdict(floor, float("inf"), None), "name": "floor (duckdb)"},
        {**verdict(ours, TARGET_RATIO * floor.median_s, TARGET_RSS_MIB), "name": "ours (export)"},
    ]
    heading = [
        f"sqlite: {sqlite_path} ({sqlite_path.stat().st_size / 2**20:,.0f} MiB; "
        f"{params.nuclei:,} nuclei × {params.nuclei_features} features; ensure {ensure_s:.1f} s)",
    ]

    def notes(_results: list) -> list[str]:
        rss_ok = ours.peak_rss_mib <= TARGET_RSS_MIB
        return [
            ab.ratio_line(TARGET_RATIO, ratio <= TARGET_RATIO),
            f"peak RSS ours {ours.peak_rss_mib:.0f} MiB (bar <= {TARGET_RSS_MIB:g}) -> "
            f"{'PASS' if rss_ok else 'FAIL'}; floor {floor.peak_rss_mib:.0f} MiB",
            *ab.tail_lines(args.repeat),
        ]

    return report(
        args,
        info,
        results,
        notes,
        extra=ab.extra(),
        heading=heading,
        per_process="A/B alternating, ",
    )


if __name__ == "__main__":
    sys.exit(main())
