"""Single-cell crops through the chunk index, against reading each image whole.

Usage::

    uv run --all-groups python benchmarks/crops.py [--repeat 5] [--warmup 1] [--json] [--check]

The input (written once, cached under ``benchmarks/.cache/``) is an OME-NGFF 0.4 HCS
plate: 96 wells (A-H × 1-12) × 4 fields, each field 2 channels of 2160×2560 uint16 in
256×256 chunks, Blosc-zstd compressed (7.2 GiB of pixels). Pixels are a dim, slightly
noisy background with bright discs ("cells"): a few texture planes are drawn once
with numpy and each field is a rolled copy of one of them plus a per-field offset,
so the plate is written in minutes by a thread pool and compresses like real data.
Beside it, a profile table of 200,000 objects (``image_id``, ``ObjectNumber`` and
CellProfiler ``Nuclei_AreaShape_BoundingBoxMinimum/Maximum_X/Y``, boxes of 16-64
pixels anywhere in the field).

Cases, alternating A/B ``--repeat`` times after ``--warmup`` rounds, each run a
fresh process with imports excluded from the time:

* ``sparse``: 2,000 objects drawn from the 200,000 (fixed seed).
* ``dense``: every object of 8 fields.

For each, ``ours`` is ``read_image_crops(plate, objects)`` (scan of the plate's
metadata, read plan from the chunk index, only the intersecting chunks fetched and
decoded) and ``whole`` reads each needed field whole with zarr (``array[:]``) and
cuts every box from it. Both return numpy crops; ``ours`` is checked (untimed)
against ``whole`` on a sample of crops.

Bars: sparse ours ≥ 5× faster than whole; dense ours ≤ 1.1× whole; peak RSS ≤ 1 GiB.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from _measure import Measurement, run_once
from _report import parse_args, report, verdict
from plate import DEFAULT_CACHE_DIR, disk_usage_bytes, ensure_cached

#: Bump when the generated layout changes so stale caches get rebuilt.
LAYOUT_VERSION = 1
ROWS = tuple("ABCDEFGH")
COLUMNS = tuple(str(c) for c in range(1, 13))
FIELDS = 4
SHAPE = (2, 1, 2160, 2560)
CHUNKS = (1, 1, 256, 256)
N_IMAGES = len(ROWS) * len(COLUMNS) * FIELDS
N_CHUNKS = N_IMAGES * 2 * 9 * 10
N_OBJECTS = 200_000
SPARSE_OBJECTS = 2_000
DENSE_IMAGES = 8
TEXTURES = 6
WRITERS = 3
SEED = 20261130
PLATE_NAME = "crops_plate.ome.zarr"
PROFILES_NAME = "crops_objects.parquet"

SPARSE_MIN_SPEEDUP = 5.0
DENSE_MAX_RATIO = 1.1
TARGET_RSS_MIB = 1024.0


def _texture(rng: np.random.Generator) -> np.ndarray:
    """One channel plane: background 100 + noise 0..7, ~600 discs of 200..3000."""
    height, width = SHAPE[2:]
    plane = (100 + rng.integers(0, 8, (height, width), dtype=np.uint16)).astype(np.uint16)
    yy, xx = np.mgrid[-30:31, -30:31]
    for _ in range(600):
        radius = int(rng.integers(6, 30))
        cy, cx = int(rng.integers(31, height - 31)), int(rng.integers(31, width - 31))
        disc = (yy**2 + xx**2) <= radius**2
        patch = plane[cy - 30 : cy + 31, cx - 30 : cx + 31]
        patch[disc] = int(rng.integers(200, 3000))
    return plane


def _write_plate(root: Path) -> None:
    import numcodecs
    import zarr

    rng = np.random.default_rng(SEED)
    textures = [np.stack([_texture(rng), _texture(rng)])[:, None] for _ in range(TEXTURES)]
    plate = zarr.open_group(root, mode="w", zarr_format=2)
    plate.attrs["plate"] = {
        "version": "0.4",
        "name": "crops_plate",
        "rows": [{"name": r} for r in ROWS],
        "columns": [{"name": c} for c in COLUMNS],
        "wells": [
            {"path": f"{r}/{c}", "rowIndex": ri, "columnIndex": ci}
            for ri, r in enumerate(ROWS)
            for ci, c in enumerate(COLUMNS)
        ],
        "field_count": FIELDS,
    }
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    image_attrs = {
        "multiscales": [
            {
                "version": "0.4",
                "axes": axes,
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1.0, 1.0, 0.65, 0.65]}
                        ],
                    }
                ],
            }
        ],
        "omero": {"channels": [{"label": "DNA"}, {"label": "RNA"}]},
    }
    arrays = []
    for row in ROWS:
        for column in COLUMNS:
            well = plate.require_group(f"{row}/{column}")
            well.attrs["well"] = {
                "version": "0.4",
                "images": [{"path": str(f)} for f in range(FIELDS)],
            }
            for field in range(FIELDS):
                image = well.create_group(str(field))
                image.attrs.update(image_attrs)
                arrays.append(
                    image.create_array(
                        "0",
                        shape=SHAPE,
                        chunks=CHUNKS,
                        dtype="uint16",
                        chunk_key_encoding={"name": "v2", "separator": "/"},
                        compressors=numcodecs.Blosc(cname="zstd", clevel=5, shuffle=1),
                    )
                )

    def fill(index: int) -> None:
        shift = np.random.default_rng(index).integers(0, 2000, 2)
        base = textures[index % TEXTURES]
        data = np.roll(base, (int(shift[0]), int(shift[1])), axis=(2, 3)) + np.uint16(index % 97)
        arrays[index][:] = data

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(fill, range(len(arrays))))


def _write_profiles(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED + 1)
    images = [f"crops_plate:{r}/{c}/{f}" for r in ROWS for c in COLUMNS for f in range(FIELDS)]
    owner = np.sort(rng.integers(0, len(images), N_OBJECTS))
    size = rng.integers(16, 65, (N_OBJECTS, 2))
    x0 = rng.integers(0, SHAPE[3] - 64, N_OBJECTS)
    y0 = rng.integers(0, SHAPE[2] - 64, N_OBJECTS)
    number = np.zeros(N_OBJECTS, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    number = np.arange(N_OBJECTS) - np.repeat(starts, np.diff(np.r_[starts, N_OBJECTS])) + 1
    table = pa.table(
        {
            "image_id": pa.array(images).take(pa.array(owner)),
            "ObjectNumber": number,
            "Nuclei_AreaShape_BoundingBoxMinimum_X": x0,
            "Nuclei_AreaShape_BoundingBoxMinimum_Y": y0,
            "Nuclei_AreaShape_BoundingBoxMaximum_X": x0 + size[:, 0],
            "Nuclei_AreaShape_BoundingBoxMaximum_Y": y0 + size[:, 1],
        }
    )
    pq.write_table(table, path)


def ensure_inputs(cache_dir: Path | None) -> tuple[Path, Path, dict[str, Any]]:
    """The cached plate and profiles (built on first use) and the plate's description."""
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    start = time.perf_counter()

    def build(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        _write_plate(tmp / PLATE_NAME)
        _write_profiles(tmp / PROFILES_NAME)

    folder = ensure_cached(
        cache / "crops",
        marker=cache / "crops.complete",
        lock=cache / "crops.lock",
        payload={"layout": LAYOUT_VERSION, "images": N_IMAGES, "objects": N_OBJECTS},
        build=build,
    )
    ensure_s = time.perf_counter() - start
    size, files = disk_usage_bytes(folder / PLATE_NAME)
    info = {
        "path": str(folder / PLATE_NAME),
        "ensure_s": ensure_s,
        "images": N_IMAGES,
        "arrays": N_IMAGES,
        "chunks": N_CHUNKS,
        "disk_mib": size / 2**20,
        "files": files,
    }
    return folder / PLATE_NAME, folder / PROFILES_NAME, info


SETUP = """\
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zarr
from iceberg_bioimage.api import read_image_crops
import iceberg_bioimage.crops.run, iceberg_bioimage.tables.query
import iceberg_bioimage.tables.build, iceberg_bioimage.profiles.files
import zarr.core.codec_pipeline, numcodecs
everything = pq.read_table(profiles_path)
if case == "sparse":
    rng = np.random.default_rng(7)
    pick = np.sort(rng.choice(everything.num_rows, sparse_objects, replace=False))
else:
    ids = pc.unique(everything["image_id"]).to_pylist()[::48][:dense_images]
    mask = pc.is_in(everything["image_id"], pa.array(ids))
    pick = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
objects = everything.take(pa.array(pick))
"""

OURS = """\
result = read_image_crops(plate_path, objects)
crops = result.crops
"""

WHOLE = """\
columns = [objects[f"Nuclei_AreaShape_BoundingBox{k}"].to_numpy() for k in
           ("Minimum_X", "Maximum_X", "Minimum_Y", "Maximum_Y")]
image_ids = objects["image_id"].to_numpy(zero_copy_only=False)
order = np.argsort(image_ids, kind="stable")
crops = [None] * objects.num_rows
start = 0
while start < len(order):
    image_id = image_ids[order[start]]
    stop = start
    while stop < len(order) and image_ids[order[stop]] == image_id:
        stop += 1
    full = zarr.open_array(plate_path, path=image_id.split(":", 1)[1] + "/0", mode="r")[:]
    height, width = full.shape[-2:]
    for row in order[start:stop].tolist():
        x0, x1, y0, y1 = (int(c[row]) for c in columns)
        crops[row] = full[:, :, max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)].copy()
    del full
    start = stop
"""

CHECK = """\
assert len(crops) == objects.num_rows, (len(crops), objects.num_rows)
if "result" in globals():
    for i in range(0, objects.num_rows, max(objects.num_rows // 25, 1)):
        row = result.table.slice(i, 1).to_pylist()[0]
        full = zarr.open_array(plate_path, path=row["image_id"].split(":", 1)[1] + "/0", mode="r")
        expected = full[:, :, row["source_bbox_y_min"]:row["source_bbox_y_max"],
                        row["source_bbox_x_min"]:row["source_bbox_x_max"]]
        assert np.array_equal(crops[i], expected), row
    print("reads", result.stats.to_dict(), file=__import__("sys").stderr)
"""


def main(argv: list[str] | None = None) -> int:
    """Alternate ours and whole-image reading for both cases; report ratios."""
    args = parse_args("Crops through the chunk index vs whole-image reading.", argv)
    plate_path, profiles_path, plate_info = ensure_inputs(args.cache_dir)
    results, extra, lines = [], {}, []
    for case in ("sparse", "dense"):
        variables = {
            "plate_path": str(plate_path),
            "profiles_path": str(profiles_path),
            "case": case,
            "sparse_objects": SPARSE_OBJECTS,
            "dense_images": DENSE_IMAGES,
        }
        runs: dict[str, list] = {"ours": [], "whole": []}
        for i in range(args.warmup + args.repeat):
            print(f"running {case} round {i + 1} ...", file=sys.stderr, flush=True)
            for name, work in (("ours", OURS), ("whole", WHOLE)):
                run = run_once(work, SETUP, variables, 1800, check=CHECK)
                if i >= args.warmup:
                    runs[name].append(run)
        ours, whole = (Measurement(f"{case} {n}", runs[n]) for n in ("ours", "whole"))
        ratio = ours.median_s / whole.median_s
        pairs = [o.work_s / w.work_s for o, w in zip(runs["ours"], runs["whole"], strict=True)]
        if case == "sparse":
            target, ok = whole.median_s / SPARSE_MIN_SPEEDUP, 1 / ratio >= SPARSE_MIN_SPEEDUP
            lines.append(
                f"sparse: whole / ours = {1 / ratio:.1f}x (target >= {SPARSE_MIN_SPEEDUP:g}x) -> "
                f"{'PASS' if ok else 'FAIL'}; paired {', '.join(f'{1 / p:.1f}' for p in pairs)}"
            )
        else:
            target, ok = whole.median_s * DENSE_MAX_RATIO, ratio <= DENSE_MAX_RATIO
            lines.append(
                f"dense: ours / whole = {ratio:.2f} (target <= {DENSE_MAX_RATIO:g}) -> "
                f"{'PASS' if ok else 'FAIL'}; paired {', '.join(f'{p:.2f}' for p in pairs)}"
            )
        results.append({**verdict(whole, float("inf"), TARGET_RSS_MIB), "name": f"{case} whole"})
        results.append({**verdict(ours, target, TARGET_RSS_MIB), "name": f"{case} ours"})
        extra[case] = {"ratio": ratio, "paired_ratios": pairs}
    lines.append(
        f"plate on disk: {plate_info['disk_mib']:,.0f} MiB in {plate_info['files']:,} files"
    )
    lines.append(
        f"({args.repeat} alternating A/B pairs of fresh processes per case, imports excluded)"
    )
    return report(args, plate_info, results, lambda _r: lines, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
