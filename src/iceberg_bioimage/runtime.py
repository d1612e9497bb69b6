"""Process-wide tuning shared by the scanners and the table builders."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pausers = 0
_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many long-lived objects are allocated.

    A scan (or a table build) allocates many small containers and frees none of
    them, so collections would only re-walk them: on a 1536-well plate that is
    half the scan time. Collection resumes when the last concurrent pauser ends,
    and stays off if it was off before the first.
    """
    global _pausers, _was_enabled
    with _lock:
        if _pausers == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0 and _was_enabled:
                gc.enable()
