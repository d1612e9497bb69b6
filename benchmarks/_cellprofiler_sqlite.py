"""Generate (once) the cytominer-database SQLite that matches the benchmark plate.

The benchmark plate (``plate.py``) is a 384-well plate (rows A-P × columns 1-24) with
``FIELD_COUNT`` = 9 fields per well (NGFF fields ``0``..``8``), 2560 × 2160 pixel images and
channels ``DNA``/``RNA``. This SQLite is what a CellProfiler run over that plate looks like
after ``cytominer-database ingest --no-skip-image-prefix`` of its per-site folders: one
``Image`` row per (well, site) with CellProfiler's 1-based sites 1..9, ``ImageNumber`` 1 in
every folder and the folder's ``TableNumber`` (md5 of its ``Image.csv``, TEXT), a ``Nuclei``
table with 1,000,000 objects × 100 measured features (plus box/centre/parent columns) and a
``Cells`` table with as many objects × 20 features. Layout and values come from
``tests/fixtures/cellprofiler_measurements.py`` (batch by batch, so memory stays small).

Rows go in with ``executemany`` inside one transaction, ``journal_mode=OFF`` and
``synchronous=OFF``; the file is built in a temporary name, renamed into place and then
marked complete, and rebuilt only when a parameter changes.

Run ``python benchmarks/_cellprofiler_sqlite.py [--cache-dir DIR] [--force]`` to build it and
print its location, generation time and size.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
from plate import (
    CHANNEL_LABELS,
    DEFAULT_CACHE_DIR,
    FIELD_COUNT,
    LEVEL_SHAPES,
    PLATE_NAME,
    plate_columns,
    plate_rows,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.cellprofiler_measurements import (
    PlateProfiles,
    image_csv_bytes,
    image_table,
    object_tables,
)
from fixtures.cellprofiler_sqlite import create_indexes, sqlite_insert

#: Bump when the generated layout changes so stale caches get rebuilt.
GENERATOR_VERSION = 1
SQLITE_NAME = f"{PLATE_NAME}_cellprofiler.sqlite"
#: Images per insert batch (about 18,500 nuclei).
BATCH_IMAGES = 64


@dataclass(frozen=True)
class SqliteParameters:
    """Everything the generated file depends on (recorded in the cache marker)."""

    wells: int = 384
    sites_per_well: int = FIELD_COUNT
    nuclei: int = 1_000_000
    nuclei_features: int = 100
    cells_features: int = 20
    seed: int = 0
    indexes: bool = True


def plate_sites(wells: int, sites_per_well: int) -> tuple[tuple[str, int], ...]:
    """(well, 1-based site) pairs in plate order: A01 sites 1..9, A02, ..."""
    return tuple(
        (f"{row}{int(col):02d}", site)
        for row in plate_rows(wells)
        for col in plate_columns(wells)
        for site in range(1, sites_per_well + 1)
    )


def plate_profiles(params: SqliteParameters) -> PlateProfiles:
    """The nuclei description: ``params.nuclei`` objects spread evenly over the images."""
    sites = plate_sites(params.wells, params.sites_per_well)
    edges = np.arange(len(sites) + 1, dtype=np.int64) * params.nuclei // len(sites)
    height, width = LEVEL_SHAPES[0][2:]
    return PlateProfiles(
        plate=PLATE_NAME,
        sites=sites,
        objects_per_image=tuple(int(n) for n in np.diff(edges)),
        seed=params.seed,
        compartments=("Nuclei",),
        n_features=params.nuclei_features,
        channels=CHANNEL_LABELS,
        image_size=(width, height),
    )


def _prefixed(table: pa.Table, prefix: str) -> pa.Table:
    keep = ("TableNumber", "ImageNumber", "ObjectNumber")
    return table.rename_columns([n if n in keep else f"{prefix}_{n}" for n in table.column_names])


def write_sqlite(path: Path, params: SqliteParameters) -> None:
    """Write the whole SQLite file at ``path`` (which must not exist)."""
    nuclei = plate_profiles(params)
    cells = replace(nuclei, compartments=("Cells",), n_features=params.cells_features)
    n_images = len(nuclei.sites)
    counts = nuclei.counts()
    both = replace(nuclei, compartments=("Cells", "Nuclei"))
    table_numbers = [
        hashlib.md5(image_csv_bytes(image_table(both, [1], i, i + 1))).hexdigest()
        for i in range(n_images)
    ]
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")
        connection.execute("BEGIN")
        image = _prefixed(image_table(both, [1] * n_images), "Image")
        sqlite_insert(
            connection, "Image", image.add_column(0, "TableNumber", pa.array(table_numbers)),
            create=True,
        )  # fmt: skip
        for start in range(0, n_images, BATCH_IMAGES):
            stop = min(start + BATCH_IMAGES, n_images)
            owners = np.repeat(np.arange(start, stop), counts[start:stop])
            keys = {
                "TableNumber": pa.array(table_numbers[start:stop]).take(owners - start),
                "ImageNumber": pa.array(np.ones(len(owners), dtype=np.int64)),
            }
            for name, spec in (("Nuclei", nuclei), ("Cells", cells)):
                table = object_tables(spec, start, stop)[name]
                for position, (key, column) in enumerate(keys.items()):
                    table = table.add_column(position, key, column)
                sqlite_insert(connection, name, _prefixed(table, name), create=start == 0)
        if params.indexes:
            create_indexes(connection, ("Cells", "Nuclei"), image_prefix=True)
        connection.execute("COMMIT")
    finally:
        connection.close()


def verify_sqlite(path: Path, params: SqliteParameters) -> None:
    """Cheap checks: table names, image count and object count (max rowid)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        assert {"Image", "Nuclei", "Cells"} <= tables, tables
        images = connection.execute("SELECT count(*) FROM Image").fetchone()[0]
        assert images == params.wells * params.sites_per_well, images
        for name in ("Nuclei", "Cells"):
            rows = connection.execute(f"SELECT max(rowid) FROM {name}").fetchone()[0]
            assert rows == params.nuclei, (name, rows)
    finally:
        connection.close()


def ensure_benchmark_sqlite(
    cache_dir: Path | None = None, force: bool = False, params: SqliteParameters | None = None
) -> Path:
    """Return the path of the benchmark SQLite, generating it when absent or stale."""
    from plate import ensure_cached

    params = params or SqliteParameters()
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    name = (
        SQLITE_NAME if params == SqliteParameters() else f"{PLATE_NAME}_cp_{params.nuclei}.sqlite"
    )

    def build(tmp: Path) -> None:
        write_sqlite(tmp, params)
        verify_sqlite(tmp, params)

    return ensure_cached(
        cache_dir / name,
        marker=cache_dir / f"{name}.complete",
        lock=cache_dir / f"{name}.lock",
        payload={"generator_version": GENERATOR_VERSION, **asdict(params)},
        build=build,
        force=force,
    )


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the benchmark SQLite and print a short summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help="rebuild the file")
    parser.add_argument("--nuclei", type=int, default=SqliteParameters.nuclei)
    args = parser.parse_args(argv)
    params = SqliteParameters(nuclei=args.nuclei)
    start = time.perf_counter()
    path = ensure_benchmark_sqlite(args.cache_dir, force=args.force, params=params)
    elapsed = time.perf_counter() - start
    print(f"sqlite:  {path}")
    print(f"ensure:  {elapsed:.1f} s")
    print(
        f"layout:  {params.wells} wells × {params.sites_per_well} sites, "
        f"{params.nuclei:,} nuclei × {params.nuclei_features} features, "
        f"{params.nuclei:,} cells × {params.cells_features} features"
    )
    print(f"on disk: {path.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
