"""Bad-input generator: damaged and malicious stores, warehouses, profiles and names.

Every case is built from real output of zarr, ome-zarr (``ome_zarr.writer``),
tifffile and pyarrow, then damaged or made malicious, in its own folder
``OUTDIR/<case_id>/``. Beside the case folders, ``OUTDIR/outside/`` holds
"outside" sentinels: valid-looking Zarr arrays, NGFF images, a Parquet file, a
warehouse manifest and a profile table, each carrying a unique marker string
(``OUTSIDE-MARKER-<uuid>``). The escaping paths of the cases point at them, so
a scanner or writer that follows such a path would read, write or delete them
(the test suite checks it does not).

Usage::

    python tests/bad_inputs.py [OUTDIR]        # default tests/data/bad/

or from Python: ``build_cases(outdir) -> list[Case]``. Each :class:`Case` says
which CLI arguments to run (paths relative to the case folder), what must
happen (``"error"``: exit 2 and one ``error:`` line naming :attr:`Case.names`;
``"warning"``: exit 0 and a ``warning:`` line naming it; ``"ok"``: exit 0, no
error or warning) and which extra environment variables apply.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import tifffile
import zarr

__all__ = ["CLASSES", "OUTSIDE", "Case", "build_cases", "main"]

Expect = Literal["error", "warning", "ok"]

#: Name of the folder of outside sentinels, beside the case folders.
OUTSIDE = "outside"

#: Input classes, in the order cases are generated.
CLASSES = ("escape", "special", "manifest", "names", "resource", "profiles", "tiff", "zarr")

MANIFEST = "warehouse_manifest.json"


@dataclass(frozen=True)
class Case:
    """One bad input and what the CLI must do with it."""

    case_id: str
    #: CLI arguments (after ``iceberg-bioimage``), paths relative to the case folder.
    argv: list[str]
    #: ``error`` = exit 2 + one ``error:`` line; ``warning`` = exit 0 + ``warning:``; ``ok``.
    expect: Expect
    #: Substring the ``error:`` (or ``warning:``) line must contain: a file or a name.
    names: str = ""
    #: Input class (one of :data:`CLASSES`).
    cls: str = ""
    #: Extra environment variables for the run.
    env: dict[str, str] = field(default_factory=dict)
    #: May hang or exhaust memory when handled wrongly: run it in a subprocess first.
    hazard: bool = False
    #: Paths (relative to the case folder) outside the store / warehouse root that a
    #: correct run never reads, writes or deletes (besides ``OUTDIR/outside``).
    sentinels: tuple[str, ...] = ()
    #: What the case is, in words.
    description: str = ""


# --------------------------------------------------------------------------- #
# templates: small valid datasets written once per build by the real libraries
# --------------------------------------------------------------------------- #


def _ome_zarr() -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import ome_zarr.format
        import ome_zarr.writer
    return ome_zarr


def _fmt(zarr_format: int) -> Any:
    fmt = _ome_zarr().format
    return fmt.FormatV04() if zarr_format == 2 else fmt.FormatV05()


_IMAGE_SHAPE = (1, 16, 16)
_IMAGE_CHUNKS = (1, 8, 8)


def _pixels(shape: tuple[int, ...] = _IMAGE_SHAPE, dtype: str = "uint8") -> np.ndarray:
    return (np.arange(int(np.prod(shape))) % 250 + 1).astype(dtype).reshape(shape)


def _omero(label: str) -> dict[str, Any]:
    return {
        "channels": [
            {
                "label": label,
                "color": "0000FF",
                "active": True,
                "window": {"min": 0, "max": 255, "start": 0, "end": 255},
            }
        ]
    }


def _write_image(group: Any, zarr_format: int, label: str = "DNA") -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        _ome_zarr().writer.write_image(
            _pixels(),
            group,
            scale_factors=[{"y": 2, "x": 2}],
            fmt=_fmt(zarr_format),
            axes="cyx",
            scale={"c": 1.0, "y": 0.5, "x": 0.5},
            axes_units={"y": "micrometer", "x": "micrometer"},
            storage_options=[{"chunks": _IMAGE_CHUNKS}] * 2,
            omero=_omero(label),
        )


def _ngff_image(path: Path, zarr_format: int, label: str = "DNA") -> Path:
    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    _write_image(group, zarr_format, label)
    return path


def _ngff_plate(
    path: Path, zarr_format: int, columns: tuple[str, ...] = ("1",), name: str = "plate"
) -> Path:
    ozw = _ome_zarr().writer
    fmt = _fmt(zarr_format)
    wells = [f"A/{c}" for c in columns]
    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        ozw.write_plate_metadata(group, ["A"], list(columns), wells, fmt=fmt, name=name)
        for column in columns:
            well = group.require_group("A").require_group(column)
            ozw.write_well_metadata(well, ["0"], fmt=fmt)
            _write_image(well.require_group("0"), zarr_format)
    return path


def _zarr_array(
    path: Path,
    zarr_format: int,
    shape: tuple[int, ...] = (8, 8),
    chunks: tuple[int, ...] = (4, 4),
    *,
    write: bool = True,
    **kwargs: Any,
) -> Path:
    array = zarr.create_array(
        path, shape=shape, chunks=chunks, dtype="uint8", zarr_format=zarr_format, **kwargs
    )
    if write:
        array[...] = _pixels(shape)
    return path


def _tiff(path: Path, *, series: int = 1, bigtiff: bool = False) -> Path:
    with tifffile.TiffWriter(path, ome=True, bigtiff=bigtiff) as tw:
        for index in range(series):
            tw.write(
                _pixels((2, 64, 64), "uint16") + index,
                photometric="minisblack",
                metadata={"axes": "CYX", "Channel": {"Name": ["DNA", "GFP"]}},
            )
    return path


def _profiles_table(wells: tuple[str, ...] = ("A01",), plate: str = "plate") -> pa.Table:
    rows = [(w, s) for w in wells for s in range(1)] * 3
    return pa.table(
        {
            "Metadata_Plate": [plate] * len(rows),
            "Metadata_Well": [w for w, _ in rows],
            "Metadata_Site": [s for _, s in rows],
            "ObjectNumber": list(range(1, len(rows) + 1)),
            "Nuclei_AreaShape_Area": [100.0 + i for i in range(len(rows))],
        }
    )


def _csv(path: Path, table: pa.Table) -> Path:
    pacsv.write_csv(table, path)
    return path


def _parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


# --------------------------------------------------------------------------- #
# damage helpers
# --------------------------------------------------------------------------- #


def _consolidate(store: Path) -> None:
    """zarr's own consolidated metadata (its v3 "not in the spec yet" warning silenced)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        zarr.consolidate_metadata(store)


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _dump(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, indent=2))


def _ngff_doc(group: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The NGFF metadata file of a group, its document, and the NGFF attributes in it."""
    v3 = group / "zarr.json"
    if v3.exists():
        doc = _load(v3)
        return v3, doc, doc["attributes"]["ome"]
    doc = _load(group / ".zattrs")
    return group / ".zattrs", doc, doc


def _edit_ngff(group: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    path, doc, attrs = _ngff_doc(group)
    edit(attrs)
    _dump(path, doc)
    return path


def _edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    doc = _load(path)
    result = edit(doc)
    _dump(path, doc if result is None else result)


def _truncate(path: Path, keep: int | float = 0.5) -> None:
    data = path.read_bytes()
    size = keep if isinstance(keep, int) else max(1, int(len(data) * keep))
    path.write_bytes(data[:size])


def _symlink(link: Path, target: str | Path) -> None:
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    elif link.exists() or link.is_symlink():
        link.unlink()
    os.symlink(target, link)


def _fifo(path: Path) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)


def _sparse_json(path: Path, size: int) -> None:
    """A ``size``-byte file that starts like JSON and is a hole after that (no disk used)."""
    with open(path, "wb") as handle:
        handle.write(b'{"huge": "')
        handle.seek(size - 2)
        handle.write(b'"}')


def _deep_json(path: Path, depth: int = 100_000) -> None:
    path.write_bytes(b"[" * depth + b"]" * depth)


def _manifest(tables: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "warehouse_spec_version": "1.0.0",
        "conformance_profiles": ["core"],
        "layout": "namespaced",
        "producer": {"name": "iceberg-bioimage", "version": "0.0.0"},
        "updated_at": "2024-01-01T00:00:00+00:00",
        "tables": tables,
    }


def _manifest_table(
    table_name: str, role: str, path: str, files: list[dict[str, Any]], table: pa.Table
) -> dict[str, Any]:
    return {
        "table_name": table_name,
        "role": role,
        "format": "parquet",
        "path": path,
        "join_keys": ["dataset_id", "image_id"],
        "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
        "row_count": sum(f["rows"] for f in files),
        "grain": {"profile_level": None, "compartment": None},
        "datasets": sorted({f["dataset_id"] for f in files if f.get("dataset_id")}),
        "files": files,
        "provenance": {"producer": "iceberg-bioimage 0.0.0", "sources": [], "written_at": None},
    }


def _assets_table(dataset_id: str, marker: str = "") -> pa.Table:
    return pa.table(
        {
            "dataset_id": [dataset_id],
            "image_id": [dataset_id],
            "array_path": ["s0"],
            "uri": [marker or "file:///nowhere"],
        }
    )


# --------------------------------------------------------------------------- #
# the build context
# --------------------------------------------------------------------------- #


class _Builder:
    def __init__(self, outdir: Path, marker: str, templates: Path) -> None:
        self.outdir = outdir
        self.marker = marker
        self.templates = templates
        self.outside = outdir / OUTSIDE
        self.cases: list[Case] = []
        self._made: set[str] = set()

    # -- templates ---------------------------------------------------------
    def template(self, name: str, make: Callable[[Path], Path]) -> Path:
        path = self.templates / name
        if name not in self._made:
            make(path)
            self._made.add(name)
        return path

    def image(self, zarr_format: int) -> Path:
        return self.template(f"img{zarr_format}.ome.zarr", lambda p: _ngff_image(p, zarr_format))

    def plate(self, zarr_format: int) -> Path:
        return self.template(f"plate{zarr_format}.ome.zarr", lambda p: _ngff_plate(p, zarr_format))

    def copy(self, template: Path, dest: Path) -> Path:
        if template.is_dir():
            shutil.copytree(template, dest, symlinks=True)
        else:
            shutil.copy2(template, dest)
        return dest

    # -- cases -------------------------------------------------------------
    def case(self, case_id: str, cls: str) -> Path:
        assert case_id != OUTSIDE and case_id not in {c.case_id for c in self.cases}, case_id
        folder = self.outdir / case_id
        folder.mkdir(parents=True)
        return folder

    def add(
        self, case_id: str, cls: str, argv: list[str], expect: Expect, names: str = "", **kw: Any
    ) -> None:
        self.cases.append(
            Case(case_id=case_id, cls=cls, argv=argv, expect=expect, names=names, **kw)
        )

    # -- the outside sentinels ----------------------------------------------
    def write_outside(self) -> None:
        out = self.outside
        out.mkdir(parents=True)
        attrs = {"marker": self.marker, "_ARRAY_DIMENSIONS": ["c", "y", "x"]}
        v2 = zarr.create_array(
            out, shape=_IMAGE_SHAPE, chunks=_IMAGE_CHUNKS, dtype="uint8", zarr_format=2
        )
        v2[...] = _pixels()
        v2.attrs.update(attrs)
        with tempfile.TemporaryDirectory() as scratch:
            v3 = zarr.create_array(
                Path(scratch) / "v3",
                shape=_IMAGE_SHAPE,
                chunks=_IMAGE_CHUNKS,
                dtype="uint8",
                zarr_format=3,
                dimension_names=["c", "y", "x"],
                attributes={"marker": self.marker},
            )
            v3[...] = _pixels()
            shutil.copy2(Path(scratch) / "v3" / "zarr.json", out / "zarr.json")
            shutil.copytree(Path(scratch) / "v3" / "c", out / "c")
        _ngff_image(out / "ngff04", 2, label=self.marker)
        _ngff_image(out / "ngff05", 3, label=self.marker)
        victim = _assets_table("img", self.marker)
        _parquet(out / "victim.parquet", victim)
        (out / "victim.txt").write_text(f"{self.marker}\n")
        _csv(
            out / "cells.csv",
            _profiles_table().append_column("marker", pa.array([self.marker] * 3)),
        )
        files = [{"path": "victim.parquet", "dataset_id": "img", "rows": 1}]
        table = _manifest_table(
            "images.image_assets", "image_assets", "images/image_assets", files, victim
        )
        table["provenance"]["sources"] = [self.marker]
        _dump(out / MANIFEST, _manifest([table]))


# --------------------------------------------------------------------------- #
# case classes
# --------------------------------------------------------------------------- #


def _escape_cases(b: _Builder) -> None:
    cls = "escape"
    up = "../../" + OUTSIDE  # from <case>/<store>/ to OUTDIR/outside
    for fmt, v in ((2, "04"), (3, "05")):
        meta = ".zattrs" if fmt == 2 else "zarr.json"

        def set_path(value: str) -> Callable[[dict[str, Any]], None]:
            def edit(attrs: dict[str, Any]) -> None:
                attrs["multiscales"][0]["datasets"][0]["path"] = value

            return edit

        # multiscales[].datasets[].path leaving the store
        d = b.case(f"ngff{v}-dataset-path-dotdot", cls)
        store = b.copy(b.image(fmt), d / "img.ome.zarr")
        _edit_ngff(store, set_path(up))
        b.add(
            d.name,
            cls,
            ["scan", "--json", "img.ome.zarr"],
            "error",
            f"img.ome.zarr/{meta}",
            description="NGFF dataset path ../../outside (a valid array with attributes)",
        )

        d = b.case(f"ngff{v}-dataset-path-inner-dotdot", cls)
        store = b.copy(b.image(fmt), d / "img.ome.zarr")
        _edit_ngff(store, set_path(f"s0/../{up}"))
        b.add(
            d.name,
            cls,
            ["summarize", "--json", "img.ome.zarr"],
            "error",
            f"img.ome.zarr/{meta}",
            description="NGFF dataset path s0/../../../outside",
        )

        d = b.case(f"ngff{v}-dataset-path-dotdot-export", cls)
        store = b.copy(b.image(fmt), d / "img.ome.zarr")
        _edit_ngff(store, set_path(up))
        b.add(
            d.name,
            cls,
            ["export-cytomining", "img.ome.zarr", "--warehouse-root", "wh"],
            "error",
            f"img.ome.zarr/{meta}",
            description="export of a store whose dataset path escapes",
        )

        # well images[].path with '..'
        d = b.case(f"ngff{v}-well-image-path-dotdot", cls)
        store = b.copy(b.plate(fmt), d / "plate.ome.zarr")

        def well_image(attrs: dict[str, Any], v: str = v) -> None:
            attrs["well"]["images"][0]["path"] = f"../../../{up}/ngff{v}"

        _edit_ngff(store / "A" / "1", well_image)
        b.add(
            d.name,
            cls,
            ["scan", "--json", "plate.ome.zarr"],
            "error",
            f"plate.ome.zarr/A/1/{meta}",
            description="well images[0].path ../../../../outside/ngffXX (a valid image)",
        )

        # plate wells[].path = ../evil, with a valid well at <case>/evil
        d = b.case(f"ngff{v}-plate-well-path-evil", cls)
        store = b.copy(b.plate(fmt), d / "plate.ome.zarr")
        evil = b.copy(store / "A" / "1", d / "evil")
        _edit_ngff(evil / "0", lambda a: a.update(omero=_omero(b.marker)))

        def plate_well(attrs: dict[str, Any]) -> None:
            attrs["plate"]["wells"][0]["path"] = "../evil"

        _edit_ngff(store, plate_well)
        b.add(
            d.name,
            cls,
            ["scan", "--json", "plate.ome.zarr"],
            "error",
            f"plate.ome.zarr/{meta}",
            sentinels=("evil",),
            description="plate wells[0].path ../evil (a valid well beside the store)",
        )

        # a symlinked level folder pointing out of the store
        d = b.case(f"ngff{v}-level-symlink-dir-outside", cls)
        store = b.copy(b.image(fmt), d / "img.ome.zarr")
        _symlink(store / "s0", up)
        b.add(
            d.name,
            cls,
            ["scan", "--json", "img.ome.zarr"],
            "error",
            "img.ome.zarr/s0",
            description="level s0 is a symlink to OUTDIR/outside (a valid array)",
        )

        # a symlinked metadata file pointing out of the store
        d = b.case(f"ngff{v}-array-meta-symlink-outside", cls)
        store = b.copy(b.image(fmt), d / "img.ome.zarr")
        _symlink(
            store / "s0" / (".zarray" if fmt == 2 else "zarr.json"),
            f"../{up}/" + (".zarray" if fmt == 2 else "zarr.json"),
        )
        b.add(
            d.name,
            cls,
            ["scan", "--json", "img.ome.zarr"],
            "error",
            "img.ome.zarr/s0/" + (".zarray" if fmt == 2 else "zarr.json"),
            description="s0's array metadata is a symlink to an outside file",
        )

        # a symlinked root attributes file pointing out of the store
        d = b.case(f"ngff{v}-root-meta-symlink-outside", cls)
        store = b.copy(b.image(fmt), d / "img.ome.zarr")
        _symlink(store / meta, f"{up}/ngff{v}/{meta}")
        b.add(
            d.name,
            cls,
            ["scan", "--json", "img.ome.zarr"],
            "error",
            f"img.ome.zarr/{meta}",
            description="the root NGFF metadata is a symlink to an outside image's",
        )

        # a plain group whose child is a symlink to an outside array
        d = b.case(f"v{fmt}-group-child-symlink-outside", cls)
        group = zarr.open_group(d / "grp.zarr", mode="w", zarr_format=fmt)
        group.create_array("a", shape=(8, 8), chunks=(4, 4), dtype="uint8")[...] = _pixels((8, 8))
        _symlink(d / "grp.zarr" / "leak", up)
        b.add(
            d.name,
            cls,
            ["scan", "--json", "grp.zarr"],
            "error",
            "grp.zarr/leak",
            description="group child 'leak' is a symlink to OUTDIR/outside (a valid array)",
        )

        # symlinks inside the store keep working
        d = b.case(f"ngff{v}-level-symlink-inside", cls)
        store = b.copy(b.image(fmt), d / "img.ome.zarr")
        (store / "levels").mkdir()
        (store / "s0").rename(store / "levels" / "s0")
        _symlink(store / "s0", "levels/s0")
        b.add(
            d.name,
            cls,
            ["scan", "--json", "img.ome.zarr"],
            "ok",
            description="level s0 is a symlink to levels/s0 inside the store",
        )

        d = b.case(f"ngff{v}-array-meta-symlink-inside", cls)
        store = b.copy(b.image(fmt), d / "img.ome.zarr")
        name = ".zarray" if fmt == 2 else "zarr.json"
        (store / "meta").mkdir()
        (store / "s1" / name).rename(store / "meta" / "s1.json")
        _symlink(store / "s1" / name, "../meta/s1.json")
        b.add(
            d.name,
            cls,
            ["export-cytomining", "img.ome.zarr", "--warehouse-root", "wh"],
            "ok",
            description="s1's array metadata is a symlink to meta/s1.json inside the store",
        )

    # consolidated metadata with keys that leave the store
    d = b.case("v2-zmetadata-key-dotdot", cls)
    group = zarr.open_group(d / "grp.zarr", mode="w", zarr_format=2)
    group.create_array("a", shape=(8, 8), chunks=(4, 4), dtype="uint8")[...] = _pixels((8, 8))
    _consolidate(d / "grp.zarr")

    def zmeta(doc: dict[str, Any]) -> None:
        meta = doc["metadata"]
        meta[f"{up}/.zarray"] = copy.deepcopy(meta["a/.zarray"])
        meta[f"{up}/.zattrs"] = {"marker": "see OUTDIR/outside"}

    _edit_json(d / "grp.zarr" / ".zmetadata", zmeta)
    b.add(
        d.name,
        cls,
        ["scan", "--json", "--stat-chunks", "grp.zarr"],
        "error",
        "grp.zarr/.zmetadata",
        description=".zmetadata key ../../outside/.zarray",
    )

    for case_id, key in (
        ("v3-consolidated-key-dotdot", up),
        ("v3-consolidated-key-inner-dotdot", f"a/../{up}"),
    ):
        d = b.case(case_id, cls)
        group = zarr.open_group(d / "grp.zarr", mode="w", zarr_format=3)
        group.create_array("a", shape=(8, 8), chunks=(4, 4), dtype="uint8")[...] = _pixels((8, 8))
        _consolidate(d / "grp.zarr")

        def zjson(doc: dict[str, Any], key: str = key) -> None:
            meta = doc["consolidated_metadata"]["metadata"]
            meta[key] = copy.deepcopy(meta["a"])

        _edit_json(d / "grp.zarr" / "zarr.json", zjson)
        b.add(
            d.name,
            cls,
            ["scan", "--json", "--stat-chunks", "grp.zarr"],
            "error",
            "grp.zarr/zarr.json",
            description=f"consolidated zarr.json key {key}",
        )

    # chunk keys that would leave the store (stat_chunks lists / stats them)
    d = b.case("v3-chunk-key-separator-dotdot", cls)
    _zarr_array(d / "arr.zarr", 3)
    _edit_json(
        d / "arr.zarr" / "zarr.json",
        lambda doc: doc.update(
            chunk_key_encoding={"name": "default", "configuration": {"separator": "/../../../"}}
        ),
    )
    b.add(
        d.name,
        cls,
        ["scan", "--json", "--stat-chunks", "arr.zarr"],
        "error",
        "arr.zarr/zarr.json",
        description="chunk_key_encoding separator '/../../../'",
    )

    d = b.case("v2-dimension-separator-dotdot", cls)
    _zarr_array(d / "arr.zarr", 2)
    _edit_json(d / "arr.zarr" / ".zarray", lambda doc: doc.update(dimension_separator="/../"))
    b.add(
        d.name,
        cls,
        ["scan", "--json", "--stat-chunks", "arr.zarr"],
        "error",
        "arr.zarr/.zarray",
        description="dimension_separator '/../'",
    )


def _special_cases(b: _Builder) -> None:
    cls = "special"
    d = b.case("ngff04-zarray-dev-zero", cls)
    store = b.copy(b.image(2), d / "img.ome.zarr")
    _symlink(store / "s0" / ".zarray", "/dev/zero")
    b.add(
        d.name,
        cls,
        ["scan", "img.ome.zarr"],
        "error",
        "img.ome.zarr/s0/.zarray",
        hazard=True,
        description="s0/.zarray is a symlink to /dev/zero",
    )

    d = b.case("v3-zarr-json-dev-zero", cls)
    _zarr_array(d / "arr.zarr", 3)
    _symlink(d / "arr.zarr" / "zarr.json", "/dev/zero")
    b.add(
        d.name,
        cls,
        ["scan", "arr.zarr"],
        "error",
        "arr.zarr/zarr.json",
        hazard=True,
        description="the root zarr.json is a symlink to /dev/zero",
    )

    d = b.case("ngff04-zarray-fifo", cls)
    store = b.copy(b.image(2), d / "img.ome.zarr")
    _fifo(store / "s0" / ".zarray")
    b.add(
        d.name,
        cls,
        ["scan", "img.ome.zarr"],
        "error",
        "img.ome.zarr/s0/.zarray",
        hazard=True,
        description="s0/.zarray is a FIFO (opening it blocks)",
    )

    d = b.case("v3-zarr-json-fifo", cls)
    _zarr_array(d / "arr.zarr", 3)
    _fifo(d / "arr.zarr" / "zarr.json")
    b.add(
        d.name,
        cls,
        ["scan", "arr.zarr"],
        "error",
        "arr.zarr/zarr.json",
        hazard=True,
        description="the root zarr.json is a FIFO",
    )

    d = b.case("tiff-store-is-fifo", cls)
    _fifo(d / "stack.ome.tiff")
    b.add(
        d.name,
        cls,
        ["scan", "stack.ome.tiff"],
        "error",
        "stack.ome.tiff",
        hazard=True,
        description="the TIFF store itself is a FIFO",
    )

    d = b.case("tiff-store-symlink-dev-zero", cls)
    _symlink(d / "stack.ome.tiff", "/dev/zero")
    b.add(
        d.name,
        cls,
        ["scan", "stack.ome.tiff"],
        "error",
        "stack.ome.tiff",
        hazard=True,
        description="the TIFF store is a symlink to /dev/zero",
    )

    d = b.case("ngff04-zattrs-symlink-loop", cls)
    store = b.copy(b.image(2), d / "img.ome.zarr")
    _symlink(store / ".zattrs", ".zattrs")
    b.add(
        d.name,
        cls,
        ["scan", "img.ome.zarr"],
        "error",
        "img.ome.zarr/.zattrs",
        description="the root .zattrs is a symlink to itself (ELOOP)",
    )

    d = b.case("ngff05-level-symlink-loop", cls)
    store = b.copy(b.image(3), d / "img.ome.zarr")
    _symlink(store / "s0", "s0")
    b.add(
        d.name,
        cls,
        ["scan", "img.ome.zarr"],
        "error",
        "img.ome.zarr/s0",
        description="level folder s0 is a symlink to itself (ELOOP)",
    )

    d = b.case("ngff04-level-symlink-loop-pair", cls)
    store = b.copy(b.image(2), d / "img.ome.zarr")
    shutil.rmtree(store / "s1")
    _symlink(store / "s0", "s1")
    _symlink(store / "s1", "s0")
    b.add(
        d.name,
        cls,
        ["summarize", "img.ome.zarr"],
        "error",
        "img.ome.zarr/s0",
        description="level folders s0 -> s1 -> s0 (ELOOP)",
    )


def _manifest_cases(b: _Builder) -> None:
    cls = "manifest"
    outside = b.outside.resolve()
    victim = _assets_table("img")

    def warehouse(d: Path, tables: list[dict[str, Any]] | None = None) -> Path:
        wh = d / "wh"
        folder = wh / "images" / "image_assets"
        folder.mkdir(parents=True)
        _parquet(folder / "img.parquet", victim)
        files = [{"path": "img.parquet", "dataset_id": "img", "rows": 1}]
        if tables is None:
            tables = [
                _manifest_table(
                    "images.image_assets", "image_assets", "images/image_assets", files, victim
                )
            ]
        _dump(wh / MANIFEST, _manifest(tables))
        return wh

    def entry(path: str, file_path: str, name: str = "images.image_assets") -> dict[str, Any]:
        files = [{"path": file_path, "dataset_id": "img", "rows": 1}]
        role = "image_assets" if name.startswith("images.") else "joined_profiles"
        return _manifest_table(name, role, path, files, victim)

    export = ["export-cytomining", "img.ome.zarr", "--warehouse-root", "wh", "--mode", "overwrite"]
    escapes = {
        "manifest-table-path-dotdot": entry(f"../../{OUTSIDE}", "victim.parquet"),
        "manifest-file-path-dotdot": entry(
            "images/image_assets", f"../../../../{OUTSIDE}/victim.parquet"
        ),
        "manifest-table-path-absolute": entry(str(outside), "victim.parquet"),
        "manifest-file-path-absolute": entry(
            "images/image_assets", str(outside / "victim.parquet")
        ),
        "manifest-table-name-dotdot": entry(
            "images/image_assets", "img.parquet", name="../../outside.image_assets"
        ),
    }
    for case_id, table in escapes.items():
        d = b.case(case_id, cls)
        b.copy(b.image(3), d / "img.ome.zarr")
        warehouse(d, [table])
        b.add(
            case_id,
            cls,
            export,
            "error",
            MANIFEST,
            description=f"existing manifest entry {table['table_name']} at {table['path']} "
            f"file {table['files'][0]['path']}; export --mode overwrite",
        )

    for case_id, table in (
        ("validate-warehouse-file-path-dotdot", escapes["manifest-file-path-dotdot"]),
        ("validate-warehouse-table-path-absolute", escapes["manifest-table-path-absolute"]),
    ):
        d = b.case(case_id, cls)
        warehouse(d, [table])
        b.add(
            case_id,
            cls,
            ["validate-warehouse", "wh"],
            "error",
            MANIFEST,
            description="validate-warehouse of a manifest listing an outside file",
        )

    d = b.case("profiles-export-manifest-file-dotdot", cls)
    _csv(d / "cells.csv", _profiles_table())
    warehouse(
        d,
        [
            entry(
                "profiles/pycytominer_profiles",
                f"../../../../{OUTSIDE}/victim.parquet",
                name="profiles.pycytominer_profiles",
            )
        ],
    )
    b.add(
        d.name,
        cls,
        [
            "export-cytomining-profiles",
            "cells.csv",
            "--warehouse-root",
            "wh",
            "--table-name",
            "pycytominer_profiles",
            "--profile-dataset-id",
            "img",
            "--mode",
            "overwrite",
        ],
        "error",
        MANIFEST,
        description="export-cytomining-profiles over a manifest file path leaving the root",
    )

    damaged: dict[str, Callable[[Path], None]] = {
        "manifest-is-json-list": lambda p: p.write_text(json.dumps([_load(p)])),
        "manifest-invalid-json": lambda p: _truncate(p),
        "manifest-spec-version-major-2": lambda p: _edit_json(
            p, lambda doc: doc.update(warehouse_spec_version="2.0.0")
        ),
        "manifest-files-not-a-list": lambda p: _edit_json(
            p, lambda doc: doc["tables"][0].update(files="img.parquet")
        ),
        "manifest-layout-unknown": lambda p: _edit_json(p, lambda doc: doc.update(layout="../x")),
        "manifest-deep-json": lambda p: _deep_json(p),
        "manifest-huge-sparse": lambda p: _sparse_json(p, 100 * 2**20),
        "manifest-symlink-outside": lambda p: _symlink(p, f"../../{OUTSIDE}/{MANIFEST}"),
        "manifest-fifo": lambda p: _fifo(p),
    }
    for case_id, damage in damaged.items():
        d = b.case(case_id, cls)
        b.copy(b.image(3), d / "img.ome.zarr")
        damage(warehouse(d) / MANIFEST)
        b.add(
            case_id,
            cls,
            export,
            "error",
            MANIFEST,
            hazard=case_id == "manifest-fifo",
            description=f"existing {MANIFEST}: {case_id.removeprefix('manifest-')}",
        )


def _names_cases(b: _Builder) -> None:
    cls = "names"
    for case_id, name in (
        ("table-name-dotdot", "../../escaped"),
        ("table-name-slash", "profiles/escaped"),
        ("table-name-leading-dot", ".hidden"),
        ("table-name-empty-part", "profiles..escaped"),
        ("table-name-dotted-dotdot", "profiles./../escaped"),
        ("table-name-backslash", "profiles.a\\b"),
    ):
        d = b.case(case_id, cls)
        table = _profiles_table()
        image_ids = pa.array(["plate:A/1/0"] * len(table))
        _csv(d / "cells.csv", table.append_column("image_id", image_ids))
        b.add(
            case_id,
            cls,
            [
                "export-cytomining-profiles",
                "cells.csv",
                "--warehouse-root",
                "wh",
                "--table-name",
                name,
                "--profile-dataset-id",
                "plate",
            ],
            "error",
            name.split("\\")[0],  # messages may quote the name with Python's repr
            description=f"--table-name {name!r}",
        )

    ids = {
        "dot": ".",
        "tab": "a\tb",
        "dotdot": "../x",
        "slash": "a/b",
        "empty": "",
    }
    # SPEC §2 (v4): any name a real file or folder carries is a legal dataset id; the
    # warehouse encodes it into a file name no reader hides (%2Ehidden..., %5Fx...).
    for label, value in {"hidden": ".hidden", "underscore": "_x", "colon": "a:b"}.items():
        d = b.case(f"export-dataset-id-{label}", cls)
        b.copy(b.image(2), d / "img.ome.zarr")
        b.add(
            d.name,
            cls,
            ["export-cytomining", "img.ome.zarr", "--warehouse-root", "wh", "--dataset-id", value],
            "ok",
            description=f"export-cytomining --dataset-id {value!r} (a legal real-world name)",
        )
    for label, value in ids.items():
        d = b.case(f"export-dataset-id-{label}", cls)
        b.copy(b.image(2), d / "img.ome.zarr")
        b.add(
            d.name,
            cls,
            ["export-cytomining", "img.ome.zarr", "--warehouse-root", "wh", "--dataset-id", value],
            "error",
            value.encode("unicode_escape").decode() or "dataset id",  # named as repr() shows it
            description=f"export-cytomining --dataset-id {value!r}",
        )
    for command, label, value in (
        ("scan", "dotdot", "../x"),
        ("register", "slash", "a/b"),
        ("register", "dotdot", "../../x"),
        ("publish-chunks", "dot", "."),
    ):
        d = b.case(f"{command}-dataset-id-{label}", cls)
        b.copy(b.image(3), d / "img.ome.zarr")
        b.add(
            d.name,
            cls,
            [command, "img.ome.zarr", "--dataset-id", value],
            "error",
            value,
            description=f"{command} --dataset-id {value!r}",
        )
    for label, value in (("dotdot", "../x"), ("slash", "bio/image")):
        d = b.case(f"register-namespace-{label}", cls)
        b.copy(b.image(3), d / "img.ome.zarr")
        b.add(
            d.name,
            cls,
            ["register", "img.ome.zarr", "--namespace", value],
            "error",
            value,
            description=f"register --namespace {value!r}",
        )
    d = b.case("profiles-dataset-id-dotdot", cls)
    table = _profiles_table()
    _csv(d / "cells.csv", table.append_column("image_id", pa.array(["x:A/1/0"] * len(table))))
    b.add(
        d.name,
        cls,
        [
            "export-cytomining-profiles",
            "cells.csv",
            "--warehouse-root",
            "wh",
            "--table-name",
            "pycytominer_profiles",
            "--profile-dataset-id",
            "../x",
        ],
        "error",
        "../x",
        description="--profile-dataset-id '../x'",
    )
    d = b.case("profiles-dataset-id-column-dotdot", cls)
    table = _profiles_table()
    table = table.append_column("dataset_id", pa.array(["../../x"] * len(table)))
    _csv(d / "cells.csv", table.append_column("image_id", pa.array(["x:A/1/0"] * len(table))))
    b.add(
        d.name,
        cls,
        [
            "export-cytomining-profiles",
            "cells.csv",
            "--warehouse-root",
            "wh",
            "--table-name",
            "pycytominer_profiles",
        ],
        "error",
        "../../x",
        description="profile rows whose dataset_id column holds '../../x'",
    )
    for case_id, store in (
        ("store-name-colon", "a:b.ome.zarr"),
        ("store-name-leading-dot", ".hidden.ome.zarr"),
    ):
        d = b.case(case_id, cls)
        b.copy(b.image(2), d / store)
        dataset_id = store.removesuffix(".ome.zarr")
        # SPEC §2 v4: any name a real file carries is a valid derived id; the writer
        # encodes it in file names (no hidden file, nothing outside the warehouse)
        b.add(
            case_id,
            cls,
            ["export-cytomining", store, "--warehouse-root", "wh"],
            "ok",
            "",
            description=f"store {store}: default dataset id {dataset_id!r} (legal, encoded)",
        )


def _resource_cases(b: _Builder) -> None:
    cls = "resource"
    big = b.template("big.zarr", lambda p: _zarr_array(p, 2, (10**12,), (1,), write=False))
    grid = b.template("grid.zarr", lambda p: _zarr_array(p, 3, (10**4, 10**4), (1, 1), write=False))
    for case_id, template, argv, expect, names, hazard in (
        ("v2-shape-1e12-scan", big, ["scan", "big.zarr"], "ok", "", False),
        (
            "v2-shape-1e12-export",
            big,
            ["export-cytomining", "big.zarr", "--warehouse-root", "wh"],
            "error",
            "--no-chunks",
            True,
        ),
        (
            "v2-shape-1e12-export-no-chunks",
            big,
            ["export-cytomining", "big.zarr", "--warehouse-root", "wh", "--no-chunks"],
            "ok",
            "",
            True,
        ),
        ("v3-grid-1e8-scan", grid, ["scan", "grid.zarr"], "ok", "", False),
        (
            "v3-grid-1e8-export",
            grid,
            ["export-cytomining", "grid.zarr", "--warehouse-root", "wh"],
            "error",
            "--no-chunks",
            True,
        ),
        (
            "v3-grid-1e8-register-chunks",
            grid,
            ["register", "grid.zarr", "--publish-chunks"],
            "error",
            "--publish-chunks",
            True,
        ),
        (
            "v3-grid-1e8-join-chunks",
            grid,
            [
                "join-profiles",
                "grid.zarr",
                "cells.csv",
                "--include-chunks",
                "--profile-dataset-id",
                "grid",
            ],
            "error",
            "grid.zarr",
            True,
        ),
    ):
        d = b.case(case_id, cls)
        b.copy(template, d / template.name)
        if "cells.csv" in argv:
            _csv(d / "cells.csv", pa.table({"image_id": ["grid"], "x": [1.0]}))
        b.add(
            case_id,
            cls,
            argv,
            expect,
            names,
            hazard=hazard,
            description=f"{template.name}: {' '.join(argv)}",
        )

    for fmt, meta in ((2, ".zarray"), (3, "zarr.json")):
        d = b.case(f"v{fmt}-shape-2pow70", cls)
        _zarr_array(d / "arr.zarr", fmt)
        _edit_json(d / "arr.zarr" / meta, lambda doc: doc.update(shape=[2**70, 8]))
        b.add(
            d.name,
            cls,
            ["scan", "arr.zarr"],
            "error",
            f"arr.zarr/{meta}",
            hazard=fmt == 2,
            description="shape [2**70, 8]: beyond int64",
        )
    d = b.case("v3-chunks-2pow70", cls)
    _zarr_array(d / "arr.zarr", 3)
    _edit_json(
        d / "arr.zarr" / "zarr.json",
        lambda doc: doc["chunk_grid"]["configuration"].update(chunk_shape=[2**70, 4]),
    )
    b.add(
        d.name,
        cls,
        ["export-cytomining", "arr.zarr", "--warehouse-root", "wh"],
        "error",
        "arr.zarr/zarr.json",
        description="chunk_shape [2**70, 4]: beyond int64",
    )

    d = b.case("v2-zattrs-deep-json", cls)
    store = b.copy(b.image(2), d / "img.ome.zarr")
    _deep_json(store / ".zattrs")
    b.add(
        d.name,
        cls,
        ["scan", "img.ome.zarr"],
        "error",
        "img.ome.zarr/.zattrs",
        hazard=True,
        description=".zattrs is 100,000 nested '['",
    )
    d = b.case("v3-zarr-json-deep-json", cls)
    store = b.copy(b.image(3), d / "img.ome.zarr")
    _deep_json(store / "s0" / "zarr.json")
    b.add(
        d.name,
        cls,
        ["scan", "img.ome.zarr"],
        "error",
        "img.ome.zarr/s0/zarr.json",
        hazard=True,
        description="s0/zarr.json is 100,000 nested '['",
    )
    d = b.case("v2-zattrs-100mb", cls)
    store = b.copy(b.image(2), d / "img.ome.zarr")
    _sparse_json(store / ".zattrs", 100 * 2**20)
    b.add(
        d.name,
        cls,
        ["scan", "img.ome.zarr"],
        "error",
        "img.ome.zarr/.zattrs",
        hazard=True,
        description=".zattrs is 100 MiB (sparse), over the 64 MiB default limit",
    )

    for case_id, env, names, expect in (
        (
            "env-max-metadata-bytes",
            {"ICEBERG_BIOIMAGE_MAX_METADATA_BYTES": "200"},
            "ICEBERG_BIOIMAGE_MAX_METADATA_BYTES",
            "error",
        ),
        (
            "env-max-metadata-bytes-invalid",
            {"ICEBERG_BIOIMAGE_MAX_METADATA_BYTES": "lots"},
            "ICEBERG_BIOIMAGE_MAX_METADATA_BYTES",
            "error",
        ),
        (
            "env-max-json-depth",
            {"ICEBERG_BIOIMAGE_MAX_JSON_DEPTH": "2"},
            "ICEBERG_BIOIMAGE_MAX_JSON_DEPTH",
            "error",
        ),
    ):
        d = b.case(case_id, cls)
        b.copy(b.image(2), d / "img.ome.zarr")
        b.add(case_id, cls, ["scan", "img.ome.zarr"], expect, names, env=env, description=f"{env}")
    d = b.case("env-max-chunk-rows", cls)
    b.copy(b.image(3), d / "img.ome.zarr")
    b.add(
        d.name,
        cls,
        ["export-cytomining", "img.ome.zarr", "--warehouse-root", "wh"],
        "error",
        "--no-chunks",
        env={"ICEBERG_BIOIMAGE_MAX_CHUNK_ROWS": "3"},
        description="ICEBERG_BIOIMAGE_MAX_CHUNK_ROWS=3 and a 5-chunk image",
    )


def _profiles_cases(b: _Builder) -> None:
    cls = "profiles"
    pid = ["--profile-dataset-id", "plate"]

    def setup(case_id: str) -> Path:
        d = b.case(case_id, cls)
        b.copy(b.plate(2), d / "plate.ome.zarr")
        return d

    latin1 = "Metadata_Plate,Metadata_Well,Metadata_Site,Cells_Label\nplate,A01,0,Zellkörper\n"
    for case_id, argv in (
        ("profiles-csv-latin1", ["validate-contract", "cells.csv", *pid]),
        ("profiles-csv-latin1-join", ["join-profiles", "plate.ome.zarr", "cells.csv"]),
    ):
        d = setup(case_id)
        (d / "cells.csv").write_bytes(latin1.encode("latin-1"))
        b.add(case_id, cls, argv, "error", "cells.csv", description="latin-1 bytes in a CSV")
    d = setup("profiles-csv-latin1-header")
    (d / "cells.csv").write_bytes(latin1.replace("Cells_Label", "Zellk\xf6rper").encode("latin-1"))
    b.add(
        d.name,
        cls,
        ["validate-contract", "cells.csv", *pid],
        "error",
        "cells.csv",
        description="latin-1 bytes in the header row (a column name)",
    )
    for case_id, argv in (
        ("profiles-csv-empty", ["validate-contract", "cells.csv", *pid]),
        (
            "profiles-csv-empty-export",
            [
                "export-cytomining",
                "plate.ome.zarr",
                "--warehouse-root",
                "wh",
                "--profiles",
                "cells.csv",
            ],
        ),
    ):
        d = setup(case_id)
        (d / "cells.csv").write_bytes(b"")
        b.add(case_id, cls, argv, "error", "cells.csv", description="a zero-byte CSV")
    for case_id, argv in (
        ("profiles-wells-mismatch-join", ["join-profiles", "plate.ome.zarr", "cells.csv"]),
        (
            "profiles-wells-mismatch-export",
            [
                "export-cytomining",
                "plate.ome.zarr",
                "--warehouse-root",
                "wh",
                "--profiles",
                "cells.csv",
            ],
        ),
    ):
        d = setup(case_id)
        _csv(d / "cells.csv", _profiles_table(wells=("H12",)))
        b.add(
            case_id,
            cls,
            argv,
            "warning",
            "",
            description="Metadata_Well values (H12) match no well of the plate",
        )
    for case_id, argv in (
        ("profiles-parquet-truncated", ["validate-contract", "cells.parquet", *pid]),
        ("profiles-parquet-truncated-join", ["join-profiles", "plate.ome.zarr", "cells.parquet"]),
        (
            "profiles-parquet-truncated-export",
            [
                "export-cytomining-profiles",
                "cells.parquet",
                "--warehouse-root",
                "wh",
                "--table-name",
                "pycytominer_profiles",
                "--profile-dataset-id",
                "plate",
            ],
        ),
    ):
        d = setup(case_id)
        _truncate(_parquet(d / "cells.parquet", _profiles_table()))
        b.add(case_id, cls, argv, "error", "cells.parquet", description="a truncated Parquet")
    d = setup("profiles-csv-gz-truncated")
    data = gzip.compress(pacsv_bytes(_profiles_table()))
    (d / "cells.csv.gz").write_bytes(data[: len(data) // 2])
    b.add(
        d.name,
        cls,
        ["validate-contract", "cells.csv.gz", *pid],
        "error",
        "cells.csv.gz",
        description="a truncated .csv.gz",
    )
    d = setup("profiles-csv-binary")
    (d / "cells.csv").write_bytes(bytes(range(256)) * 8)
    b.add(
        d.name,
        cls,
        ["validate-contract", "cells.csv", *pid],
        "error",
        "cells.csv",
        description="binary garbage named .csv",
    )
    d = setup("profiles-two-well-columns")
    table = _profiles_table()
    _csv(d / "cells.csv", table.append_column("Metadata_well_id", table["Metadata_Well"]))
    b.add(
        d.name,
        cls,
        ["join-profiles", "plate.ome.zarr", "cells.csv"],
        "error",
        "cells.csv",
        description="Metadata_Well and Metadata_well_id: two columns for one key",
    )
    d = setup("profiles-missing-file")
    b.add(
        d.name,
        cls,
        ["join-profiles", "plate.ome.zarr", "nope.csv"],
        "error",
        "nope.csv",
        description="the profile file does not exist",
    )
    d = setup("profiles-fifo")
    _fifo(d / "cells.csv")
    b.add(
        d.name,
        cls,
        ["validate-contract", "cells.csv", *pid],
        "error",
        "cells.csv",
        hazard=True,
        description="the profile CSV is a FIFO",
    )
    d = setup("aliases-toml-invalid")
    _csv(d / "cells.csv", _profiles_table())
    (d / "aliases.toml").write_text("[microscopy.aliases\nwell = ")
    b.add(
        d.name,
        cls,
        ["validate-contract", "cells.csv", "--aliases", "aliases.toml", *pid],
        "error",
        "aliases.toml",
        description="an invalid aliases TOML",
    )
    d = setup("join-output-missing-folder")
    _csv(d / "cells.csv", _profiles_table())
    b.add(
        d.name,
        cls,
        ["join-profiles", "plate.ome.zarr", "cells.csv", "--output", "missing-dir/joined.parquet"],
        "error",
        "missing-dir",
        description="--output into a folder that does not exist",
    )
    for case_id, argv in (
        ("profiles-multiplying-join", ["join-profiles", "plate.ome.zarr", "cells.csv"]),
        (
            "profiles-multiplying-export",
            [
                "export-cytomining",
                "plate.ome.zarr",
                "--warehouse-root",
                "wh",
                "--profiles",
                "cells.csv",
            ],
        ),
    ):
        d = b.case(case_id, cls)
        _ngff_plate(d / "plate.ome.zarr", 2, columns=("1", "01"))
        _csv(d / "cells.csv", _profiles_table())
        b.add(
            case_id,
            cls,
            argv,
            "error",
            "cells.csv",
            description="wells A/1 and A/01 both normalise to A01: each profile row "
            "would match two images",
        )


def pacsv_bytes(table: pa.Table) -> bytes:
    """A table as CSV bytes (pyarrow's writer)."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


def _tiff_cases(b: _Builder) -> None:
    cls = "tiff"
    tiff = b.template("stack.ome.tiff", _tiff)
    two = b.template("two.ome.tiff", lambda p: _tiff(p, series=2))
    big = b.template("bigtiff.ome.tiff", lambda p: _tiff(p, bigtiff=True))

    d = b.case("tiff-truncated-header-only", cls)
    _truncate(b.copy(tiff, d / "stack.ome.tiff"), 16)
    b.add(
        d.name,
        cls,
        ["scan", "stack.ome.tiff"],
        "error",
        "stack.ome.tiff",
        description="an OME-TIFF cut after 16 bytes",
    )
    d = b.case("tiff-truncated-second-series", cls)
    path = b.copy(two, d / "stack.ome.tiff")
    _truncate(path, path.stat().st_size - 1000)
    b.add(
        d.name,
        cls,
        ["scan", "stack.ome.tiff"],
        "warning",
        "stack.ome.tiff",
        description="a 2-series OME-TIFF cut inside the last plane: series 0 intact",
    )
    d = b.case("tiff-truncated-half-export", cls)
    path = b.copy(two, d / "stack.ome.tiff")
    _truncate(path, path.stat().st_size - 1000)
    b.add(
        d.name,
        cls,
        ["export-cytomining", "stack.ome.tiff", "--warehouse-root", "wh"],
        "warning",
        "stack.ome.tiff",
        description="export of a truncated 2-series OME-TIFF",
    )
    d = b.case("tiff-garbage-after-header", cls)
    header = tiff.read_bytes()[:8]
    rng = np.random.default_rng(7)
    (d / "stack.ome.tiff").write_bytes(header + rng.bytes(4096))
    b.add(
        d.name,
        cls,
        ["scan", "stack.ome.tiff"],
        "error",
        "stack.ome.tiff",
        description="a valid TIFF header followed by random bytes",
    )
    d = b.case("tiff-ifd-offset-past-end", cls)
    path = b.copy(tiff, d / "stack.ome.tiff")
    data = bytearray(path.read_bytes())
    data[4:8] = (len(data) + 10**6).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    b.add(
        d.name,
        cls,
        ["scan", "stack.ome.tiff"],
        "error",
        "stack.ome.tiff",
        description="the first IFD offset points past the end of the file",
    )
    d = b.case("bigtiff-ifd-offset-past-end", cls)
    path = b.copy(big, d / "stack.ome.tiff")
    data = bytearray(path.read_bytes())
    data[8:16] = (2**62).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    b.add(
        d.name,
        cls,
        ["scan", "stack.ome.tiff"],
        "error",
        "stack.ome.tiff",
        description="BigTIFF whose first IFD offset is 2**62",
    )
    d = b.case("tiff-zero-bytes", cls)
    (d / "stack.ome.tiff").write_bytes(b"")
    b.add(
        d.name,
        cls,
        ["scan", "stack.ome.tiff"],
        "error",
        "stack.ome.tiff",
        description="a zero-byte .ome.tiff",
    )
    d = b.case("tif-zero-bytes-export", cls)
    (d / "plain.tif").write_bytes(b"")
    b.add(
        d.name,
        cls,
        ["export-cytomining", "plain.tif", "--warehouse-root", "wh"],
        "error",
        "plain.tif",
        description="export of a zero-byte .tif",
    )

    # hostile OME-XML in a valid TIFF: the pixels stay readable, the XML is ignored
    victim = (b.outside / "victim.txt").resolve().as_uri()
    hostile = {
        "tiff-ome-xml-billion-laughs": (
            '<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY l0 "lol">'
            + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
            + ']><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
            '<Image ID="Image:0" Name="&l9;"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" '
            'Type="uint16" SizeX="64" SizeY="64" SizeC="1" SizeZ="1" SizeT="1">'
            '<Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData/></Pixels></Image></OME>'
        ),
        "tiff-ome-xml-external-entity": (
            f'<?xml version="1.0"?><!DOCTYPE OME [<!ENTITY x SYSTEM "{victim}">]>'
            '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
            '<Image ID="Image:0" Name="leak"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" '
            'Type="uint16" SizeX="64" SizeY="64" SizeC="1" SizeZ="1" SizeT="1">'
            '<Channel ID="Channel:0:0" Name="&x;" SamplesPerPixel="1"/><TiffData/></Pixels>'
            "</Image></OME>"
        ),
    }
    for case_id, xml in hostile.items():
        d = b.case(case_id, cls)
        tifffile.imwrite(
            d / "stack.ome.tiff", _pixels((64, 64), "uint16"), description=xml, metadata=None
        )
        b.add(
            case_id,
            cls,
            ["scan", "--json", "stack.ome.tiff"],
            "warning",
            "stack.ome.tiff",
            description="valid pixels, hostile OME-XML (ignored with a warning)",
        )


def _zarr_cases(b: _Builder) -> None:
    cls = "zarr"
    for fmt, meta in ((2, ".zarray"), (3, "zarr.json")):
        edits: dict[str, Callable[[Path], None]] = {
            "truncated": lambda p: _truncate(p),
            "json-list": lambda p: p.write_text(json.dumps([_load(p)])),
            "wrong-zarr-format": lambda p, fmt=fmt: _edit_json(
                p, lambda doc: doc.update(zarr_format=5 - fmt)
            ),
            "negative-shape": lambda p: _edit_json(p, lambda doc: doc.update(shape=[-8, 8])),
            "shape-not-ints": lambda p: _edit_json(p, lambda doc: doc.update(shape="8x8")),
            "ndim-mismatch": lambda p, fmt=fmt: _edit_json(
                p,
                (lambda doc: doc.update(chunks=[4]))
                if fmt == 2
                else (lambda doc: doc["chunk_grid"]["configuration"].update(chunk_shape=[4])),
            ),
            "chunk-zero": lambda p, fmt=fmt: _edit_json(
                p,
                (lambda doc: doc.update(chunks=[0, 4]))
                if fmt == 2
                else (lambda doc: doc["chunk_grid"]["configuration"].update(chunk_shape=[0, 4])),
            ),
        }
        for label, edit in edits.items():
            d = b.case(f"v{fmt}-{label}", cls)
            _zarr_array(d / "arr.zarr", fmt)
            edit(d / "arr.zarr" / meta)
            argv = (
                ["scan", "arr.zarr"]
                if label != "chunk-zero"
                else ["export-cytomining", "arr.zarr", "--warehouse-root", "wh"]
            )
            b.add(
                d.name,
                cls,
                argv,
                "error",
                f"arr.zarr/{meta}",
                description=f"Zarr v{fmt} array {meta}: {label}",
            )

    # damaged nested array metadata inside an NGFF image
    for fmt, meta in ((2, ".zarray"), (3, "zarr.json")):
        d = b.case(f"ngff0{2 + fmt}-level-meta-truncated", cls)
        store = b.copy(b.image(fmt), d / "img.ome.zarr")
        _truncate(store / "s1" / meta)
        b.add(
            d.name,
            cls,
            ["scan", "img.ome.zarr"],
            "error",
            f"img.ome.zarr/s1/{meta}",
            description=f"level s1 {meta} truncated",
        )
    d = b.case("v2-zgroup-truncated", cls)
    store = b.copy(b.image(2), d / "img.ome.zarr")
    _truncate(store / ".zgroup")
    b.add(
        d.name,
        cls,
        ["scan", "img.ome.zarr"],
        "error",
        "img.ome.zarr/.zgroup",
        description="root .zgroup truncated",
    )
    d = b.case("ngff04-multiscales-not-a-list", cls)
    store = b.copy(b.image(2), d / "img.ome.zarr")
    _edit_ngff(store, lambda a: a.update(multiscales={"datasets": "s0"}))
    b.add(
        d.name,
        cls,
        ["scan", "img.ome.zarr"],
        "error",
        "img.ome.zarr/.zattrs",
        description="multiscales is an object, not a list",
    )

    # Zarr v3 extension points
    d = b.case("v3-unknown-chunk-grid", cls)
    _zarr_array(d / "arr.zarr", 3)
    _edit_json(
        d / "arr.zarr" / "zarr.json",
        lambda doc: doc.update(
            chunk_grid={"name": "rectilinear", "configuration": {"chunk_shapes": [[4, 4], [4, 4]]}}
        ),
    )
    b.add(
        d.name,
        cls,
        ["scan", "arr.zarr"],
        "error",
        "arr.zarr/zarr.json",
        description="chunk_grid 'rectilinear' (unknown)",
    )
    d = b.case("v3-sharding-unknown-index-codec", cls)
    _zarr_array(d / "arr.zarr", 3, (8, 8), (2, 2), shards=(4, 4))

    def index_codec(doc: dict[str, Any]) -> None:
        sharding = next(c for c in doc["codecs"] if c["name"] == "sharding_indexed")
        sharding["configuration"]["index_codecs"] = [{"name": "evil-codec"}]

    _edit_json(d / "arr.zarr" / "zarr.json", index_codec)
    b.add(
        d.name,
        cls,
        ["scan", "--read-shard-index", "arr.zarr"],
        "warning",
        "arr.zarr",
        description="sharding index_codecs [evil-codec] (unknown): the metadata scan stands, "
        "inner byte ranges cannot be read (a partial result with a warning)",
    )
    d = b.case("v3-sharding-inner-chunk-zero", cls)
    _zarr_array(d / "arr.zarr", 3, (8, 8), (2, 2), shards=(4, 4))

    def inner_zero(doc: dict[str, Any]) -> None:
        sharding = next(c for c in doc["codecs"] if c["name"] == "sharding_indexed")
        sharding["configuration"]["chunk_shape"] = [0, 2]

    _edit_json(d / "arr.zarr" / "zarr.json", inner_zero)
    b.add(
        d.name,
        cls,
        ["export-cytomining", "arr.zarr", "--warehouse-root", "wh"],
        "error",
        "arr.zarr/zarr.json",
        description="sharding inner chunk_shape [0, 2]",
    )


_BUILDERS: tuple[tuple[str, Callable[[_Builder], None]], ...] = (
    ("escape", _escape_cases),
    ("special", _special_cases),
    ("manifest", _manifest_cases),
    ("names", _names_cases),
    ("resource", _resource_cases),
    ("profiles", _profiles_cases),
    ("tiff", _tiff_cases),
    ("zarr", _zarr_cases),
)


def _door_builders() -> list[tuple[str, Callable[[_Builder], None]]]:
    """The classes of :mod:`bad_input_doors`, one module each, in module-name order."""
    import importlib
    import pkgutil

    import bad_input_doors

    found = []
    for module in sorted(pkgutil.iter_modules(bad_input_doors.__path__), key=lambda m: m.name):
        loaded = importlib.import_module(f"bad_input_doors.{module.name}")
        found.append((loaded.CLASS, loaded.build))
    return found


def build_cases(outdir: str | os.PathLike[str], *, marker: str | None = None) -> list[Case]:
    """Write every case below ``outdir`` (which must be empty or absent); return them.

    ``outdir/outside/`` receives the outside sentinels, each holding ``marker``
    (default ``OUTSIDE-MARKER-<uuid4>``; see :func:`read_marker`).
    """
    root = Path(outdir)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: not empty; bad inputs are written to a fresh folder")
    root.mkdir(parents=True, exist_ok=True)
    marker = marker or f"OUTSIDE-MARKER-{uuid.uuid4()}"
    with tempfile.TemporaryDirectory(prefix="bad-inputs-templates-") as templates:
        builder = _Builder(root, marker, Path(templates))
        builder.write_outside()
        for _name, build in (*_BUILDERS, *_door_builders()):
            build(builder)
    (root / "MARKER").write_text(marker + "\n")
    return builder.cases


def read_marker(outdir: str | os.PathLike[str]) -> str:
    """The marker string written into the outside sentinels of ``outdir``."""
    return (Path(outdir) / "MARKER").read_text().strip()


def iter_outside(outdir: str | os.PathLike[str]) -> Iterator[Path]:
    """Every file and folder of ``outdir/outside`` (the folder itself first)."""
    base = Path(outdir) / OUTSIDE
    yield base
    for folder, dirs, files in os.walk(base):
        for name in sorted(dirs) + sorted(files):
            yield Path(folder, name)


def main(argv: list[str] | None = None) -> int:
    """``python tests/bad_inputs.py [OUTDIR]``: write the cases and list them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="?", default=str(Path(__file__).parent / "data" / "bad"))
    args = parser.parse_args(argv)
    cases = build_cases(args.outdir)
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.cls] = counts.get(case.cls, 0) + 1
        extra = " ".join(f"{k}={v}" for k, v in case.env.items())
        print(f"{case.case_id:45} {case.expect:8} {extra} iceberg-bioimage {' '.join(case.argv)}")
    print(
        f"{len(cases)} cases in {args.outdir}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
