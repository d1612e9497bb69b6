"""Scan a 384-well Phenix-named folder of single-image TIFFs, against its floor.

Usage::

    uv run python benchmarks/tiff_folder_plate.py [--repeat 5] [--warmup 1] [--json] [--check]

The input (written once, cached under ``benchmarks/.cache/``) is a plate as a
Revvity Phenix exports it: ``Images/r01c01f01p01-ch1sk1fk1fl1.tiff`` … for 384
wells (rows A-P × columns 1-24) × 9 fields × 5 channels = 17,280 TIFFs of
1080×1080 uint16, zstd-compressed in strips of 72 rows (15 strips per file). Pixels
are generated cheaply: one background-plus-noise tile per channel, encoded once
and written to every file of that channel (the files of a channel are
byte-identical; a metadata scan cannot tell). Files are written by a thread pool;
how long that took, and the size on disk, are printed with the figures.

Cases, alternating A/B ``--repeat`` times after ``--warmup`` rounds, each run a
fresh process with imports excluded from the time:

* ``floor``: list the folder and read the first 64 KiB of every file (one open and
  one read per file, in a plain loop): the least I/O any scan of the headers does.
* ``ours``: ``scan_store(folder)`` (detects the preset, reads every file's first
  IFD) + the ``image_assets`` (3,456 rows) and ``chunk_index`` (259,200 rows)
  Arrow tables.

Bar: ours <= 2.5x the floor (median wall) and <= 12 s, peak RSS <= 500 MiB.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from _measure import run_once
from _report import AB, parse_args, report, verdict
from plate import DEFAULT_CACHE_DIR, disk_usage_bytes, ensure_cached

#: Bump when the generated layout changes so stale caches get rebuilt.
LAYOUT_VERSION = 1
ROWS, COLUMNS, SITES, CHANNELS = 16, 24, 9, 5
SIZE = 1080
ROWS_PER_STRIP = 72
COMPRESSION = "zstd"
N_FILES = ROWS * COLUMNS * SITES * CHANNELS
N_IMAGES = ROWS * COLUMNS * SITES
N_CHUNKS = N_FILES * -(-SIZE // ROWS_PER_STRIP)
WRITERS = 8

TARGET_RATIO = 2.5
TARGET_S = 12.0
TARGET_RSS_MIB = 500.0

SETUP = """\
import os
import pyarrow as pa
from iceberg_bioimage import scan_store, scan_result_as_arrow_table
# Modules the scan imports on first use: import them here so imports stay untimed.
import iceberg_bioimage.formats.file_set.scan, iceberg_bioimage.formats.file_set.plate_files
import iceberg_bioimage.formats.tiff.headers, iceberg_bioimage.tables.build
pa.array([0])  # pyarrow's one-time lazy set-up
"""

OURS = """\
r = scan_store(plate_path)
a = scan_result_as_arrow_table(r, table="image_assets")
c = scan_result_as_arrow_table(r, table="chunk_index")
assert a.num_rows == n_images, f"image_assets rows: {a.num_rows} != {n_images}"
assert c.num_rows == n_chunks, f"chunk_index rows: {c.num_rows} != {n_chunks}"
"""

FLOOR = """\
n = 0
for root, _, names in os.walk(plate_path):
    for name in names:
        with open(os.path.join(root, name), "rb") as handle:
            handle.read(65536)
        n += 1
assert n == n_files, f"files read: {n} != {n_files}"
"""


def file_name(row: int, column: int, site: int, channel: int) -> str:
    """Phenix (Harmony export) name of one plane, 1-based numbers."""
    return f"r{row:02d}c{column:02d}f{site:02d}p01-ch{channel}sk1fk1fl1.tiff"


def _encoded_planes() -> list[bytes]:
    """One compressed TIFF per channel: background plus 2-bit noise, 1080×1080 uint16."""
    rng = np.random.default_rng(20240601)
    tile = rng.integers(0, 4, (SIZE, SIZE), dtype=np.uint16)
    planes = []
    for channel in range(CHANNELS):
        buffer = io.BytesIO()
        tifffile.imwrite(
            buffer,
            np.roll(tile, 7 * channel, axis=1) + np.uint16(100 + 20 * channel),
            photometric="minisblack",
            compression=COMPRESSION,
            rowsperstrip=ROWS_PER_STRIP,
        )
        planes.append(buffer.getvalue())
    return planes


def _build(tmp: Path) -> None:
    """Write the whole folder into ``tmp`` (threads); record how long it took beside it."""
    start = time.perf_counter()
    images = tmp / "Images"
    images.mkdir(parents=True)
    planes = _encoded_planes()
    encode_s = time.perf_counter() - start

    def write(row: int) -> int:
        written = 0
        for column in range(1, COLUMNS + 1):
            for site in range(1, SITES + 1):
                for channel in range(1, CHANNELS + 1):
                    data = planes[channel - 1]
                    (images / file_name(row, column, site, channel)).write_bytes(data)
                    written += len(data)
        return written

    with ThreadPoolExecutor(WRITERS) as pool:
        written = sum(pool.map(write, range(1, ROWS + 1)))
    os.sync()  # count the time until the data is on disk, not only in the page cache
    seconds = time.perf_counter() - start
    generation = {
        "seconds": seconds,
        "encode_s": encode_s,
        "files": N_FILES,
        "bytes": written,
        "files_per_s": N_FILES / seconds,
        "mib_per_s": written / 2**20 / seconds,
    }
    _generation_file(tmp).write_text(json.dumps(generation), encoding="utf-8")


def _generation_file(folder: Path) -> Path:
    return folder.parent / f"{folder.name.split('.tmp-')[0]}.generation.json"


def ensure_tiff_plate(cache_dir: Path | None) -> tuple[Path, dict[str, Any]]:
    """The cached folder (built on first use) and its description, generation figures included."""
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    name = "tiff_folder_plate_phenix"
    payload = {
        "version": LAYOUT_VERSION,
        "rows": ROWS,
        "columns": COLUMNS,
        "sites": SITES,
        "channels": CHANNELS,
        "size": SIZE,
        "rows_per_strip": ROWS_PER_STRIP,
        "compression": COMPRESSION,
    }
    start = time.perf_counter()
    path = ensure_cached(
        cache_dir / name,
        marker=cache_dir / f"{name}.complete",
        lock=cache_dir / f"{name}.lock",
        payload=payload,
        build=_build,
    )
    ensure_s = time.perf_counter() - start
    size, files = disk_usage_bytes(path)
    generation_file = _generation_file(path)
    generation = json.loads(generation_file.read_text()) if generation_file.is_file() else {}
    info = {
        "path": str(path),
        "ensure_s": ensure_s,
        "images": N_IMAGES,
        "arrays": N_IMAGES,
        "chunks": N_CHUNKS,
        "files": files,
        "disk_mib": size / 2**20,
        "generation": generation,
    }
    return path, info


def main(argv: list[str] | None = None) -> int:
    """Alternate ours and the floor on the TIFF folder; report medians, ratio and verdicts."""
    args = parse_args("Scan a 384-well Phenix TIFF folder against its floor.", argv)
    plate_path, info = ensure_tiff_plate(args.cache_dir)
    variables = {
        "plate_path": str(plate_path),
        "n_files": N_FILES,
        "n_images": N_IMAGES,
        "n_chunks": N_CHUNKS,
    }
    ab = AB.measure(
        args,
        lambda name: run_once(OURS if name == "ours" else FLOOR, SETUP, variables, 900),
        ("ours", "floor"),
    )
    ours, floor, ratio = ab.ours, ab.floor, ab.ratio
    results = [
        {**verdict(floor, float("inf"), None), "name": "floor (64 KiB)"},
        {
            **verdict(ours, min(TARGET_S, TARGET_RATIO * floor.median_s), TARGET_RSS_MIB),
            "name": "ours (scan+chunks)",
        },
    ]
    gen = info["generation"]
    heading = [
        f"input: {info['files']:,} files ({N_FILES:,} TIFFs, {SIZE}×{SIZE} uint16, "
        f"{COMPRESSION}, {ROWS_PER_STRIP}-row strips), {info['disk_mib']:,.0f} MiB on disk",
        (
            f"generation (once, cached): {gen['seconds']:.1f} s incl. sync "
            f"({gen['files_per_s']:,.0f} files/s, {gen['mib_per_s']:,.0f} MiB/s, "
            f"{WRITERS} writer threads)"
            if gen
            else "generation: figures not recorded"
        ),
    ]

    def notes(_results: list) -> list[str]:
        ok = ratio <= TARGET_RATIO and ours.median_s <= TARGET_S
        rss_ok = ours.peak_rss_mib <= TARGET_RSS_MIB
        return [
            ab.ratio_line(
                TARGET_RATIO, ok, f", ours {ours.median_s:.2f} s (bar <= {TARGET_S:g} s)"
            ),
            f"peak RSS ours {ours.peak_rss_mib:.0f} MiB (bar <= {TARGET_RSS_MIB:g}) -> "
            f"{'PASS' if rss_ok else 'FAIL'}",
            *ab.tail_lines(args.repeat),
        ]

    return report(
        args,
        info,
        results,
        notes,
        extra=ab.extra(),
        heading=heading,
        per_process="A/B alternating, ",
    )


if __name__ == "__main__":
    sys.exit(main())
