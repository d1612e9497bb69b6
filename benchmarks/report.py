"""The plate report of a 384-well × 9-field plate with pixels and a pyramid.

Usage::

    uv run --all-groups python benchmarks/report.py [--repeat 3] [--warmup 1] [--json] [--check]

The input (written once, cached under ``benchmarks/.cache/``) is an OME-NGFF 0.4 HCS
plate: 384 wells (A-P × 1-24) × 9 fields, each field 2 channels with a 3-level
pyramid (256×256, 128×128, 64×64 uint16) in 128×128 chunks, Blosc-zstd compressed.
Fields are smaller than a real camera's (to keep the plate a few hundred MiB and its
generation within minutes on two cores); what the report reads is the level that
gives the thumbnail size, here 128×128 for thumbnails of 96 px, as it would be the
128-or-larger level of a real pyramid.

Cases, alternating A/B ``--repeat`` times after ``--warmup`` rounds, each a fresh
process with imports excluded from the time:

* ``ours``: ``write_plate_report(plate, out.html)`` — scan the plate's metadata, choose
  the level per field, read it through the chunk index, auto-contrast, encode the
  PNGs and write the page.
* ``floor``: read that same level of every field whole with zarr (``array[:]``) and
  nothing else: the bytes any report must decode.

Bars: ours ≤ 30 s; bytes read ≤ 1.2 × the stored bytes of the chosen level
(counted by the reader, against the chunk files' sizes on disk); page ≤ 20 MB;
peak RSS ≤ 1 GiB. The ratio ours / floor is printed.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
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
ROWS = tuple("ABCDEFGHIJKLMNOP")
COLUMNS = tuple(str(c) for c in range(1, 25))
FIELDS = 9
SIZE = 256
LEVELS = 3
CHUNK = 128
N_IMAGES = len(ROWS) * len(COLUMNS) * FIELDS
TEXTURES = 4
WRITERS = 2
SEED = 20261207
PLATE_NAME = "report_plate.ome.zarr"
CHOSEN_LEVEL = 1  # 128 px: the smallest level at least 96 px

TARGET_S = 30.0
TARGET_READ_RATIO = 1.2
TARGET_HTML_BYTES = 20_000_000
TARGET_RSS_MIB = 1024.0


def _texture(rng: np.random.Generator) -> np.ndarray:
    """One channel plane: background 100 + noise, ~40 bright discs."""
    plane = (100 + rng.integers(0, 8, (SIZE, SIZE))).astype(np.uint16)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for _ in range(40):
        radius = int(rng.integers(4, 14))
        cy, cx = (int(v) for v in rng.integers(0, SIZE, 2))
        plane[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = int(rng.integers(400, 3000))
    return plane


def _pyramid(image: np.ndarray) -> list[np.ndarray]:
    levels = [image]
    for _ in range(1, LEVELS):
        last = levels[-1].astype(np.float64)
        half = (
            last[..., ::2, ::2]
            + last[..., 1::2, ::2]
            + last[..., ::2, 1::2]
            + last[..., 1::2, 1::2]
        )
        levels.append((half / 4).astype(np.uint16))
    return levels


def _write_plate(root: Path) -> None:
    import numcodecs

    rng = np.random.default_rng(SEED)
    textures = [
        _pyramid(np.stack([_texture(rng), _texture(rng)])[:, None]) for _ in range(TEXTURES)
    ]
    datasets = [
        {
            "path": str(level),
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 1.0, 0.65 * 2**level, 0.65 * 2**level]}
            ],
        }
        for level in range(LEVELS)
    ]
    image_attrs = {
        "multiscales": [{"version": "0.4", "axes": CZYX_AXES, "datasets": datasets}],
        "omero": {
            "channels": [{"label": "DNA", "color": "0000FF"}, {"label": "RNA", "color": "00FF00"}]
        },
    }

    def pyramid_arrays(image: Any) -> list[Any]:
        return [
            image.create_array(
                str(level),
                shape=(2, 1, SIZE >> level, SIZE >> level),
                chunks=(1, 1, CHUNK, CHUNK),
                dtype="uint16",
                chunk_key_encoding={"name": "v2", "separator": "/"},
                compressors=numcodecs.Blosc(cname="zstd", clevel=5, shuffle=1),
            )
            for level in range(LEVELS)
        ]

    jobs = write_hcs_groups(
        root, "report_plate", (ROWS, COLUMNS, FIELDS), image_attrs, pyramid_arrays
    )

    def fill(index: int) -> None:
        shift = np.random.default_rng(index).integers(0, SIZE, 2)
        for level, array in enumerate(jobs[index]):
            base = textures[index % TEXTURES][level]
            step = (int(shift[0]) >> level, int(shift[1]) >> level)
            array[:] = np.roll(base, step, axis=(2, 3)) + np.uint16(index % 97)

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(fill, range(len(jobs))))


def ensure_plate(cache_dir: Path | None) -> tuple[Path, dict[str, Any]]:
    """The cached plate (built on first use) and its description."""
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    start = time.perf_counter()

    def build(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        _write_plate(tmp / PLATE_NAME)

    folder = ensure_cached(
        cache / "report",
        marker=cache / "report.complete",
        lock=cache / "report.lock",
        payload={"layout": LAYOUT_VERSION, "images": N_IMAGES},
        build=build,
    )
    size, files = disk_usage_bytes(folder / PLATE_NAME)
    info = {
        "path": str(folder / PLATE_NAME),
        "ensure_s": time.perf_counter() - start,
        "images": N_IMAGES,
        "arrays": N_IMAGES * LEVELS,
        "chunks": N_IMAGES * 2 * (4 + 1 + 1),
        "disk_mib": size / 2**20,
        "files": files,
    }
    return folder / PLATE_NAME, info


def level_bytes(plate: Path, level: int) -> int:
    """Stored bytes of every chunk file of ``level`` (metadata documents excluded)."""
    total = 0
    for row in ROWS:
        for column in COLUMNS:
            for field in range(FIELDS):
                top = plate / row / column / str(field) / str(level)
                for folder, _, names in os.walk(top):
                    total += sum(
                        os.path.getsize(os.path.join(folder, n))
                        for n in names
                        if not n.startswith(".")
                    )
    return total


SETUP = """\
import json
import numpy as np
import zarr
from iceberg_bioimage.api import write_plate_report
import iceberg_bioimage.report.run, iceberg_bioimage.report.thumbnails
import iceberg_bioimage.formats, iceberg_bioimage.tables.build
import iceberg_bioimage.crops.reader, iceberg_bioimage.crops.decode
import zarr.core.codec_pipeline, numcodecs
"""

OURS = """\
result = write_plate_report(plate_path, html_path)
"""

FLOOR = """\
paths = [f"{r}/{c}/{f}/{level}" for r in rows for c in columns for f in range(fields)]
total = 0
for path in paths:
    total += int(zarr.open_array(plate_path, path=path, mode="r")[:].sum() > 0)
"""

CHECK = """\
if "result" in globals():
    figures = result.to_dict()
    assert figures["wells"] == 384 and figures["fields"] == 384 * 9, figures
    assert figures["levels"] == [level], figures["levels"]
    json.dump(figures, open(figures_path, "w"))
"""


def main(argv: list[str] | None = None) -> int:
    """Alternate the report and the floor; report time, bytes, page size and memory."""
    args = parse_args("Plate report vs reading the chosen level.", argv, repeat=3)
    plate_path, plate_info = ensure_plate(args.cache_dir)
    stored = level_bytes(plate_path, CHOSEN_LEVEL)
    work = Path(tempfile.mkdtemp(prefix="report-bench-"))
    variables = {
        "plate_path": str(plate_path),
        "html_path": str(work / "plate.html"),
        "figures_path": str(work / "figures.json"),
        "rows": list(ROWS),
        "columns": list(COLUMNS),
        "fields": FIELDS,
        "level": CHOSEN_LEVEL,
    }
    runs: dict[str, list] = {"ours": [], "floor": []}
    for i in range(args.warmup + args.repeat):
        print(f"running round {i + 1} ...", file=sys.stderr, flush=True)
        for name, snippet in (("ours", OURS), ("floor", FLOOR)):
            run = run_once(snippet, SETUP, variables, 1800, check=CHECK)
            if i >= args.warmup:
                runs[name].append(run)
    ours, floor = (Measurement(f"report {n}", runs[n]) for n in ("ours", "floor"))
    figures = json.loads((work / "figures.json").read_text())
    read = figures["reads"]["bytes_fetched"]
    html_bytes = figures["html_bytes"]
    ratio = ours.median_s / floor.median_s
    pairs = [o.work_s / f.work_s for o, f in zip(runs["ours"], runs["floor"], strict=True)]
    read_ok = read <= TARGET_READ_RATIO * stored
    html_ok = html_bytes <= TARGET_HTML_BYTES
    lines = [
        f"report: {ours.median_s:.1f} s (target <= {TARGET_S:g} s); floor (zarr reads of level "
        f"{CHOSEN_LEVEL}) {floor.median_s:.1f} s; ours / floor = {ratio:.2f}; paired "
        + ", ".join(f"{p:.2f}" for p in pairs),
        f"bytes read: {read:,} = {read / stored:.3f} x the {stored:,} stored bytes of level "
        f"{CHOSEN_LEVEL} (target <= {TARGET_READ_RATIO:g}) -> {'PASS' if read_ok else 'FAIL'}",
        f"page: {html_bytes:,} bytes (target <= {TARGET_HTML_BYTES:,}) -> "
        f"{'PASS' if html_ok else 'FAIL'}",
        f"plate on disk: {plate_info['disk_mib']:,.0f} MiB in {plate_info['files']:,} files",
        f"({args.repeat} alternating A/B pairs of fresh processes, imports excluded)",
    ]
    results = [
        {**verdict(floor, float("inf"), TARGET_RSS_MIB), "name": "floor"},
        {**verdict(ours, TARGET_S, TARGET_RSS_MIB), "name": "report"},
    ]
    if not (read_ok and html_ok):
        results[-1]["status"] = "FAIL"
    extra = {
        "ratio": ratio,
        "paired_ratios": pairs,
        "bytes_read": read,
        "level_bytes": stored,
        "html_bytes": html_bytes,
    }
    return report(args, plate_info, results, lambda _r: lines, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
