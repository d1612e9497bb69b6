"""Bursts of first writers: eight ``register`` processes at once on a brand-new catalog.

Proves docs/safety.md section 4: creating the catalog's own tables, the namespace
and the Iceberg tables is idempotent under races, and commits that lose a race
are retried, so no writer fails and no row is lost or duplicated. Every burst
starts eight processes, forked from this warmed-up test process, that wait on one
barrier and then each resolve the catalog and register the same small store under
their own dataset id, on a catalog nobody has touched yet: a fresh embedded SQLite
catalog, or a fresh PostgreSQL database. 20 bursts per backend.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from iceberg_bioimage import embedded_catalog, load_catalog_table, register_store
from iceberg_bioimage.api import find_interrupted_registrations
from iceberg_bioimage.catalog.resolve import resolve_catalog

#: About 2.5 s a burst, mostly pyiceberg's commit back-off (8 writers on one table).
pytestmark = pytest.mark.slow

WRITERS = 8
BURSTS = 20
NS = "bioimage"
PG_CATALOG = "burst"
FORK = multiprocessing.get_context("fork")


def _writer(
    index: int, store: str, env: dict[str, str], catalog: str, start: Any, errors: str
) -> None:
    """One forked writer: wait for the others, then resolve the catalog and register."""
    try:
        os.environ.update(env)
        start.wait(60)
        # the catalog (and its SQL tables) is created here, inside the child, racing
        resolved = resolve_catalog(catalog).catalog
        register_store(store, resolved, NS, publish_chunks=True, dataset_id=f"ds{index}")
    except BaseException as error:
        Path(errors, f"ds{index}.txt").write_text(f"{error!r}\n{traceback.format_exc()}")
        os._exit(1)


def _burst(store: Path, env: dict[str, str], catalog: str, errors: Path) -> list[int | None]:
    """Start the writers together; return their exit codes."""
    errors.mkdir()
    start = FORK.Barrier(WRITERS + 1)
    writers = [
        FORK.Process(
            target=_writer, args=(i, str(store), env, catalog, start, str(errors)), daemon=True
        )
        for i in range(WRITERS)
    ]
    gc.freeze()  # children leave the inherited heap alone: no copy-on-write storm
    try:
        for writer in writers:
            writer.start()
    finally:
        gc.unfreeze()
    start.wait(60)
    for writer in writers:
        writer.join(120)
        if writer.exitcode is None:
            writer.kill()
            writer.join()
    return [writer.exitcode for writer in writers]


def _check(catalog: Any, store: Any, codes: list[int | None], errors: Path, where: str) -> None:
    failures = {p.stem: p.read_text() for p in sorted(errors.iterdir())}
    assert codes == [0] * WRITERS and not failures, (
        f"{where}: writers exited {codes}; errors:\n" + "\n".join(failures.values())
    )
    expected_arrays = sorted(store.expected["array_paths"])
    expected_chunks = sorted(
        (path, key) for path, keys in store.expected["chunk_keys"].items() for key in keys
    )
    ids = [f"ds{i}" for i in range(WRITERS)]
    images = load_catalog_table(catalog, NS, "image_assets", columns=["dataset_id", "array_path"])
    chunks = load_catalog_table(
        catalog, NS, "chunk_index", columns=["dataset_id", "array_path", "chunk_key"]
    )
    assert (images.num_rows, chunks.num_rows) == (
        WRITERS * len(expected_arrays),
        WRITERS * len(expected_chunks),
    ), (
        f"{where}: image_assets has {images.num_rows} rows, chunk_index {chunks.num_rows}; "
        f"expected {WRITERS} x {len(expected_arrays)} and {WRITERS} x {len(expected_chunks)}"
    )
    for dataset in ids:
        mine = pc.equal(images["dataset_id"], dataset)
        arrays = sorted(images.filter(mine)["array_path"].to_pylist())
        assert arrays == expected_arrays, f"{where}: {dataset} image_assets arrays {arrays}"
        own = chunks.filter(pc.equal(chunks["dataset_id"], dataset))
        pairs = sorted(
            zip(own["array_path"].to_pylist(), own["chunk_key"].to_pylist(), strict=True)
        )
        assert pairs == expected_chunks, (
            f"{where}: {dataset} has {len(pairs)} chunk rows ({len(set(pairs))} distinct), "
            f"expected {len(expected_chunks)}"
        )
    assert sorted(pc.unique(images["dataset_id"]).to_pylist()) == ids, where
    interrupted = find_interrupted_registrations(catalog, NS)
    assert interrupted == {}, f"{where}: interrupted registrations {interrupted}"


@pytest.fixture(scope="module")
def store(datasets) -> Any:
    """A small NGFF image (3 arrays, 36 chunks) every writer registers."""
    return datasets["image05"]


@contextmanager
def _disposed(catalog: Any) -> Iterator[Any]:
    """Close the catalog's connections before the next fork."""
    try:
        yield catalog
    finally:
        catalog.engine.dispose()


@pytest.fixture(scope="module")
def warm(store, tmp_path_factory) -> None:
    """Register once in this process, so forked writers start with everything imported."""
    folder = tmp_path_factory.mktemp("warm")
    with _disposed(embedded_catalog(folder)) as catalog:
        register_store(store.path, catalog, NS, publish_chunks=True, dataset_id="warm")
        find_interrupted_registrations(catalog, NS)


def _report(backend: str, elapsed: float) -> None:
    print(f"{backend}: {BURSTS} bursts of {WRITERS} writers in {elapsed:.1f}s")


def test_eight_first_writers_on_new_embedded_catalogs(store, warm, tmp_path):
    started = time.perf_counter()
    for burst in range(BURSTS):
        folder = tmp_path / f"catalog{burst:02d}"
        errors = tmp_path / f"errors{burst:02d}"
        codes = _burst(store.path, {"ICEBERG_BIOIMAGE_WAREHOUSE": str(folder)}, "default", errors)
        with _disposed(embedded_catalog(folder)) as catalog:
            _check(catalog, store, codes, errors, f"SQLite burst {burst}")
    _report("sqlite", time.perf_counter() - started)


@contextmanager
def _database(pg_uri: str, name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the ``pg_uri`` server; dropped afterwards."""
    admin = create_engine(pg_uri, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_uri).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _pg_env(uri: str, folder: Path) -> dict[str, str]:
    """Configure catalog ``burst`` (``PYICEBERG_CATALOG__BURST__*``) as a SqlCatalog on ``uri``."""
    prefix = f"PYICEBERG_CATALOG__{PG_CATALOG.upper()}__"
    return {f"{prefix}TYPE": "sql", f"{prefix}URI": uri, f"{prefix}WAREHOUSE": folder.as_uri()}


def test_eight_first_writers_on_new_postgres_catalogs(store, warm, pg_uri, tmp_path):
    run = uuid.uuid4().hex[:8]
    # warm up the PostgreSQL driver in this process, on a scratch database
    with _database(pg_uri, f"burst_{run}_warm") as uri, pytest.MonkeyPatch.context() as patch:
        for key, value in _pg_env(uri, tmp_path / "warm").items():
            patch.setenv(key, value)
        with _disposed(resolve_catalog(PG_CATALOG).catalog) as catalog:
            register_store(store.path, catalog, NS, publish_chunks=True, dataset_id="warm")
    started = time.perf_counter()
    for burst in range(BURSTS):
        folder = tmp_path / f"warehouse{burst:02d}"
        errors = tmp_path / f"errors{burst:02d}"
        with _database(pg_uri, f"burst_{run}_{burst:02d}") as uri:
            codes = _burst(store.path, _pg_env(uri, folder), PG_CATALOG, errors)
            catalog = SqlCatalog(PG_CATALOG, uri=uri, warehouse=folder.as_uri())
            with _disposed(catalog):
                _check(catalog, store, codes, errors, f"PostgreSQL burst {burst}")
    _report("postgresql", time.perf_counter() - started)
