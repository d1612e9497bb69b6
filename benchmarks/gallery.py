"""The Cell Painting Gallery, simulated: Phenix plates of header-only TIFFs ingested on Dask.

Usage::

    env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=/tmp/pycache \\
        uv run --all-groups python benchmarks/gallery.py [--plates 8] [--batches 2] \\
        [--wells 384] [--workers N] [--layout real|ifd-first] [--s3-plates 1] \\
        [--latency-ms 20] [--json] [--check]

The gallery (written once, cached under ``benchmarks/.cache/``) is laid out as the
Cell Painting Gallery holds cpg0016:
``images/<batch>/images/<plate>__2026-01-01T00_00_00-Measurement1/Images/
r01c01f01p01-ch1sk1fk1fl1.tiff`` … for ``--wells`` wells (384: rows A-P × columns
1-24) × 9 fields × 5 channels = 17,280 Phenix-named TIFFs per plate. Every file is
a *sparse file*: the bytes of a real TIFF outside its pixel strips are written where
they belong and the file is extended to its full size, so the pixels are holes (no
disk used, zeros when read) while every header, IFD offset, strip offset and file
size is real. The first plate is written; the files of every later plate are hard
links to it (its own folder and names, the same inodes' bytes: with ``--layout
real`` a plate holds 1.4 GiB of header bytes, the tail XML, so disk is paid once).
``--layout real`` (default) copies the one real Phenix TIFF in the
repository (``tests/data/real/pe2loaddata/Version5/images/r01c01f01p01-ch6sk1fk1fl1
.tiff``, Harmony, CellCarrier Ultra: 1080×1080 uint16, LZW in one strip, the IFD
and an 80 KB XML tag *after* the pixels, 1,356,205 bytes); ``--layout ifd-first`` is
what tifffile writes (1080×1080 uint16 uncompressed, IFD before the pixels).

Cases, each in a fresh driver process (``_measure.run_once``; the cluster starts and
the workers import the scan modules in the untimed setup):

* ``local``: ``ingest_stores_to_warehouse`` of ``--plates`` plates (one store each)
  on a ``distributed.LocalCluster`` of ``--workers`` processes (one thread each,
  default: the cores) into an embedded SQLite SqlCatalog, in ``--batches`` ingests
  (one commit per table each) into one namespace: scan + chunk index + data files
  on the workers, the commits on the driver.
* ``s3``: the same for ``--s3-plates`` plates served over S3 from the same sparse
  files (``_folder_s3``: ListObjectsV2 and ranged GETs from a local folder, since
  moto would store every pixel) through the counting proxy of
  ``tests/s3_proxy.py``: GET / HEAD / LIST requests, once with 0 ms and once with
  ``--latency-ms`` added to every request; the warehouse stays local.

Reported: files/s per core end to end (files / wall / workers), files per CPU second
(driver + scheduler + workers), the driver's commit time per plate (from the last
plate's report to the end of its ingest: identity check, two commits, the sweep),
requests per file, the seconds latency adds per plate; and a projection for cpg0016
on 64 cores, stage by stage, each assumption printed.

Bars (issue 23): >= 7,000 files/s per core end to end (the ``local`` case), <= 1.1
GETs per file (the ``s3`` case), and a cpg0016 projection <= 2 h on 64 cores.
``--check`` exits 1 when one is missed or a row count is wrong.

Cost: the default run (8 plates = 138,240 files locally, 1 plate twice over S3) takes
about 3 minutes on 2 cores (``--plates 4`` took 181 s here at a load average of 6),
nearly all of it the two S3 cases: the S3 client spends ~1.2 ms of CPU per request,
and the server and proxy run in this process. Generation adds ~15 s once (1.5 GiB of
disk for ``--layout real``, 70 MiB for ``ifd-first``).
For a quick look: ``--plates 2 --wells 96``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np
import tifffile
from _folder_s3 import folder_s3_server
from _measure import run_once
from plate import DEFAULT_CACHE_DIR

from s3_proxy import counting_proxy
from s3_server import s3_storage_options

REPO = Path(__file__).resolve().parents[1]
REAL_PHENIX = REPO / "tests/data/real/pe2loaddata/Version5/images/r01c01f01p01-ch6sk1fk1fl1.tiff"
#: Bump when the generated layout changes so stale caches get rebuilt.
LAYOUT_VERSION = 1
ROWS, COLUMNS, SITES, CHANNELS = 16, 24, 9, 5
BATCH_NAME = "2026_01_01_Batch1"
TIMESTAMP = "2026-01-01T00_00_00"
BUCKET = "gallery"
WRITERS = 8

TARGET_FILES_PER_S_PER_CORE = 7000.0
TARGET_GETS_PER_FILE = 1.1
TARGET_PROJECTION_H = 2.0

#: cpg0016 (JUMP), for the projection.
CPG0016_PLATES = 2300
CPG0016_FILES_PER_PLATE = ROWS * COLUMNS * SITES * CHANNELS
CPG0016_CORES = 64
#: Assumed round trip of one small ranged GET or LIST page on S3 in-region (seconds).
S3_LATENCY_S = 0.030
#: Ranged GETs in flight per worker: ``max_pool_connections`` in ``io/storage.py``'s S3 defaults.
S3_CONCURRENCY = 64


def file_name(row: int, column: int, site: int, channel: int) -> str:
    """Phenix (Harmony export) name of one plane, 1-based numbers."""
    return f"r{row:02d}c{column:02d}f{site:02d}p01-ch{channel}sk1fk1fl1.tiff"


def plate_name(index: int) -> str:
    """Barcode-like plate id of the ``index``-th plate (0-based)."""
    return f"BRG{index + 1:05d}"


def measurement_folder(plate: str) -> str:
    """A plate's folder below the gallery root, as the Cell Painting Gallery lays it out."""
    return f"images/{BATCH_NAME}/images/{plate}__{TIMESTAMP}-Measurement1"


@dataclass(frozen=True)
class Template:
    """The bytes of a TIFF outside its pixel strips: ``head`` at 0, ``tail`` at ``tail_at``."""

    head: bytes
    tail: bytes
    tail_at: int
    size: int
    description: str

    @classmethod
    def of(cls, data: bytes, description: str) -> Template:
        """Split a whole TIFF into what a sparse copy keeps."""
        page = tifffile.TiffFile(io.BytesIO(data)).pages.first
        start = min(page.dataoffsets)
        end = max(o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True))
        return cls(data[:start], data[end:], end, len(data), description)

    def write(self, path: str) -> None:
        """Write one sparse file: the header bytes, then holes up to the full size."""
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            os.pwrite(fd, self.head, 0)
            if self.tail:
                os.pwrite(fd, self.tail, self.tail_at)
            os.ftruncate(fd, self.size)
        finally:
            os.close(fd)


def template(layout: str) -> Template:
    """The file every plane of the gallery copies (see the module docstring)."""
    if layout == "real":
        data = REAL_PHENIX.read_bytes()
        return Template.of(data, "real Phenix (Harmony) TIFF: LZW, 1 strip, IFD after pixels")
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((1080, 1080), np.uint16), photometric="minisblack")
    return Template.of(buffer.getvalue(), "tifffile 1080x1080 uint16, uncompressed, IFD first")


def well_places(wells: int) -> list[tuple[int, int]]:
    """The first ``wells`` wells of a 384-well plate, row-major, as (row, column), 1-based."""
    return [(1 + i // COLUMNS, 1 + i % COLUMNS) for i in range(wells)]


def ensure_gallery(
    cache_dir: Path | None, layout: str, plates: int, wells: int
) -> tuple[Path, dict[str, Any]]:
    """The gallery root with at least ``plates`` complete plates; how long writing took.

    The first plate's files are written as sparse files; every later plate's files
    are hard links to them (the same bytes under the plate's own folder and names:
    disk is paid once, ~1.4 GiB per plate of ``--layout real`` otherwise).
    """
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    root = cache / f"gallery-v{LAYOUT_VERSION}-{layout}-{wells}w"
    markers = cache / f"gallery-v{LAYOUT_VERSION}-{layout}-{wells}w.complete"
    markers.mkdir(parents=True, exist_ok=True)
    tiff = template(layout)
    names = [
        file_name(*place, site, channel)
        for place in well_places(wells)
        for site in range(1, SITES + 1)
        for channel in range(1, CHANNELS + 1)
    ]
    first = root / measurement_folder(plate_name(0)) / "Images"
    made = {"written": 0, "linked": 0}
    seconds = 0.0
    for index in range(plates):
        plate = plate_name(index)
        if (markers / plate).exists():
            continue
        start = time.perf_counter()
        images = root / measurement_folder(plate) / "Images"
        images.mkdir(parents=True, exist_ok=True)
        if index == 0:
            with ThreadPoolExecutor(WRITERS) as pool:
                list(pool.map(lambda name: tiff.write(str(first / name)), names))
            made["written"] += len(names)
        else:
            for name in names:
                target = images / name
                target.unlink(missing_ok=True)
                os.link(first / name, target)
            made["linked"] += len(names)
        os.sync()
        (markers / plate).write_text("complete\n")
        seconds += time.perf_counter() - start
    sample = names[:200]
    blocks = sum(os.stat(first / name).st_blocks for name in sample)
    info = {
        "root": str(root),
        "layout": layout,
        "template": tiff.description,
        "file_bytes": tiff.size,
        "header_bytes": len(tiff.head) + len(tiff.tail),
        "disk_bytes_per_file": blocks * 512 / len(sample),
        "files_per_plate": len(names),
        "written_files": made["written"],
        "linked_files": made["linked"],
        "write_s": seconds,
    }
    return root, info


SETUP = """
import json, resource, time, uuid
from pyiceberg.catalog.sql import SqlCatalog
from distributed import Client, LocalCluster
from iceberg_bioimage import ingest_stores_to_warehouse
catalog = SqlCatalog("gallery", uri=catalog_uri, warehouse=warehouse)
namespace = "run_" + uuid.uuid4().hex[:8]
cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                       dashboard_address=None)
client = Client(cluster)
def _warm():
    import pyarrow as pa, pyarrow.parquet
    import iceberg_bioimage.engines.dask, iceberg_bioimage.formats.file_set.scan
    import iceberg_bioimage.formats.file_set.plate_files, iceberg_bioimage.formats.tiff.headers
    import iceberg_bioimage.tables.build, iceberg_bioimage.catalog.data_files
    if storage_options:
        import s3fs
    pa.array([0])
client.run(_warm)
def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
workers_cpu_before = client.run(_cpu)
batch_figures = []
"""

WORK = """
for batch in batches:
    last = [0.0]
    start = time.perf_counter()
    result = ingest_stores_to_warehouse(
        batch, catalog, namespace, storage_options=storage_options, client=client,
        on_scanned=lambda dataset: last.__setitem__(0, time.perf_counter()),
    )
    end = time.perf_counter()
    batch_figures.append({"plates": len(result.datasets), "seconds": end - start,
                          "commit_s": end - last[0]})
"""

CHECK = """
workers_cpu_after = client.run(_cpu)
worker_cpu = sum(workers_cpu_after[w] - workers_cpu_before.get(w, 0.0) for w in workers_cpu_after)
tables = {t: catalog.load_table((namespace, t)) for t in ("image_assets", "chunk_index")}
rows = {t: int(table.current_snapshot().summary["total-records"]) for t, table in tables.items()}
snapshots = {t: len(table.snapshots()) for t, table in tables.items()}
with open(figures_file, "a") as out:
    out.write(json.dumps({"worker_cpu_s": worker_cpu, "batches": batch_figures,
                          "rows": rows, "snapshots": snapshots}) + "\\n")
client.close()
cluster.close()
"""


def _split(stores: list[str], batches: int) -> list[list[str]]:
    size = -(-len(stores) // max(1, batches))
    return [stores[i : i + size] for i in range(0, len(stores), size)]


def ingest_case(
    name: str,
    stores: list[str],
    *,
    batches: int,
    workers: int,
    storage_options: dict[str, Any] | None,
    files_per_plate: int,
    wells: int,
) -> dict[str, Any]:
    """One fresh driver process ingesting ``stores`` on a LocalCluster; its figures."""
    with tempfile.TemporaryDirectory(prefix="gallery-wh-") as tmp:
        figures_file = Path(tmp) / "figures.jsonl"
        variables = {
            "batches": _split(stores, batches),
            "workers": workers,
            "storage_options": storage_options,
            "catalog_uri": f"sqlite:///{tmp}/catalog.db",
            "warehouse": f"file://{tmp}/warehouse",
            "figures_file": str(figures_file),
        }
        print(f"running {name}: {len(stores)} plates ...", file=sys.stderr, flush=True)
        run = run_once(WORK, SETUP, variables, timeout=7200, check=CHECK)
        check = json.loads(figures_file.read_text().splitlines()[-1])
    files = len(stores) * files_per_plate
    cores = min(workers, os.cpu_count() or workers)
    cpu = run.work_cpu_s + check["worker_cpu_s"]
    commit_s = sum(b["commit_s"] for b in check["batches"])
    expected = {"image_assets": len(stores) * wells * SITES, "chunk_index": files}
    return {
        "case": name,
        "plates": len(stores),
        "files": files,
        "workers": workers,
        "cores_used": cores,
        "seconds": run.work_s,
        "files_per_s": files / run.work_s,
        "files_per_s_per_core": files / run.work_s / cores,
        "files_per_cpu_s": files / cpu,
        "driver_cpu_s": run.work_cpu_s,
        "worker_cpu_s": check["worker_cpu_s"],
        "worker_cpu_s_per_file": check["worker_cpu_s"] / files,
        "commit_s": commit_s,
        "commit_s_per_plate": commit_s / len(stores),
        "batches": check["batches"],
        "driver_peak_rss_mib": run.peak_rss_mib,
        "rows": check["rows"],
        "expected_rows": expected,
        "snapshots": check["snapshots"],
        "rows_ok": check["rows"] == expected,
    }


def s3_cases(
    root: Path, plates: list[str], latency_ms: float, workers: int, files_per_plate: int, wells: int
) -> list[dict[str, Any]]:
    """Ingest ``plates`` over S3 with 0 ms and ``latency_ms`` added per request."""
    cases = []
    with folder_s3_server(root, BUCKET) as upstream:
        stores = [f"s3://{BUCKET}/{measurement_folder(plate)}" for plate in plates]
        for delay in (0.0, latency_ms):
            with counting_proxy(upstream, delay=delay / 1000) as counter:
                case = ingest_case(
                    f"s3 +{delay:g} ms",
                    stores,
                    batches=1,
                    workers=workers,
                    storage_options=s3_storage_options(counter.endpoint),
                    files_per_plate=files_per_plate,
                    wells=wells,
                )
                requests = counter.snapshot()
            files = case["files"]
            case.update(
                delay_ms=delay,
                requests=requests,
                gets_per_file=requests["GET"] / files,
                heads_per_file=requests["HEAD"] / files,
                lists_per_plate=requests["LIST"] / len(plates),
            )
            cases.append(case)
    return cases


def projection(local: dict[str, Any], s3: list[dict[str, Any]], latency_ms: float) -> dict:
    """cpg0016 on 64 cores, stage by stage, from the measured figures (see the lines it prints)."""
    base, slow = s3[0], s3[-1]
    files = CPG0016_PLATES * CPG0016_FILES_PER_PLATE
    workers = CPG0016_CORES - 1  # one core for the driver, the scheduler and the commits
    per_file = {kind: n / base["files"] for kind, n in base["requests"].items()}
    # one plate's round trips on one worker: GETs and HEADs S3_CONCURRENCY at a time,
    # LIST pages one after another (each page names where the next starts)
    concurrent = (per_file["GET"] + per_file["HEAD"]) * CPG0016_FILES_PER_PLATE
    sequential = per_file["LIST"] * CPG0016_FILES_PER_PLATE
    latency_per_plate = (concurrent / S3_CONCURRENCY + sequential) * S3_LATENCY_S
    # what latency added here, for comparison (noisy on a busy machine; <= 0: hidden)
    busy = min(slow["plates"], slow["workers"])
    added = (slow["seconds"] - base["seconds"]) * busy / slow["plates"]
    requests_here = sum(slow["requests"].values()) / slow["plates"]
    seen = (
        f"measured here: +{added:.1f} s per plate at {latency_ms:g} ms, an effective "
        f"concurrency of {requests_here * latency_ms / 1000 / added:.0f}"
        if added > 0
        else f"measured here: no slower at {latency_ms:g} ms, hidden behind this machine's CPU"
    )
    batch_plates = local["plates"] / max(1, len(local["batches"]))
    commit_per_batch = sum(b["commit_s"] for b in local["batches"]) / max(1, len(local["batches"]))
    commits = math.ceil(CPG0016_PLATES / batch_plates)
    stages = {
        "scan + chunk index + data files (worker CPU, S3 client included)": files
        * base["worker_cpu_s_per_file"]
        / workers,
        "S3 round trips (GET, HEAD, LIST), none hidden behind CPU": CPG0016_PLATES
        * latency_per_plate
        / workers,
        "driver commits (serial, one catalog)": commits * commit_per_batch,
    }
    total = sum(stages.values())
    gets = files * per_file["GET"]
    assumptions = [
        f"cpg0016: {CPG0016_PLATES:,} plates × {CPG0016_FILES_PER_PLATE:,} files "
        f"(384 wells × 9 fields × 5 channels) = {files / 1e6:.1f} M files, laid out as "
        "simulated here (one store per plate)",
        f"{CPG0016_CORES} cores: {workers} Dask worker processes of one thread, one core for "
        "driver + scheduler; worker CPU per file as measured here on S3 "
        f"({base['worker_cpu_s_per_file'] * 1e6:,.0f} µs), cores as fast as these",
        f"S3 round trip {S3_LATENCY_S * 1000:g} ms per request (assumed, in-region); "
        f"{S3_CONCURRENCY} GETs in flight per worker (the s3fs connection pool the defaults "
        f"set); LIST pages one after another; {per_file['GET']:.3f} GETs, "
        f"{per_file['HEAD'] * 1e3:.2f} HEADs and {per_file['LIST'] * 1e3:.2f} LISTs per 1,000 "
        f"files as counted here: {latency_per_plate:.1f} s per plate ({seen})",
        "stages do not overlap (conservative: the workers parse one batch while the next is "
        "read, and commits could run while the next batch scans)",
        f"commits: {commits:,} ingests of {batch_plates:g} plates (as measured here), "
        f"{commit_per_batch:.2f} s each (the mean of the {len(local['batches'])} measured "
        "here; SQLite catalog and warehouse on local disk), one after another, none growing "
        "with the table's size",
        f"S3 serves {gets / (total or 1):,.0f} GET/s on average over the run "
        f"({gets / 1e6:.0f} M GETs; S3 allows >= 5,500 GET/s per prefix, and every plate is "
        "its own prefix)",
    ]
    return {
        "stages_s": stages,
        "total_s": total,
        "total_h": total / 3600,
        "gets": gets,
        "latency_s_per_plate": latency_per_plate,
        "latency_added_here_s_per_plate": added,
        "assumptions": assumptions,
        "ok": total / 3600 <= TARGET_PROJECTION_H,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Generate (or reuse) the gallery, run both cases and project; return the figures."""
    started = time.perf_counter()
    plates_needed = max(args.plates, args.s3_plates)
    root, gallery = ensure_gallery(args.cache_dir, args.layout, plates_needed, args.wells)
    files_per_plate = gallery["files_per_plate"]
    load_before = os.getloadavg()[0]
    local_stores = [str(root / measurement_folder(plate_name(i))) for i in range(args.plates)]
    local = ingest_case(
        "local",
        local_stores,
        batches=args.batches,
        workers=args.workers,
        storage_options=None,
        files_per_plate=files_per_plate,
        wells=args.wells,
    )
    s3 = s3_cases(
        root,
        [plate_name(i) for i in range(args.s3_plates)],
        args.latency_ms,
        args.workers,
        files_per_plate,
        args.wells,
    )
    projected = projection(local, s3, args.latency_ms)
    verdicts = {
        "files_per_s_per_core": local["files_per_s_per_core"] >= TARGET_FILES_PER_S_PER_CORE,
        "gets_per_file": s3[0]["gets_per_file"] <= TARGET_GETS_PER_FILE,
        "projection": projected["ok"],
        "rows": all(case["rows_ok"] for case in (local, *s3)),
    }
    return {
        "gallery": gallery,
        "cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "cases": [local, *s3],
        "projection": projected,
        "verdicts": verdicts,
        "benchmark_s": time.perf_counter() - started,
    }


def _pass(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_report(figures: dict[str, Any]) -> None:
    """The figures as text."""
    g = figures["gallery"]
    print(
        f"gallery: {g['root']}: {g['files_per_plate']:,} files per plate; each "
        f"{g['file_bytes']:,} bytes, {g['header_bytes']:,} of them written "
        f"({g['disk_bytes_per_file'] / 1024:.0f} KiB on disk); {g['template']}"
    )
    if g["written_files"] or g["linked_files"]:
        print(
            f"generation (once, cached): {g['written_files']:,} sparse files written and "
            f"{g['linked_files']:,} hard links made in {g['write_s']:.1f} s (incl. sync)"
        )
    print(
        f"machine: {figures['cores']} cores, load average {figures['load_average_before']:.1f} "
        f"before, {figures['load_average_after']:.1f} after (other processes share the cores)"
    )
    print(
        f"{'case':<12}{'plates':>7}{'files':>9}{'wall s':>8}{'files/s':>9}{'/core':>8}"
        f"{'/CPU s':>8}{'drv CPU':>9}{'wrk CPU':>9}{'commit/plate':>13}"
        f"{'GET/file':>9}{'HEAD':>6}{'LIST/plate':>11}  rows"
    )
    for c in figures["cases"]:
        requests = (
            f"{c['gets_per_file']:>9.3f}{c['requests']['HEAD']:>6}{c['lists_per_plate']:>11.1f}"
            if "requests" in c
            else f"{'-':>9}{'-':>6}{'-':>11}"
        )
        print(
            f"{c['case']:<12}{c['plates']:>7}{c['files']:>9,}{c['seconds']:>8.2f}"
            f"{c['files_per_s']:>9,.0f}{c['files_per_s_per_core']:>8,.0f}"
            f"{c['files_per_cpu_s']:>8,.0f}{c['driver_cpu_s']:>9.2f}{c['worker_cpu_s']:>9.2f}"
            f"{c['commit_s_per_plate']:>13.3f}{requests}  {'ok' if c['rows_ok'] else 'WRONG'}"
        )
    local = figures["cases"][0]
    print(
        "batches (local): "
        + "; ".join(
            f"{b['plates']} plates {b['seconds']:.2f} s, commit {b['commit_s']:.2f} s"
            for b in local["batches"]
        )
    )
    print(
        "(files/s per core = files / wall / workers; /CPU s = files per CPU second of driver "
        "+ scheduler + workers, the rate per core when the cores are all ours; commit = "
        "driver time from the last plate's report to the end of its ingest)"
    )
    if figures["load_average_before"] > figures["cores"]:
        print(
            f"NOTE: the load average exceeded the {figures['cores']} cores: wall rates are lower "
            "bounds here; the /CPU s rate is what cores of our own give"
        )
    p = figures["projection"]
    print(f"projection, cpg0016 on {CPG0016_CORES} cores:")
    for stage, seconds in p["stages_s"].items():
        print(f"  {stage:<66} {seconds / 60:>8.1f} min")
    print(f"  {'total':<66} {p['total_s'] / 60:>8.1f} min = {p['total_h']:.2f} h")
    print("  assumptions:")
    for line in p["assumptions"]:
        print(f"  - {line}")
    v = figures["verdicts"]
    base = figures["cases"][1]
    print(
        f"bars: {local['files_per_s_per_core']:,.0f} files/s per core (>= "
        f"{TARGET_FILES_PER_S_PER_CORE:,.0f}) {_pass(v['files_per_s_per_core'])}; "
        f"{base['gets_per_file']:.3f} GETs per file (<= {TARGET_GETS_PER_FILE}) "
        f"{_pass(v['gets_per_file'])}; projection {p['total_h']:.2f} h (<= "
        f"{TARGET_PROJECTION_H:g} h) {_pass(v['projection'])}; rows {_pass(v['rows'])}"
    )
    print(f"(the whole benchmark took {figures['benchmark_s']:.0f} s, generation included)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a report (or JSON); exit 1 on a missed bar with --check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=8, help="plates ingested locally")
    parser.add_argument(
        "--batches", type=int, default=2, help="ingests the local plates split into"
    )
    parser.add_argument(
        "--wells", type=int, default=ROWS * COLUMNS, help="wells per plate (<= 384)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Dask workers")
    parser.add_argument("--layout", choices=("real", "ifd-first"), default="real")
    parser.add_argument("--s3-plates", type=int, default=1, help="plates ingested over S3")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added per S3 request")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if a bar is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.wells <= ROWS * COLUMNS:
        parser.error(f"--wells must be 1..{ROWS * COLUMNS}")
    figures = run(args)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_report(figures)
    return 1 if args.check and not all(figures["verdicts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
