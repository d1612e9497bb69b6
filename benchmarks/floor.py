"""Compare our export of the 384-well plate with its floor: read, parse, build, write.

Usage::

    uv run python benchmarks/floor.py [--repeat 5] [--warmup 1] [--json] [--check]

The floor is the least work any exporter must do for this plate: read and
``json.loads`` the 14,209 metadata files a plate-guided scan needs (plate, well
and field ``.zattrs``, every ``.zarray``), build both tables vectorised (each
distinct chunk grid expanded once with ``np.indices``, keys by
``binary_join_element_wise``), and write them as zstd Parquet. It does no
validation, no limits and no atomic warehouse. ``ours`` is
``export_store_to_cytomining_warehouse(plate, out)``.

Each run is a fresh process (imports excluded from the time); the two cases
alternate A/B ``--repeat`` times after ``--warmup`` rounds. Target: ours <= 1.2x the
floor (median wall). CPU seconds of each run are reported too.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _measure import Measurement, run_once
from _report import parse_args, prepare_plate, report, verdict

TARGET_RATIO = 1.2

SETUP = """\
import json, os
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from iceberg_bioimage.api import export_store_to_cytomining_warehouse
# The API imports its layers on first use: import them here so that, like the floor's,
# our imports are excluded from the time.
import iceberg_bioimage.tables.build, iceberg_bioimage.warehouse.export
import iceberg_bioimage.warehouse.write
pa.array([0])  # pyarrow's one-time lazy set-up (it imports pandas when installed)
"""

OURS = """\
export_store_to_cytomining_warehouse(plate_path, out)
"""

FLOOR = """\
def _read(path):
    with open(path, "rb") as handle:
        return json.loads(handle.read())
root = plate_path
plate = _read(os.path.join(root, ".zattrs"))["plate"]
fields, arrays = [], []
for well in plate["wells"]:
    wpath = os.path.join(root, well["path"])
    for image in _read(os.path.join(wpath, ".zattrs"))["well"]["images"]:
        fpath = os.path.join(wpath, image["path"])
        attrs = _read(os.path.join(fpath, ".zattrs"))
        text = json.dumps(attrs, separators=(",", ":"))
        for level, ds in enumerate(attrs["multiscales"][0]["datasets"]):
            zarray = _read(os.path.join(fpath, ds["path"], ".zarray"))
            rel = f"{well['path']}/{image['path']}/{ds['path']}"
            arrays.append((rel, well["path"], image["path"], level, zarray, text))
n = len(arrays)
grids = [tuple(-(-s // c) for s, c in zip(z["shape"], z["chunks"])) for *_, z, _ in arrays]
counts = np.array([int(np.prod(g)) for g in grids], dtype=np.int64)
owner = np.repeat(np.arange(n), counts)
images = pa.table({
    "dataset_id": pa.array(["bench_plate"] * n),
    "image_id": pa.array([f"bench_plate:{a[1]}/{a[2]}" for a in arrays]),
    "array_path": pa.array([a[0] for a in arrays]),
    "shape": pa.array([a[4]["shape"] for a in arrays], pa.list_(pa.int64())),
    "chunks": pa.array([a[4]["chunks"] for a in arrays], pa.list_(pa.int64())),
    "dtype": pa.array([a[4]["dtype"] for a in arrays]),
    "well_id": pa.array([a[1].replace("/", "") for a in arrays]),
    "site_id": pa.array([a[2] for a in arrays]),
    "multiscale_level": pa.array([a[3] for a in arrays], pa.int32()),
    "chunk_count": pa.array(counts),
    "metadata_json": pa.array([a[5] for a in arrays]),
})
suffix, coords = {}, {}
for g in set(grids):
    c = np.indices(g).reshape(len(g), -1).T
    coords[g] = c
    parts = [pc.cast(pa.array(c[:, d]), pa.string()) for d in range(len(g))]
    suffix[g] = pc.binary_join_element_wise(*parts, "/")
prefix = pa.array([a[0] + "/" for a in arrays]).take(pa.array(owner))
keys = pc.binary_join_element_wise(prefix, pa.concat_arrays([suffix[g] for g in grids]), "")
flat = np.concatenate([coords[g].ravel() for g in grids])
offsets = np.arange(0, len(flat) + 1, 4, dtype=np.int32)
chunk_index = pa.table({
    "dataset_id": pa.array(["bench_plate"]).take(pa.array(np.zeros(len(owner), np.int64))),
    "image_id": images["image_id"].combine_chunks().take(pa.array(owner)),
    "array_path": images["array_path"].combine_chunks().take(pa.array(owner)),
    "chunk_key": keys,
    "chunk_coords": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat)),
})
os.makedirs(out, exist_ok=True)
pq.write_table(images, os.path.join(out, "image_assets.parquet"), compression="zstd")
pq.write_table(chunk_index, os.path.join(out, "chunk_index.parquet"), compression="zstd")
"""


def _run(work: str, variables: dict) -> tuple:
    out = Path(tempfile.mkdtemp(prefix="iceberg-bioimage-floor-"))
    try:
        run = run_once(work, SETUP, {**variables, "out": str(out / "wh")}, 600)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return run


def main(argv: list[str] | None = None) -> int:
    """Alternate ours and the floor; report medians and the ratio."""
    args = parse_args("Compare our export with the floor.", argv)
    plate_path, plate_info = prepare_plate(args.cache_dir)
    variables = {"plate_path": str(plate_path)}
    runs: dict[str, list] = {"ours": [], "floor": []}
    for i in range(args.warmup + args.repeat):
        for name, work in (("ours", OURS), ("floor", FLOOR)):
            run = _run(work, variables)
            if i >= args.warmup:
                runs[name].append(run)
    ours, floor = (Measurement(name, runs[name]) for name in ("ours", "floor"))
    ratio = ours.median_s / floor.median_s
    results = [
        {**verdict(floor, float("inf"), None), "name": "floor"},
        {**verdict(ours, TARGET_RATIO * floor.median_s, None), "name": "ours (export)"},
    ]

    pairs = [o.work_s / f.work_s for o, f in zip(runs["ours"], runs["floor"], strict=True)]
    cpu = {n: statistics.median(r.work_cpu_s for r in rs) for n, rs in runs.items()}

    def notes(_results: list) -> list[str]:
        return [
            f"ours / floor (wall) = {ratio:.2f} (target <= {TARGET_RATIO:g}) -> "
            f"{'PASS' if ratio <= TARGET_RATIO else 'FAIL'}; "
            f"median of paired ratios {statistics.median(pairs):.2f} "
            f"({', '.join(f'{x:.2f}' for x in pairs)})",
            f"CPU s (median): ours {cpu['ours']:.3f}, floor {cpu['floor']:.3f} "
            f"-> ratio {cpu['ours'] / cpu['floor']:.2f}",
            f"({args.repeat} alternating A/B pairs of fresh processes, imports excluded)",
        ]

    extra = {"ratio": ratio, "paired_ratios": pairs, "median_cpu_s": cpu}
    return report(args, plate_info, results, notes, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
