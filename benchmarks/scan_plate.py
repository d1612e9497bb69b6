"""Benchmark scanning the 384-well benchmark plate.

Usage::

    uv run python benchmarks/scan_plate.py [--repeat 5] [--warmup 1] [--json] [--check]

Cases (each run in a fresh subprocess; imports are timed separately and
excluded from the reported time):

* ``image_assets``: ``scan_store`` + the ``image_assets`` Arrow table
  (10,368 rows, one per multiscale level).
* ``scan + chunk_index``: the same plus the ``chunk_index`` Arrow table
  (857,088 rows, one per chunk).

The exit code is 0 unless ``--check`` is given, in which case a missed target
(or a failed run) gives exit code 1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from _measure import measure
from _report import parse_args, prepare_plate, report, run_cases, verdict
from plate import N_ARRAYS, N_CHUNKS

#: Performance targets.
TARGET_RSS_MIB = 500.0
#: Published iceberg-bioimage 0.1.0 figures for this workload.
REFERENCE_S = 25.0
REFERENCE_RSS_MB = 670.0

SETUP = """\
import pyarrow
from iceberg_bioimage import scan_store, scan_result_as_arrow_table
"""

WORK_IMAGE_ASSETS = """\
r = scan_store(plate_path)
t = scan_result_as_arrow_table(r, table="image_assets")
assert t.num_rows == n_arrays, f"image_assets rows: {t.num_rows} != {n_arrays}"
"""

WORK_CHUNK_INDEX = (
    WORK_IMAGE_ASSETS
    + """\
c = scan_result_as_arrow_table(r, table="chunk_index")
assert c.num_rows == n_chunks, f"chunk_index rows: {c.num_rows} != {n_chunks}"
"""
)


@dataclass(frozen=True)
class Case:
    """One benchmark case and its time target."""

    name: str
    work: str
    target_s: float


CASES: tuple[Case, ...] = (
    Case("image_assets", WORK_IMAGE_ASSETS, 1.5),
    Case("scan + chunk_index", WORK_CHUNK_INDEX, 3.0),
)


def _evaluate(case: Case, variables: dict[str, Any], repeat: int, warmup: int) -> dict[str, Any]:
    """Measure ``case`` and judge it against its targets and the reference."""
    m = measure(
        case.name, case.work, setup=SETUP, variables=variables, repeat=repeat, warmup=warmup
    )
    return {
        **verdict(m, case.target_s, TARGET_RSS_MIB),
        "speedup_vs_reference": REFERENCE_S / m.median_s,
    }


def _reference_notes(results: list[dict[str, Any]]) -> Iterator[str]:
    """Compare the last successful case (the full workload) with the reference figures."""
    ok = [r for r in results if "error" not in r]
    if ok:
        full = ok[-1]
        yield (
            f"reference: iceberg-bioimage 0.1.0 published {REFERENCE_S:g} s, "
            f"{REFERENCE_RSS_MB:g} MB -> {full['name']}: "
            f"{full['speedup_vs_reference']:.1f}x faster, "
            f"{REFERENCE_RSS_MB / full['peak_rss_mib']:.1f}x less peak memory"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the plate-scanning benchmark; return the process exit code."""
    args = parse_args("Benchmark scanning a 384-well plate.", argv)
    plate_path, plate_info = prepare_plate(args.cache_dir)
    variables = {
        "plate_path": str(plate_path),
        "n_arrays": N_ARRAYS,
        "n_chunks": N_CHUNKS,
    }

    results = run_cases(CASES, lambda case: _evaluate(case, variables, args.repeat, args.warmup))
    reference = {"seconds": REFERENCE_S, "peak_rss_mb": REFERENCE_RSS_MB}
    return report(args, plate_info, results, _reference_notes, extra={"reference": reference})


if __name__ == "__main__":
    sys.exit(main())
