"""CellProfiler outputs and a platemap for the sample Phenix plate (``sample-data``).

The same measurements are written the ways CellProfiler pipelines leave them:

* ``cellprofiler.sqlite``: the cytominer-database layout (tables ``Image``,
  ``Cells``, ``Nuclei``, keyed by ``TableNumber`` + ``ImageNumber``; per-image
  columns ``Image_Metadata_Plate/Well/Site``; features prefixed by compartment);
* ``analysis/<plate>-<well>-<site>/``: ExportToSpreadsheet folders, one per site
  (``Image.csv``, ``Cells.csv``, ``Nuclei.csv``; ``ImageNumber`` restarts at 1, object
  features unprefixed);
* ``platemap/``: ``barcode_platemap.csv`` and ``platemap/<name>.txt`` (JUMP layout).

Objects are rectangles inside the 32×32 images: ``AreaShape_BoundingBoxMaximum_X/Y`` are
exclusive, ``Location_Center_X/Y`` the mean pixel position. Sites are 1-based, as
CellProfiler numbers them.
"""

from __future__ import annotations

import csv
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np

PLATE = "phenix"
WELLS = ("A01", "A02", "B01", "B02")
SITES = (1, 2)
SIZE = 32
OBJECTS_PER_IMAGE = 3
COMPARTMENTS = ("Cells", "Nuclei")
FEATURES = ("AreaShape_Area", "Intensity_MeanIntensity_DNA", "Intensity_MeanIntensity_Mito")
PLATE_MAP = "sample-map-1"
TREATMENTS = {"A01": "DMSO", "A02": "compound-1", "B01": "DMSO", "B02": "compound-2"}
SEED = 20240602


def _sites() -> Iterator[tuple[int, str, int]]:
    """``(index, well, site)`` of every image, well-major."""
    index = 0
    for well in WELLS:
        for site in SITES:
            yield index, well, site
            index += 1


def _objects(index: int, compartment: str) -> list[dict[str, float | int]]:
    """The measurements of one image's objects (cells are the nuclei grown by 2 pixels)."""
    rng = np.random.default_rng(SEED + index)
    grow = 2 if compartment == "Cells" else 0
    rows = []
    for number in range(1, OBJECTS_PER_IMAGE + 1):
        x0, y0 = (int(v) for v in rng.integers(2, SIZE - 10, size=2))
        x0, y0 = max(0, x0 - grow), max(0, y0 - grow)
        x1, y1 = min(SIZE, x0 + 6 + 2 * grow), min(SIZE, y0 + 6 + 2 * grow)
        row: dict[str, float | int] = {
            "ObjectNumber": number,
            "AreaShape_BoundingBoxMinimum_X": x0,
            "AreaShape_BoundingBoxMaximum_X": x1,
            "AreaShape_BoundingBoxMinimum_Y": y0,
            "AreaShape_BoundingBoxMaximum_Y": y1,
            "Location_Center_X": (x0 + x1 - 1) / 2,
            "Location_Center_Y": (y0 + y1 - 1) / 2,
        }
        row.update({name: round(float(rng.normal(100, 10)), 3) for name in FEATURES})
        rows.append(row)
    return rows


def _image_row(index: int, well: str, site: int) -> dict[str, str | int]:
    name = f"r{ord(well[0]) - 64:02d}c{int(well[1:]):02d}f{site:02d}p01"
    return {
        "FileName_DNA": f"{name}-ch1sk1fk1fl1.tiff",
        "PathName_DNA": "phenix/Images",
        "Metadata_Plate": PLATE,
        "Metadata_Well": well,
        "Metadata_Site": site,
        "Count_Nuclei": OBJECTS_PER_IMAGE,
    }


def write_cellprofiler_sqlite(path: Path) -> None:
    """The cytominer-database SQLite of the sample plate at ``path``."""
    con = sqlite3.connect(path)
    try:
        image_columns = list(_image_row(0, WELLS[0], 1))
        image_types = {
            c: "BIGINT" if c.endswith(("_Site", "_Nuclei")) else "TEXT" for c in image_columns
        }
        con.execute(
            "CREATE TABLE Image (TableNumber TEXT, ImageNumber BIGINT, "
            + ", ".join(f'"Image_{c}" {t}' for c, t in image_types.items())
            + ")"
        )
        object_columns = list(_objects(0, "Nuclei")[0])
        for compartment in COMPARTMENTS:
            names = [
                ("ObjectNumber", "BIGINT")
                if c == "ObjectNumber"
                else (f"{compartment}_{c}", "BIGINT" if "BoundingBox" in c else "FLOAT")
                for c in object_columns
            ]
            con.execute(
                f"CREATE TABLE {compartment} (TableNumber TEXT, ImageNumber BIGINT, "
                + ", ".join(f'"{n}" {t}' for n, t in names)
                + ")"
            )
        for index, well, site in _sites():
            table_number = hashlib.md5(f"{PLATE}-{well}-{site}".encode()).hexdigest()
            image = _image_row(index, well, site)
            marks = ", ".join("?" for _ in range(len(image) + 2))
            con.execute(f"INSERT INTO Image VALUES ({marks})", [table_number, 1, *image.values()])
            for compartment in COMPARTMENTS:
                rows = [[table_number, 1, *o.values()] for o in _objects(index, compartment)]
                marks = ", ".join("?" for _ in rows[0])
                con.executemany(f"INSERT INTO {compartment} VALUES ({marks})", rows)
        con.commit()
    finally:
        con.close()


def write_cellprofiler_folders(path: Path) -> None:
    """ExportToSpreadsheet output folders ``<plate>-<well>-<site>/`` under ``path``."""
    for index, well, site in _sites():
        folder = path / f"{PLATE}-{well}-{site}"
        folder.mkdir(parents=True)
        image = {"ImageNumber": 1, **_image_row(index, well, site)}
        _write_csv(folder / "Image.csv", [image])
        for compartment in COMPARTMENTS:
            rows = [{"ImageNumber": 1, **o} for o in _objects(index, compartment)]
            _write_csv(folder / f"{compartment}.csv", rows)


def write_platemap(path: Path) -> None:
    """``barcode_platemap.csv`` and ``platemap/<name>.txt`` under ``path``."""
    (path / "platemap").mkdir(parents=True)
    _write_csv(
        path / "barcode_platemap.csv",
        [{"Assay_Plate_Barcode": PLATE, "Plate_Map_Name": PLATE_MAP}],
    )
    rows = [
        {
            "plate_map_name": PLATE_MAP,
            "well_position": well,
            "pert_iname": TREATMENTS[well],
            "pert_type": "control" if TREATMENTS[well] == "DMSO" else "trt",
        }
        for well in WELLS
    ]
    _write_csv(path / "platemap" / f"{PLATE_MAP}.txt", rows, delimiter="\t")


def _write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
