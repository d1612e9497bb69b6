"""Generate (once) the metadata-only OME-NGFF 0.4 HCS plate used by the benchmarks.

The plate mimics a 384-well acquisition: rows A-P, columns 1-24, 9 fields per
well and a 3-level multiscale pyramid per field with two channels.  The same
layout is also written as a 96-well (A-H × 1-12) or 1536-well plate (rows A-Z
then AA-AF, as a real 1536-well plate names them, × 1-48), and as a synthetic
6,144-well plate (rows A-Z, AA-AZ, BA-BL × 1-96: four 1536-well plates' worth) for
the scaling benchmark (``ensure_benchmark_plate(wells=...)``).  Only the
Zarr v2 metadata documents (``.zgroup``, ``.zattrs``, ``.zarray``) are
written; there are no chunk files, so the plate is small on disk while still
describing 10,368 arrays and 857,088 chunks.

The JSON is written directly with :func:`json.dump` for speed.  The result is
built in a temporary folder, checked with ``zarr``, renamed into place and only
then marked complete, so an interrupted run never leaves a plate that looks
finished.

Run ``python benchmarks/plate.py [--cache-dir DIR] [--force]`` to build it and
print its location, generation time and size on disk.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from iceberg_bioimage.models.keys import row_letters

PLATE_NAME = "bench_plate"
PLATE_DIRNAME = f"{PLATE_NAME}.ome.zarr"
#: Bump when the generated layout changes so stale caches get rebuilt.
GENERATOR_VERSION = 1
MARKER_NAME = f"{PLATE_DIRNAME}.complete"
LOCK_NAME = f"{PLATE_DIRNAME}.lock"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / ".cache"
T = TypeVar("T")

#: Plate formats: wells -> (rows, columns).
PLATE_FORMATS: dict[int, tuple[int, int]] = {
    96: (8, 12),
    384: (16, 24),
    1536: (32, 48),
    6144: (64, 96),
}
DEFAULT_WELLS = 384


def plate_rows(wells: int) -> tuple[str, ...]:
    """Row names of a plate format: A..P for 384 wells, A..Z then AA..AF for 1536."""
    return tuple(row_letters(i) for i in range(PLATE_FORMATS[wells][0]))


def plate_columns(wells: int) -> tuple[str, ...]:
    """Column names of a plate format: 1..24 for 384 wells."""
    return tuple(str(i) for i in range(1, PLATE_FORMATS[wells][1] + 1))


ROWS: tuple[str, ...] = plate_rows(DEFAULT_WELLS)  # A..P
COLUMNS: tuple[str, ...] = plate_columns(DEFAULT_WELLS)  # 1..24
FIELD_COUNT = 9
CHANNEL_LABELS: tuple[str, ...] = ("DNA", "RNA")
CHANNEL_COLORS: tuple[str, ...] = ("0000FF", "00FF00")
LEVEL_SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (2, 1, 2160, 2560),
    (2, 1, 1080, 1280),
    (2, 1, 540, 640),
)
CHUNKS: tuple[int, int, int, int] = (1, 1, 256, 256)
DTYPE = "<u2"
PIXEL_SIZE_UM = 0.65
Z_SPACING_UM = 1.0

NGFF_VERSION = "0.4"
COMPRESSOR: dict[str, Any] = {
    "id": "blosc",
    "cname": "zstd",
    "clevel": 5,
    "shuffle": 1,
    "blocksize": 0,
}
AXES: list[dict[str, str]] = [
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space", "unit": "micrometer"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]


def chunks_per_array(shape: tuple[int, ...], chunks: tuple[int, ...]) -> int:
    """Return the number of chunks in the regular grid of ``shape``/``chunks``."""
    return math.prod(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))


def plate_totals(wells: int) -> dict[str, int]:
    """Expected ``wells``, ``images``, ``arrays`` and ``chunks`` of a plate format."""
    images = wells * FIELD_COUNT
    return {
        "wells": wells,
        "images": images,
        "arrays": images * len(LEVEL_SHAPES),
        "chunks": images * sum(chunks_per_array(s, CHUNKS) for s in LEVEL_SHAPES),
    }


#: Expected totals of the default (384-well) plate, derived from the layout constants above.
N_WELLS = len(ROWS) * len(COLUMNS)
N_IMAGES = plate_totals(N_WELLS)["images"]
N_ARRAYS = plate_totals(N_WELLS)["arrays"]
N_CHUNKS = plate_totals(N_WELLS)["chunks"]


def plate_dirname(wells: int = DEFAULT_WELLS) -> str:
    """Folder name of the cached plate (the 384-well plate keeps its historic name)."""
    return PLATE_DIRNAME if wells == DEFAULT_WELLS else f"{PLATE_NAME}_{wells}.ome.zarr"


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as pretty-printed JSON (the style zarr itself uses)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=4, sort_keys=True)


def _write_group(path: Path, attrs: dict[str, Any] | None) -> None:
    """Create a Zarr v2 group at ``path`` with optional ``.zattrs``."""
    path.mkdir(parents=True, exist_ok=True)
    _write_json(path / ".zgroup", {"zarr_format": 2})
    if attrs is not None:
        _write_json(path / ".zattrs", attrs)


def _zarray(shape: tuple[int, ...]) -> dict[str, Any]:
    """Return the Zarr v2 ``.zarray`` document for one pyramid level."""
    return {
        "zarr_format": 2,
        "shape": list(shape),
        "chunks": list(CHUNKS),
        "dtype": DTYPE,
        "compressor": COMPRESSOR,
        "fill_value": 0,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }


def _plate_grid(rows: tuple[str, ...], columns: tuple[str, ...]) -> dict[str, Any]:
    """The ``rows``, ``columns`` and ``wells`` of NGFF 0.4 ``plate`` attributes."""
    return {
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": [
            {"path": f"{r}/{c}", "rowIndex": ri, "columnIndex": ci}
            for ri, r in enumerate(rows)
            for ci, c in enumerate(columns)
        ],
    }


def _plate_attrs(rows: tuple[str, ...], columns: tuple[str, ...]) -> dict[str, Any]:
    """Return the NGFF 0.4 ``plate`` attributes of the plate root group."""
    return {
        "plate": {
            "name": PLATE_NAME,
            "version": NGFF_VERSION,
            "acquisitions": [{"id": 0, "name": "bench_acquisition"}],
            **_plate_grid(rows, columns),
            "field_count": FIELD_COUNT,
        }
    }


def _well_attrs() -> dict[str, Any]:
    """Return the NGFF 0.4 ``well`` attributes shared by every well group."""
    return {
        "well": {
            "images": [{"path": str(f)} for f in range(FIELD_COUNT)],
            "version": NGFF_VERSION,
        }
    }


def _image_attrs() -> dict[str, Any]:
    """Return the NGFF 0.4 ``multiscales`` + ``omero`` attributes of a field."""
    base_y = LEVEL_SHAPES[0][2]
    datasets = []
    for level, shape in enumerate(LEVEL_SHAPES):
        factor = base_y / shape[2]
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [
                    {
                        "type": "scale",
                        "scale": [
                            1.0,
                            Z_SPACING_UM,
                            PIXEL_SIZE_UM * factor,
                            PIXEL_SIZE_UM * factor,
                        ],
                    }
                ],
            }
        )
    return {
        "multiscales": [
            {
                "version": NGFF_VERSION,
                "name": "field",
                "axes": AXES,
                "datasets": datasets,
                "type": "mean",
            }
        ],
        "omero": {
            "version": NGFF_VERSION,
            "name": "field",
            "channels": [
                {
                    "label": label,
                    "color": color,
                    "active": True,
                    "coefficient": 1.0,
                    "family": "linear",
                    "inverted": False,
                    "window": {"min": 0, "max": 65535, "start": 0, "end": 4095},
                }
                for label, color in zip(CHANNEL_LABELS, CHANNEL_COLORS, strict=True)
            ],
            "rdefs": {"defaultT": 0, "defaultZ": 0, "model": "color"},
        },
    }


def write_plate(root: Path, wells: int = DEFAULT_WELLS) -> None:
    """Write the whole metadata-only plate hierarchy of ``wells`` wells under ``root``."""
    rows, columns = plate_rows(wells), plate_columns(wells)
    _write_group(root, _plate_attrs(rows, columns))
    well_attrs = _well_attrs()
    image_attrs = _image_attrs()
    zarrays = [_zarray(shape) for shape in LEVEL_SHAPES]
    for row in rows:
        row_path = root / row
        _write_group(row_path, None)
        for col in columns:
            well_path = row_path / col
            _write_group(well_path, well_attrs)
            for field in range(FIELD_COUNT):
                field_path = well_path / str(field)
                _write_group(field_path, image_attrs)
                for level, zarray in enumerate(zarrays):
                    level_path = field_path / str(level)
                    level_path.mkdir()
                    _write_json(level_path / ".zarray", zarray)


def verify_plate(root: Path, wells: int = DEFAULT_WELLS) -> None:
    """Sanity-check the plate with ``zarr``: one field group and one array.

    Raises ``AssertionError`` if zarr disagrees with the intended layout.
    """
    import zarr

    plate = zarr.open_group(str(root), mode="r")
    plate_meta = plate.attrs["plate"]
    assert plate_meta["name"] == PLATE_NAME, plate_meta["name"]
    assert len(plate_meta["wells"]) == wells
    assert plate_meta["field_count"] == FIELD_COUNT

    well_path = f"{plate_rows(wells)[-1]}/{plate_columns(wells)[-1]}"
    well = zarr.open_group(str(root / well_path), mode="r")
    assert len(well.attrs["well"]["images"]) == FIELD_COUNT

    field = zarr.open_group(str(root / well_path / str(FIELD_COUNT - 1)), mode="r")
    multiscales = field.attrs["multiscales"]
    assert [d["path"] for d in multiscales[0]["datasets"]] == ["0", "1", "2"]
    labels = [c["label"] for c in field.attrs["omero"]["channels"]]
    assert labels == list(CHANNEL_LABELS), labels

    for level, shape in enumerate(LEVEL_SHAPES):
        array = zarr.open_array(str(root / well_path / str(FIELD_COUNT - 1) / str(level)), mode="r")
        assert array.shape == shape, (array.shape, shape)
        assert array.chunks == CHUNKS, (array.chunks, CHUNKS)
        assert array.dtype.str == DTYPE, array.dtype
    # No chunk files were written, so reads return the fill value.
    assert int(field["2"][0, 0, 0, 0]) == 0


def _marker_payload(wells: int = DEFAULT_WELLS) -> dict[str, Any]:
    """Return the content of the completion marker (used to detect stale caches)."""
    totals = plate_totals(wells)
    return {
        "generator_version": GENERATOR_VERSION,
        "images": totals["images"],
        "arrays": totals["arrays"],
        "chunks": totals["chunks"],
    }


def cache_is_current(artefact: Path, marker: Path, payload: dict) -> bool:
    """Whether ``artefact`` exists and ``marker`` records exactly ``payload``."""
    if not marker.is_file() or not artefact.exists():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")) == payload
    except (OSError, ValueError):
        return False


@contextmanager
def cache_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (serialises concurrent cache builds)."""
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_benchmark_plate(
    cache_dir: Path | None = None, force: bool = False, wells: int = DEFAULT_WELLS
) -> Path:
    """Return the path of the benchmark plate, generating it on first use.

    Parameters
    ----------
    cache_dir:
        Folder holding the cached plate; defaults to ``benchmarks/.cache/``.
    force:
        Rebuild even if a complete plate is cached.
    wells:
        Plate format: 96, 384 (the default) or 1536 wells.
    """
    if wells not in PLATE_FORMATS:
        raise ValueError(f"wells must be one of {sorted(PLATE_FORMATS)}, got {wells}")
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    dirname = plate_dirname(wells)

    def build(tmp: Path) -> None:
        write_plate(tmp, wells)
        verify_plate(tmp, wells)

    return ensure_cached(
        cache_dir / dirname,
        marker=cache_dir / f"{dirname}.complete",
        lock=cache_dir / f"{dirname}.lock",
        payload=_marker_payload(wells),
        build=build,
        force=force,
    )


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


#: NGFF 0.4 axes of a ``(c, z, y, x)`` field image with pixels (``report.py``, ``crops.py``).
CZYX_AXES = [
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space", "unit": "micrometer"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]


def write_hcs_groups(
    root: Path,
    name: str,
    layout: tuple[tuple[str, ...], tuple[str, ...], int],
    image_attrs: dict[str, Any],
    arrays_of: Callable[[Any], T],
) -> list[T]:
    """Write an NGFF 0.4 plate's groups with zarr; return ``arrays_of(field group)`` per field.

    ``layout`` is ``(rows, columns, fields per well)``; every field group gets
    ``image_attrs``, and ``arrays_of`` creates its arrays. The pixel plates of
    ``report.py`` and ``crops.py`` differ only in their fields' arrays.
    """
    import zarr

    rows, columns, fields = layout
    plate = zarr.open_group(root, mode="w", zarr_format=2)
    plate.attrs["plate"] = {
        "version": NGFF_VERSION,
        "name": name,
        **_plate_grid(rows, columns),
        "field_count": fields,
    }
    made = []
    for row in rows:
        for column in columns:
            well = plate.require_group(f"{row}/{column}")
            well.attrs["well"] = {
                "version": NGFF_VERSION,
                "images": [{"path": str(f)} for f in range(fields)],
            }
            for field in range(fields):
                image = well.create_group(str(field))
                image.attrs.update(image_attrs)
                made.append(arrays_of(image))
    return made


def ensure_cached(
    target: Path,
    *,
    marker: Path,
    lock: Path,
    payload: dict,
    build: Callable[[Path], None],
    force: bool = False,
) -> Path:
    """Return ``target``, built once by ``build(tmp)`` and swapped in; marker written last.

    Concurrent callers serialise on ``lock``; a marker recording ``payload`` means
    the cached artefact is complete and current.
    """
    if not force and cache_is_current(target, marker, payload):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(lock):
        if not force and cache_is_current(target, marker, payload):  # built while we waited
            return target
        marker.unlink(missing_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        _remove(tmp)
        try:
            build(tmp)
            _remove(target)
            os.replace(tmp, target)
        except BaseException:
            _remove(tmp)
            raise
        marker_tmp = marker.with_name(f"{marker.name}.tmp-{os.getpid()}")
        marker_tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(marker_tmp, marker)
    return target


def disk_usage_bytes(path: Path) -> tuple[int, int]:
    """Return ``(allocated bytes on disk, file count)`` for the tree at ``path``."""
    total = 0
    files = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_blocks * 512
        files += len(filenames)
    total += os.lstat(path).st_blocks * 512
    return total, files


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the benchmark plate and print a short summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help="rebuild the plate")
    parser.add_argument("--wells", type=int, default=DEFAULT_WELLS, choices=sorted(PLATE_FORMATS))
    args = parser.parse_args(argv)

    start = time.perf_counter()
    path = ensure_benchmark_plate(args.cache_dir, force=args.force, wells=args.wells)
    elapsed = time.perf_counter() - start
    verify_plate(path, args.wells)
    size, files = disk_usage_bytes(path)
    totals = plate_totals(args.wells)
    print(f"plate:   {path}")
    print(f"ensure:  {elapsed:.2f} s")
    print(
        f"layout:  {totals['wells']:,} wells, {totals['images']:,} images, "
        f"{totals['arrays']:,} arrays, {totals['chunks']:,} chunks"
    )
    print(f"on disk: {size / 2**20:.1f} MiB in {files:,} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
