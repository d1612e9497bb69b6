"""The README's commands run as written: the first-run command, the tour, the Python."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent


def blocks(language: str) -> list[str]:
    text = README.read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def run_bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(cwd),
        "ICEBERG_BIOIMAGE_WAREHOUSE": str(cwd / "iceberg-warehouse"),
    }
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_first_command_then_tour_then_python(tmp_path, written_warehouses):
    for root in ("sample/warehouse", "warehouse"):  # validated when the test passes
        written_warehouses.add(tmp_path / root)
    first_command = blocks("bash")[0].splitlines()[0]
    assert first_command.startswith("uv run iceberg-bioimage sample-data")
    done = run_bash(first_command.replace("uv run ", ""), tmp_path)
    assert done.returncode == 0, done.stderr
    joined = pq.read_table(tmp_path / "sample/warehouse/profiles/joined_profiles")
    assert joined.num_rows == pq.read_table(tmp_path / "sample/cells.parquet").num_rows
    assert joined["image_id"].null_count == 0

    tour = blocks("bash")[1]
    assert len([line for line in tour.splitlines() if line.startswith("iceberg-bioimage")]) <= 7
    done = run_bash(tour, tmp_path)
    assert done.returncode == 0, done.stderr
    assert pq.read_table(tmp_path / "joined.parquet")["array_path"].null_count == 0

    for code in blocks("python"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env={**os.environ, "ICEBERG_BIOIMAGE_WAREHOUSE": str(tmp_path / "iceberg-warehouse")},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{code}\n{done.stderr}"
