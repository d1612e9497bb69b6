"""The plate report as a person sees it: opened from file:// in headless Chromium, offline.

Expected pixels are computed here from the stores read independently (zarr, tifffile):
each field's channels, the plate-wide 0.5/99.5 percentiles per channel, then the
additive composite in the channels' colours.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import tifffile
import zarr
from browser import browser, canvas_pixels, open_report, wait_ready
from PIL import Image

from iceberg_bioimage import ProfileOptions, ReportOptions, validate_warehouse
from iceberg_bioimage.api import write_plate_report

PERCENTILES = (0.5, 99.5)


def composite(
    fields: dict[str, np.ndarray],
    colors: list[str],
    on: list[bool],
    absent: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Independent expectation: plate-wide contrast per channel, additive colour composite.

    Pixels of ``absent`` (a ``(y, x)`` mask per field) are left out of the percentiles.
    """
    absent = absent or {}
    out = {}
    channels = next(iter(fields.values())).shape[0]
    limits = []
    for c in range(channels):
        values = [
            (f[c][~absent[k]] if k in absent else f[c].ravel()).astype(np.float64)
            for k, f in fields.items()
        ]
        limits.append(np.percentile(np.concatenate(values), PERCENTILES))
    for name, pixels in fields.items():
        rgb = np.zeros((*pixels.shape[1:], 3))
        for c, (low, high) in enumerate(limits):
            if not on[c]:
                continue
            gray = np.clip(np.rint((pixels[c] - low) / (high - low) * 255), 0, 255)
            weights = [int(colors[c][i : i + 2], 16) / 255 for i in (0, 2, 4)]
            rgb += gray[..., None] * np.array(weights)
        out[name] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return out


def ngff_fields(plate: Path) -> dict[str, np.ndarray]:
    """Level 0 of every field of an NGFF plate, as ``(c, y, x)`` (max over z)."""
    attrs = json.loads((plate / ".zattrs").read_text())
    out = {}
    for well in attrs["plate"]["wells"]:
        row, column = well["path"].split("/")
        for field in json.loads((plate / well["path"] / ".zattrs").read_text())["well"]["images"]:
            array = zarr.open_array(str(plate / well["path"] / field["path"] / "0"), mode="r")
            out[f"{row}{int(column):02d}/{field['path']}"] = np.asarray(array[:]).max(axis=1)
    return out


def wells_drawn(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#plate .well:not(.missing)')]"
        ".map(e => e.dataset.well)"
    )


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    return path


def test_sample_plate_thumbnails_cells_and_heatmaps(sample, tmp_path):
    output = tmp_path / "plate.html"
    result = write_plate_report(sample.plate, output, profiles=sample.profiles)
    assert (result.wells, result.wells_missing, result.fields, result.fields_missing) == (
        6,
        0,
        12,
        0,
    )
    assert result.levels == (
        0,
    )  # 64 px fields, thumbnails of 96: level 0 is the smallest that fits
    text = output.read_text()
    assert "http://" not in text and "https://" not in text and "<link" not in text

    fields = ngff_fields(sample.plate)
    colors = ["0000FF", "FF00FF"]  # the plate's omero colours
    expected = composite(fields, colors, [True, True])
    cells = pq.read_table(sample.profiles)
    counts = {
        w: int(pc.sum(pc.equal(cells["Metadata_Well"], w)).as_py())
        for w in ("A01", "A02", "A03", "B01", "B02", "B03")
    }

    with browser() as driver:
        open_report(driver, output)
        screenshot(driver, tmp_path, "sample-plate")
        assert sorted(wells_drawn(driver)) == ["A01", "A02", "A03", "B01", "B02", "B03"]
        seen = canvas_pixels(driver, '[data-well="B02"] canvas')
        assert seen.shape == (64, 64, 4)
        assert (seen[..., 3] == 255).all()
        assert np.abs(seen[..., :3].astype(int) - expected["B02/0"]).max() <= 1
        # toggle Mito off: only DNA, in blue
        driver.find_element("css selector", 'input[data-channel="1"]').click()
        wait_ready(driver)
        dna_only = composite(fields, colors, [True, False])
        seen = canvas_pixels(driver, '[data-well="B02"] canvas')
        assert np.abs(seen[..., :3].astype(int) - dna_only["B02/0"]).max() <= 1
        assert seen[..., 0].max() == 0 and seen[..., 2].max() > 200
        driver.find_element("css selector", 'input[data-channel="1"]').click()
        wait_ready(driver)

        # a click on a well opens its fields and its cells
        driver.find_element("css selector", '[data-well="A02"]').click()
        driver.execute_script("return 1")
        wait_ready(driver)
        assert (
            driver.execute_script(
                "return document.querySelectorAll('#detail .field:not(.missing) canvas').length"
            )
            == 2
        )
        field1 = canvas_pixels(driver, '#detail .field[data-site="1"] canvas')
        assert np.abs(field1[..., :3].astype(int) - expected["A02/1"]).max() <= 1
        labels = driver.execute_script(
            "return [...document.querySelectorAll('#gallery .cell figcaption')]"
            ".map(e => e.textContent)"
        )
        assert len(labels) == min(16, counts["A02"])
        assert all(label.startswith("plate:A/2/") and ":nuclei:" in label for label in labels)
        # sorted by the chosen feature, descending
        driver.execute_script(
            "const s = document.getElementById('sort');"
            "s.value = [...s.options].find(o => o.text === 'Nuclei_AreaShape_Area').value;"
            "s.dispatchEvent(new Event('change'));"
        )
        shown = driver.execute_script(
            "return [...document.querySelectorAll('#gallery .cell small')].map(e => e.textContent)"
        )
        values = [float(s.split("=")[1]) for s in shown]
        assert values == sorted(values, reverse=True)
        screenshot(driver, tmp_path, "sample-well")

        # the heatmap switch: cell count per well
        driver.execute_script(
            "const s = document.getElementById('heatmap');"
            "s.value = [...s.options].find(o => o.text === 'Cell count').value;"
            "s.dispatchEvent(new Event('change'));"
        )
        wait_ready(driver)
        drawn = driver.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('#plate .well.heat')]"
            ".map(e => [e.dataset.well, Number(e.dataset.value)]))"
        )
        assert drawn == counts
        colours = driver.execute_script(
            "return [...document.querySelectorAll('#plate .well.heat')]"
            ".map(e => e.style.background)"
        )
        assert len(set(colours)) > 1
        screenshot(driver, tmp_path, "sample-heatmap")


def test_phenix_folder(sample, tmp_path):
    output = tmp_path / "phenix.html"
    result = write_plate_report(sample.phenix, output, options=ReportOptions(thumbnail_size=32))
    assert (result.wells, result.fields) == (4, 8)
    images = Path(sample.phenix) / "Images"
    fields = {}
    for row, column in ((1, 1), (1, 2), (2, 1), (2, 2)):
        for site in (1, 2):
            planes = [
                tifffile.imread(
                    images / f"r{row:02d}c{column:02d}f{site:02d}p01-ch{c}sk1fk1fl1.tiff"
                )
                for c in (1, 2, 3)
            ]
            fields[f"{'AB'[row - 1]}{column:02d}/{site}"] = np.stack(planes)
    expected = composite(fields, ["0000FF", "00FF00", "FF0000"], [True] * 3)
    with browser() as driver:
        open_report(driver, output)
        screenshot(driver, tmp_path, "phenix")
        assert sorted(wells_drawn(driver)) == ["A01", "A02", "B01", "B02"]
        seen = canvas_pixels(driver, '[data-well="A02"] canvas')
        assert seen.shape == (32, 32, 4)
        assert np.abs(seen[..., :3].astype(int) - expected["A02/1"]).max() <= 1


def test_ngff_plate_with_qc_platemap_and_missing_parts(qc_plate, tmp_path):
    plate, cells, warehouse, platemap, qc = qc_plate
    output = tmp_path / "qc.html"
    result = write_plate_report(
        plate,
        output,
        profiles=cells,
        profile_options=ProfileOptions(platemap=platemap),
        warehouse_root=warehouse,
    )
    assert (result.wells, result.wells_missing, result.absent_chunks) == (5, 1, 1)
    assert validate_warehouse(warehouse).is_valid
    table = pq.read_table(warehouse / "images" / "thumbnails")
    assert table.num_rows == 10
    row = table.filter(pc.equal(table["image_id"], "qc:B/2/0")).to_pylist()[0]
    png = np.asarray(Image.open(io.BytesIO(row["png"])))
    fields = ngff_fields(plate)
    # A02/0 has a hole: its absent pixels are left out of the plate-wide limits
    hole = np.zeros((64, 64), dtype=bool)
    hole[32:, 32:] = True
    expected = composite(fields, ["0000FF", "FF00FF"], [True, True], {"A02/0": hole})
    assert (row["width"], row["height"], row["level"]) == (64, 64, 0)
    assert np.abs(png.astype(int) - expected["B02/0"]).max() <= 1
    with_hole = table.filter(pc.equal(table["image_id"], "qc:A/2/0")).to_pylist()[0]
    rgba = np.asarray(Image.open(io.BytesIO(with_hole["png"])))
    assert rgba.shape == (64, 64, 4)
    assert (rgba[32:, 32:, 3] == 0).all() and (rgba[:32, :, 3] == 255).all()

    wells = qc.column("Metadata_Well").to_pylist()
    flags = qc.column("cqc.large_nuclei.is_outlier").to_pylist()
    share = {
        w: np.mean([f for ww, f in zip(wells, flags, strict=True) if ww == w])
        for w in sorted(set(wells))
    }

    with browser() as driver:
        open_report(driver, output)
        screenshot(driver, tmp_path, "qc-plate")
        assert sorted(wells_drawn(driver)) == ["A01", "A02", "A03", "B01", "B02"]
        missing = driver.find_element("css selector", '#plate .well.missing[data-well="B03"]')
        assert missing.get_attribute("title") == "B03: no image"
        assert "repeating-linear-gradient" in missing.value_of_css_property("background-image")
        assert (
            driver.execute_script("return document.querySelector('[data-well=\"B03\"] canvas')")
            is None
        )
        # the absent chunk (y 32-63, x 32-63 of DNA) is transparent over the hatch, never black
        partial = driver.find_element("css selector", '[data-well="A02"]')
        assert "1 chunks absent" in partial.get_attribute("title")
        seen = canvas_pixels(driver, '[data-well="A02"] canvas')
        assert (seen[32:, 32:, 3] == 0).all() and (seen[:32, :, 3] == 255).all()

        options = driver.execute_script(
            "return [...document.querySelectorAll('#heatmap option')].map(o => o.text)"
        )
        qc_name = "quality_control.cosmicqc: cqc.large_nuclei.is_outlier"
        assert qc_name in options and "Metadata_treatment" in options
        driver.execute_script(
            "const s = document.getElementById('heatmap');"
            "s.value = [...s.options].find(o => o.text === arguments[0]).value;"
            "s.dispatchEvent(new Event('change'));",
            qc_name,
        )
        wait_ready(driver)
        drawn = driver.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('#plate .well.heat')]"
            ".map(e => [e.dataset.well, Number(e.dataset.value)]))"
        )
        assert drawn.keys() == share.keys()
        for well, value in share.items():
            assert drawn[well] == pytest.approx(value)
        screenshot(driver, tmp_path, "qc-heatmap")

        driver.execute_script(
            "const s = document.getElementById('heatmap');"
            "s.value = [...s.options].find(o => o.text === 'Metadata_control').value;"
            "s.dispatchEvent(new Event('change'));"
        )
        wait_ready(driver)
        legend = driver.find_element("id", "legend").text
        assert "negative" in legend and "none" in legend
        negative = driver.execute_script(
            "return [...document.querySelectorAll('#plate .well')].filter("
            "e => e.dataset.value === 'negative').map(e => e.dataset.well)"
        )
        assert sorted(negative) == ["A01", "B01"]

        driver.find_element("css selector", '[data-well="A02"]').click()
        wait_ready(driver)
        caption = driver.find_element(
            "css selector", '#detail .field[data-site="0"] figcaption'
        ).text
        assert "1 chunks absent" in caption
