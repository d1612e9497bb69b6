"""Benchmark exporting the 384-well benchmark plate and joining profiles to it.

Usage::

    uv run python benchmarks/export_plate.py [--repeat 5] [--warmup 1] [--json] [--check]

Cases (each run in a fresh subprocess; imports are timed separately and
excluded from the reported time):

* ``export-cytomining``: ``export_store_to_cytomining_warehouse(plate, out)``
  (scan + ``image_assets`` + ``chunk_index``, written as Parquet) into a fresh,
  empty warehouse folder ``out`` per run, created and removed by this (parent)
  process under the system temporary directory.  Afterwards (untimed) the child
  checks ``rows_written``: 10,368 ``image_assets`` and 857,088 ``chunk_index``.
* ``join-profiles``: ``join_profiles_with_store(plate, profiles_path)`` with a
  synthetic CellProfiler-style profile table of 1,000,000 single-cell rows
  (``Metadata_Plate``, ``Metadata_Well`` "A01".."P24", ``Metadata_Site`` 0..8,
  ``ObjectNumber`` and 10 float features) spread over all 3,456 fields.  The
  Parquet file is generated once (deterministic seed) and cached next to the
  plate.  Afterwards (untimed) the child checks that all 1,000,000 rows come
  back and that ``join_report`` counts no unmatched rows.

The exit code is 0 unless ``--check`` is given, in which case a missed target
(or a failed run) gives exit code 1.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _measure import MeasureError, Run, run_once
from _report import measure_in_folders, parse_args, prepare_plate, report, run_cases, verdict
from plate import (
    COLUMNS,
    DEFAULT_CACHE_DIR,
    FIELD_COUNT,
    N_ARRAYS,
    N_CHUNKS,
    PLATE_NAME,
    ROWS,
    ensure_cached,
)

#: Performance targets (``None``: reported, no target).
TARGET_RSS_MIB = 500.0
#: Published iceberg-bioimage 0.1.0 figures for the export workload; 0.1.0
#: cannot join CellProfiler profiles to an HCS plate at all.
REFERENCE_S = 25.0
REFERENCE_RSS_MB = 670.0
#: A run taking longer than this is reported as failed.
RUN_TIMEOUT_S = 900.0

#: Synthetic profile table (bump PROFILES_VERSION when the layout changes).
PROFILE_ROWS = 1_000_000
PROFILE_SEED = 20240611
PROFILES_VERSION = 1
PROFILES_NAME = f"bench_profiles_{PROFILE_ROWS}.parquet"
PROFILES_MARKER = f"{PROFILES_NAME}.complete"
PROFILES_LOCK = f"{PROFILES_NAME}.lock"
FEATURE_COLUMNS: tuple[str, ...] = (
    "Cells_AreaShape_Area",
    "Cells_AreaShape_Eccentricity",
    "Cells_Intensity_MeanIntensity_DNA",
    "Cells_Intensity_MeanIntensity_RNA",
    "Cells_Texture_Contrast_RNA_3_00_256",
    "Nuclei_AreaShape_Area",
    "Nuclei_AreaShape_FormFactor",
    "Nuclei_Intensity_IntegratedIntensity_DNA",
    "Nuclei_Granularity_1_DNA",
    "Cytoplasm_Intensity_StdIntensity_RNA",
)

SETUP = """\
import pyarrow
from iceberg_bioimage.api import export_store_to_cytomining_warehouse, join_profiles_with_store
from iceberg_bioimage.profiles.join_tables import join_report
"""

WORK_EXPORT = """\
r = export_store_to_cytomining_warehouse(plate_path, out)
"""

CHECK_EXPORT = """\
import os
_rows = {w.role: w.rows_written for w in r.tables}
assert _rows.get("image_assets") == n_arrays, f"image_assets rows_written: {_rows}"
assert _rows.get("chunk_index") == n_chunks, f"chunk_index rows_written: {_rows}"
assert os.path.isfile(r.manifest_path), f"no manifest at {r.manifest_path}"
"""

WORK_JOIN = """\
t = join_profiles_with_store(plate_path, profiles_path)
"""

CHECK_JOIN = """\
assert t.num_rows == n_profile_rows, f"joined rows: {t.num_rows} != {n_profile_rows}"
_report = join_report(t)
assert _report.get("unmatched_rows") == 0, f"join report: {_report}"
assert _report.get("matched_rows") == n_profile_rows, f"join report: {_report}"
"""


@dataclass(frozen=True)
class Case:
    """One benchmark case and its targets."""

    name: str
    work: str
    check: str
    target_s: float
    target_rss_mib: float | None
    #: Give every run a fresh, empty output folder (the ``out`` variable).
    needs_out: bool = False


CASES: tuple[Case, ...] = (
    Case("export-cytomining", WORK_EXPORT, CHECK_EXPORT, 3.0, TARGET_RSS_MIB, needs_out=True),
    Case("join-profiles", WORK_JOIN, CHECK_JOIN, 5.0, None),
)


# -- Synthetic profiles --------------------------------------------------------


def write_profiles(path: Path) -> None:
    """Write the synthetic CellProfiler-style single-cell profile table to ``path``.

    Rows are grouped by field (well-major, then site) as CellProfiler emits them;
    each of the 3,456 fields gets 289 or 290 cells (which fields get the extra
    cell is drawn from the seeded generator), numbered from ``ObjectNumber`` 1.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(PROFILE_SEED)
    wells = [f"{r}{int(c):02d}" for r in ROWS for c in COLUMNS]
    n_fields = len(wells) * FIELD_COUNT
    base, extra = divmod(PROFILE_ROWS, n_fields)
    counts = np.full(n_fields, base, dtype=np.int64)
    counts[rng.choice(n_fields, size=extra, replace=False)] += 1
    assert int(counts.sum()) == PROFILE_ROWS

    field = np.repeat(np.arange(n_fields, dtype=np.int64), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    object_number = np.arange(PROFILE_ROWS, dtype=np.int64) - starts + 1
    well_index = field // FIELD_COUNT
    columns: dict[str, pa.Array] = {
        "Metadata_Plate": pa.array(np.full(PROFILE_ROWS, PLATE_NAME, dtype=object), pa.string()),
        "Metadata_Well": pa.array(np.asarray(wells, dtype=object)[well_index], pa.string()),
        "Metadata_Site": pa.array(field % FIELD_COUNT, pa.int64()),
        "ObjectNumber": pa.array(object_number, pa.int64()),
    }
    for i, name in enumerate(FEATURE_COLUMNS):
        values = rng.normal(loc=100.0 * (i + 1), scale=10.0 * (i + 1), size=PROFILE_ROWS)
        columns[name] = pa.array(values, pa.float64())
    table = pa.table(columns)
    pq.write_table(table, path, compression="zstd", row_group_size=128 * 1024)


def _profiles_marker_payload() -> dict[str, Any]:
    """Return the content of the profiles completion marker."""
    return {
        "version": PROFILES_VERSION,
        "rows": PROFILE_ROWS,
        "seed": PROFILE_SEED,
        "features": list(FEATURE_COLUMNS),
    }


def ensure_benchmark_profiles(cache_dir: Path | None = None, force: bool = False) -> Path:
    """Return the path of the synthetic profile table, generating it on first use."""
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    return ensure_cached(
        cache_dir / PROFILES_NAME,
        marker=cache_dir / PROFILES_MARKER,
        lock=cache_dir / PROFILES_LOCK,
        payload=_profiles_marker_payload(),
        build=write_profiles,
        force=force,
    )


# -- Running and reporting -----------------------------------------------------


def _run(case: Case, variables: dict[str, Any], out: Path | None) -> Run:
    """Run ``case`` once in a fresh process, writing into ``out``; a timeout is a failure."""
    run_vars = {**variables, "out": str(out) if out else None}
    try:
        return run_once(case.work, SETUP, run_vars, RUN_TIMEOUT_S, check=case.check)
    except subprocess.TimeoutExpired as exc:
        raise MeasureError(f"run timed out after {exc.timeout:g} s") from exc


def _evaluate(case: Case, variables: dict[str, Any], repeat: int, warmup: int) -> dict[str, Any]:
    """Measure ``case`` and judge it against its targets.

    Cases with ``needs_out`` get a fresh, empty output folder per run (removed
    afterwards) and report its median size on disk and the speed-up over the
    reference; the others report profile rows per second.
    """
    prefix = "iceberg-bioimage-export-" if case.needs_out else None
    m, sizes_mib = measure_in_folders(
        case.name, lambda out: _run(case, variables, out), repeat, warmup, prefix
    )
    result = verdict(m, case.target_s, case.target_rss_mib)
    if sizes_mib:
        result["median_output_mib"] = statistics.median(sizes_mib)
    if case.needs_out:
        result["speedup_vs_reference"] = REFERENCE_S / m.median_s
    else:
        result["rows_per_s"] = PROFILE_ROWS / m.median_s
    return result


def _summary_notes(results: list[dict[str, Any]]) -> Iterator[str]:
    """Compare the export with the reference figures and give the join's throughput."""
    for r in results:
        if "error" in r:
            continue
        if "speedup_vs_reference" in r:
            yield (
                f"reference: iceberg-bioimage 0.1.0 published {REFERENCE_S:g} s, "
                f"{REFERENCE_RSS_MB:g} MB for this export -> {r['name']}: "
                f"{r['speedup_vs_reference']:.1f}x faster, "
                f"{REFERENCE_RSS_MB / r['peak_rss_mib']:.1f}x less peak memory; "
                f"warehouse on disk {r.get('median_output_mib', 0.0):.1f} MiB"
            )
        elif "rows_per_s" in r:
            yield (
                f"{r['name']}: {r['rows_per_s']:,.0f} profile rows/s "
                "(iceberg-bioimage 0.1.0 cannot join CellProfiler profiles to an HCS plate)"
            )


def main(argv: list[str] | None = None) -> int:
    """Run the export and join benchmarks; return the process exit code."""
    args = parse_args("Benchmark exporting a 384-well plate and joining profiles to it.", argv)
    plate_path, plate_info = prepare_plate(args.cache_dir)
    start = time.perf_counter()
    profiles_path = ensure_benchmark_profiles(args.cache_dir)
    profiles_info = {
        "path": str(profiles_path),
        "ensure_s": time.perf_counter() - start,
        "rows": PROFILE_ROWS,
        "features": len(FEATURE_COLUMNS),
        "seed": PROFILE_SEED,
        "disk_mib": profiles_path.stat().st_size / 2**20,
    }
    variables = {
        "plate_path": str(plate_path),
        "profiles_path": str(profiles_path),
        "n_arrays": N_ARRAYS,
        "n_chunks": N_CHUNKS,
        "n_profile_rows": PROFILE_ROWS,
    }

    results = run_cases(CASES, lambda case: _evaluate(case, variables, args.repeat, args.warmup))
    reference = {
        "export_seconds": REFERENCE_S,
        "export_peak_rss_mb": REFERENCE_RSS_MB,
        "join": "not supported by iceberg-bioimage 0.1.0",
    }
    profiles_line = (
        f"profiles: {profiles_info['path']} ({profiles_info['rows']:,} rows, "
        f"{profiles_info['disk_mib']:.1f} MiB; ensure {profiles_info['ensure_s']:.2f} s)"
    )
    return report(
        args,
        plate_info,
        results,
        _summary_notes,
        extra={"profiles": profiles_info, "reference": reference},
        heading=[profiles_line],
    )


if __name__ == "__main__":
    sys.exit(main())
