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


@pytest.fixture(scope="module")
def cells(datasets, tmp_path_factory):
    return writers.write_profiles(tmp_path_factory.mktemp("cells"), datasets["plate04"]).path


def test_validate_contract_reports_keys_and_exit_codes(cells, tmp_path):
    done = run("validate-contract", str(cells), "--profile-dataset-id", "plate04", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["is_valid"] is True
    assert payload["join_keys"] == ["dataset_id", "plate_id", "well_id", "site_id"]
    missing = run("validate-contract", str(cells))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith(f"error: {cells}")
    assert "profile-dataset-id" in missing.stderr or "profile_dataset_id" in missing.stderr


def test_validate_contract_with_toml_aliases(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    profiles = tmp_path / "odd.parquet"
    pq.write_table(pa.table({"Image_Metadata_Well": ["A01"], "Batch": ["plate04"]}), profiles)
    aliases = tmp_path / "aliases.toml"
    aliases.write_text(
        '[microscopy.aliases]\nwell_id = "Image_Metadata_Well"\ndataset_id = ["Batch"]\n'
    )
    done = run("validate-contract", str(profiles), "--aliases", str(aliases), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resolved_aliases"] == {
        "dataset_id": "Batch",
        "well_id": "Image_Metadata_Well",
    }


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_join_profiles_writes_the_output(datasets, cells, tmp_path, suffix):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    output = tmp_path / f"joined{suffix}"
    done = run(
        "join-profiles",
        str(datasets["plate04"].path),
        str(cells),
        "--profile-dataset-id",
        "plate04",
        "--output",
        str(output),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    source_rows = pq.read_table(cells).num_rows
    assert report["matched_rows"] == report["rows"] == source_rows
    assert report["unmatched_rows"] == 0
    written = pq.read_table(output) if suffix == ".parquet" else pacsv.read_csv(output)
    assert written.num_rows == source_rows
    assert {"Metadata_Well", "image_id", "uri", "array_path"} <= set(written.column_names)


def test_join_profiles_rejects_unknown_output_types(datasets, cells, tmp_path):
    done = run(
        "join-profiles",
        str(datasets["plate04"].path),
        str(cells),
        "--output",
        str(tmp_path / "x.xlsx"),
    )
    assert done.returncode == 2
    assert "--output" in done.stderr


@pytest.mark.parametrize("flag", ["-q", "-v"])
def test_library_retry_logs_only_with_verbose(datasets, flag):
    code = (
        "import logging, sys\n"
        "from iceberg_bioimage.cli import main\n"
        "try:\n"
        f"    main([{flag!r}, 'scan', sys.argv[1]])\n"
        "except SystemExit:\n"
        "    pass\n"
        "logging.getLogger('pyiceberg').warning('Commit failed due to a concurrent update')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(datasets["plate04"].path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ("Commit failed" in done.stderr) == (flag == "-v"), done.stderr
