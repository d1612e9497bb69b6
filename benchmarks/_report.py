"""The parts the plate benchmarks share: CLI, plate info, case loop, verdicts and report.

A benchmark script defines its cases and how to measure one; this module parses
the common command line, describes the benchmark plate, runs the cases (a failed
run becomes an ``ERROR`` result), judges the figures against the targets and
prints them as a text table or as JSON, returning the process exit code.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from _measure import MeasureError, Measurement, Run
from plate import N_ARRAYS, N_CHUNKS, N_IMAGES, disk_usage_bytes, ensure_benchmark_plate


class NamedCase(Protocol):
    """Anything with a case name (the scripts' ``Case`` dataclasses)."""

    @property
    def name(self) -> str:
        """The case name shown in the table and the JSON."""
        ...


CaseT = TypeVar("CaseT", bound=NamedCase)


def parse_args(
    description: str,
    argv: list[str] | None,
    *,
    repeat: int = 5,
    warmup: int = 1,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """Parse the options every benchmark takes (``argv=None``: ``sys.argv``).

    ``extra`` adds a benchmark's own options to the parser.
    """
    parser = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(parser)
    parser.add_argument("--repeat", type=int, default=repeat, help="counted runs per case")
    parser.add_argument(
        "--warmup", type=int, default=warmup, help="discarded runs per case (OS caches)"
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    parser.add_argument("--check", action="store_true", help="exit non-zero if a target is missed")
    return parser.parse_args(argv)


def prepare_plate(cache_dir: Path | None) -> tuple[Path, dict[str, Any]]:
    """Make sure the benchmark plate exists; return its path and its description."""
    start = time.perf_counter()
    plate_path = ensure_benchmark_plate(cache_dir)
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
    return plate_path, plate_info


def measure_in_folders(
    name: str,
    run: Callable[[Path | None], Run],
    repeat: int,
    warmup: int,
    folder_prefix: str | None,
) -> tuple[Measurement, list[float]]:
    """Call ``run`` ``warmup + repeat`` times, keeping the last ``repeat`` runs.

    With ``folder_prefix``, every call gets a fresh, empty folder under the system
    temporary directory (removed afterwards) and the folder's size on disk (MiB)
    after each counted run is returned too; without, ``run`` gets ``None`` and the
    list of sizes is empty.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    runs: list[Run] = []
    sizes_mib: list[float] = []
    for i in range(warmup + repeat):
        folder = Path(tempfile.mkdtemp(prefix=folder_prefix)) if folder_prefix is not None else None
        try:
            result = run(folder)
            if i >= warmup:
                runs.append(result)
                if folder is not None:
                    sizes_mib.append(disk_usage_bytes(folder)[0] / 2**20)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    return Measurement(name=name, runs=runs), sizes_mib


def run_cases(
    cases: Iterable[CaseT], run: Callable[[CaseT], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Return ``run(case)`` for every case; a :class:`MeasureError` gives an ``ERROR`` result."""
    results: list[dict[str, Any]] = []
    for case in cases:
        print(f"running {case.name} ...", file=sys.stderr, flush=True)
        try:
            results.append(run(case))
        except MeasureError as exc:
            print(f"{case.name} failed: {exc}", file=sys.stderr)
            results.append({"name": case.name, "error": str(exc), "status": "ERROR"})
    return results


def _status(ok: bool) -> str:
    """Return ``PASS`` or ``FAIL``."""
    return "PASS" if ok else "FAIL"


def verdict(m: Measurement, target_s: float, target_rss_mib: float | None) -> dict[str, Any]:
    """Return the figures of ``m`` with PASS/FAIL verdicts (``target_rss_mib=None``: no target)."""
    time_ok = m.median_s <= target_s
    rss_ok = target_rss_mib is None or m.peak_rss_mib <= target_rss_mib
    return {
        **m.summary(),
        "target_s": target_s,
        "target_rss_mib": target_rss_mib,
        "time_status": _status(time_ok),
        "rss_status": _status(rss_ok) if target_rss_mib is not None else "n/a",
        "status": _status(time_ok and rss_ok),
    }


def _print_table(
    results: list[dict[str, Any]],
    plate_info: dict[str, Any],
    repeat: int,
    heading: Sequence[str],
    per_process: str,
) -> None:
    """Print the plate line, the ``heading`` lines and the results as a compact text table."""
    print(
        f"plate: {plate_info['path']} ({plate_info['images']:,} images, "
        f"{plate_info['arrays']:,} arrays, {plate_info['chunks']:,} chunks; "
        f"ensure {plate_info['ensure_s']:.2f} s)"
    )
    for line in heading:
        print(line)
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
        if r["target_rss_mib"] is None:
            rss_target = "(no target)"
        else:
            rss_target = f"<= {r['target_rss_mib']:g} MiB {r['rss_status']}"
        print(
            f"{r['name']:<20} {r['median_s']:>9.3f} {r['min_s']:>7.3f} "
            f"{r['max_s']:>7.3f} {r['median_setup_s']:>9.3f} "
            f"{r['peak_rss_mib']:>13.1f}  {time_target:<14} {rss_target}"
        )
    print(
        f"(time = median over {repeat} fresh processes, {per_process}"
        "imports excluded; peak RSS = worst run, imports included)"
    )


def report(
    args: argparse.Namespace,
    plate_info: dict[str, Any],
    results: list[dict[str, Any]],
    notes: Callable[[list[dict[str, Any]]], Iterable[str]],
    *,
    extra: dict[str, Any],
    heading: Sequence[str] = (),
    per_process: str = "",
) -> int:
    """Print the results and return the process exit code.

    With ``--json`` the output is ``{"plate", **extra, "results"}``; otherwise the
    plate line, the ``heading`` lines, the table (its footnote says ``per_process``
    after "fresh processes, ") and the lines ``notes(results)`` gives.  The exit
    code is 1 only with ``--check`` and a result that did not PASS.
    """
    if args.json:
        payload = {"plate": plate_info, **extra, "results": results}
        print(json.dumps(payload, indent=2))
    else:
        _print_table(results, plate_info, args.repeat, heading, per_process)
        for line in notes(results):
            print(line)
    failed = any(r["status"] != "PASS" for r in results)
    return 1 if args.check and failed else 0


class AB:
    """Alternating A/B runs of ``ours`` against a ``floor``, and the figures they give."""

    def __init__(self, runs: dict[str, list[Run]]) -> None:
        self.runs = runs
        self.ours = Measurement("ours", runs["ours"])
        self.floor = Measurement("floor", runs["floor"])
        self.ratio = self.ours.median_s / self.floor.median_s
        self.pairs = [o.work_s / f.work_s for o, f in zip(runs["ours"], runs["floor"], strict=True)]
        self.cpu = {n: statistics.median(r.work_cpu_s for r in rs) for n, rs in runs.items()}

    @classmethod
    def measure(
        cls, args: argparse.Namespace, run: Callable[[str], Run], order: Sequence[str]
    ) -> AB:
        """Run ``run(name)`` for each name in ``order``, round after round (warm-ups dropped)."""
        runs: dict[str, list[Run]] = {"ours": [], "floor": []}
        for i in range(args.warmup + args.repeat):
            for name in order:
                print(f"round {i + 1}: {name} ...", file=sys.stderr, flush=True)
                measured = run(name)
                if i >= args.warmup:
                    runs[name].append(measured)
        return cls(runs)

    def ratio_line(self, target_ratio: float, ok: bool, extra: str = "") -> str:
        """``ours / floor (wall) = …`` with its bar, verdict and the paired ratios."""
        return (
            f"ours / floor (wall) = {self.ratio:.2f} (bar <= {target_ratio:g}){extra} -> "
            f"{'PASS' if ok else 'FAIL'}; "
            f"paired ratios {', '.join(f'{x:.2f}' for x in self.pairs)}"
        )

    def tail_lines(self, repeat: int) -> list[str]:
        """The CPU line and the footnote on how the pairs ran."""
        return [
            f"CPU s (median): ours {self.cpu['ours']:.2f}, floor {self.cpu['floor']:.2f}",
            f"({repeat} alternating A/B pairs of fresh processes, imports excluded, "
            "warm page cache)",
        ]

    def extra(self) -> dict[str, Any]:
        """The figures added to the JSON report."""
        return {"ratio": self.ratio, "paired_ratios": self.pairs, "median_cpu_s": self.cpu}
