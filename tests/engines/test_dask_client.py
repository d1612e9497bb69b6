"""Connecting to Dask: bounded waits, named errors, a quiet local cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed  # noqa: F401  (imported here so timings measure the wait alone)
import pytest

from iceberg_bioimage import dask_client
from iceberg_bioimage.exceptions import SchedulerError


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_nothing_listening_gives_up_after_the_timeout() -> None:
    address = f"tcp://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(SchedulerError) as caught, dask_client(scheduler=address, timeout=1):
        pass
    wall = time.monotonic() - start
    assert caught.value.subject == address
    assert "no Dask scheduler answered within 1 s" in caught.value.problem
    # Below the 10 s default wait: the 1 s asked for governs (margin for a loaded machine).
    assert wall < 8, f"waited {wall:.1f} s for a 1 s timeout"


def test_a_silent_server_is_given_up_too() -> None:
    """A port that accepts connections but never speaks Dask (a stuck or foreign server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(SchedulerError), dask_client(scheduler=address, timeout=1):
            pass
        assert time.monotonic() - start < 8  # below the 10 s default wait
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


@pytest.mark.parametrize("address", ["not a url at all", "http://127.0.0.1:9/"])
def test_malformed_addresses_are_refused_before_connecting(address: str) -> None:
    with pytest.raises(SchedulerError) as caught, dask_client(scheduler=address):
        pass
    assert caught.value.subject == address
    # Refused by the address check, not by a failed connection.
    assert "expected a scheduler address such as tcp://" in caught.value.problem
    assert "answered" not in caught.value.problem


def _hold_8787() -> socket.socket | None:
    """Occupy 127.0.0.1:8787 (None when something already does: busy either way)."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    except OSError:
        holder.close()
        return None
    return holder


@pytest.mark.slow
def test_quiet_local_cluster_prints_nothing_with_port_8787_busy(tmp_path: Path) -> None:
    """``ingest -q --dask-workers 1`` with 8787 taken: no dashboard warning on stderr."""
    import numpy as np
    import tifffile

    store = tmp_path / "img.ome.tiff"
    tifffile.imwrite(store, np.zeros((2, 16, 16), "uint8"), ome=True, metadata={"axes": "CYX"})
    holder = _hold_8787()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICEBERG_BIOIMAGE_")}
    env["ICEBERG_BIOIMAGE_WAREHOUSE"] = str(tmp_path / "wh")
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "iceberg_bioimage",
                "ingest",
                "-q",
                "--dask-workers",
                "1",
                str(store),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        if holder is not None:
            holder.close()
    assert run.returncode == 0, run.stderr
    assert "8787" not in run.stderr and "Perhaps you already have a cluster" not in run.stderr
    assert run.stderr.strip() == "", run.stderr
