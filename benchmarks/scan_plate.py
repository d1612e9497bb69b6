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

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _measure import MeasureError, Measurement, measure
from plate import (
    N_ARRAYS,
    N_CHUNKS,
    N_IMAGES,
    disk_usage_bytes,
    ensure_benchmark_plate,
)

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


def _status(ok: bool) -> str:
    """Return ``PASS`` or ``FAIL``."""
    return "PASS" if ok else "FAIL"


def evaluate(case: Case, m: Measurement) -> dict[str, Any]:
    """Return the figures of ``m`` with target verdicts for ``case``."""
    time_ok = m.median_s <= case.target_s
    rss_ok = m.peak_rss_mib <= TARGET_RSS_MIB
    return {
        **m.summary(),
        "target_s": case.target_s,
        "target_rss_mib": TARGET_RSS_MIB,
        "time_status": _status(time_ok),
        "rss_status": _status(rss_ok),
        "status": _status(time_ok and rss_ok),
        "speedup_vs_reference": REFERENCE_S / m.median_s,
    }


def print_table(results: list[dict[str, Any]], plate_info: dict[str, Any], repeat: int) -> None:
    """Print the results as a compact text table."""
    print(
        f"plate: {plate_info['path']} ({plate_info['images']:,} images, "
        f"{plate_info['arrays']:,} arrays, {plate_info['chunks']:,} chunks; "
        f"ensure {plate_info['ensure_s']:.2f} s)"
    )
    header = (
        f"{'case':<20} {'median s':>9} {'min s':>7} {'max s':>7} {'import s':>9} "
        f"{'peak RSS MiB':>13}  {'time target':<14} {'RSS target'}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if "error" in r:
            print(f"{r['name']:<20} ERROR: {r['error'].splitlines()[-1]}")
            continue
        time_target = f"<= {r['target_s']:g} s {r['time_status']}"
        rss_target = f"<= {r['target_rss_mib']:g} MiB {r['rss_status']}"
        print(
            f"{r['name']:<20} {r['median_s']:>9.3f} {r['min_s']:>7.3f} "
            f"{r['max_s']:>7.3f} {r['median_setup_s']:>9.3f} "
            f"{r['peak_rss_mib']:>13.1f}  {time_target:<14} {rss_target}"
        )
    print(
        f"(time = median over {repeat} fresh processes, "
        "imports excluded; peak RSS = worst run, imports included)"
    )
    ok = [r for r in results if "error" not in r]
    if ok:
        full = ok[-1]
        print(
            f"reference: iceberg-bioimage 0.1.0 published {REFERENCE_S:g} s, "
            f"{REFERENCE_RSS_MB:g} MB -> {full['name']}: "
            f"{full['speedup_vs_reference']:.1f}x faster, "
            f"{REFERENCE_RSS_MB / full['peak_rss_mib']:.1f}x less peak memory"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the plate-scanning benchmark; return the process exit code."""
    parser = argparse.ArgumentParser(description="Benchmark scanning a 384-well plate.")
    parser.add_argument("--repeat", type=int, default=5, help="counted runs per case")
    parser.add_argument("--warmup", type=int, default=1, help="discarded runs per case (OS caches)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    parser.add_argument("--check", action="store_true", help="exit non-zero if a target is missed")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    plate_path = ensure_benchmark_plate(args.cache_dir)
    ensure_s = time.perf_counter() - start
    size, files = disk_usage_bytes(plate_path)
    plate_info = {
        "path": str(plate_path),
        "ensure_s": ensure_s,
        "images": N_IMAGES,
        "arrays": N_ARRAYS,
        "chunks": N_CHUNKS,
        "disk_mib": size / 2**20,
        "files": files,
    }
    variables = {
        "plate_path": str(plate_path),
        "n_arrays": N_ARRAYS,
        "n_chunks": N_CHUNKS,
    }

    results: list[dict[str, Any]] = []
    for case in CASES:
        print(f"running {case.name} ...", file=sys.stderr, flush=True)
        try:
            m = measure(
                case.name,
                case.work,
                setup=SETUP,
                variables=variables,
                repeat=args.repeat,
                warmup=args.warmup,
            )
        except MeasureError as exc:
            print(f"{case.name} failed: {exc}", file=sys.stderr)
            results.append({"name": case.name, "error": str(exc), "status": "ERROR"})
            continue
        results.append(evaluate(case, m))

    if args.json:
        payload = {
            "plate": plate_info,
            "reference": {"seconds": REFERENCE_S, "peak_rss_mb": REFERENCE_RSS_MB},
            "results": results,
        }
        print(json.dumps(payload, indent=2))
    else:
        print_table(results, plate_info, args.repeat)

    failed = any(r["status"] != "PASS" for r in results)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
