"""Benchmark registering the 384-well benchmark plate in the embedded Iceberg catalog.

Usage::

    uv run python benchmarks/register_plate.py [--repeat 5] [--warmup 1] [--json] [--check]

Cases (each run in a fresh subprocess; imports are timed separately and
excluded from the reported time):

* ``register``: ``register_store(plate, "default", "bioimage.cytotable",
  publish_chunks=True)`` into an EMPTY embedded (SQLite) warehouse: 10,368
  ``image_assets`` rows and 857,088 ``chunk_index`` rows.
* ``re-register``: the same call on a warehouse that already holds the plate.
  The first registration is done by a separate, unmeasured process, so only
  the second ``register_store`` is timed and counted in peak RSS.  Afterwards
  (untimed) the child reads both tables back and checks that they still hold
  exactly one copy of the plate's rows.

Every run gets its own fresh ``ICEBERG_BIOIMAGE_WAREHOUSE`` folder under the
system temporary directory, created and removed by this (parent) process.

The exit code is 0 unless ``--check`` is given, in which case a missed target
(or a failed run) gives exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _measure import MeasureError, Measurement, Run, run_once
from plate import (
    N_ARRAYS,
    N_CHUNKS,
    N_IMAGES,
    disk_usage_bytes,
    ensure_benchmark_plate,
)

#: Performance targets.
TARGET_RSS_MIB = 800.0
NAMESPACE = "bioimage.cytotable"
WAREHOUSE_ENV = "ICEBERG_BIOIMAGE_WAREHOUSE"
EMBEDDED_DB = "catalog.db"

SETUP = """\
import os
import pyarrow
from iceberg_bioimage import load_catalog_table, register_store
"""

WORK_REGISTER = """\
r = register_store(plate_path, "default", namespace, publish_chunks=True)
rows = {t["table"].rsplit(".", 1)[-1]: t["rows_written"] for t in r.to_dict()["tables"]}
assert rows.get("image_assets") == n_arrays, f"image_assets rows_written: {rows}"
assert rows.get("chunk_index") == n_chunks, f"chunk_index rows_written: {rows}"
"""

# Untimed: make sure the embedded catalog in the per-run warehouse was used
# (and not some configured "default" catalog).
CHECK_WAREHOUSE = """\
_db = os.path.join(os.environ["ICEBERG_BIOIMAGE_WAREHOUSE"], embedded_db)
assert os.path.isfile(_db), f"embedded catalog not created at {_db}"
"""

# Untimed: the tables hold exactly one copy of the plate after re-registering.
CHECK_ROW_COUNTS = (
    CHECK_WAREHOUSE
    + """\
for _name, _expected in (("image_assets", n_arrays), ("chunk_index", n_chunks)):
    _n = load_catalog_table("default", namespace, _name, columns=["dataset_id"]).num_rows
    assert _n == _expected, f"{_name} holds {_n} rows after re-register, expected {_expected}"
"""
)


@dataclass(frozen=True)
class Case:
    """One benchmark case and its time target."""

    name: str
    target_s: float
    #: Register the plate once (in an unmeasured process) before the timed run.
    preregister: bool
    check: str


CASES: tuple[Case, ...] = (
    Case("register", 6.0, preregister=False, check=CHECK_WAREHOUSE),
    Case("re-register", 6.0, preregister=True, check=CHECK_ROW_COUNTS),
)


def _child_env(warehouse: Path) -> dict[str, str | None]:
    """Environment overrides for a child: its own warehouse, no ``default`` config."""
    env: dict[str, str | None] = {WAREHOUSE_ENV: str(warehouse)}
    for key in os.environ:
        if key.upper().startswith("PYICEBERG_CATALOG__DEFAULT__"):
            env[key] = None
    return env


def run_case(
    case: Case, variables: dict[str, Any], repeat: int, warmup: int
) -> tuple[Measurement, list[float]]:
    """Run ``case`` ``warmup + repeat`` times, each with a fresh warehouse.

    Returns the counted runs and the warehouse size on disk (MiB) after each.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    runs: list[Run] = []
    sizes_mib: list[float] = []
    for i in range(warmup + repeat):
        warehouse = Path(tempfile.mkdtemp(prefix="iceberg-bioimage-bench-"))
        try:
            env = _child_env(warehouse)
            if case.preregister:
                run_once(WORK_REGISTER, SETUP, variables, env=env)
            run = run_once(WORK_REGISTER, SETUP, variables, check=case.check, env=env)
            if i >= warmup:
                runs.append(run)
                sizes_mib.append(disk_usage_bytes(warehouse)[0] / 2**20)
        finally:
            shutil.rmtree(warehouse, ignore_errors=True)
    return Measurement(name=case.name, runs=runs), sizes_mib


def _status(ok: bool) -> str:
    """Return ``PASS`` or ``FAIL``."""
    return "PASS" if ok else "FAIL"


def evaluate(case: Case, m: Measurement, sizes_mib: list[float]) -> dict[str, Any]:
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
        "median_warehouse_mib": statistics.median(sizes_mib),
        "chunk_rows_per_s": N_CHUNKS / m.median_s,
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
        f"(time = median over {repeat} fresh processes, each with a fresh embedded "
        "warehouse; imports excluded; peak RSS = worst run, imports included)"
    )
    for r in results:
        if "error" not in r:
            print(
                f"{r['name']}: {r['chunk_rows_per_s']:,.0f} chunk rows/s; "
                f"warehouse on disk afterwards {r['median_warehouse_mib']:.1f} MiB"
            )


def main(argv: list[str] | None = None) -> int:
    """Run the plate-registration benchmark; return the process exit code."""
    parser = argparse.ArgumentParser(
        description="Benchmark registering a 384-well plate in the embedded Iceberg catalog."
    )
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
        "namespace": NAMESPACE,
        "embedded_db": EMBEDDED_DB,
        "n_arrays": N_ARRAYS,
        "n_chunks": N_CHUNKS,
    }

    results: list[dict[str, Any]] = []
    for case in CASES:
        print(f"running {case.name} ...", file=sys.stderr, flush=True)
        try:
            m, sizes_mib = run_case(case, variables, args.repeat, args.warmup)
        except MeasureError as exc:
            print(f"{case.name} failed: {exc}", file=sys.stderr)
            results.append({"name": case.name, "error": str(exc), "status": "ERROR"})
            continue
        results.append(evaluate(case, m, sizes_mib))

    if args.json:
        payload = {
            "plate": plate_info,
            "namespace": NAMESPACE,
            "results": results,
        }
        print(json.dumps(payload, indent=2))
    else:
        print_table(results, plate_info, args.repeat)

    failed = any(r["status"] != "PASS" for r in results)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
