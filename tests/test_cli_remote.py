"""``--storage-option`` on every command that reads stores, against a real S3 server (moto)."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from iceberg_bioimage.cli import main
from iceberg_bioimage.cli.storage_options import parse_storage_options
from s3_server import upload

READING_COMMANDS = (
    "scan",
    "summarize",
    "register",
    "publish-chunks",
    "ingest",
    "export-cytomining",
    "join-profiles",
    "export-crops",
    "report",
)


def run(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iceberg_bioimage", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def _flags(endpoint: str) -> list[str]:
    pairs = [
        "key=testing",
        "secret=testing",
        f"endpoint_url={endpoint}",
        'client_kwargs={"region_name":"us-east-1"}',
    ]
    return [arg for pair in pairs for arg in ("--storage-option", pair)]


@pytest.fixture(scope="module")
def remote_plate(datasets, s3_endpoint) -> str:
    return upload(s3_endpoint, datasets["plate04"].path, "cli-bucket/plate.ome.zarr")


def test_values_parse_as_json_when_they_can():
    assert parse_storage_options(()) is None
    assert parse_storage_options(
        [
            "anon=true",
            "endpoint_url=http://127.0.0.1:9000",
            'client_kwargs={"region_name":"us-east-1"}',
            "max_concurrency=1",
            "token=",
            "key=a=b",
        ]
    ) == {
        "anon": True,
        "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"region_name": "us-east-1"},
        "max_concurrency": 1,
        "token": "",
        "key": "a=b",
    }
    with pytest.raises(click.BadParameter):
        parse_storage_options(["anon"])


@pytest.mark.parametrize("name", READING_COMMANDS)
def test_every_reading_command_takes_storage_options(name):
    command = main.commands[name]
    assert any("--storage-option" in param.opts and param.multiple for param in command.params), (
        name
    )


def test_scan_an_s3_plate_with_storage_options(remote_plate, s3_endpoint):
    done = run("scan", remote_plate, "--json", *_flags(s3_endpoint))
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["uri"] == remote_plate
    assert payload["image_count"] == 8
    assert payload["array_count"] == 16


def test_summarize_and_export_an_s3_plate(remote_plate, s3_endpoint, tmp_path, written_warehouses):
    done = run("summarize", remote_plate, "--json", *_flags(s3_endpoint))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["image_count"] == 8
    warehouse = written_warehouses.add(tmp_path / "wh")  # validated when the test passes
    done = run(
        "export-cytomining",
        remote_plate,
        "--warehouse-root",
        str(warehouse),
        "--json",
        *_flags(s3_endpoint),
    )
    assert done.returncode == 0, done.stderr
    rows = {t["table_name"]: t["rows_written"] for t in json.loads(done.stdout)["tables"]}
    assert rows["images.image_assets"] == 16


def test_register_an_s3_plate(remote_plate, s3_endpoint, tmp_path):
    done = run(
        "register", remote_plate, "--json", "--publish-chunks", *_flags(s3_endpoint), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["image_count"] == 8
    assert {t["table"].rsplit(".", 1)[-1]: t["rows_written"] for t in payload["tables"]} == {
        "image_assets": 16,
        "chunk_index": 80,
    }


def test_without_options_the_store_is_unreachable(remote_plate, s3_endpoint):
    """The control: the options are what reach the server (wrong endpoint → one-line error)."""
    flags = _flags(s3_endpoint)
    flags[flags.index(f"endpoint_url={s3_endpoint}")] = "endpoint_url=http://127.0.0.1:9"
    done = run(
        "scan",
        remote_plate,
        *flags,
        "--storage-option",
        'config_kwargs={"retries":{"max_attempts":1}}',
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_pair_without_equals_is_a_usage_error():
    done = run("scan", "x.zarr", "--storage-option", "anon")
    assert done.returncode == 2
    assert "KEY=VALUE" in done.stderr


def test_export_crops_from_an_s3_plate(
    remote_plate, s3_endpoint, datasets, tmp_path, written_warehouses
):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zarr

    profiles = tmp_path / "cells.parquet"
    pq.write_table(
        pa.table(
            {
                "Metadata_Well": ["A01", "B03"],
                "Metadata_Site": ["0", "1"],
                "ObjectNumber": [3, 4],
                "Location_Center_X": [10.5, 47.9],
                "Location_Center_Y": [20.0, 1.0],
            }
        ),
        profiles,
    )
    warehouse = written_warehouses.add(tmp_path / "wh")  # validated when the test passes
    done = run(
        "export-crops",
        remote_plate,
        "--warehouse-root",
        str(warehouse),
        "--profiles",
        str(profiles),
        "--size",
        "6",
        "--compartment",
        "cells",
        "--json",
        *_flags(s3_endpoint),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["crops"] == 2
    table = pq.read_table(warehouse / "images" / "image_crops")
    assert table["object_id"].to_pylist() == ["plate:A/1/0:cells:3", "plate:B/3/1:cells:4"]
    import ome_arrow

    full = zarr.open_array(datasets["plate04"].path, path="B/3/1/s0", mode="r")[:]
    pixels = ome_arrow.OMEArrow(table["ome_arrow_image"][1]).export("numpy")
    np.testing.assert_array_equal(pixels[0], full[:, :, 0:4, 44:48])


def test_report_of_an_s3_plate(remote_plate, s3_endpoint, tmp_path):
    page = tmp_path / "remote.html"
    done = run("report", remote_plate, "--output", str(page), "--json", *_flags(s3_endpoint))
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["fields"] == 8 and payload["wells"] >= 1
    assert payload["reads"]["chunks_fetched"] > 0
    assert '"planes":["iVBOR' in page.read_text()  # base64 PNGs inside the page
