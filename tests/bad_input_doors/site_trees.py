"""Hostile CellProfiler output trees: table files and folders that are symlinks out.

Each case joins a good plate with a profile source the user names (a folder of
per-site folders ``analysis/``, an ExportToSpreadsheet folder, a Parquet folder or one
``Nuclei.csv``). ``secret/`` beside it (a case sentinel, never read) holds valid
CellProfiler tables carrying the outside marker; the symlinks point there or at
``OUTDIR/outside``. A walk must stay inside the named folder: such links are refused
by name (exit 2), never read; links that stay inside are followed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from bad_inputs import _csv, _ngff_plate, _parquet, _profiles_table, _symlink

CLASS = "site_trees"


def _plate(b: Any) -> Path:
    return b.template("site-trees-plate2.ome.zarr", lambda p: _ngff_plate(p, 2))


def _image(site: int) -> pa.Table:
    return pa.table(
        {
            "ImageNumber": [1],
            "Metadata_Plate": ["plate"],
            "Metadata_Well": ["A01"],
            "Metadata_Site": [site],
        }
    )


def _nuclei(marker: str = "") -> pa.Table:
    table = pa.table(
        {"ImageNumber": [1, 1], "ObjectNumber": [1, 2], "Nuclei_AreaShape_Area": [10.0, 12.5]}
    )
    return table.append_column("marker", pa.array([marker] * 2)) if marker else table


def _site(folder: Path, site: int = 0, marker: str = "") -> Path:
    folder.mkdir(parents=True)
    _csv(folder / "Image.csv", _image(site))
    _csv(folder / "Nuclei.csv", _nuclei(marker))
    return folder


def _setup(b: Any, case_id: str) -> Path:
    """Plate, ``analysis/plate-A01-0/`` (Image.csv, Nuclei.csv) and ``secret/`` tables."""
    d = b.case(case_id, CLASS)
    b.copy(_plate(b), d / "plate.ome.zarr")
    _site(d / "analysis" / "plate-A01-0")
    _site(d / "secret", marker=b.marker)
    _parquet(d / "secret" / "part.parquet", _profiles_table().append_column(
        "marker", pa.array([b.marker] * 3)
    ))  # fmt: skip
    return d


def _add(b: Any, case_id: str, source: str, expect: str, names: str, what: str) -> None:
    b.add(
        case_id,
        CLASS,
        ["join-profiles", "plate.ome.zarr", source],
        expect,
        names,
        sentinels=("secret",),
        description=what,
    )


def build(b: Any) -> None:
    """Add the per-site tree cases."""
    site = Path("analysis") / "plate-A01-0"

    d = _setup(b, "site_trees-nuclei-symlink-out")
    _symlink(d / site / "Nuclei.csv", "../../secret/Nuclei.csv")
    _add(b, d.name, "analysis", "error", "Nuclei.csv", "a site's Nuclei.csv links to ../secret")

    d = _setup(b, "site_trees-nuclei-symlink-absolute")
    _symlink(d / site / "Nuclei.csv", os.path.realpath(b.outside / "cells.csv"))
    _add(b, d.name, "analysis", "error", "Nuclei.csv", "Nuclei.csv links to OUTDIR/outside")

    d = _setup(b, "site_trees-image-symlink-out")
    _symlink(d / site / "Image.csv", "../../secret/Image.csv")
    _add(b, d.name, "analysis", "error", "Image.csv", "a site's Image.csv links to ../secret")

    d = _setup(b, "site_trees-site-folder-symlink-out")
    _symlink(d / "analysis" / "plate-A01-1", "../secret")
    _add(b, d.name, "analysis", "error", "plate-A01-1", "a per-site folder links to ../secret")

    d = _setup(b, "site_trees-only-site-symlink-out")
    _symlink(d / site, "../secret")
    _add(b, d.name, "analysis", "error", "plate-A01-0", "the only site folder links out")

    d = _setup(b, "site_trees-spreadsheet-folder-nuclei-symlink-out")
    _symlink(d / site / "Nuclei.csv", "../../secret/Nuclei.csv")
    _add(b, d.name, str(site), "error", "Nuclei.csv", "ExportToSpreadsheet folder, link out")

    d = _setup(b, "site_trees-nuclei-file-sibling-image-symlink-out")
    _symlink(d / site / "Image.csv", "../../secret/Image.csv")
    _add(
        b,
        d.name,
        str(site / "Nuclei.csv"),
        "error",
        "Image.csv",
        "one Nuclei.csv named; the Image.csv beside it links out",
    )

    d = _setup(b, "site_trees-parquet-folder-part-symlink-out")
    (d / "parts").mkdir()
    _parquet(d / "parts" / "part-0.parquet", _profiles_table())
    _symlink(d / "parts" / "part-1.parquet", "../secret/part.parquet")
    _add(b, d.name, "parts", "error", "part-1.parquet", "a Parquet part links to ../secret")

    d = _setup(b, "site_trees-cytotable-table-folder-symlink-out")
    (d / "tables" / "image").mkdir(parents=True)
    _parquet(d / "tables" / "image" / "image.parquet", _image(0))
    (d / "secret" / "nuclei").mkdir()
    _parquet(d / "secret" / "nuclei" / "nuclei.parquet", _nuclei(b.marker))
    _symlink(d / "tables" / "nuclei", "../secret/nuclei")
    _add(b, d.name, "tables", "error", "nuclei", "CytoTable join=False: nuclei/ links out")

    d = _setup(b, "site_trees-symlink-inside")
    (d / "analysis" / ".shared").mkdir()  # dot folders are not sites
    (d / site / "Nuclei.csv").rename(d / "analysis" / ".shared" / "Nuclei.csv")
    _symlink(d / site / "Nuclei.csv", "../.shared/Nuclei.csv")
    _add(b, d.name, "analysis", "ok", "", "Nuclei.csv links inside analysis/: read")
