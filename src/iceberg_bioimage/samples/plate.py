"""Write a small synthetic dataset for first runs, demos and tests.

:func:`write_sample_data` backs the ``iceberg-bioimage sample-data DIR`` command.
It writes one example of every input the package understands, each small enough
to write in well under a second:

``plate.ome.zarr``
    OME-NGFF 0.4 HCS plate (Zarr v2, ``/`` chunk keys): rows A-B, columns 1-3,
    two fields per well, two resolution levels of ``(c, z, y, x)`` uint16.
``image.ome.zarr``
    OME-NGFF 0.5 single image (Zarr v3): three levels of ``(c, y, x)`` uint16;
    level 0 is sharded.
``stack.ome.tiff``
    Pyramidal OME-TIFF: one ``(c, y, x)`` series with two SubIFD levels.
``phenix/Images/``
    A plate as a PerkinElmer/Revvity Phenix writes it: one zlib-compressed
    single-plane TIFF per (well, site, channel), named
    ``r01c01f01p01-ch1sk1fk1fl1.tiff``; wells A01, A02, B01, B02 × two fields ×
    three channels of 32×32 uint16.
``load_data.csv``
    The CellProfiler LoadData CSV of that plate (``FileName_<Ch>`` /
    ``PathName_<Ch>`` relative to the CSV, ``Metadata_Plate/Well/Site``).
``cells.parquet``
    CellProfiler-style per-cell profiles for every field of the plate, keyed by
    ``Metadata_Plate`` / ``Metadata_Well`` / ``Metadata_Site``, with a few
    outlier cells for quality-control tools to flag, and nuclei centres and
    bounding boxes (``Nuclei_Location_Center_X/Y``,
    ``Nuclei_AreaShape_BoundingBoxMinimum/Maximum_X/Y``) for single-cell crops.
``cellprofiler.sqlite``, ``analysis/``, ``platemap/``
    CellProfiler outputs for the Phenix plate: a cytominer-database SQLite, per-site
    ExportToSpreadsheet folders, and its JUMP-style platemap
    (:mod:`iceberg_bioimage.samples.cellprofiler`).

Pixels show gaussian "nuclei" (DNA) inside broader "cells" (Mito); every value
comes from a fixed seed, so repeated runs write identical data.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tifffile
import zarr

from iceberg_bioimage.exceptions import MissingDependencyError
from iceberg_bioimage.samples.cellprofiler import (
    write_cellprofiler_folders,
    write_cellprofiler_sqlite,
    write_platemap,
)

__all__ = ["SampleData", "write_sample_data"]

PLATE_NAME = "plate"
ROWS = ("A", "B")
COLUMNS = ("1", "2", "3")
FIELDS = ("0", "1")
CHANNELS = ("DNA", "Mito")
PIXEL_SIZE_UM = 0.5
SEED = 20240601
#: The Phenix-style TIFF plate: (row, column) numbers, fields and LoadData channel names.
PHENIX_WELLS = ((1, 1), (1, 2), (2, 1), (2, 2))
PHENIX_FIELDS = (1, 2)
PHENIX_CHANNELS = ("DNA", "ER", "Mito")
PHENIX_SIZE = 32

_COLORS = {"DNA": "0000FF", "Mito": "FF00FF"}
_WINDOWS = {"DNA": (100, 3000), "Mito": (100, 1200)}
_V2_SLASH_KEYS = {"name": "v2", "separator": "/"}

# (well, site, ObjectNumber) of cells given an implausible shape in cells.parquet.
_OUTLIERS = (("A02", 1, 5), ("B03", 0, 12))


@dataclass(frozen=True, kw_only=True)
class SampleData:
    """Paths of the files written by :func:`write_sample_data`."""

    directory: Path
    plate: Path
    image: Path
    ome_tiff: Path
    profiles: Path
    phenix: Path
    load_data: Path
    cellprofiler_sqlite: Path
    cellprofiler_folders: Path
    platemap: Path

    def to_dict(self) -> dict[str, str]:
        """Return every path as a string, keyed by field name (JSON-safe)."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}


def write_sample_data(directory: str | os.PathLike[str], *, overwrite: bool = False) -> SampleData:
    """Write the sample plate, image, OME-TIFF, profiles and TIFF plate into ``directory``.

    ``directory`` is created if needed and may already hold other files. Each
    target is written to a hidden temporary sibling and then renamed into place,
    so an interrupted run never leaves a half-written store under a target name.

    Args:
        directory: Folder to write into.
        overwrite: Replace targets that already exist instead of refusing.

    Returns:
        The paths that were written.

    Raises:
        FileExistsError: A target already exists and ``overwrite`` is false.
            Nothing is written in that case.
        MissingDependencyError: the installed zarr is older than 3 (needed to
            write the OME-NGFF 0.5 / Zarr v3 sample; scanning works with zarr 2).
    """
    if int(zarr.__version__.split(".", 1)[0]) < 3:
        raise MissingDependencyError(
            f"sample-data (zarr {zarr.__version__} installed)", requirement="zarr>=3"
        )
    root = Path(directory)
    sample = SampleData(
        directory=root,
        plate=root / "plate.ome.zarr",
        image=root / "image.ome.zarr",
        ome_tiff=root / "stack.ome.tiff",
        profiles=root / "cells.parquet",
        phenix=root / "phenix",
        load_data=root / "load_data.csv",
        cellprofiler_sqlite=root / "cellprofiler.sqlite",
        cellprofiler_folders=root / "analysis",
        platemap=root / "platemap",
    )
    writers: dict[Path, Callable[[Path], None]] = {
        sample.plate: _write_plate,
        sample.image: _write_image,
        sample.ome_tiff: _write_ome_tiff,
        sample.profiles: _write_profiles,
        sample.phenix: _write_phenix,
        sample.load_data: _write_load_data,
        sample.cellprofiler_sqlite: write_cellprofiler_sqlite,
        sample.cellprofiler_folders: write_cellprofiler_folders,
        sample.platemap: write_platemap,
    }
    if not overwrite:
        for target in writers:
            if os.path.lexists(target):
                raise FileExistsError(
                    f"{target}: already exists; pass overwrite=True to replace it"
                )
    root.mkdir(parents=True, exist_ok=True)
    for target, write in writers.items():
        _install(target, write)
    return sample


def _install(target: Path, write: Callable[[Path], None]) -> None:
    """Write ``target`` through a temporary sibling, then swap it into place."""
    token = secrets.token_hex(4)
    staging = target.with_name(f".{target.name}.{token}.partial")
    retired = target.with_name(f".{target.name}.{token}.old")
    try:
        write(staging)
        if os.path.lexists(target):
            os.replace(target, retired)
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(retired, target)
                raise
        else:
            os.replace(staging, target)
    finally:
        _remove(staging)
        _remove(retired)


def _remove(path: Path) -> None:
    """Delete a file or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


# -- pixels ---------------------------------------------------------------------


def _render(rng: np.random.Generator, size: int, n_cells: int) -> np.ndarray:
    """Render a ``(2, size, size)`` uint16 DNA/Mito image of ``n_cells`` cells."""
    centers = rng.uniform(4, size - 4, (2, n_cells))
    sigma = rng.uniform(2.5, 4.0, n_cells)
    grid = np.arange(size, dtype=np.float64)
    channels = []
    for spread, amplitude in ((1.0, (1500, 2800)), (2.5, (300, 700))):
        width = 2 * (spread * sigma[:, None]) ** 2
        gy = np.exp(-((grid - centers[0][:, None]) ** 2) / width)
        gx = np.exp(-((grid - centers[1][:, None]) ** 2) / width)
        weights = rng.uniform(*amplitude, n_cells)[:, None]
        channels.append((weights * gy).T @ gx)
    signal = np.stack(channels) + 100 + rng.normal(0, 12, (2, size, size))
    return np.clip(np.rint(signal), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def _downsample(image: np.ndarray) -> np.ndarray:
    """Halve the last two axes by 2x2 block means."""
    *lead, height, width = image.shape
    blocks = image.reshape(*lead, height // 2, 2, width // 2, 2)
    return np.rint(blocks.mean(axis=(-3, -1))).astype(image.dtype)


def _pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Return ``image`` followed by ``levels - 1`` successively halved copies."""
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(_downsample(pyramid[-1]))
    return pyramid


# -- NGFF metadata ----------------------------------------------------------------


def _axes(names: str) -> list[dict[str, str]]:
    """NGFF axes for the single-letter ``names`` (channel and micrometer space)."""
    return [
        {"name": n, "type": "channel"}
        if n == "c"
        else {"name": n, "type": "space", "unit": "micrometer"}
        for n in names
    ]


def _multiscale(name: str, axes: str, levels: int) -> dict[str, object]:
    """One NGFF multiscale entry; level ``i`` has pixel size ``0.5 * 2**i`` um."""
    datasets = []
    for level in range(levels):
        yx = PIXEL_SIZE_UM * 2**level
        scale = [1.0 if axis in "cz" else yx for axis in axes]
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [{"type": "scale", "scale": scale}],
            }
        )
    return {
        "name": name,
        "axes": _axes(axes),
        "datasets": datasets,
        "type": "local_mean",
        "metadata": {"description": "each level is the 2x2 block mean of the last"},
    }


def _omero(name: str) -> dict[str, object]:
    """OMERO rendering settings for the DNA and Mito channels."""
    return {
        "name": name,
        "channels": [
            {
                "label": label,
                "color": _COLORS[label],
                "window": {
                    "min": 0,
                    "max": 65535,
                    "start": _WINDOWS[label][0],
                    "end": _WINDOWS[label][1],
                },
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
            }
            for label in CHANNELS
        ],
        "rdefs": {"model": "color"},
    }


# -- writers --------------------------------------------------------------------


def _write_plate(path: Path) -> None:
    """Write the OME-NGFF 0.4 HCS plate (Zarr v2) to ``path``."""
    rng = np.random.default_rng(SEED)
    plate = zarr.open_group(path, mode="w", zarr_format=2)
    plate.attrs["plate"] = {
        "name": PLATE_NAME,
        "rows": [{"name": row} for row in ROWS],
        "columns": [{"name": column} for column in COLUMNS],
        "wells": [
            {"path": f"{row}/{column}", "rowIndex": r, "columnIndex": c}
            for r, row in enumerate(ROWS)
            for c, column in enumerate(COLUMNS)
        ],
        "field_count": len(FIELDS),
        "version": "0.4",
    }
    for row in ROWS:
        row_group = plate.create_group(row)
        for column in COLUMNS:
            well = row_group.create_group(column)
            well.attrs["well"] = {
                "images": [{"path": field} for field in FIELDS],
                "version": "0.4",
            }
            for field in FIELDS:
                image = well.create_group(field)
                multiscale = _multiscale(f"{row}/{column}/{field}", "czyx", 2)
                image.attrs.update(
                    {
                        "multiscales": [{"version": "0.4", **multiscale}],
                        "omero": {"version": "0.4", **_omero(f"{row}{column}")},
                    }
                )
                pixels = _render(rng, 64, 6)[:, np.newaxis]
                for level, data in enumerate(_pyramid(pixels, 2)):
                    image.create_array(
                        str(level),
                        data=data,
                        chunks=(1, 1, 32, 32),
                        chunk_key_encoding=_V2_SLASH_KEYS,
                    )


def _write_image(path: Path) -> None:
    """Write the OME-NGFF 0.5 single image (Zarr v3, sharded level 0) to ``path``."""
    rng = np.random.default_rng(SEED + 1)
    image = zarr.open_group(path, mode="w", zarr_format=3)
    image.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [_multiscale("image", "cyx", 3)],
        "omero": _omero("image"),
    }
    for level, data in enumerate(_pyramid(_render(rng, 128, 16), 3)):
        image.create_array(
            str(level),
            data=data,
            chunks=(1, 32, 32),
            shards=(1, 128, 128) if level == 0 else None,
            dimension_names=("c", "y", "x"),
        )


def _write_ome_tiff(path: Path) -> None:
    """Write the pyramidal OME-TIFF (one CYX series, two SubIFD levels) to ``path``."""
    rng = np.random.default_rng(SEED + 2)
    levels = _pyramid(_render(rng, 256, 40), 3)
    options = {
        "photometric": "minisblack",
        "tile": (64, 64),
        "compression": "zlib",
        "resolutionunit": "CENTIMETER",
    }
    pixels_per_cm = 1e4 / PIXEL_SIZE_UM
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(
            levels[0],
            subifds=len(levels) - 1,
            resolution=(pixels_per_cm, pixels_per_cm),
            metadata={
                "axes": "CYX",
                "Name": "stack",
                "Channel": {"Name": list(CHANNELS)},
                "PhysicalSizeX": PIXEL_SIZE_UM,
                "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": PIXEL_SIZE_UM,
                "PhysicalSizeYUnit": "µm",
            },
            **options,
        )
        for level, data in enumerate(levels[1:], start=1):
            per_cm = pixels_per_cm / 2**level
            tif.write(data, subfiletype=1, resolution=(per_cm, per_cm), **options)


def _write_profiles(path: Path) -> None:
    """Write the CellProfiler-style per-cell profile table to ``path``."""
    rng = np.random.default_rng(SEED + 3)
    columns: dict[str, list[np.ndarray]] = {}
    for row in ROWS:
        for column in COLUMNS:
            well = f"{row}{int(column):02d}"
            # Column 3 plays a "treated" well: brighter mitochondria.
            mito_shift = np.log(1.5) if column == "3" else 0.0
            for site in range(len(FIELDS)):
                n = int(rng.integers(18, 23))
                nuclei_area = np.rint(rng.normal(450, 70, n).clip(200))
                cells_area = np.rint(nuclei_area * rng.uniform(2.5, 4.5, n))
                form_factor = rng.beta(20, 3, n)
                objects = np.arange(1, n + 1, dtype=np.int64)
                for outlier_well, outlier_site, number in _OUTLIERS:
                    if (well, site) == (outlier_well, outlier_site):
                        cells_area[number - 1] *= 8
                        nuclei_area[number - 1] *= 6
                        form_factor[number - 1] = 0.22
                values = {
                    "Metadata_Plate": np.full(n, PLATE_NAME, dtype=object),
                    "Metadata_Well": np.full(n, well, dtype=object),
                    "Metadata_Site": np.full(n, site, dtype=np.int64),
                    "ObjectNumber": objects,
                    "Cells_AreaShape_Area": cells_area,
                    "Nuclei_AreaShape_Area": nuclei_area,
                    "Nuclei_AreaShape_FormFactor": form_factor,
                    "Nuclei_AreaShape_Eccentricity": rng.beta(4, 5, n),
                    "Cytoplasm_Intensity_MeanIntensity_DNA": rng.lognormal(np.log(0.015), 0.2, n),
                    "Cells_Intensity_MeanIntensity_Mito": rng.lognormal(
                        np.log(0.06) + mito_shift, 0.25, n
                    ),
                }
                for name, value in values.items():
                    columns.setdefault(name, []).append(value)
    table = pa.table({name: np.concatenate(parts) for name, parts in columns.items()})
    pq.write_table(_with_locations(table), path)


def _with_locations(table: pa.Table) -> pa.Table:
    """Add nuclei centres and bounding boxes in the 64×64 plate fields (for crops).

    Boxes are CellProfiler's: ``BoundingBoxMaximum_X/Y`` exclusive, a disc of the
    nucleus' area around its centre, clipped to the field.
    """
    rng = np.random.default_rng(SEED + 4)
    size = 64
    n = table.num_rows
    center = rng.uniform(6, size - 6, (2, n))
    radius = np.sqrt(table["Nuclei_AreaShape_Area"].to_numpy() / np.pi) / 2
    low = np.clip(np.floor(center - radius), 0, size).astype(np.int64)
    high = np.clip(np.ceil(center + radius), 0, size).astype(np.int64)
    columns = {
        "Nuclei_Location_Center_X": center[0],
        "Nuclei_Location_Center_Y": center[1],
        "Nuclei_AreaShape_BoundingBoxMinimum_X": low[0],
        "Nuclei_AreaShape_BoundingBoxMinimum_Y": low[1],
        "Nuclei_AreaShape_BoundingBoxMaximum_X": high[0],
        "Nuclei_AreaShape_BoundingBoxMaximum_Y": high[1],
    }
    for name, values in columns.items():
        table = table.append_column(name, pa.array(values))
    return table


def _phenix_name(row: int, column: int, field: int, channel: int) -> str:
    """A Phenix (Harmony export) file name: ``r01c02f01p01-ch3sk1fk1fl1.tiff``."""
    return f"r{row:02d}c{column:02d}f{field:02d}p01-ch{channel}sk1fk1fl1.tiff"


def _write_phenix(path: Path) -> None:
    """Write the Phenix-style folder of single-plane TIFFs to ``path``."""
    rng = np.random.default_rng(SEED + 4)
    images = path / "Images"
    images.mkdir(parents=True)
    pixels_per_cm = 1e4 / PIXEL_SIZE_UM
    for row, column in PHENIX_WELLS:
        for field in PHENIX_FIELDS:
            dna, mito = _render(rng, PHENIX_SIZE, 4)
            for channel, plane in enumerate((dna, (dna // 2 + mito // 2), mito), start=1):
                tifffile.imwrite(
                    images / _phenix_name(row, column, field, channel),
                    plane,
                    photometric="minisblack",
                    compression="zlib",
                    rowsperstrip=16,
                    resolution=(pixels_per_cm, pixels_per_cm),
                    resolutionunit="CENTIMETER",
                )


def _write_load_data(path: Path) -> None:
    """Write the LoadData CSV of the Phenix-style plate (paths relative to the CSV)."""
    header = [f"{kind}_{name}" for name in PHENIX_CHANNELS for kind in ("FileName", "PathName")]
    lines = [",".join([*header, "Metadata_Plate", "Metadata_Well", "Metadata_Site"])]
    for row, column in PHENIX_WELLS:
        for field in PHENIX_FIELDS:
            cells = [
                value
                for channel in range(1, len(PHENIX_CHANNELS) + 1)
                for value in (_phenix_name(row, column, field, channel), "phenix/Images")
            ]
            well = f"{chr(64 + row)}{column:02d}"
            lines.append(",".join([*cells, "phenix", well, str(field)]))
    path.write_text("\n".join(lines) + "\n")
