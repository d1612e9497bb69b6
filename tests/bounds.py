"""Time and memory bounds for one fuzz example, so a damaged input fails a test, not CI.

A runaway parser must end as a failed example naming its input, never as a hung
worker or a process the kernel kills for memory. :func:`bounded` raises
:class:`ExampleOverrun` after ``seconds`` (``SIGALRM``: the parsers it guards run in
Python) and caps the address space at ``memory`` bytes above what the process
already maps, so an allocation past it raises :class:`MemoryError`.

With ``ICEBERG_BIOIMAGE_FUZZ_STATS=<file>`` every example appends its time and
address-space growth to that file (the wide run reports the worst).
"""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

SECONDS = 5.0
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


def _on_alarm(signum: int, frame: object) -> None:
    raise ExampleOverrun(f"example ran past {SECONDS} s")


@contextmanager
def bounded(seconds: float = SECONDS, memory: int = MEMORY) -> Iterator[None]:
    """Run the body within ``seconds`` and ``memory`` bytes of new address space."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread
        return
    start = time.perf_counter()
    base = _mapped_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = base + memory
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        stats = os.environ.get("ICEBERG_BIOIMAGE_FUZZ_STATS")
        if stats:
            grown = max(0, _peak_mapped_bytes() - base)
            with open(stats, "a") as handle:
                handle.write(f"{time.perf_counter() - start:.4f} {grown}\n")
