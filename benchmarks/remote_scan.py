"""Benchmark scanning a plate on S3: requests made and seconds, with added latency.

Usage::

    uv run --all-groups python benchmarks/remote_scan.py [--repeat 3] [--json] [--check]

A metadata-only OME-NGFF 0.4 plate (96 wells × 4 fields × 3 levels: 384 images,
1,152 arrays) is written with zarr, uploaded to a moto S3 server on 127.0.0.1
and scanned through a counting proxy that adds 0 or 20 ms to every request (a
stand-in for a round trip to a real object store). Also a copy with consolidated
metadata (``.zmetadata``). Reported per case: GET / HEAD / LIST requests and the
median scan time. Target (per-document plate): the 20 ms scan takes at most 1.5×
the 0 ms scan, which holds only when requests run concurrently (one at a time,
2,000 requests × 20 ms would add 40 s); GETs ≤ the documents the scan needs + 2,
HEADs ≤ 2, LISTs ≤ 2; the consolidated copy ≤ 10 requests in all (issue 13,
acceptance 3). ``--check`` exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.remote_plate import FIELDS, LEVEL_SHAPES, metadata_documents, write_remote_plate
from iceberg_bioimage import scan_store
from s3_proxy import counting_proxy
from s3_server import moto_s3_server, s3_storage_options, upload

DELAYS_MS = (0, 20)
#: The 20 ms scan may take at most this multiple of the 0 ms scan.
TARGET_SLOWDOWN = 1.5
WELLS = 96
#: What the scan must read: the root's .zgroup and .zattrs, every well's and field's
#: .zattrs, every .zarray.
NEEDED_DOCUMENTS = 2 + WELLS + WELLS * FIELDS * (1 + len(LEVEL_SHAPES))
#: Request bars: GETs beyond the needed documents, HEADs, LISTs; consolidated total.
MAX_EXTRA_GETS, MAX_HEADS, MAX_LISTS, MAX_CONSOLIDATED = 2, 2, 2, 10


def _requests_ok(case: dict[str, Any]) -> bool:
    r = case["requests"]
    if case["store"] == "consolidated":
        return sum(r.values()) <= MAX_CONSOLIDATED
    return (
        r.get("GET", 0) <= NEEDED_DOCUMENTS + MAX_EXTRA_GETS
        and r.get("HEAD", 0) <= MAX_HEADS
        and r.get("LIST", 0) <= MAX_LISTS
    )


def _scan(uri: str, endpoint: str, delay_ms: int, repeat: int) -> dict[str, Any]:
    times, counts = [], {}
    with counting_proxy(endpoint, delay=delay_ms / 1000) as counter:
        for _ in range(repeat):
            counter.reset()
            start = time.perf_counter()
            result = scan_store(uri, storage_options=s3_storage_options(counter.endpoint))
            times.append(time.perf_counter() - start)
            counts = counter.snapshot()
    return {
        "delay_ms": delay_ms,
        "arrays": result.array_count,
        "requests": counts,
        "seconds": statistics.median(times),
        "runs_s": times,
    }


def run(repeat: int) -> dict[str, Any]:
    """Write, upload and scan the plate; return the figures."""
    with tempfile.TemporaryDirectory() as tmp, moto_s3_server() as endpoint:
        plate = write_remote_plate(Path(tmp) / "plate.ome.zarr")
        documents = metadata_documents(plate)
        consolidated = Path(tmp) / "consolidated" / plate.name
        shutil.copytree(plate, consolidated)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import zarr

            zarr.consolidate_metadata(str(consolidated))
        uris = {
            "per-document": upload(endpoint, plate, "bench/plate.ome.zarr"),
            "consolidated": upload(endpoint, consolidated, "bench/consolidated/plate.ome.zarr"),
        }
        cases = [
            {"store": store, **_scan(uri, endpoint, delay, repeat)}
            for store, uri in uris.items()
            for delay in DELAYS_MS
        ]
    base = {c["store"]: c["seconds"] for c in cases if c["delay_ms"] == 0}
    for case in cases:
        case["slowdown"] = case["seconds"] / base[case["store"]]
        # the target is for the per-document plate; the consolidated one (8 requests,
        # mostly one after another) is shown for comparison
        judged = case["delay_ms"] > 0 and case["store"] == "per-document"
        case["time_ok"] = not judged or case["slowdown"] <= TARGET_SLOWDOWN
        case["requests_ok"] = _requests_ok(case)
        case["ok"] = case["time_ok"] and case["requests_ok"]
    return {
        "plate": {
            "wells": WELLS,
            "fields": FIELDS,
            "levels": len(LEVEL_SHAPES),
            "documents": documents,
            "needed_documents": NEEDED_DOCUMENTS,
        },
        "target_slowdown": TARGET_SLOWDOWN,
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or JSON); exit 1 on a missed target with --check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="scans per case (median reported)")
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    figures = run(args.repeat)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        plate = figures["plate"]
        print(
            f"plate: {plate['wells']} wells × {plate['fields']} fields × {plate['levels']} levels, "
            f"{plate['documents']} .zattrs/.zarray files in the store (zarr writes an empty "
            f".zattrs per array); the scan needs {plate['needed_documents']} documents"
        )
        print(
            f"bars: GET ≤ {NEEDED_DOCUMENTS} + {MAX_EXTRA_GETS}, HEAD ≤ {MAX_HEADS}, "
            f"LIST ≤ {MAX_LISTS}; 20 ms ≤ {TARGET_SLOWDOWN}× 0 ms; consolidated ≤ "
            f"{MAX_CONSOLIDATED} requests"
        )
        print(
            f"{'store':<14}{'delay':>7}{'GET':>7}{'HEAD':>6}{'LIST':>6}{'total':>7}"
            f"{'seconds':>10}{'×':>7}  verdict"
        )
        for case in figures["cases"]:
            r = case["requests"]
            verdict = (
                "ok"
                if case["ok"]
                else (
                    ("" if case["requests_ok"] else "requests MISSED ")
                    + ("" if case["time_ok"] else f"time MISSED (target ≤ {TARGET_SLOWDOWN}×)")
                )
            )
            print(
                f"{case['store']:<14}{case['delay_ms']:>5}ms{r.get('GET', 0):>7}"
                f"{r.get('HEAD', 0):>6}{r.get('LIST', 0):>6}{sum(r.values()):>7}"
                f"{case['seconds']:>10.2f}{case['slowdown']:>7.2f}  {verdict}"
            )
    missed = [c for c in figures["cases"] if not c["ok"]]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
