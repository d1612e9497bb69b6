"""A catalog of thousands of plates: how commits, metadata and reads grow with N.

Usage::

    uv run --all-groups python benchmarks/catalog_growth.py [--plates 2000] [--maintain-every 100]
        [--keep-last 1] [--stop-ratio 5] [--backends sqlite,postgres] [--pg-uri URI]
        [--plot] [--json] [--check]

It registers plates 1…N one by one (``register_store(..., publish_chunks=True)``, one
commit per table each) into ONE catalog, for the embedded SQLite catalog and for a
PostgreSQL SQL catalog (a private server on 127.0.0.1 started and stopped here, fsync
on, unless ``--pg-uri`` names one). Each backend runs two series, each with a fresh
catalog: without maintenance, and with ``maintain_catalog(keep_last=K,
older_than=now)`` (expire snapshots, remove orphan files) after every
``--maintain-every`` plates (0: no second series; samples are taken after it).
A series stops early once the median of its last 5 registrations passes
``--stop-ratio`` times that of its first 5 (default 5, 0: never): the 2× bar is missed
by then. (Registrations used to cost more with every snapshot kept, ~0.5 s at N = 1
and ~1.9 s at N = 250; they now expire the snapshots beyond each table's newest 50,
``iceberg-bioimage.history.max-snapshots``, in their own commit.)

The plate is the 96-well benchmark plate of ``plate.py`` (9 fields, 2 channels, a
3-level pyramid of 2160×2560 fields in 256² chunks: 2,592 arrays and 214,272
``chunk_index`` rows, the chunk count of a real 96-well, 9-field acquisition),
metadata only. It is copied once, then renamed before each registration
(``plate_0001.ome.zarr``, ``plate_0002.ome.zarr``, …): every registration scans a
distinct path and appends a distinct dataset, at no cost for making 2,000 plates. The
earlier paths are gone by then, which no measured read needs (they read rows only).

Measured, all in this one process (imports warmed up by a throwaway registration):

* the wall time of each registration (``time.perf_counter``; scan + build + write +
  both commits; the scan's constant share is printed), and at sampled N (1, 10, 50,
  100, 250, 500, 1000, 2000, and the last) the median of the last 5;
* the metadata folders' bytes and files of both tables (``*.metadata.json``, manifest
  lists, manifests), the current ``metadata.json`` sizes, the SQLite catalog file;
* reading plate 1's ``chunk_index`` rows (214,272), median of 3: pyiceberg (a fresh
  catalog object, ``load_table``, ``scan(row_filter=EqualTo("dataset_id", ...))
  .to_arrow()``, all timed) and DuckDB's own reader (only the query timed:
  ``iceberg_scan(<the metadata.json pyiceberg loaded>) WHERE dataset_id = ?`` into
  Arrow, extensions loaded offline from the dev group's wheels).
  ``chunk_index`` is partitioned by identity(``dataset_id``), one data file per plate.

Bars (issue 23, at N = 2,000 on the quiet 2-core machine): the N-th commit ≤ 2× the
first (judged on the medians of 5: plates N-4…N against plates 1…5; the single-plate
ratio is printed too), and reading one plate's ``chunk_index`` ≤ 1 s in pyiceberg and
in DuckDB. ``--plot`` writes ``benchmarks/results/catalog_growth.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from plate import ensure_benchmark_plate, plate_totals

from iceberg_bioimage.api import (
    embedded_catalog,
    maintain_catalog,
    register_store,
    scan_store,
)

NAMESPACE = "bioimage.growth"
TABLES = ("chunk_index", "image_assets")
WELLS = 96
PLATE_CHUNKS = plate_totals(WELLS)["chunks"]
SAMPLES = (1, 10, 50, 100, 250, 500, 1000, 2000)
WINDOW = 5
READS = 3
FIRST = "plate_0001"
TARGET_RATIO = 2.0
TARGET_READ_S = 1.0
TARGET_N = 2000
PNG = Path(__file__).resolve().parent / "results" / "catalog_growth.png"


def _local(location: str) -> Path:
    """A ``file://`` location as a local path."""
    parsed = urlparse(location)
    return Path(unquote(parsed.path) if parsed.scheme == "file" else location)


def _connect(backend: str, warehouse: Path, name: str, pg_uri: str | None) -> Any:
    """A new catalog object of ``backend`` over ``warehouse`` (each call connects anew)."""
    if backend == "sqlite":
        return embedded_catalog(warehouse, name=name)
    from pyiceberg.catalog import load_catalog

    warehouse.mkdir(parents=True, exist_ok=True)
    return load_catalog(name, type="sql", uri=pg_uri, warehouse=warehouse.as_uri())


@contextmanager
def _catalog(backend: str, warehouse: Path, name: str, pg_uri: str | None) -> Iterator[Any]:
    """:func:`_connect`, its connection pool closed afterwards."""
    catalog = _connect(backend, warehouse, name, pg_uri)
    try:
        yield catalog
    finally:
        catalog.engine.dispose()


def _duckdb() -> Any | None:
    """An in-memory DuckDB with ``avro`` and ``iceberg`` loaded offline, or ``None``."""
    try:
        import duckdb
        import duckdb_extension_avro
        import duckdb_extension_iceberg
    except ImportError as error:
        print(f"DuckDB reads skipped: {error}", file=sys.stderr)
        return None
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for package in (duckdb_extension_avro, duckdb_extension_iceberg):  # avro first
        folder = Path(package.__path__[0]) / "extensions" / f"v{duckdb.__version__}"
        found = sorted(folder.glob("*.duckdb_extension"))
        try:
            con.execute(f"LOAD '{found[0].as_posix()}'")
        except (IndexError, duckdb.Error) as error:
            print(f"DuckDB reads skipped: {package.__name__}: {error}", file=sys.stderr)
            return None
    return con


def _read(catalog: Any, duck: Any | None) -> tuple[float, float | None, Any]:
    """Seconds for pyiceberg and DuckDB to read plate 1's ``chunk_index`` rows; the table."""
    from pyiceberg.expressions import EqualTo

    start = time.perf_counter()
    table = catalog.load_table((*NAMESPACE.split("."), "chunk_index"))
    rows = table.scan(row_filter=EqualTo("dataset_id", FIRST)).to_arrow().num_rows
    pyiceberg_s = time.perf_counter() - start
    assert rows == PLATE_CHUNKS, f"pyiceberg read {rows} rows of {FIRST}, expected {PLATE_CHUNKS}"
    if duck is None:
        return pyiceberg_s, None, table
    query = "SELECT * FROM iceberg_scan(?) WHERE dataset_id = ?"
    start = time.perf_counter()
    got = duck.execute(query, [str(_local(table.metadata_location)), FIRST]).to_arrow_table()
    duckdb_s = time.perf_counter() - start
    assert got.num_rows == PLATE_CHUNKS, f"DuckDB read {got.num_rows} rows of {FIRST}"
    return pyiceberg_s, duckdb_s, table


def _sample(n: int, times: list[float], connect: Any, warehouse: Path, duck: Any) -> dict:
    """Figures of the catalog after ``n`` registrations."""
    reads = []
    for _ in range(READS):
        with connect() as catalog:
            reads.append(_read(catalog, duck)[:2])
    sample: dict[str, Any] = {
        "n": n,
        "register_s": times[-1],
        "window_s": statistics.median(times[-WINDOW:]),
        "pyiceberg_read_s": statistics.median(r[0] for r in reads),
        "duckdb_read_s": None if duck is None else statistics.median(r[1] for r in reads),
        "metadata_bytes": 0,
        "metadata_files": 0,
        "metadata_json_bytes": 0,
    }
    with connect() as catalog:
        for name in TABLES:
            table = catalog.load_table((*NAMESPACE.split("."), name))
            files = [p for p in (_local(table.location()) / "metadata").iterdir() if p.is_file()]
            sample["metadata_bytes"] += sum(p.stat().st_size for p in files)
            sample["metadata_files"] += len(files)
            sample["metadata_json_bytes"] += _local(table.metadata_location).stat().st_size
            if name == "chunk_index":
                sample["snapshots"] = len(table.snapshots())
                sample["manifests"] = len(table.current_snapshot().manifests(table.io))
    db = warehouse / "catalog.db"
    sample["catalog_db_bytes"] = db.stat().st_size if db.exists() else None
    return sample


def _drop(catalog: Any) -> None:
    """Remove the series' tables and namespace from the catalog (files go with the folder)."""
    for name in TABLES:
        catalog.drop_table((*NAMESPACE.split("."), name))
    catalog.drop_namespace(tuple(NAMESPACE.split(".")))


def run_series(
    backend: str, every: int, args: argparse.Namespace, template: Path, duck: Any
) -> dict[str, Any]:
    """Register plates 1…``args.plates`` into one fresh catalog, sampling as it grows."""
    work = template.parent
    warehouse = work / f"warehouse-{backend}-{every}"
    name = f"growth_{every}_{os.getpid()}"
    label = f"{backend}, " + (f"maintain every {every}" if every else "no maintenance")

    def connect() -> Any:
        return _catalog(backend, warehouse, name, args.pg_uri)

    sample_at = {n for n in SAMPLES if n <= args.plates} | {args.plates}
    times: list[float] = []
    maintenance: list[float] = []
    samples = []
    stopped = None
    store = template
    start = time.perf_counter()
    with connect() as catalog:
        try:
            for i in range(1, args.plates + 1):
                store = store.rename(work / f"plate_{i:04d}.ome.zarr")
                t0 = time.perf_counter()
                register_store(store, catalog, NAMESPACE, publish_chunks=True)
                times.append(time.perf_counter() - t0)
                if every and i % every == 0:
                    now = dt.datetime.now(dt.UTC)
                    t0 = time.perf_counter()
                    maintain_catalog(catalog, NAMESPACE, keep_last=args.keep_last, older_than=now)
                    maintenance.append(time.perf_counter() - t0)
                runaway = _runaway(times, args.stop_ratio)
                if i in sample_at or runaway:
                    samples.append(_sample(i, times, connect, warehouse, duck))
                    print(
                        f"{label}: {i} plates, last register {times[-1]:.2f} s, "
                        f"{time.perf_counter() - start:.0f} s so far",
                        file=sys.stderr,
                        flush=True,
                    )
                if runaway:
                    stopped = i
                    break
        finally:
            store.rename(template)
            _drop(catalog)
            shutil.rmtree(warehouse, ignore_errors=True)
    return {
        "backend": backend,
        "label": label,
        "maintain_every": every,
        "keep_last": args.keep_last if every else None,
        "plates": args.plates,
        "elapsed_s": time.perf_counter() - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "register_s": times,
        "maintenance_s": maintenance,
        "samples": samples,
        "stopped_at": stopped,
        "stop_ratio": args.stop_ratio,
        "checks": _checks(label, times, samples, stopped),
    }


def _runaway(times: list[float], stop_ratio: float) -> bool:
    """Whether the last registrations take ``stop_ratio``× the first ones (0: never)."""
    if not stop_ratio or len(times) < 2 * WINDOW:
        return False
    return statistics.median(times[-WINDOW:]) > stop_ratio * statistics.median(times[:WINDOW])


def _checks(
    label: str, times: list[float], samples: list[dict], stopped: int | None
) -> list[dict[str, Any]]:
    """The issue's bars at the last N (``ok`` ``None``: could not be measured)."""
    last = samples[-1]
    n = last["n"]
    first = statistics.median(times[:WINDOW])
    ratio = last["window_s"] / first
    at = f"N = {n:,}" + ("" if n >= TARGET_N else f"; bar set at N = {TARGET_N:,}")
    at += "" if stopped is None else ", series stopped there"
    checks = [
        {
            "name": f"{label}: commit of plate {n} / plate 1 = {ratio:.2f} (medians of "
            f"{WINDOW}; single plates {times[-1] / times[0]:.2f}; bar <= {TARGET_RATIO:g}, {at})",
            "ok": ratio <= TARGET_RATIO,
        }
    ]
    for engine in ("pyiceberg", "duckdb"):
        seconds = last[f"{engine}_read_s"]
        shown = "n/a" if seconds is None else f"{seconds:.2f} s"
        checks.append(
            {
                "name": f"{label}: {engine} reads one plate's chunk_index in {shown} "
                f"(bar <= {TARGET_READ_S:g} s, {at})",
                "ok": None if seconds is None else seconds <= TARGET_READ_S,
            }
        )
    return checks


def _warm_up(template: Path, duck: Any) -> float:
    """Pay the imports once (a throwaway registration and reads); return the scan's seconds."""
    folder = template.parent / "warm-up"
    catalog = embedded_catalog(folder, name="warm_up")
    store = template.rename(template.with_name(f"{FIRST}.ome.zarr"))
    try:
        register_store(store, catalog, NAMESPACE, publish_chunks=True)
        _read(catalog, duck)
        scans = []
        for _ in range(READS):
            start = time.perf_counter()
            scan_store(store)
            scans.append(time.perf_counter() - start)
    finally:
        store.rename(template)
        catalog.engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    return statistics.median(scans)


def _print(series: dict[str, Any], scan_s: float) -> None:
    """One backend's series as a table, then its maintenance and verdict lines."""
    registered = len(series["register_s"])
    per_plate = series["elapsed_s"] / registered
    print(
        f"\n{series['label']}: {registered:,} plates in {series['elapsed_s']:.0f} s "
        f"({per_plate:.2f} s per plate with samples; scan share of each registration "
        f"~{scan_s:.2f} s); peak RSS so far {series['peak_rss_mib']:.0f} MiB"
    )
    header = (
        f"{'N':>5} {'register s':>10} {'median5 s':>9} {'metadata MiB':>12} {'files':>6} "
        f"{'m.json KiB':>10} {'DB KiB':>7} {'snaps':>5} {'manifests':>9} "
        f"{'pyiceberg s':>11} {'DuckDB s':>8}"
    )
    print(header)
    print("-" * len(header))
    for s in series["samples"]:
        db = "-" if s["catalog_db_bytes"] is None else f"{s['catalog_db_bytes'] / 1024:.0f}"
        duck = "n/a" if s["duckdb_read_s"] is None else f"{s['duckdb_read_s']:.3f}"
        print(
            f"{s['n']:>5} {s['register_s']:>10.3f} {s['window_s']:>9.3f} "
            f"{s['metadata_bytes'] / 2**20:>12.2f} {s['metadata_files']:>6} "
            f"{s['metadata_json_bytes'] / 1024:>10.1f} {db:>7} {s['snapshots']:>5} "
            f"{s['manifests']:>9} {s['pyiceberg_read_s']:>11.3f} {duck:>8}"
        )
    if series["stopped_at"] is not None:
        print(
            f"stopped at N = {series['stopped_at']:,}: the last {WINDOW} registrations took "
            f"over {series['stop_ratio']:g}x the first {WINDOW} (--stop-ratio)"
        )
    if series["maintenance_s"]:
        m = series["maintenance_s"]
        print(
            f"maintenance (keep_last={series['keep_last']}): {len(m)} runs, last {m[-1]:.2f} s, "
            f"total {sum(m):.1f} s"
        )
    for check in series["checks"]:
        status = {True: "PASS", False: "FAIL", None: "SKIP"}[check["ok"]]
        print(f"{status}  {check['name']}")


def _plot(all_series: list[dict[str, Any]], path: Path) -> str:
    """Draw register time, metadata size and read times against N; return what happened."""
    try:
        import matplotlib
    except ImportError:
        return "plot skipped: matplotlib is not installed (uv sync --all-groups)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_c, ax_m, ax_r) = plt.subplots(1, 3, figsize=(15, 4.5))
    for series in all_series:
        label = series["label"]
        times = series["register_s"]
        ns = [s["n"] for s in series["samples"]]
        ax_c.plot(range(1, len(times) + 1), times, linewidth=0.8, label=label)
        mib = [s["metadata_bytes"] / 2**20 for s in series["samples"]]
        ax_m.plot(ns, mib, marker="o", label=label)
        line = ax_r.plot(ns, [s["pyiceberg_read_s"] for s in series["samples"]], marker="o")
        ax_r.plot(
            ns,
            [s["duckdb_read_s"] for s in series["samples"]],
            marker="s",
            linestyle="--",
            color=line[0].get_color(),
        )
        line[0].set_label(f"{label} (pyiceberg; DuckDB dashed)")
    ax_r.axhline(TARGET_READ_S, color="grey", linestyle=":", label="1 s bar")
    ax_c.set(xlabel="plate N", ylabel="register s", title="registration of the N-th plate")
    ax_m.set(xlabel="plates", ylabel="MiB", title="Iceberg metadata folders", xscale="log")
    ax_r.set(xlabel="plates", ylabel="s", title="read one plate's chunk_index", xscale="log")
    for ax in (ax_c, ax_m, ax_r):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_ylim(bottom=0)
    fig.suptitle(f"One catalog, 1…N plates of {PLATE_CHUNKS:,} chunks")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return f"plot: {path}"


def main(argv: list[str] | None = None) -> int:
    """Run the series, print (or dump) them, judge them; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=TARGET_N, help="plates per series")
    parser.add_argument("--maintain-every", type=int, default=100, help="0: no second series")
    parser.add_argument("--keep-last", type=int, default=1, help="snapshots maintenance keeps")
    parser.add_argument(
        "--stop-ratio",
        type=float,
        default=5.0,
        help="stop a series once its median of 5 registrations passes this multiple of "
        "the first 5 (the 2x bar is missed by then); 0: never",
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg-uri", default=None, help="default: a private server here")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--plot", action="store_true", help=f"write {PNG.name}")
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if a bar is missed")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.plates < 1 or not set(backends) <= {"sqlite", "postgres"}:
        parser.error("--plates must be >= 1 and --backends a list of sqlite, postgres")

    all_series = []
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ib-growth-")))
        template = work / "template.ome.zarr"
        shutil.copytree(ensure_benchmark_plate(args.cache_dir, wells=WELLS), template)
        duck = _duckdb()
        scan_s = _warm_up(template, duck)
        if "postgres" in backends and args.pg_uri is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from pg_server import postgres_server

            args.pg_uri = stack.enter_context(postgres_server(fsync=True))
        for backend in backends:
            for every in (0, args.maintain_every) if args.maintain_every else (0,):
                all_series.append(run_series(backend, every, args, template, duck))
    if args.json:
        print(json.dumps({"plate_chunks": PLATE_CHUNKS, "series": all_series}, indent=2))
    else:
        print(f"plate: {WELLS} wells, {PLATE_CHUNKS:,} chunk_index rows; reads: median of {READS}")
        for series in all_series:
            _print(series, scan_s)
    if args.plot:
        print(_plot(all_series, PNG), file=sys.stderr if args.json else sys.stdout)
    missed = any(c["ok"] is False for s in all_series for c in s["checks"])
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
