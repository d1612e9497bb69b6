"""Time whole CLI processes: wall and CPU seconds and peak RSS, from ``os.wait4``.

Both sides of a comparison get the same environment: bytecode caching on
(``PYTHONDONTWRITEBYTECODE`` unset, each side its own ``PYTHONPYCACHEPREFIX``
under ``benchmarks/.cache/``), as a user's machine has it; one discarded warm-up
run per side writes the bytecode before the counted runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

BYTECODE_NOTE = (
    "bytecode cached for both sides (PYTHONDONTWRITEBYTECODE unset, "
    "PYTHONPYCACHEPREFIX under benchmarks/.cache/, one warm-up run each)"
)


@dataclass(frozen=True)
class ProcessRun:
    """Figures of one finished process."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float


def process_env(pycache: Path) -> dict[str, str]:
    """The environment of a measured process: bytecode cached under ``pycache``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_process(argv: Sequence[str], env: dict[str, str], timeout: float = 900.0) -> ProcessRun:
    """Run ``argv`` to completion; raise ``RuntimeError`` if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        raise
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {proc.returncode}:\n{stderr.strip()[-2000:]}")
    if wall > timeout:
        raise RuntimeError(f"{argv[0]} took {wall:.0f} s (> {timeout:g} s)")
    # ru_maxrss is in KiB on Linux.
    return ProcessRun(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def alternate(
    sides: dict[str, Callable[[], ProcessRun]], rounds: int, warmup: int = 1
) -> dict[str, list[ProcessRun]]:
    """Run every side once per round, alternating (A B A B ...), after ``warmup`` rounds."""
    runs: dict[str, list[ProcessRun]] = {name: [] for name in sides}
    for i in range(warmup + rounds):
        for name, run in sides.items():
            result = run()
            if i >= warmup:
                runs[name].append(result)
    return runs


def medians(runs: Sequence[ProcessRun]) -> dict[str, float]:
    """Median wall and CPU seconds, median and worst peak RSS."""
    return {
        "wall_s": statistics.median(r.wall_s for r in runs),
        "cpu_s": statistics.median(r.cpu_s for r in runs),
        "median_peak_rss_mib": statistics.median(r.peak_rss_mib for r in runs),
        "peak_rss_mib": max(r.peak_rss_mib for r in runs),
    }
