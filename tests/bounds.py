"""Time and memory bounds for one fuzz example, so a damaged input fails a test, not CI.

A runaway parser must end as a failed example naming its input, never as a hung
worker or a process the kernel kills for memory. :func:`bounded` raises
:class:`ExampleOverrun` after ``seconds`` of CPU time (``SIGPROF``: the parsers it
guards run in Python), or after :data:`WALL_SECONDS` of wall time for an example that
blocks without computing (``SIGALRM``), and caps the address space at ``memory`` bytes
above what the process already maps, so an allocation past it raises
:class:`MemoryError`. CPU time, not wall time, is the bound on work: the suite runs on
shared machines, where another job's load must not fail an example.

With ``ICEBERG_BIOIMAGE_FUZZ_STATS=<file>`` every example appends its wall seconds, CPU
seconds and address-space growth to that file (the wide run reports the worst).
"""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SECONDS = 5.0
WALL_SECONDS = 60.0
MEMORY = 2**30


class ExampleOverrun(Exception):
    """One example ran past its time bound."""


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _peak_mapped_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    return 0


def _overrun(what: str) -> Callable[[int, object], None]:
    def handler(signum: int, frame: object) -> None:
        raise ExampleOverrun(f"example ran past {what}")

    return handler


@contextmanager
def bounded(seconds: float = SECONDS, memory: int = MEMORY) -> Iterator[None]:
    """Run the body within ``seconds`` of CPU and ``memory`` bytes of new address space."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread
        return
    start, start_cpu = time.perf_counter(), time.process_time()
    base = _mapped_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = base + memory
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))
    previous_cpu = signal.signal(signal.SIGPROF, _overrun(f"{seconds} s of CPU time"))
    previous_wall = signal.signal(signal.SIGALRM, _overrun(f"{WALL_SECONDS} s (blocked)"))
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, WALL_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGPROF, previous_cpu)
        signal.signal(signal.SIGALRM, previous_wall)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        stats = os.environ.get("ICEBERG_BIOIMAGE_FUZZ_STATS")
        if stats:
            grown = max(0, _peak_mapped_bytes() - base)
            wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            with open(stats, "a") as handle:
                handle.write(f"{wall:.4f} {cpu:.4f} {grown}\n")
