"""Hostile platemaps: names and symlinks leaving the platemap folder, huge and odd files.

Each case joins a good plate and profile table with ``--platemap
maps/barcode_platemap.csv``. The platemap folder is ``maps/``; ``secret/`` beside it
(a case sentinel, never read) holds a valid-looking plate map carrying the outside
marker, which an escaping ``Plate_Map_Name`` or symlink points at.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bad_inputs import _csv, _fifo, _ngff_plate, _profiles_table, _symlink

CLASS = "platemaps"
ARGV = [
    "join-profiles",
    "plate.ome.zarr",
    "cells.csv",
    "--platemap",
    "maps/barcode_platemap.csv",
]
BARCODES = "Assay_Plate_Barcode,Plate_Map_Name\nplate,{name}\n"
PLATE_MAP = "plate_map_name\twell_position\tpert_iname\nP1\tA01\tDMSO\n"
_GIB3 = 3 * 2**30


def _plate(b: Any) -> Path:
    return b.template("platemaps-plate2.ome.zarr", lambda p: _ngff_plate(p, 2))


def _setup(b: Any, case_id: str, name: str = "P1") -> Path:
    """A case folder: plate, profiles, ``maps/`` naming ``name`` and ``secret/`` beside it."""
    d = b.case(case_id, CLASS)
    b.copy(_plate(b), d / "plate.ome.zarr")
    _csv(d / "cells.csv", _profiles_table())
    (d / "maps" / "platemap").mkdir(parents=True)
    (d / "maps" / "barcode_platemap.csv").write_text(BARCODES.format(name=name))
    (d / "maps" / "platemap" / "P1.txt").write_text(PLATE_MAP)
    (d / "secret").mkdir()
    (d / "secret" / "map.txt").write_text(
        f"plate_map_name\twell_position\tpert_iname\nP1\tA01\t{b.marker}\n"
    )
    (d / "secret" / "P1.txt").write_text((d / "secret" / "map.txt").read_text())
    return d


def _sparse(path: Path, size: int, head: bytes) -> None:
    """A ``size``-byte file beginning with ``head`` and no newline after it (a hole)."""
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)


def _add(b: Any, case_id: str, expect: str, names: str, description: str, **kw: Any) -> None:
    b.add(
        case_id,
        CLASS,
        ARGV,
        expect,
        names,
        sentinels=("secret",),
        description=description,
        **kw,
    )


def build(b: Any) -> None:
    """Add the platemap cases."""
    for case_id, name, what in (
        ("platemaps-name-dotdot", "../../secret/map", "Plate_Map_Name ../../secret/map"),
        ("platemaps-name-dotdot-deep", "../../../../../../secret/map", "many ../ segments"),
        ("platemaps-name-backslash", "..\\..\\secret\\map", "Plate_Map_Name with backslashes"),
        ("platemaps-name-dot", "..", "Plate_Map_Name '..'"),
    ):
        _setup(b, case_id, name)
        _add(b, case_id, "error", "barcode_platemap.csv", what)

    d = _setup(b, "platemaps-name-absolute", "PLACEHOLDER")
    absolute = os.path.join(os.path.realpath(d), "secret", "map")  # the .txt is added
    (d / "maps" / "barcode_platemap.csv").write_text(BARCODES.format(name=absolute))
    _add(b, d.name, "error", "barcode_platemap.csv", "an absolute Plate_Map_Name")

    d = _setup(b, "platemaps-name-absolute-outside", "PLACEHOLDER")
    victim = os.path.realpath(b.outside / "victim")  # OUTDIR/outside/victim.txt
    (d / "maps" / "barcode_platemap.csv").write_text(BARCODES.format(name=victim))
    _add(b, d.name, "error", "barcode_platemap.csv", "Plate_Map_Name = OUTDIR/outside/victim")

    d = _setup(b, "platemaps-txt-symlink-out")
    _symlink(d / "maps" / "platemap" / "P1.txt", "../../secret/map.txt")
    _add(b, d.name, "error", "P1", "platemap/P1.txt is a symlink to ../../secret/map.txt")

    d = _setup(b, "platemaps-txt-symlink-absolute")
    _symlink(d / "maps" / "platemap" / "P1.txt", os.path.realpath(b.outside / "victim.txt"))
    _add(b, d.name, "error", "P1", "platemap/P1.txt is a symlink to OUTDIR/outside/victim.txt")

    d = _setup(b, "platemaps-folder-symlink-out")
    _symlink(d / "maps" / "platemap", "../secret")
    _add(b, d.name, "error", "P1", "the platemap/ folder is a symlink to ../secret")

    d = _setup(b, "platemaps-txt-dev-zero")
    _symlink(d / "maps" / "platemap" / "P1.txt", "/dev/zero")
    _add(b, d.name, "error", "P1", "platemap/P1.txt is a symlink to /dev/zero", hazard=True)

    d = _setup(b, "platemaps-txt-fifo")
    _fifo(d / "maps" / "platemap" / "P1.txt")
    _add(b, d.name, "error", "P1.txt", "platemap/P1.txt is a FIFO", hazard=True)

    d = _setup(b, "platemaps-barcodes-fifo")
    _fifo(d / "maps" / "barcode_platemap.csv")
    _add(b, d.name, "error", "barcode_platemap.csv", "barcode_platemap.csv is a FIFO", hazard=True)

    d = _setup(b, "platemaps-barcodes-3gib-no-newline")
    _sparse(d / "maps" / "barcode_platemap.csv", _GIB3, b"Assay_Plate_Barcode,Plate_Map_Name")
    _add(
        b,
        d.name,
        "error",
        "barcode_platemap.csv",
        "a 3 GiB barcode_platemap.csv without a newline (sparse)",
        hazard=True,
    )

    d = _setup(b, "platemaps-txt-3gib-no-newline")
    _sparse(d / "maps" / "platemap" / "P1.txt", _GIB3, b"plate_map_name\twell_position")
    _add(b, d.name, "error", "P1.txt", "a 3 GiB plate map without a newline", hazard=True)

    d = _setup(b, "platemaps-txt-long-line")
    (d / "maps" / "platemap" / "P1.txt").write_text(PLATE_MAP + "P1\tA02\t" + "x" * 5000 + "\n")
    _add(
        b,
        d.name,
        "error",
        "P1.txt",
        "a 5,000-byte line over ICEBERG_BIOIMAGE_MAX_FIELD_BYTES=1000",
        env={"ICEBERG_BIOIMAGE_MAX_FIELD_BYTES": "1000"},
    )

    d = _setup(b, "platemaps-txt-too-many-rows")
    rows = "".join(f"P1\t{r}{c:02d}\tDMSO\n" for r in "ABCDEFGH" for c in range(1, 13))
    (d / "maps" / "platemap" / "P1.txt").write_text(PLATE_MAP.splitlines()[0] + "\n" + rows)
    _add(
        b,
        d.name,
        "error",
        "P1.txt",
        "96 rows over ICEBERG_BIOIMAGE_MAX_PLATEMAP_ROWS=10",
        env={"ICEBERG_BIOIMAGE_MAX_PLATEMAP_ROWS": "10"},
    )

    d = _setup(b, "platemaps-txt-latin1-header")
    (d / "maps" / "platemap" / "P1.txt").write_bytes(
        "plate_map_name\twell_position\tBehandlung_\xfc\nP1\tA01\tDMSO\n".encode("latin-1")
    )
    _add(b, d.name, "error", "P1.txt", "a plate map whose header is latin-1")

    _setup(b, "platemaps-missing-map", "nope")
    _add(b, "platemaps-missing-map", "error", "barcode_platemap.csv", "no platemap/nope.txt")

    d = _setup(b, "platemaps-txt-symlink-inside")
    (d / "maps" / "shared").mkdir()
    (d / "maps" / "shared" / "P1.txt").write_text(PLATE_MAP)
    _symlink(d / "maps" / "platemap" / "P1.txt", "../shared/P1.txt")
    _add(b, d.name, "ok", "", "platemap/P1.txt is a symlink inside maps/: read")
