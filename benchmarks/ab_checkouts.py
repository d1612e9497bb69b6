"""One benchmark of this repository, run alternately in two checkouts: before and after.

Usage::

    uv run python benchmarks/ab_checkouts.py export_plate.py --before ../old-checkout \\
        [--pairs 3] [--cache-dir DIR] [-- ARGS FOR THE BENCHMARK]

Each pair runs the benchmark once in each checkout (its own ``uv run --all-groups``
environment, ``--repeat 1 --json``), the order alternating pair by pair, so a shared,
noisy machine loads both sides alike. It prints, per case, the median over pairs of
each side's median time and peak RSS, and the median of the paired ratios
after / before (1.00 = unchanged) of wall time and of CPU seconds (user + system, every
thread of the run: less sensitive than wall time to what else the machine does). Both
checkouts share ``--cache-dir``, so the generated plates and tables are written once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run(checkout: Path, bench: str, cache: Path, extra: list[str]) -> dict[str, dict]:
    command = [
        "uv", "run", "--all-groups", "python", f"benchmarks/{bench}",
        "--repeat", "1", "--json", "--cache-dir", str(cache), *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    out = subprocess.run(command, cwd=checkout, capture_output=True, text=True, env=env, check=True)
    payload = json.loads(out.stdout[out.stdout.index("{") :])
    return {r["name"]: r for r in payload["results"] if "median_s" in r}


def _cpu(result: dict) -> float:
    """Median CPU seconds of one side's runs of a case."""
    return statistics.median(run["work_cpu_s"] for run in result["runs"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", help="file name in benchmarks/, e.g. export_plate.py")
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=HERE / ".cache")
    parser.add_argument("extra", nargs="*", help="arguments passed to the benchmark")
    args = parser.parse_args()
    after = HERE.parent
    sides: dict[str, list[dict[str, dict]]] = {"before": [], "after": []}
    for pair in range(args.pairs):
        order = [("before", args.before), ("after", after)]
        for side, checkout in order if pair % 2 == 0 else order[::-1]:
            sides[side].append(_run(checkout.resolve(), args.bench, args.cache_dir, args.extra))
    for name in sides["after"][0]:
        before = [run[name] for run in sides["before"]]
        now = [run[name] for run in sides["after"]]
        ratios = [a["median_s"] / b["median_s"] for a, b in zip(now, before, strict=True)]
        cpu = [_cpu(a) / _cpu(b) for a, b in zip(now, before, strict=True)]
        print(
            f"{name}: before {statistics.median(r['median_s'] for r in before):.3f} s "
            f"{statistics.median(r['peak_rss_mib'] for r in before):.0f} MiB, "
            f"after {statistics.median(r['median_s'] for r in now):.3f} s "
            f"{statistics.median(r['peak_rss_mib'] for r in now):.0f} MiB; "
            f"after/before {statistics.median(ratios):.3f} "
            f"(pairs: {', '.join(f'{r:.3f}' for r in ratios)}); "
            f"CPU after/before {statistics.median(cpu):.3f} "
            f"(pairs: {', '.join(f'{r:.3f}' for r in cpu)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
