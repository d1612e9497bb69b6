"""How export and register scale with the plate: 96, 384, 1536 and 6,144 wells.

Usage::

    uv run python benchmarks/scaling.py [--wells 96,384,1536,6144] [--repeat 3] [--warmup 1]
        [--json] [--check]

For each plate (9 fields × 3 levels per well; 214,272 / 857,088 / 3,428,352 /
13,713,408 chunks; the 6,144-well plate is synthetic) it runs
``export_store_to_cytomining_warehouse`` and ``register_store(...,
publish_chunks=True)`` (embedded SQLite catalog) in fresh processes, each with a
fresh output folder, alternating the plates within a round. It reports the median
seconds, seconds per 100k chunks and the worst peak RSS, and draws time and
memory against chunks in ``benchmarks/results/scaling.png``.

Targets: peak RSS <= 350 MiB for both at every plate size (memory flat in plate
size), seconds per 100k chunks at 1536 wells <= the value at 384 wells, and register
<= 12 s at 1536 wells. ``--wells 96,384`` measures a subset.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _measure import Run, run_once
from _report import parse_args
from plate import ensure_benchmark_plate, plate_totals
from register_plate import NAMESPACE, WAREHOUSE_ENV, _child_env

WELLS = (96, 384, 1536, 6144)
TARGET_RSS_MIB = 350.0
TARGET_REGISTER_1536_S = 12.0
RESULTS_DIR = Path(__file__).resolve().parent / "results"

SETUP = """\
import pyarrow
from iceberg_bioimage.api import export_store_to_cytomining_warehouse, register_store
"""
WORK = {
    "export": "export_store_to_cytomining_warehouse(plate_path, out)\n",
    "register": 'register_store(plate_path, "default", namespace, publish_chunks=True)\n',
}


def _run(task: str, plate: Path) -> Run:
    with tempfile.TemporaryDirectory(prefix="iceberg-bioimage-scaling-") as tmp:
        variables = {"plate_path": str(plate), "out": f"{tmp}/wh", "namespace": NAMESPACE}
        env = _child_env(Path(tmp)) if task == "register" else {WAREHOUSE_ENV: tmp}
        return run_once(WORK[task], SETUP, variables, 900, env=env)


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for task, marker in (("export", "o"), ("register", "s")):
        mine = [r for r in rows if r["task"] == task]
        chunks = [r["chunks"] / 1e6 for r in mine]
        ax_t.plot(chunks, [r["median_s"] for r in mine], marker=marker, label=task)
        ax_m.plot(chunks, [r["peak_rss_mib"] for r in mine], marker=marker, label=task)
    target = f"{TARGET_RSS_MIB:g} MiB target"
    ax_m.axhline(TARGET_RSS_MIB, color="grey", linestyle="--", label=target)
    ax_t.set(xlabel="chunks (millions)", ylabel="seconds (median)", title="time")
    ax_m.set(xlabel="chunks (millions)", ylabel="peak RSS (MiB)", title="memory", ylim=(0, None))
    for ax in (ax_t, ax_m):
        ax.grid(alpha=0.3)
        ax.legend()
    wells = ", ".join(str(w) for w in sorted({r["wells"] for r in rows}))
    fig.suptitle(f"export-cytomining and register --publish-chunks: {wells} wells")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def _wells_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wells",
        type=lambda text: tuple(int(w) for w in text.split(",")),
        default=WELLS,
        help=f"plate sizes to measure, comma-separated (default {','.join(map(str, WELLS))})",
    )


def main(argv: list[str] | None = None) -> int:
    """Measure, judge, print and plot; return the process exit code."""
    args = parse_args(
        "Scaling of export and register with the plate size.", argv, extra=_wells_option
    )
    sizes = tuple(sorted(args.wells))
    plates = {w: ensure_benchmark_plate(args.cache_dir, wells=w) for w in sizes}
    runs: dict[tuple[str, int], list[Run]] = {(t, w): [] for t in WORK for w in sizes}
    for i in range(args.warmup + args.repeat):
        for task in WORK:
            for wells in sizes:
                print(f"round {i}: {task} {wells} wells ...", file=sys.stderr, flush=True)
                run = _run(task, plates[wells])
                if i >= args.warmup:
                    runs[(task, wells)].append(run)
    rows = []
    for (task, wells), rs in runs.items():
        chunks = plate_totals(wells)["chunks"]
        median = statistics.median(r.work_s for r in rs)
        rows.append(
            {
                "task": task,
                "wells": wells,
                "chunks": chunks,
                "median_s": median,
                "s_per_100k_chunks": median / chunks * 1e5,
                "peak_rss_mib": max(r.peak_rss_mib for r in rs),
            }
        )
    by = {(r["task"], r["wells"]): r for r in rows}
    checks = [
        (
            f"{task} {wells} peak RSS <= {TARGET_RSS_MIB:g} MiB",
            by[(task, wells)]["peak_rss_mib"] <= TARGET_RSS_MIB,
        )
        for task in WORK
        for wells in sizes
    ]
    if {384, 1536} <= set(sizes):
        for task in WORK:
            big, mid = by[(task, 1536)], by[(task, 384)]
            checks.append(
                (
                    f"{task} s/100k chunks at 1536 <= at 384",
                    big["s_per_100k_chunks"] <= mid["s_per_100k_chunks"],
                )
            )
        checks.append(
            (
                f"register 1536 <= {TARGET_REGISTER_1536_S:g} s",
                by[("register", 1536)]["median_s"] <= TARGET_REGISTER_1536_S,
            )
        )
    png = RESULTS_DIR / "scaling.png"
    _plot(rows, png)
    if args.json:
        import json

        print(json.dumps({"rows": rows, "checks": dict(checks), "png": str(png)}, indent=2))
    else:
        print(
            f"{'task':<9} {'wells':>5} {'chunks':>10} {'median s':>9} {'s/100k':>7} "
            f"{'peak RSS MiB':>13}"
        )
        for r in rows:
            print(
                f"{r['task']:<9} {r['wells']:>5} {r['chunks']:>10,} {r['median_s']:>9.2f} "
                f"{r['s_per_100k_chunks']:>7.3f} {r['peak_rss_mib']:>13.0f}"
            )
        for name, ok in checks:
            print(f"{'PASS' if ok else 'FAIL'}  {name}")
        print(
            f"(median over {args.repeat} fresh processes per case, imports excluded; "
            f"peak RSS = worst run, imports included) -> {png}"
        )
    return 1 if args.check and not all(ok for _, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
