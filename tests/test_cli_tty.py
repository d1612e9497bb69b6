"""The CLI in a real terminal (tmux): a progress bar on a TTY, no ANSI codes when piped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
import zarr


@pytest.fixture
def twenty_stores(tmp_path):
    folder = tmp_path / "stores"
    for i in range(20):
        array = zarr.create_array(
            folder / f"well{i:02d}.zarr", shape=(8, 8), chunks=(4, 4), dtype="u1"
        )
        array[:] = np.full((8, 8), i, dtype="u1")
    return folder


def _env(tmp_path):
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ICEBERG_BIOIMAGE_WAREHOUSE": str(tmp_path / "iceberg-warehouse"),
    }


def _ingest(folder):
    return [sys.executable, "-m", "iceberg_bioimage", "ingest", "--glob", "*.zarr", str(folder)]


def _tmux():
    found = shutil.which("tmux")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is missing (apt-get install -y tmux)")
        pytest.skip("tmux is not installed")
    return found


def test_ingest_shows_a_progress_bar_in_a_terminal(tmp_path, twenty_stores):
    tmux = _tmux()
    session = f"ib-{uuid.uuid4().hex[:8]}"
    command = " ".join(_ingest(twenty_stores)) + "; echo INGEST-DONE; sleep 60"
    env = {**_env(tmp_path), "TERM": "xterm-256color"}
    subprocess.run(
        [tmux, "new-session", "-d", "-s", session, "-x", "150", "-y", "40", command],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        screen = ""
        deadline = time.monotonic() + 90
        while "INGEST-DONE" not in screen and time.monotonic() < deadline:
            time.sleep(0.5)
            screen = subprocess.run(
                [tmux, "capture-pane", "-p", "-t", session],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        assert "INGEST-DONE" in screen, screen
        assert "20/20" in screen, screen
        assert "━" in screen, screen  # the bar itself
        assert "ingested 20 stores" in screen, screen
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], check=False, capture_output=True)


def test_piped_output_has_no_ansi_codes(tmp_path, twenty_stores):
    done = subprocess.run(
        _ingest(twenty_stores),
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert "\x1b" not in done.stderr
    assert "ingested 20 stores" in done.stdout
    assert "20/20" not in done.stderr  # no progress bar when piped


def test_quiet_hides_notes(tmp_path, twenty_stores):
    done = subprocess.run(
        [*_ingest(twenty_stores), "--quiet"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "note:" not in done.stderr
