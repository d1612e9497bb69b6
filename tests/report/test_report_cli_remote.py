"""The ``report`` command, its errors, a remote (S3) plate, and the PNG encoder."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from browser import browser, open_report
from click.testing import CliRunner
from PIL import Image

from iceberg_bioimage.cli import main
from iceberg_bioimage.report.png import encode_png
from s3_server import upload


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 1), (6, 2, 3), (3, 9, 4)])
def test_png_decodes_with_pillow(shape):
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(pixels))))
    assert np.array_equal(decoded, pixels.reshape(decoded.shape))


@pytest.mark.parametrize(
    ("pixels", "problem"),
    [
        (np.zeros((2, 2), np.uint16), "uint8"),
        (np.zeros((2, 2, 2), np.uint8), "(h, w)"),
        (np.zeros((0, 3), np.uint8), "(h, w)"),
    ],
)
def test_png_refuses_what_it_cannot_write(pixels, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        encode_png(pixels)


def test_cli_report_json_and_warehouse(sample, tmp_path):
    output, warehouse = tmp_path / "r.html", tmp_path / "wh"
    run = CliRunner().invoke(
        main,
        [
            "report",
            str(sample.load_data),
            "--profiles",
            str(sample.cellprofiler_sqlite),
            "--platemap",
            str(sample.platemap / "barcode_platemap.csv"),
            "--warehouse-root",
            str(warehouse),
            "-o",
            str(output),
            "--json",
        ],
    )
    assert run.exit_code == 0, run.output
    result = json.loads(run.stdout)
    assert (result["wells"], result["fields"], result["output"]) == (4, 8, str(output))
    assert result["thumbnails_table"]["table_name"] == "images.thumbnails"
    assert result["crops"] > 0 and result["heatmaps"] > 1
    assert pq.read_table(warehouse / "images" / "thumbnails").num_rows == 8
    check = CliRunner().invoke(main, ["validate-warehouse", str(warehouse), "--json"])
    assert check.exit_code == 0, check.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/plate.ome.zarr"], "error: /no/such/plate.ome.zarr:"),
        (["{image}"], "no image belongs to a well"),
        (["{plate}", "--percentiles", "50,10"], "LOW < HIGH"),
    ],
)
def test_cli_report_errors_are_one_line(sample, tmp_path, args, message):
    args = [a.format(image=sample.image, plate=sample.plate) for a in args]
    run = CliRunner().invoke(main, ["report", *args, "-o", str(tmp_path / "x.html")])
    assert run.exit_code == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "x.html").exists()


def test_remote_plate_on_s3(sample, s3_endpoint, s3_options, tmp_path):
    from iceberg_bioimage.api import write_plate_report
    from iceberg_bioimage.models.options import StoreOptions

    uri = upload(s3_endpoint, sample.plate, "report/plate.ome.zarr")
    output = tmp_path / "remote.html"
    result = write_plate_report(
        uri, output, profiles=sample.profiles, store=StoreOptions(storage_options=s3_options)
    )
    assert (result.wells, result.fields, result.crops) == (6, 12, 96)
    assert result.reads["chunks_fetched"] > 0
    with browser() as driver:
        open_report(driver, output)
        drawn = driver.execute_script(
            "return document.querySelectorAll('#plate .well:not(.missing) canvas').length"
        )
        assert drawn == 6


def test_report_from_the_catalog_equals_the_store(sample, tmp_path, monkeypatch):
    from iceberg_bioimage.api import register_store, write_plate_report
    from iceberg_bioimage.models.options import StoreOptions

    monkeypatch.setenv("ICEBERG_BIOIMAGE_WAREHOUSE", str(tmp_path / "wh"))
    register_store(sample.plate, "default", "bioimage", publish_chunks=True)
    direct = write_plate_report(sample.plate, tmp_path / "a.html", profiles=sample.profiles)
    logged = write_plate_report(
        None,
        tmp_path / "b.html",
        profiles=sample.profiles,
        catalog="default",
        namespace="bioimage",
        store=StoreOptions(dataset_id="plate"),
    )
    skip = {"output", "html_bytes"}
    assert {k: v for k, v in logged.to_dict().items() if k not in skip} == {
        k: v for k, v in direct.to_dict().items() if k not in skip
    }
    page = (tmp_path / "b.html").read_text()
    assert (
        page.split('id="report-data">')[1]
        == (tmp_path / "a.html").read_text().split('id="report-data">')[1]
    )


def test_cli_report_file_naming_options(sample, tmp_path):
    page = tmp_path / "named.html"
    run = CliRunner().invoke(
        main,
        [
            "report",
            str(sample.phenix),
            "--instrument",
            "phenix",
            "--channel-names",
            "DNA,ER,Mito",
            "--channels",
            "Mito,DNA",
            "-o",
            str(page),
            "--json",
        ],
    )
    assert run.exit_code == 0, run.output
    data = json.loads(page.read_text().split('id="report-data">')[1].split("</script>")[0])
    assert [c["name"] for c in data["channels"]] == ["Mito", "DNA"]
    assert all(len(f["planes"]) == 2 for w in data["wells"].values() for f in w["fields"])
