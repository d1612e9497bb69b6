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

* ``labels``: the segmentation too (``CropOptions(labels=True)``), on a smaller
  plate of its own (1 row × 6 columns × 2 fields of 2 noisy channels of 2160×2560, each
  with an NGFF
  ``labels/nuclei`` uint16 label image in 256×256 chunks; objects are its labels,
  boxes exact): 1% of the objects, ``ours`` reads image and label chunks through the
  chunk index, ``whole`` reads each needed field and its label image whole. The check
  also compares the chunk bytes read with the stored bytes of the chunks the boxes
  intersect (≤ 1.05×). ``--labels-only`` runs this case alone (its plate is built in
  about a minute; the big plate is not needed).

Bars: sparse and labels ours ≥ 5× faster than whole; dense ours ≤ 1.1× whole; peak RSS
≤ 1 GiB.
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
from plate import CZYX_AXES, DEFAULT_CACHE_DIR, disk_usage_bytes, ensure_cached, write_hcs_groups

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

    rng = np.random.default_rng(SEED)
    textures = [np.stack([_texture(rng), _texture(rng)])[:, None] for _ in range(TEXTURES)]
    image_attrs = {
        "multiscales": [
            {
                "version": "0.4",
                "axes": CZYX_AXES,
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

    def field_array(image: Any) -> Any:
        return image.create_array(
            "0",
            shape=SHAPE,
            chunks=CHUNKS,
            dtype="uint16",
            chunk_key_encoding={"name": "v2", "separator": "/"},
            compressors=numcodecs.Blosc(cname="zstd", clevel=5, shuffle=1),
        )

    arrays = write_hcs_groups(
        root, "crops_plate", (ROWS, COLUMNS, FIELDS), image_attrs, field_array
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


LABEL_COLUMNS = tuple(str(c) for c in range(1, 7))
LABEL_FIELDS = 2
LABEL_PLATE_NAME = "labels_plate.ome.zarr"
LABEL_PROFILES_NAME = "labels_objects.parquet"
LABEL_FRACTION = 0.01


def _label_texture(rng: np.random.Generator) -> np.ndarray:
    """A label plane: 520 discs numbered 1..520 (later ones on top), as many objects per
    field as the sparse case's plate has."""
    height, width = SHAPE[2:]
    plane = np.zeros((height, width), dtype=np.uint16)
    yy, xx = np.mgrid[-30:31, -30:31]
    for number in range(1, 521):
        radius = int(rng.integers(6, 24))
        cy, cx = int(rng.integers(31, height - 31)), int(rng.integers(31, width - 31))
        patch = plane[cy - 30 : cy + 31, cx - 30 : cx + 31]
        patch[(yy**2 + xx**2) <= radius**2] = number
    return plane


def _label_boxes(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Exact boxes (max exclusive) of every label present, by label number."""
    ys, xs = np.nonzero(labels)
    values = labels[ys, xs].astype(np.int64)
    n = int(values.max()) + 1
    out = {k: np.full(n, -1, dtype=np.int64) for k in ("x0", "y0", "x1", "y1")}
    out["x0"][:] = out["y0"][:] = np.iinfo(np.int64).max
    np.minimum.at(out["x0"], values, xs)
    np.minimum.at(out["y0"], values, ys)
    np.maximum.at(out["x1"], values, xs + 1)
    np.maximum.at(out["y1"], values, ys + 1)
    present = np.flatnonzero(out["x1"] > 0)
    return {"number": present, **{k: v[present] for k, v in out.items()}}


def _write_label_plate(root: Path, profiles_path: Path) -> None:
    import numcodecs
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zarr

    rng = np.random.default_rng(SEED + 2)
    textures = [_label_texture(rng) for _ in range(3)]
    plate = zarr.open_group(root, mode="w", zarr_format=2)
    plate.attrs["plate"] = {
        "version": "0.4",
        "rows": [{"name": "A"}],
        "columns": [{"name": c} for c in LABEL_COLUMNS],
        "wells": [
            {"path": f"A/{c}", "rowIndex": 0, "columnIndex": i} for i, c in enumerate(LABEL_COLUMNS)
        ],
        "field_count": LABEL_FIELDS,
    }
    scale = [{"type": "scale", "scale": [1.0, 1.0, 0.65, 0.65]}]
    options = {
        "chunk_key_encoding": {"name": "v2", "separator": "/"},
        "compressors": numcodecs.Blosc(cname="zstd", clevel=5, shuffle=1),
        "dtype": "uint16",
    }
    tables = []
    for index, (column, field) in enumerate(
        (c, f) for c in LABEL_COLUMNS for f in range(LABEL_FIELDS)
    ):
        well = plate.require_group(f"A/{column}")
        well.attrs["well"] = {"images": [{"path": str(f)} for f in range(LABEL_FIELDS)]}
        image = well.create_group(str(field))
        image.attrs["multiscales"] = [
            {
                "version": "0.4",
                "axes": CZYX_AXES,
                "datasets": [{"path": "0", "coordinateTransformations": scale}],
            }
        ]
        shift = np.random.default_rng(index).integers(0, 2000, 2)
        labels = np.roll(textures[index % 3], (int(shift[0]), int(shift[1])), axis=(0, 1))
        noise = np.random.default_rng(index).integers(0, 8, labels.shape, dtype=np.uint16)
        pixels = (np.where(labels > 0, 1000 + labels % 2000, 100) + noise).astype(np.uint16)
        image.create_array("0", shape=(*SHAPE[:1], 1, *SHAPE[2:]), chunks=CHUNKS, **options)[:] = (
            np.stack([pixels, pixels // 2])[:, None]
        )
        group = image.create_group("labels")
        group.attrs["labels"] = ["nuclei"]
        nuclei = group.create_group("nuclei")
        nuclei.attrs["multiscales"] = [
            {
                "version": "0.4",
                "axes": CZYX_AXES,
                "datasets": [{"path": "0", "coordinateTransformations": scale}],
            }
        ]
        nuclei.attrs["image-label"] = {"version": "0.4"}
        nuclei.create_array("0", shape=(1, 1, *SHAPE[2:]), chunks=CHUNKS, **options)[:] = labels[
            None, None
        ]
        boxes = _label_boxes(labels)
        tables.append(
            pa.table(
                {
                    "image_id": [f"labels_plate:A/{column}/{field}"] * len(boxes["number"]),
                    "ObjectNumber": boxes["number"],
                    "Nuclei_AreaShape_BoundingBoxMinimum_X": boxes["x0"],
                    "Nuclei_AreaShape_BoundingBoxMinimum_Y": boxes["y0"],
                    "Nuclei_AreaShape_BoundingBoxMaximum_X": boxes["x1"],
                    "Nuclei_AreaShape_BoundingBoxMaximum_Y": boxes["y1"],
                }
            )
        )
    pq.write_table(pa.concat_tables(tables), profiles_path)


def ensure_label_inputs(cache_dir: Path | None) -> tuple[Path, Path, dict[str, Any]]:
    """The cached label plate and its objects (built on first use)."""
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR

    def build(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        _write_label_plate(tmp / LABEL_PLATE_NAME, tmp / LABEL_PROFILES_NAME)

    folder = ensure_cached(
        cache / "crop_labels",
        marker=cache / "crop_labels.complete",
        lock=cache / "crop_labels.lock",
        payload={"layout": 3, "fields": len(LABEL_COLUMNS) * LABEL_FIELDS},
        build=build,
    )
    size, files = disk_usage_bytes(folder / LABEL_PLATE_NAME)
    fields = len(LABEL_COLUMNS) * LABEL_FIELDS
    info = {
        "path": str(folder / LABEL_PLATE_NAME),
        "ensure_s": 0.0,
        "images": fields,
        "arrays": 2 * fields,
        "chunks": fields * 3 * 9 * 10,
        "disk_mib": size / 2**20,
        "files": files,
        "labels_disk_mib": size / 2**20,
        "labels_files": files,
    }
    return folder / LABEL_PLATE_NAME, folder / LABEL_PROFILES_NAME, info


def label_read_ratio(plate_path: Path, profiles_path: Path) -> tuple[float, int]:
    """Chunk bytes a labels run reads / stored bytes of the chunks its boxes intersect."""
    import os

    variables = {
        "profiles_path": str(profiles_path),
        "case": "labels",
        "plate_path": str(plate_path),
    }
    namespace: dict[str, Any] = dict(variables)
    exec(SETUP, namespace)  # the same 1% of objects as the timed runs
    exec(OURS, namespace)
    result = namespace["result"]
    keys = set()
    for row in result.table.to_pylist():
        path = row["image_id"].split(":", 1)[1]
        ys = range(row["source_bbox_y_min"] // 256, (row["source_bbox_y_max"] - 1) // 256 + 1)
        xs = range(row["source_bbox_x_min"] // 256, (row["source_bbox_x_max"] - 1) // 256 + 1)
        for y in ys:
            for x in xs:
                keys |= {f"{path}/0/{c}/0/{y}/{x}" for c in (0, 1)}
                keys.add(f"{path}/labels/nuclei/0/0/0/{y}/{x}")
    stored = sum(os.path.getsize(os.path.join(plate_path, k)) for k in keys)
    return result.stats.chunk_bytes / stored, result.table.num_rows


SETUP = """\
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zarr
from iceberg_bioimage.api import read_image_crops
from iceberg_bioimage import CropOptions
import iceberg_bioimage.crops.run, iceberg_bioimage.tables.query
import iceberg_bioimage.tables.build, iceberg_bioimage.profiles.files
import zarr.core.codec_pipeline, numcodecs
everything = pq.read_table(profiles_path)
if case == "labels":
    rng = np.random.default_rng(7)
    pick = np.sort(rng.choice(everything.num_rows, max(int(everything.num_rows * 0.01), 1),
                              replace=False))
elif case == "sparse":
    rng = np.random.default_rng(7)
    pick = np.sort(rng.choice(everything.num_rows, sparse_objects, replace=False))
else:
    ids = pc.unique(everything["image_id"]).to_pylist()[::48][:dense_images]
    mask = pc.is_in(everything["image_id"], pa.array(ids))
    pick = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
objects = everything.take(pa.array(pick))
"""

OURS = """\
result = read_image_crops(plate_path, objects, crop=CropOptions(labels=case == "labels"))
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
    if case == "labels":
        whole_labels = zarr.open_array(
            plate_path, path=image_id.split(":", 1)[1] + "/labels/nuclei/0", mode="r")[:]
    for row in order[start:stop].tolist():
        x0, x1, y0, y1 = (int(c[row]) for c in columns)
        box = (slice(max(y0, 0), min(y1, height)), slice(max(x0, 0), min(x1, width)))
        crops[row] = full[:, :, box[0], box[1]].copy()
        if case == "labels":
            crops[row] = (crops[row], whole_labels[:, :, box[0], box[1]].copy())
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
        if case == "labels":
            label = zarr.open_array(plate_path, path=row["image_id"].split(":", 1)[1]
                                    + "/labels/nuclei/0", mode="r")
            box = (slice(row["source_bbox_y_min"], row["source_bbox_y_max"]),
                   slice(row["source_bbox_x_min"], row["source_bbox_x_max"]))
            assert np.array_equal(result.labels[i][0], label[0, 0][box]), row
    if case == "labels":  # bytes read vs stored bytes of the intersecting chunks
        import os
        keys = set()
        for row in result.table.to_pylist():
            path = row["image_id"].split(":", 1)[1]
            y_first, y_last = row["source_bbox_y_min"] // 256, (row["source_bbox_y_max"] - 1) // 256
            for y in range(y_first, y_last + 1):
                for x in range(row["source_bbox_x_min"] // 256,
                               (row["source_bbox_x_max"] - 1) // 256 + 1):
                    keys |= {f"{path}/0/{c}/0/{y}/{x}" for c in (0, 1)}
                    keys.add(f"{path}/labels/nuclei/0/0/0/{y}/{x}")
        stored = sum(os.path.getsize(os.path.join(plate_path, k)) for k in keys)
        ratio = result.stats.chunk_bytes / stored
        print(f"labels: chunk bytes read / intersecting = {ratio:.3f}",
              file=__import__("sys").stderr)
        assert ratio <= 1.05, ratio
    print("reads", result.stats.to_dict(), file=__import__("sys").stderr)
"""


def main(argv: list[str] | None = None) -> int:
    """Alternate ours and whole-image reading for both cases; report ratios."""
    argv = list(sys.argv[1:] if argv is None else argv)
    labels_only = "--labels-only" in argv
    argv = [a for a in argv if a != "--labels-only"]
    args = parse_args("Crops through the chunk index vs whole-image reading.", argv)
    label_plate, label_profiles, label_info = ensure_label_inputs(args.cache_dir)
    if labels_only:
        plate_path, profiles_path, plate_info = label_plate, label_profiles, dict(label_info)
    else:
        plate_path, profiles_path, plate_info = ensure_inputs(args.cache_dir)
        plate_info.update(label_info)
    results, extra, lines = [], {}, []
    for case in ("labels",) if labels_only else ("sparse", "dense", "labels"):
        variables = {
            "plate_path": str(label_plate if case == "labels" else plate_path),
            "profiles_path": str(label_profiles if case == "labels" else profiles_path),
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
        if case in ("sparse", "labels"):
            target, ok = whole.median_s / SPARSE_MIN_SPEEDUP, 1 / ratio >= SPARSE_MIN_SPEEDUP
            lines.append(
                f"{case}: whole / ours = {1 / ratio:.1f}x (target >= {SPARSE_MIN_SPEEDUP:g}x) -> "
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
        if case == "labels":
            read_ratio, objects = label_read_ratio(label_plate, label_profiles)
            lines.append(
                f"labels: {objects} objects (1%); chunk bytes read / stored bytes of the "
                f"intersecting image and label chunks = {read_ratio:.3f} (target <= 1.05) -> "
                f"{'PASS' if read_ratio <= 1.05 else 'FAIL'}"
            )
            extra[case]["read_ratio"] = read_ratio
    if not labels_only:
        lines.append(
            f"plate on disk: {plate_info['disk_mib']:,.0f} MiB in {plate_info['files']:,} files"
        )
    lines.append(
        f"label plate on disk: {label_info['labels_disk_mib']:,.0f} MiB in "
        f"{label_info['labels_files']:,} files"
    )
    lines.append(
        f"({args.repeat} alternating A/B pairs of fresh processes per case, imports excluded)"
    )
    return report(args, plate_info, results, lambda _r: lines, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
