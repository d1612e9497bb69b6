"""The CLI, run as a real process: JSON on stdout only, one-line errors, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fixtures import writers
from iceberg_bioimage import __version__


def run(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_version():
    done = run("--version")
    assert done.returncode == 0
    assert __version__ in done.stdout


def test_scan_json_is_pure_json(datasets):
    done = run("scan", str(datasets["plate04"].path), "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["image_count"] == 8
    assert payload["array_count"] == 16
    assert payload["image_assets"][0]["well_id"] == "A01"


def test_scan_human_table_lists_images(datasets):
    done = run("scan", str(datasets["pyramid"].path))
    assert done.returncode == 0, done.stderr
    assert "pyramid:0" in done.stdout
    assert "pyramid:1" in done.stdout
    assert "DAPI" in done.stdout


def test_summarize_prints_a_plate_map(datasets):
    done = run("summarize", str(datasets["plate04"].path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.split() == ["01", "02", "03"])
    row_a = lines[lines.index(header) + 1].split()
    row_b = lines[lines.index(header) + 2].split()
    assert row_a == ["A", "2", "2", "·"]
    assert row_b == ["B", "2", "·", "2"]


def test_summarize_json(datasets):
    done = run("summarize", str(datasets["plate05"].path), "--json")
    payload = json.loads(done.stdout)
    assert payload["well_count"] == 4
    assert payload["fields_per_well"] == {"A01": 2, "A02": 2, "B01": 2, "B02": 2}
    assert payload["channel_names"] == ["DAPI", "GFP"]


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda root: root / "missing.zarr", "no such file"),
        (lambda root: writers.write_corrupt_zarray(root).path, "invalid JSON"),
        (
            lambda root: writers.write_corrupt_zarr_json(root, at_root=True).path,
            "invalid JSON",
        ),
        (lambda root: writers.write_not_an_image(root).path, "not an image"),
        (lambda root: writers.write_empty_dir(root).path, "empty folder"),
    ],
    ids=["missing", "zarray", "zarr.json", "not-an-image", "empty"],
)
def test_errors_are_one_line_with_exit_2(tmp_path, make, problem):
    path = make(tmp_path)
    done = run("scan", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {path}")
    assert problem in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    done = run("--debug", "scan", str(tmp_path / "missing.zarr"))
    assert done.returncode == 2
    assert "Traceback" in done.stderr or "StoreNotFoundError" in done.stderr


def test_sample_data_then_summarize(tmp_path):
    done = run("sample-data", str(tmp_path / "sample"), "--json")
    assert done.returncode == 0, done.stderr
    paths = json.loads(done.stdout)
    summary = json.loads(run("summarize", paths["plate"], "--json").stdout)
    assert summary["well_count"] == 6
    again = run("sample-data", str(tmp_path / "sample"))
    assert again.returncode == 2
    assert again.stderr.startswith("error: ")


def test_register_with_zero_configuration(tmp_path, datasets):
    home = tmp_path / "home"
    home.mkdir()
    env_cwd = tmp_path / "work"
    env_cwd.mkdir()
    args = ["register", "--namespace", "bioimage.cytotable", "--publish-chunks"]
    done = subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args, str(datasets["plate04"].path)],
        capture_output=True,
        text=True,
        cwd=env_cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (env_cwd / "iceberg-warehouse" / "catalog.db").exists()
    assert "bioimage.cytotable.image_assets" in done.stdout
    assert "embedded SQLite catalog" in done.stderr
    assert done.stderr.count("note:") == 1

    again = subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args, str(datasets["plate04"].path), "--json"],
        capture_output=True,
        text=True,
        cwd=env_cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        check=False,
    )
    payload = json.loads(again.stdout)
    assert [t["rows_written"] for t in payload["tables"]] == [16, 80]

    tables = subprocess.run(
        [
            sys.executable,
            "-m",
            "iceberg_bioimage",
            "tables",
            "--namespace",
            "bioimage.cytotable",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=env_cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        check=False,
    )
    rows = {row["table"]: row["rows"] for row in json.loads(tables.stdout)}
    assert rows == {"bioimage.cytotable.chunk_index": 80, "bioimage.cytotable.image_assets": 16}


def test_unknown_catalog_is_a_one_line_error(datasets, tmp_path):
    done = run("register", "--catalog", "lab-shared", str(datasets["strips"].path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "PYICEBERG_CATALOG__LAB_SHARED__URI" in done.stderr
