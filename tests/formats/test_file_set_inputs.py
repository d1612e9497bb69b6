"""File-set plates given as a glob, and ``--load-data CSV`` in place of every store argument."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fixtures import instrument_plates as ip
from iceberg_bioimage import FileSetOptions, api
from iceberg_bioimage.exceptions import StoreNotFoundError
from iceberg_bioimage.tables.build import canonical_table

PLATE = ip.PLATES[0]


@pytest.fixture(scope="module")
def phenix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two Phenix measurement folders and the LoadData CSVs of the first."""
    root = tmp_path_factory.mktemp("file-set-inputs")
    plates = ip.write_phenix(root)
    return {
        "root": root,
        "folder": plates[PLATE].path,
        "load_data": ip.write_load_data(root, plates[PLATE].path, PLATE),
    }


def _comparable(result: Any, table: str) -> pa.Table:
    out = canonical_table(result, table)
    return out.drop([c for c in ("uri", "scanned_at") if c in out.column_names])


def test_a_glob_of_tiffs_is_the_plate_rooted_before_the_wildcard(phenix: dict) -> None:
    folder = phenix["folder"]
    from_glob = api.scan_store(f"{folder}/Images/*.tiff")
    from_folder = api.scan_store(folder / "Images", file_set=FileSetOptions.build(plate_id=PLATE))
    # the plate comes from the Phenix measurement folder above the glob's root
    assert from_glob.dataset_id == PLATE
    assert from_glob.uri == str((folder / "Images").resolve())
    assert from_glob.image_count == len(ip.WELLS) * ip.SITES
    for table in ("image_assets", "chunk_index"):
        assert _comparable(from_glob, table).equals(_comparable(from_folder, table)), table


def test_a_glob_selects_files(phenix: dict) -> None:
    """Only the matched files are the plate: row A (r01) here; nothing else is warned about."""
    result = api.scan_store(f"{phenix['folder']}/Images/r01*-ch[12]*.tiff")
    wells = {a.well_id for a in result.image_assets}
    assert wells == {ip.well_id(r, c) for r, c in ip.WELLS if r == 0}
    assert {a.shape[0] for a in result.image_assets} == {2}
    assert all(a.channel_names == ("ch1", "ch2") for a in result.image_assets)
    assert not result.warnings


def test_a_glob_matching_nothing_is_one_clear_error(phenix: dict) -> None:
    with pytest.raises(StoreNotFoundError, match="no file matches this glob"):
        api.scan_store(f"{phenix['folder']}/Images/*.nothing")


def test_a_glob_on_s3_equals_the_local_glob(phenix: dict, s3_upload, s3_options) -> None:
    images = phenix["folder"] / "Images"
    uri = s3_upload(images, f"glob-plate/{phenix['folder'].name}/Images")
    remote = api.scan_store(f"{uri}/*.tiff", storage_options=s3_options)
    local = api.scan_store(f"{images}/*.tiff")
    assert remote.dataset_id == local.dataset_id == PLATE
    for table in ("image_assets", "chunk_index"):
        assert _comparable(remote, table).equals(_comparable(local, table)), table


def test_an_existing_path_with_brackets_is_a_store_not_a_glob(phenix: dict, tmp_path) -> None:
    odd = tmp_path / "plate[1]"
    odd.symlink_to(phenix["folder"], target_is_directory=True)
    assert api.scan_store(odd).dataset_id == PLATE


# -- --load-data in place of the store argument ------------------------------


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def _json(done: Any) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _without_times(payload: Any) -> Any:
    if isinstance(payload, dict):
        return {
            k: _without_times(v)
            for k, v in payload.items()
            if k not in ("scanned_at", "registered_at", "seconds", "elapsed_s", "snapshot_id")
        }
    if isinstance(payload, list):
        return [_without_times(v) for v in payload]
    return payload


@pytest.mark.parametrize("command", ["scan", "summarize"])
def test_load_data_option_is_the_store_argument(phenix: dict, command: str) -> None:
    csv = str(phenix["load_data"]["pathname"])
    by_option = _json(_cli(command, "--load-data", csv, "--json"))
    by_argument = _json(_cli(command, csv, "--json"))
    assert _without_times(by_option) == _without_times(by_argument)
    assert by_option["dataset_id"] == PLATE


def test_load_data_option_registers_exports_joins_and_ingests(phenix: dict, tmp_path) -> None:
    csv = str(phenix["load_data"]["url"])
    env = {
        "PYICEBERG_CATALOG__LAB__TYPE": "sql",
        "PYICEBERG_CATALOG__LAB__URI": f"sqlite:///{tmp_path / 'catalog.db'}",
        "PYICEBERG_CATALOG__LAB__WAREHOUSE": (tmp_path / "iceberg").as_uri(),
    }
    (tmp_path / "iceberg").mkdir()
    register = _json(
        _cli(
            "register",
            "--catalog",
            "lab",
            "--namespace",
            "a",
            "--load-data",
            csv,
            "--json",
            env=env,
        )
    )
    ingest = _json(
        _cli(
            "ingest", "--catalog", "lab", "--namespace", "b", "--load-data", csv, "--json", env=env
        )
    )
    assert [d["dataset_id"] for d in ingest["datasets"]] == [PLATE]
    assert PLATE in json.dumps(register)

    warehouse = tmp_path / "warehouse"
    export = _json(
        _cli("export-cytomining", "--load-data", csv, "--warehouse-root", str(warehouse), "--json")
    )
    assert export and warehouse.is_dir()
    validated = _cli("validate-warehouse", str(warehouse), "--json")
    assert validated.returncode == 0, validated.stderr

    profiles = tmp_path / "profiles.csv"
    rows = ["Metadata_Plate,Metadata_Well,Metadata_Site,Cells_AreaShape_Area"]
    rows += [f"{PLATE},{ip.well_id(r, c)},{s},{s * 10.0}" for r, c in ip.WELLS for s in (1, 2)]
    profiles.write_text("\n".join(rows) + "\n")
    joined = _json(_cli("join-profiles", "--load-data", csv, str(profiles), "--json"))
    same = _json(_cli("join-profiles", csv, str(profiles), "--json"))
    assert joined["matched_rows"] == joined["rows"] == len(rows) - 1
    assert _without_times(joined) == _without_times(same)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan"], "Missing argument 'URI' (or --load-data CSV)"),
        (["scan", "x.zarr", "--load-data", "y.csv"], "not both"),
        (["join-profiles", "--load-data", "y.csv"], "Missing argument 'PROFILES'"),
        (["ingest", "--catalog", "lab"], "Missing argument 'URIS...'"),
    ],
)
def test_load_data_usage_errors(args: list[str], message: str) -> None:
    done = _cli(*args)
    assert done.returncode == 2
    assert message in done.stderr


def test_summarize_prints_the_plate_map_of_a_load_data_plate(phenix: dict) -> None:
    done = _cli("summarize", "--load-data", str(phenix["load_data"]["pathname"]))
    assert done.returncode == 0, done.stderr
    assert f"plate {PLATE}" in done.stdout
    wells = pc.unique(pa.array([ip.well_id(r, c) for r, c in ip.WELLS]))
    assert len(wells) == len(ip.WELLS)
