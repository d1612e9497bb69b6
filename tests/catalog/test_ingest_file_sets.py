"""ingest reads TIFF-folder plates with the file-set options (threads here; Dask elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fixtures import instrument_plates as ip
from iceberg_bioimage import load_catalog_table
from iceberg_bioimage.cli import main


def test_ingest_takes_instrument_and_channel_names(tmp_path: Path, monkeypatch) -> None:
    plates = ip.write_phenix(tmp_path / "plates")
    names = ",".join(ip.CELL_PAINTING)
    monkeypatch.setenv("ICEBERG_BIOIMAGE_WAREHOUSE", str(tmp_path / "warehouse"))
    args = ["ingest", *(str(f.path) for f in plates.values()), "--namespace", "screen"]
    args += ["--instrument", "phenix", "--channel-names", names, "--no-chunks", "--json"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sorted(d["dataset_id"] for d in report["datasets"]) == sorted(ip.PLATES)
    assets = load_catalog_table("default", "screen", "image_assets")
    assert {tuple(c) for c in assets["channel_names"].to_pylist()} == {ip.CELL_PAINTING}
