"""The wide fuzz run: new random examples per seed, outside CI.

    uv run --all-groups python tests/run_wide_fuzz.py --seeds 100 [--test test_fuzz_tiff_headers]

Runs the chosen fuzz target once per seed (2,000 examples each, every example within
5 s of CPU time and 1 GiB of new address space, see ``tests/bounds.py``) and prints the
failing seeds and the slowest example (wall and CPU seconds). A failing seed's input
is printed by Hypothesis; keep it as an ``@example`` of the target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--test", default="test_fuzz_tiff_headers")
    args = parser.parse_args()
    failed: list[int] = []
    with tempfile.TemporaryDirectory() as scratch:
        stats = Path(scratch, "stats.txt")
        env = {**os.environ, "ICEBERG_BIOIMAGE_FUZZ": "wide"}
        env["ICEBERG_BIOIMAGE_FUZZ_STATS"] = str(stats)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                 f"--hypothesis-seed={seed}",
                 f"{HERE / 'formats' / 'test_fuzz_parsers.py'}::{args.test}"],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            status = "ok" if run.returncode == 0 else "FAILED"
            print(f"seed {seed}: {status}", flush=True)
            if run.returncode != 0:
                failed.append(seed)
                print(run.stdout[-4000:], flush=True)
        rows = [line.split() for line in stats.read_text().splitlines()] if stats.exists() else []
    slowest = max((float(wall) for wall, _, _ in rows), default=0.0)
    most_cpu = max((float(cpu) for _, cpu, _ in rows), default=0.0)
    grown = max((int(m) for _, _, m in rows), default=0)
    print(
        f"{len(rows):,} examples over {args.seeds} seeds; failed seeds: {failed or 'none'}; "
        f"slowest example {slowest:.2f} s wall, most CPU {most_cpu:.2f} s; "
        f"address space grown at most {grown / 2**20:.0f} MiB"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
