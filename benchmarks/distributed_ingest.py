"""Benchmark distributed ingest on Dask: 120 stores on S3 (moto), 1 vs 3 worker processes.

Usage::

    uv run --all-groups python benchmarks/distributed_ingest.py [--repeat 1] [--warmup 0] [--json]

40 NGFF plates, 40 OME-TIFF files and 40 TIFF-folder plates (``tests/fixtures/dask_stores.py``)
are uploaded to a moto S3 server on 127.0.0.1, then ingested into a SQLite SqlCatalog with
an ``s3://`` warehouse on the same server: by a ``distributed.LocalCluster`` of 1 and of 3
worker processes (one thread each), and, for reference, by local threads in one process
(``ingest`` without Dask). Each run is a fresh driver process (``_measure.run_once``); the cluster
starts in the untimed setup, and every run ingests into a new namespace.

Reported per case: stores/s (120 / the ingest's wall time), the driver's commit time
(from the last store's report to the end: identity check, the two commits, the sweep of
unreported files), and the CPU seconds of the driver and of the workers. The scaling
line divides the 3-worker rate by the 1-worker rate and says what bounds it here: the
cores this machine has, the load average, and the CPU time the work needed.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _measure import run_once
from _report import parse_args

from fixtures.dask_stores import upload_screen
from s3_server import moto_s3_server, s3_filesystem, s3_storage_options

PER_KIND = 40
WORKERS = (1, 3)
STORES_BUCKET = "bench-stores"
WAREHOUSE_BUCKET = "bench-lake"

SETUP = """
import json, os, resource, time, uuid
from pyiceberg.catalog.sql import SqlCatalog
from iceberg_bioimage import ingest_stores_to_warehouse
catalog = SqlCatalog(
    "bench", uri=catalog_uri, warehouse=warehouse,
    **{"s3.endpoint": endpoint, "s3.access-key-id": "testing",
       "s3.secret-access-key": "testing", "s3.region": "us-east-1"},
)
namespace = "run_" + uuid.uuid4().hex[:8]
client = None
if workers:
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    # workers up, with the modules a task imports, before the clock starts
    client.run(__import__, "iceberg_bioimage.engines.dask")
def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
workers_cpu_before = client.run(_cpu) if client is not None else {}
last = [0.0]
def on_scanned(dataset):
    last[0] = time.perf_counter()
"""

WORK = """
result = ingest_stores_to_warehouse(
    stores, catalog, namespace, storage_options=storage_options,
    on_scanned=on_scanned, client=client,
)
end = time.perf_counter()
"""

CHECK = """
workers_cpu_after = client.run(_cpu) if client is not None else {}
worker_cpu = sum(workers_cpu_after[w] - workers_cpu_before.get(w, 0.0) for w in workers_cpu_after)
rows = {w.table.rsplit(".", 1)[-1]: w.rows_written for w in result.tables}
snapshots = {t: len(catalog.load_table((namespace, t)).snapshots()) for t in rows}
with open(figures_file, "a") as out:
    out.write(json.dumps({"commit_s": end - last[0], "worker_cpu_s": worker_cpu,
                          "datasets": len(result.datasets), "rows": rows,
                          "snapshots": snapshots}) + "\\n")
if client is not None:
    client.close()
    cluster.close()
"""


def _moto_cpu_s() -> float:
    """CPU seconds used so far by this process's moto server child (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and b"moto" in command:
            total += (int(stat[11]) + int(stat[12])) / ticks
    return total


def _case(
    name: str, workers: int, variables: dict[str, Any], folder: Path, repeat: int, warmup: int
) -> dict[str, Any]:
    figures_file = folder / f"{name}.jsonl"
    values = {**variables, "workers": workers, "figures_file": str(figures_file)}
    moto_before = _moto_cpu_s()
    runs = [
        run_once(WORK, SETUP, values, timeout=1800, check=CHECK) for _ in range(warmup + repeat)
    ][warmup:]
    moto_cpu = (_moto_cpu_s() - moto_before) / (warmup + repeat)
    # the check appends one line per run, warm-up runs first: keep the counted ones
    checks = [json.loads(line) for line in figures_file.read_text().splitlines()][warmup:]
    seconds = statistics.median(run.work_s for run in runs)
    stores = len(variables["stores"])
    return {
        "case": name,
        "workers": workers,
        "stores": stores,
        "seconds": seconds,
        "stores_per_s": stores / seconds,
        "commit_s": statistics.median(c["commit_s"] for c in checks),
        "driver_cpu_s": statistics.median(run.work_cpu_s for run in runs),
        "worker_cpu_s": statistics.median(c["worker_cpu_s"] for c in checks),
        "moto_cpu_s": moto_cpu,
        "rows": checks[-1]["rows"],
        "snapshots": checks[-1]["snapshots"],
        "datasets": checks[-1]["datasets"],
        "runs_s": [run.work_s for run in runs],
    }


def run(repeat: int, warmup: int) -> dict[str, Any]:
    """Upload the stores, run every case; return the figures."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, moto_s3_server() as endpoint:
        folder = Path(tmp)
        expected = upload_screen(endpoint, folder / "stores", STORES_BUCKET, PER_KIND)
        s3_filesystem(endpoint).call_s3("create_bucket", Bucket=WAREHOUSE_BUCKET)
        variables = {
            "stores": sorted(expected),
            "endpoint": endpoint,
            "storage_options": s3_storage_options(endpoint),
            "catalog_uri": f"sqlite:///{folder}/catalog.db",
            "warehouse": f"s3://{WAREHOUSE_BUCKET}/warehouse",
        }
        cases = [_case(f"dask-{n}-workers", n, variables, folder, repeat, warmup) for n in WORKERS]
        cases.append(_case("local-threads", 0, variables, folder, repeat, warmup))
    expected_rows = {
        table: sum(rows[table] for rows in expected.values())
        for table in ("image_assets", "chunk_index")
    }
    for case in cases:
        case["ok"] = (
            case["rows"] == expected_rows
            and set(case["snapshots"].values()) == {1}
            and case["datasets"] == len(expected)
        )
    by_workers = {case["workers"]: case for case in cases}
    return {
        "stores": len(expected),
        "expected_rows": expected_rows,
        "cores": os.cpu_count(),
        "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0],
        "scaling_3_over_1": by_workers[3]["stores_per_s"] / by_workers[1]["stores_per_s"],
        "cases": cases,
    }


def _bound(figures: dict[str, Any]) -> str:
    one, three = (next(c for c in figures["cases"] if c["workers"] == n) for n in WORKERS)

    def cpu(case: dict[str, Any]) -> float:
        return case["driver_cpu_s"] + case["worker_cpu_s"] + case["moto_cpu_s"]

    return (
        f"bound: CPU. {figures['cores']} cores, load average {figures['load_average_before']:.1f}"
        f" before and {figures['load_average_after']:.1f} after (other processes share them). "
        f"The batch needs {cpu(one):.1f} CPU s with 1 worker and {cpu(three):.1f} with 3 "
        "(driver + scheduler, workers, moto S3 server); with 3 workers our processes got "
        f"{cpu(three) / three['seconds']:.2f} of the {figures['cores']} cores. At best 3 workers "
        f"finish in {cpu(three) / figures['cores']:.1f} s here (all cores ours), "
        f"{one['seconds'] / (cpu(three) / figures['cores']):.2f}× the 1-worker time."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or JSON); exit 1 on wrong results with --check."""
    args = parse_args(__doc__.splitlines()[0], argv, repeat=1, warmup=0)
    figures = run(args.repeat, args.warmup)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        rows = figures["expected_rows"]
        print(
            f"{figures['stores']} stores on moto S3 (40 NGFF plates, 40 OME-TIFFs, 40 TIFF-folder "
            f"plates): {rows['image_assets']} image_assets rows, {rows['chunk_index']} chunk rows"
        )
        print(
            f"{'case':<18}{'seconds':>9}{'stores/s':>10}{'commit s':>10}"
            f"{'driver CPU':>12}{'worker CPU':>12}{'moto CPU':>10}  result"
        )
        for case in figures["cases"]:
            print(
                f"{case['case']:<18}{case['seconds']:>9.1f}{case['stores_per_s']:>10.2f}"
                f"{case['commit_s']:>10.2f}{case['driver_cpu_s']:>12.1f}"
                f"{case['worker_cpu_s']:>12.1f}{case['moto_cpu_s']:>10.1f}"
                f"  {'ok' if case['ok'] else 'WRONG'}"
            )
        print(
            "driver CPU includes the local scheduler; local-threads 'commit s' also builds and "
            "writes the data files (done by the workers with Dask)"
        )
        print(f"scaling 1 → 3 workers: {figures['scaling_3_over_1']:.2f}×")
        print(_bound(figures))
    wrong = [case for case in figures["cases"] if not case["ok"]]
    return 1 if args.check and wrong else 0


if __name__ == "__main__":
    sys.exit(main())
