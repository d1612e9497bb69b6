"""Run a Python snippet repeatedly, each time in a fresh interpreter.

Every run is a new ``sys.executable -c ...`` subprocess so that the peak
resident set size (``ru_maxrss``) is that of a single run, not the high-water
mark of everything measured before it.  Inside the child, the ``setup``
snippet (typically the imports) and the ``work`` snippet are timed separately
with :func:`time.perf_counter`; only ``work`` counts as the measured time.
An optional ``check`` snippet (e.g. reading results back to verify them) runs
after the figures are taken, so it counts towards neither time nor peak RSS.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

_RESULT_PREFIX = "__MEASURE_RESULT__ "

# The child receives {"setup", "work", "check", "variables"} as JSON in argv[1].
# The snippets run in one shared namespace pre-filled with ``variables``;
# ``check`` runs after time and peak RSS have been captured.
_CHILD = f"""
import json, resource, sys, time
_spec = json.loads(sys.argv[1])
_ns = {{"__name__": "__measure__", **_spec["variables"]}}
_setup = compile(_spec["setup"], "<setup>", "exec")
_work = compile(_spec["work"], "<work>", "exec")
_t0 = time.perf_counter()
exec(_setup, _ns)
_t1 = time.perf_counter()
_rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_u1 = resource.getrusage(resource.RUSAGE_SELF)
exec(_work, _ns)
_t2 = time.perf_counter()
_u2 = resource.getrusage(resource.RUSAGE_SELF)
_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
exec(compile(_spec.get("check", ""), "<check>", "exec"), _ns)
sys.stdout.write({_RESULT_PREFIX!r} + json.dumps({{
    "setup_s": _t1 - _t0,
    "work_s": _t2 - _t1,
    "work_cpu_s": _u2.ru_utime + _u2.ru_stime - _u1.ru_utime - _u1.ru_stime,
    "setup_peak_rss_kib": _rss_setup,
    "peak_rss_kib": _rss,
}}) + "\\n")
"""


@dataclass(frozen=True)
class Run:
    """Figures of one child process."""

    work_s: float
    setup_s: float
    peak_rss_mib: float
    setup_peak_rss_mib: float
    #: CPU seconds (user + system) of the work snippet.
    work_cpu_s: float = 0.0


@dataclass(frozen=True)
class Measurement:
    """All counted runs of one snippet plus summary statistics."""

    name: str
    runs: list[Run] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        """Median work time in seconds."""
        return statistics.median(r.work_s for r in self.runs)

    @property
    def min_s(self) -> float:
        """Fastest work time in seconds."""
        return min(r.work_s for r in self.runs)

    @property
    def max_s(self) -> float:
        """Slowest work time in seconds."""
        return max(r.work_s for r in self.runs)

    @property
    def median_setup_s(self) -> float:
        """Median setup (import) time in seconds."""
        return statistics.median(r.setup_s for r in self.runs)

    @property
    def peak_rss_mib(self) -> float:
        """Largest per-run peak RSS in MiB (worst case over the runs)."""
        return max(r.peak_rss_mib for r in self.runs)

    @property
    def median_peak_rss_mib(self) -> float:
        """Median per-run peak RSS in MiB."""
        return statistics.median(r.peak_rss_mib for r in self.runs)

    @property
    def setup_peak_rss_mib(self) -> float:
        """Largest peak RSS reached by the setup snippet alone, in MiB."""
        return max(r.setup_peak_rss_mib for r in self.runs)

    def summary(self) -> dict[str, Any]:
        """Return the statistics and the raw runs as a JSON-ready dict."""
        return {
            "name": self.name,
            "repeat": len(self.runs),
            "median_s": self.median_s,
            "min_s": self.min_s,
            "max_s": self.max_s,
            "median_setup_s": self.median_setup_s,
            "peak_rss_mib": self.peak_rss_mib,
            "median_peak_rss_mib": self.median_peak_rss_mib,
            "setup_peak_rss_mib": self.setup_peak_rss_mib,
            "runs": [asdict(r) for r in self.runs],
        }


class MeasureError(RuntimeError):
    """A child process failed or did not report its figures."""


def run_once(
    work: str,
    setup: str = "",
    variables: dict[str, Any] | None = None,
    timeout: float | None = None,
    *,
    check: str = "",
    env: Mapping[str, str | None] | None = None,
) -> Run:
    """Run ``setup`` then ``work`` in a fresh interpreter and return its figures.

    ``variables`` (JSON-serialisable) are pre-defined names in the snippets'
    namespace.  ``check`` runs after the figures are taken (untimed).  ``env``
    overrides the child's environment (``None`` values remove a variable).
    Raises :class:`MeasureError` if the child fails.
    """
    spec = json.dumps({"setup": setup, "work": work, "check": check, "variables": variables or {}})
    child_env = {**os.environ, "PYTHONHASHSEED": "0"}
    for key, value in (env or {}).items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, spec],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
        check=False,
    )
    if proc.returncode != 0:
        raise MeasureError(f"child exited with {proc.returncode}:\n{proc.stderr.strip()}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_PREFIX):
            data = json.loads(line[len(_RESULT_PREFIX) :])
            return Run(
                work_s=data["work_s"],
                setup_s=data["setup_s"],
                # ru_maxrss is in KiB on Linux.
                peak_rss_mib=data["peak_rss_kib"] / 1024,
                setup_peak_rss_mib=data["setup_peak_rss_kib"] / 1024,
                work_cpu_s=data["work_cpu_s"],
            )
    raise MeasureError(f"child reported no result:\n{proc.stdout}\n{proc.stderr}")


def measure(
    name: str,
    work: str,
    setup: str = "",
    variables: dict[str, Any] | None = None,
    repeat: int = 5,
    warmup: int = 0,
    timeout: float | None = None,
) -> Measurement:
    """Run the snippet ``warmup + repeat`` times, keeping the last ``repeat`` runs.

    Each run is a separate subprocess (see :func:`run_once`); warm-up runs only
    prime OS caches and are discarded.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    for _ in range(warmup):
        run_once(work, setup, variables, timeout)
    runs = [run_once(work, setup, variables, timeout) for _ in range(repeat)]
    return Measurement(name=name, runs=runs)
