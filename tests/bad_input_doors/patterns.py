"""File-name patterns: catastrophic ``--pattern``s, and real instrument names that must scan.

A ``--pattern`` that backtracks without end (``(a+)+$`` on names that do not match)
is refused with one line before any name is matched (a hazard: run in a subprocess
under the 10 s limit first). Real names that broke the scan before (issue 19) must
scan: ImageXpress ``_`` and ``_[...]`` before the GUID, scan^R names beginning
with ``--`` (also as a dataset id on the command line).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CLASS = "patterns"

_REAL = Path(__file__).resolve().parents[1] / "data" / "real" / "cellprofiler-examples"
_WORMS = _REAL / "ExampleUntangleWorms" / "images"
_ILLUM = _REAL / "ExampleIlluminationCorrection" / "images"
_STRAIGHTEN = _REAL / "ExampleStraightenWorms" / "images"
_SCANR = "--W00001--P00001--Z00000--T00000--cherry.tif"
#: 32 'a's and no end that matches: (a+)+$ tries 2**32 splits in Python's re.
_SLOW_NAME = "A01_w1_" + "a" * 32 + "!.tif"


def _plate(b: Any, case_id: str, files: list[Path]) -> Path:
    folder = b.case(case_id, CLASS) / "plate"
    folder.mkdir()
    for file in files:
        shutil.copy(file, folder / file.name)
    return folder


def build(b: Any) -> None:
    """Add the pattern cases to the builder ``b``."""
    unsafe = {
        "nested-plus": r"(?P<well>[A-H]\d\d)_(?P<channel>w\d)_(a+)+$",
        "nested-star-word": r"(?P<well>[A-H]\d\d)_(?P<channel>w\d)_(\w+_?)*\.tif",
        "overlapping-alternatives": r"(?P<well>[A-H]\d\d)_(?P<channel>w\d)_(a|aa)+$",
    }
    for label, pattern in unsafe.items():
        case_id = f"patterns-{label}"
        folder = b.case(case_id, CLASS) / "plate"
        folder.mkdir()
        (folder / _SLOW_NAME).write_bytes(b"II*\x00")
        b.add(
            case_id,
            CLASS,
            ["scan", "plate", "--pattern", pattern],
            "error",
            "--pattern",
            hazard=True,
            description=f"--pattern {pattern!r} on a 32-character run it cannot match",
        )

    _plate(b, "patterns-imagexpress-underscore-guid", sorted(_WORMS.glob("*.tif")))
    b.add(
        "patterns-imagexpress-underscore-guid",
        CLASS,
        ["scan", "plate", "--instrument", "imagexpress"],
        "ok",
        description="real ImageXpress names <plate>_C01_w1_<GUID>.tif (ExampleUntangleWorms)",
    )
    _plate(b, "patterns-imagexpress-bracketed-guid", sorted(_STRAIGHTEN.glob("*.tif")))
    b.add(
        "patterns-imagexpress-bracketed-guid",
        CLASS,
        ["scan", "plate", "--instrument", "imagexpress"],
        "ok",
        description="real ImageXpress name <plate>_C16_w1_[<GUID>].tif (ExampleStraightenWorms)",
    )
    _plate(b, "patterns-scanr-folder", [_ILLUM / _SCANR])
    b.add(
        "patterns-scanr-folder",
        CLASS,
        ["scan", "plate", "--instrument", "scanr", "--plate-columns", "12"],
        "ok",
        description="real scan^R name --W00001--P00001--Z00000--T00000--cherry.tif",
    )
    folder = _plate(b, "patterns-scanr-file-dataset-id", [_ILLUM / _SCANR])
    b.add(
        "patterns-scanr-file-dataset-id",
        CLASS,
        ["scan", f"{folder.name}/{_SCANR}"],
        "ok",
        description="a single scan^R file: its dataset id begins with '--'",
    )
    _plate(b, "patterns-scanr-dataset-id-option", [_ILLUM / _SCANR])
    b.add(
        "patterns-scanr-dataset-id-option",
        CLASS,
        [
            "scan",
            "plate",
            "--instrument",
            "scanr",
            "--plate-columns",
            "12",
            "--dataset-id=--W00001--cherry",
        ],
        "ok",
        description="--dataset-id=--W00001--cherry is a value, not an option",
    )
