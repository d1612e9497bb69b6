"""Compare our CLI with the published reference (iceberg-bioimage 0.1.0) on one export.

Usage::

    uv run python benchmarks/compare_reference.py [--rounds 3] [--json] [--check]

Installs ``iceberg-bioimage==0.1.0`` from PyPI once into its own venv under
``benchmarks/.cache/reference-venv`` (``uv venv`` + ``uv pip install``), then runs
``iceberg-bioimage export-cytomining <384-well plate> --warehouse-root <fresh dir>``
with our CLI and with the reference's, alternating, ``--rounds`` times after one
warm-up each. Each run is a whole process: wall and CPU seconds and peak RSS come
from ``os.wait4``. Both sides run with bytecode caching on (see ``_process.py``).

Targets: ours >= 15x faster (median wall) and peak RSS <= 0.5x the reference's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _process import BYTECODE_NOTE, ProcessRun, alternate, medians, process_env, run_process
from plate import DEFAULT_CACHE_DIR, N_CHUNKS, ensure_benchmark_plate

REFERENCE = "iceberg-bioimage==0.1.0"
TARGET_SPEEDUP = 15.0
TARGET_RSS_RATIO = 0.5


def ensure_reference(cache_dir: Path) -> Path:
    """The reference's CLI, installed once into ``cache_dir/reference-venv``."""
    venv = cache_dir / "reference-venv"
    cli = venv / "bin" / "iceberg-bioimage"
    marker = venv / ".installed"
    if not (cli.exists() and marker.exists() and marker.read_text() == REFERENCE):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run(["uv", "venv", "-q", "-p", sys.executable, str(venv)], check=True)
        python = str(venv / "bin" / "python")
        subprocess.run(["uv", "pip", "install", "-q", "-p", python, REFERENCE], check=True)
        marker.write_text(REFERENCE)
    return cli


def _export(cli: Path, plate: Path, pycache: Path) -> ProcessRun:
    out = Path(tempfile.mkdtemp(prefix="iceberg-bioimage-compare-"))
    try:
        argv = [str(cli), "export-cytomining", str(plate), "--warehouse-root", str(out / "wh")]
        return run_process(argv, process_env(pycache))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; exit 1 with ``--check`` when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)

    plate = ensure_benchmark_plate(args.cache_dir)
    reference = ensure_reference(args.cache_dir)
    ours = Path(sys.executable).parent / "iceberg-bioimage"
    sides = {
        "ours": lambda: _export(ours, plate, args.cache_dir / "pycache-ours"),
        "reference": lambda: _export(reference, plate, args.cache_dir / "pycache-reference"),
    }
    runs = alternate(sides, args.rounds)
    figures = {name: medians(r) for name, r in runs.items()}
    speedup = figures["reference"]["wall_s"] / figures["ours"]["wall_s"]
    rss_ratio = figures["ours"]["peak_rss_mib"] / figures["reference"]["peak_rss_mib"]
    ok = speedup >= TARGET_SPEEDUP and rss_ratio <= TARGET_RSS_RATIO
    payload = {
        "plate": str(plate),
        "chunks": N_CHUNKS,
        "rounds": args.rounds,
        "bytecode": BYTECODE_NOTE,
        "figures": figures,
        "runs": {name: [r.__dict__ for r in rs] for name, rs in runs.items()},
        "speedup": speedup,
        "rss_ratio": rss_ratio,
        "status": "PASS" if ok else "FAIL",
    }
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(f"export-cytomining of {plate.name} ({N_CHUNKS:,} chunks), {args.rounds} rounds A/B")
        print(BYTECODE_NOTE)
        for name, f in figures.items():
            print(
                f"{name:<10} wall {f['wall_s']:6.2f} s  cpu {f['cpu_s']:6.2f} s  "
                f"peak RSS {f['peak_rss_mib']:6.0f} MiB (median {f['median_peak_rss_mib']:.0f})"
            )
        print(
            f"speed-up {speedup:.1f}x (target >= {TARGET_SPEEDUP:g}x); peak RSS ratio "
            f"{rss_ratio:.2f} (target <= {TARGET_RSS_RATIO:g}) -> {payload['status']}"
        )
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
