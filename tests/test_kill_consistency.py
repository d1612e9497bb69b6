"""SIGKILL at random moments: readers see the before or the after state, never a mix.

Proves docs/safety.md section 3. Each command (``export-cytomining --profiles``,
``register --publish-chunks``, ``ingest``) runs in a child forked from this already
warmed-up process (no interpreter start-up per run) and is killed with SIGKILL
after a random delay drawn from ``[0, 1.2 T]``, ``T`` being one uninterrupted run.
After every kill the warehouse or catalog is read back with real readers and
must hold exactly the state before the run or the state after it: Cytomining
exports validate and follow the manifest; in the catalog, a dataset's
``image_assets`` rows always come with its complete ``chunk_index`` rows, and
new chunks under old (or no) images are allowed only for a registration that
``find_interrupted_registrations`` names. A final uninterrupted run repairs
everything and leaves no staging folder or temporary manifest.

Set ``ICEBERG_BIOIMAGE_KILL_SEED`` to replay a failing sequence of delays.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import random
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import zarr

from fixtures import writers
from iceberg_bioimage import (
    TableNotFoundError,
    embedded_catalog,
    load_catalog_table,
    load_warehouse_manifest,
    validate_warehouse,
)
from iceberg_bioimage.api import find_interrupted_registrations
from iceberg_bioimage.cli import main
from iceberg_bioimage.models.warehouse import MANIFEST_NAME
from iceberg_bioimage.warehouse.write import (
    LOCK_NAME,
    STAGING_PREFIX,
    WRITTEN_FILE,
    read_table,
)

SEED = int(os.environ.get("ICEBERG_BIOIMAGE_KILL_SEED", "20240607"))
KILLS = 22
SPREAD = 1.2  # delays are drawn from [0, SPREAD * T]
NS = "bioimage"
WAREHOUSE_ENV = "ICEBERG_BIOIMAGE_WAREHOUSE"
FORK = multiprocessing.get_context("fork")

IMAGE_COLUMNS = ["dataset_id", "image_id", "array_path", "uri", "chunk_count"]
CHUNK_COLUMNS = ["dataset_id", "image_id", "array_path", "uri", "chunk_key"]


# -- running the CLI in a forked child ------------------------------------------------


def _cli_child(args: list[str], env: dict[str, str], log: str) -> None:
    """Run ``iceberg-bioimage ARGS`` in this forked child; it ends in ``sys.exit``."""
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)  # noqa: SIM115
    main.main(args=["--quiet", *args], prog_name="iceberg-bioimage", standalone_mode=True)


class Runner:
    """Forks children running commands in one environment; times runs, or kills them."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log

    def _start(self, args: list[str]) -> Any:
        gc.freeze()  # the child's garbage collector leaves the inherited heap alone (no copying)
        try:
            process = FORK.Process(
                target=_cli_child, args=(args, self.env, str(self.log)), daemon=True
            )
            process.start()
        finally:
            gc.unfreeze()
        return process

    def complete(self, args: list[str]) -> float:
        """Run to the end; assert exit 0; return the wall time."""
        start = time.perf_counter()
        process = self._start(args)
        process.join(120)
        elapsed = time.perf_counter() - start
        assert process.exitcode == 0, (
            f"iceberg-bioimage {' '.join(args)} exited {process.exitcode}:\n"
            f"{self.log.read_text(errors='replace')}"
        )
        return elapsed

    def kill_after(self, delay: float, args: list[str]) -> int | None:
        """Start, SIGKILL after ``delay`` seconds unless it ended; return its exit code."""
        process = self._start(args)
        process.join(delay)
        if process.exitcode is None:
            os.kill(process.pid, signal.SIGKILL)
        process.join(120)
        assert process.exitcode in (0, -signal.SIGKILL), (
            f"iceberg-bioimage {' '.join(args)} exited {process.exitcode} "
            f"(neither success nor SIGKILL):\n{self.log.read_text(errors='replace')}"
        )
        return process.exitcode


def _leftovers(root: Path) -> list[str]:
    return sorted(
        p.name
        for p in root.iterdir()
        if p.name.startswith(STAGING_PREFIX)
        or (p.name.startswith(f".{MANIFEST_NAME}.") and p.name.endswith(".tmp"))
    )


@pytest.fixture(scope="module")
def warm(datasets, tmp_path_factory) -> None:
    """Run every command once in this process, so forked children start warm."""
    scratch = tmp_path_factory.mktemp("warm")
    plate = str(datasets["plate04"].path)
    cells = writers.write_profiles(scratch, datasets["plate04"], cells_per_field=2)
    commands = [
        ["register", plate, "--publish-chunks", "--dataset-id", "warm"],
        ["ingest", plate, "--replace"],
        ["tables", "--json"],
        [
            "export-cytomining",
            plate,
            "--warehouse-root",
            str(scratch / "wh"),
            "--profiles",
            str(cells.path),
            "--profile-dataset-id",
            "plate04",
        ],
        ["validate-warehouse", str(scratch / "wh")],
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WAREHOUSE_ENV, str(scratch / "catalog"))
        for args in commands:
            main.main(args=["--quiet", *args], prog_name="iceberg-bioimage", standalone_mode=False)
        with _catalog(scratch / "catalog") as catalog:
            find_interrupted_registrations(catalog, NS)
            load_catalog_table(catalog, NS, "chunk_index", columns=CHUNK_COLUMNS)


def _delays(rng: random.Random, duration: float) -> list[float]:
    return [round(rng.uniform(0, SPREAD * duration), 4) for _ in range(KILLS)]


def _report(command: str, duration: float, history: list[tuple[Any, ...]]) -> None:
    """Print what the kills hit (``pytest -s``); many must have stopped a running command."""
    outcomes = Counter(outcome for *_, outcome in history)
    print(f"{command}: one run {duration:.3f}s, seed {SEED}, outcomes {dict(outcomes)}")
    killed = sum(code != 0 for _, _, code, _ in history)
    assert killed >= KILLS // 4, (
        f"{command}: only {killed} of {KILLS} runs were killed before they ended: {history}"
    )


# -- export-cytomining --profiles ------------------------------------------------------


def _warehouse_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """What a manifest-following reader sees: per table rows, datasets, stores, columns."""
    state = {}
    for entry in load_warehouse_manifest(root).tables:
        data = read_table(root, entry)
        listed = sum(f.rows for f in entry.files)
        assert data.num_rows == listed, (
            f"{entry.table_name}: the manifest lists {listed} rows, its files hold {data.num_rows}"
        )
        uris = sorted(pc.unique(data["uri"]).to_pylist()) if "uri" in data.column_names else []
        datasets = sorted(pc.unique(data["dataset_id"]).to_pylist())
        state[entry.table_name] = (data.num_rows, tuple(datasets), tuple(uris), entry.datasets)
    return state


def test_killed_export_leaves_the_before_or_the_after_warehouse(datasets, warm, tmp_path):
    # Two exports under one dataset id whose every table differs: the plate04 store
    # with 20,000 cells per field (160,000 profile rows), or plate05 with 24,000
    # (192,000 rows): big enough that one run takes about 0.3 s.
    stores = {"A": datasets["plate04"], "B": datasets["plate05"]}
    profiles = {
        "A": writers.write_profiles(tmp_path / "cells_a", stores["A"], cells_per_field=20_000),
        "B": writers.write_profiles(tmp_path / "cells_b", stores["B"], cells_per_field=24_000),
    }

    def args(variant: str, root: Path) -> list[str]:
        return [
            "export-cytomining",
            str(stores[variant].path),
            "--warehouse-root",
            str(root),
            "--dataset-id",
            "P",
            "--profiles",
            str(profiles[variant].path),
            "--profile-dataset-id",
            "P",
        ]

    root = tmp_path / "wh"
    runner = Runner({}, tmp_path / "export.log")
    references, durations = {}, []
    for variant in ("A", "B"):
        durations.append(runner.complete(args(variant, tmp_path / f"ref_{variant}")))
        references[variant] = _warehouse_state(tmp_path / f"ref_{variant}")
    assert references["A"] != references["B"]
    runner.complete(args("A", root))
    duration = min(durations)
    delays = _delays(random.Random(SEED), duration)
    history = []
    for kill, delay in enumerate(delays):
        before = _warehouse_state(root)
        (current,) = [v for v, ref in references.items() if ref == before]
        target = "B" if current == "A" else "A"
        code = runner.kill_after(delay, args(target, root))
        where = (
            f"seed {SEED}, kill {kill} of {KILLS} after {delay:.4f}s (one run takes "
            f"{duration:.3f}s; exit {code}), export {current} -> {target}; earlier kills "
            f"(delay, target, exit, outcome): {history}"
        )
        result = validate_warehouse(root)
        assert result.is_valid, f"{where}: validate-warehouse fails: {result.errors}"
        after = _warehouse_state(root)
        assert after in (before, references[target]), (
            f"{where}: readers see neither the before nor the after warehouse:\n"
            f"  before {before}\n  after  {references[target]}\n  seen   {after}"
        )
        if code == 0:
            assert after == references[target], f"{where}: a complete run left {after}"
        outcome = "after" if after == references[target] else "before"
        history.append((delay, target, code, outcome + "+leftovers" * bool(result.warnings)))
    _report("export-cytomining", duration, history)

    final = "B" if _warehouse_state(root) == references["A"] else "A"
    runner.complete(args(final, root))
    result = validate_warehouse(root)
    assert result.is_valid and not result.warnings, (
        f"after the re-run: errors {result.errors}, warnings {result.warnings}"
    )
    assert _warehouse_state(root) == references[final]
    assert _leftovers(root) == [], f"the re-run left {_leftovers(root)} in {root}"
    manifest = load_warehouse_manifest(root)
    for entry in manifest.tables:
        listed = {f.path for f in entry.files}
        unlisted = sorted(
            p.name
            for p in (root / entry.path).iterdir()
            if WRITTEN_FILE.fullmatch(p.name) and p.name not in listed
        )
        assert unlisted == [], f"{entry.table_name}: files no manifest lists remain: {unlisted}"
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == [LOCK_NAME]


# -- register --publish-chunks and ingest ----------------------------------------------


@contextmanager
def _catalog(folder: Path) -> Iterator[Any]:
    """The embedded catalog in ``folder``, its connections closed afterwards (before forks)."""
    catalog = embedded_catalog(folder)
    try:
        yield catalog
    finally:
        catalog.engine.dispose()


# A dataset's rows in one table: IMAGE_COLUMNS[1:] or CHUNK_COLUMNS[1:], sorted by SORT_KEY.
SORT_KEY = {"image_assets": "array_path", "chunk_index": "chunk_key"}
State = dict[str, tuple[str | None, str | None]]


def _sorted(rows: pa.Table, table: str) -> pa.Table:
    return rows.sort_by([(SORT_KEY[table], "ascending")]).combine_chunks()


def _same(a: pa.Table, b: pa.Table) -> bool:
    return a.column_names == b.column_names and all(a[c].equals(b[c]) for c in a.column_names)


def _by_dataset(catalog: Any, table: str, columns: list[str]) -> dict[str, pa.Table]:
    try:
        data = load_catalog_table(catalog, NS, table, columns=columns)
    except TableNotFoundError:
        return {}
    ids = pc.unique(data["dataset_id"]).to_pylist()
    parts = [data] if len(ids) == 1 else [data.filter(pc.equal(data["dataset_id"], i)) for i in ids]
    return {
        i: _sorted(part.drop(["dataset_id"]), table) for i, part in zip(ids, parts, strict=True)
    }


def _variant(
    dataset_id: str, uri: str, arrays: dict[str, tuple[str, list[str]]]
) -> tuple[pa.Table, pa.Table]:
    """Expected ``image_assets`` and ``chunk_index`` rows of one store registered as ``dataset_id``.

    ``arrays`` maps each array path to its image path and its chunk keys (ground truth
    from the fixture writers).
    """
    images: dict[str, list[Any]] = {c: [] for c in IMAGE_COLUMNS[1:]}
    chunks: dict[str, list[Any]] = {c: [] for c in CHUNK_COLUMNS[1:]}
    for array_path, (image_path, keys) in arrays.items():
        image_id = f"{dataset_id}:{image_path}" if image_path else dataset_id
        for column, value in zip(images, (image_id, array_path, uri, len(keys)), strict=True):
            images[column].append(value)
        chunks["image_id"] += [image_id] * len(keys)
        chunks["array_path"] += [array_path] * len(keys)
        chunks["uri"] += [uri] * len(keys)
        chunks["chunk_key"] += keys
    types = {"chunk_count": pa.int64()}
    return (
        _sorted(
            pa.table({c: pa.array(v, types.get(c, pa.string())) for c, v in images.items()}),
            "image_assets",
        ),
        _sorted(pa.table({c: pa.array(v, pa.string()) for c, v in chunks.items()}), "chunk_index"),
    )


def _plate_variant(dataset_id: str, plate: writers.Fixture, uri: str) -> tuple[pa.Table, pa.Table]:
    arrays = {}
    for array_path, array in plate.expected["arrays"].items():
        keys = plate.expected["chunk_keys"][array_path]
        assert len(keys) == array["chunk_count"], f"fixture {array_path} is partially written"
        arrays[array_path] = (array["image_id"].split(":", 1)[1], keys)
    return _variant(dataset_id, uri, arrays)


def _describe(rows: pa.Table) -> str:
    counts = rows.group_by(["image_id", "array_path", "uri"]).aggregate([([], "count_all")])
    return f"UNKNOWN ROWS ({rows.num_rows} rows; per array: {counts.to_pylist()[:4]}...)"


class CatalogModel:
    """Known variants of every dataset; reads the catalog back as ``{dataset: (images, chunks)}``.

    A variant names the store a dataset's rows come from (``None``: no rows). Rows
    that match no variant exactly (partial, mixed or duplicated) are described instead.
    """

    def __init__(self, folder: Path, variants: dict[str, dict[str, tuple[pa.Table, pa.Table]]]):
        self.folder, self.variants = folder, variants

    def _name(self, dataset: str, rows: pa.Table | None, which: int) -> str | None:
        if rows is None:
            return None
        for name, expected in self.variants.get(dataset, {}).items():
            if _same(expected[which], rows):
                return name
        return _describe(rows)

    def read(self) -> tuple[State, dict[str, str]]:
        with _catalog(self.folder) as catalog:
            images = _by_dataset(catalog, "image_assets", IMAGE_COLUMNS)
            chunks = _by_dataset(catalog, "chunk_index", CHUNK_COLUMNS)
            interrupted = find_interrupted_registrations(catalog, NS)
        state = {
            dataset: (
                self._name(dataset, images.get(dataset), 0),
                self._name(dataset, chunks.get(dataset), 1),
            )
            for dataset in sorted({*images, *chunks})
        }
        return state, interrupted


def _check_catalog(
    state: State,
    interrupted: dict[str, str],
    before: State,
    targets: dict[str, str],
    code: int | None,
    where: str,
) -> None:
    """Each dataset: images with their own chunks, before or after; or an interrupted run."""
    assert set(state) <= set(before) | set(targets), f"{where}: unexpected datasets {state}"
    assert set(interrupted) <= set(state), f"{where}: interrupted {interrupted}, state {state}"
    for dataset in sorted(set(state) | set(before)):
        images, chunks = state.get(dataset, (None, None))
        old = before.get(dataset, (None, None))
        new = (targets[dataset], targets[dataset]) if dataset in targets else old
        seen = f"{where}: dataset {dataset}: (image_assets, chunk_index) from {(images, chunks)}"
        if dataset in interrupted:
            # killed between the two commits: old (or no) images, the new chunks
            assert images == old[0] and chunks == new[1], (
                f"{seen}; named interrupted ({interrupted[dataset]}), so expected images "
                f"{old[0]} with chunks {new[1]} (before {old}, after {new})"
            )
        else:
            assert (images, chunks) in (old, new) and images == chunks, (
                f"{seen}; expected exactly the before {old} or the after {new} state "
                f"(interrupted registrations: {interrupted})"
            )
        if code == 0:
            assert (images, chunks) == new and dataset not in interrupted, (
                f"{seen} after a complete run; expected {new}"
            )


def _outcome(state: State, interrupted: dict[str, str], before: State) -> str:
    if interrupted:
        return "interrupted"
    return "before" if state == before else "after"


#: Shape and chunks of the big arrays re-registered under one dataset id: 490,000 chunks,
#: so the chunk_index commit is heavy and one register run takes about 0.3 s.
BIG_SHAPE, BIG_CHUNKS = (7000, 7000), (10, 10)


def _big_array(path: Path, zarr_format: int) -> list[str]:
    """A Zarr array with a big chunk grid (metadata plus one chunk); returns its chunk keys."""
    array = zarr.create_array(
        path, shape=BIG_SHAPE, chunks=BIG_CHUNKS, dtype="uint8", zarr_format=zarr_format
    )
    array[: BIG_CHUNKS[0], : BIG_CHUNKS[1]] = 7
    if zarr_format == 2:
        encoding, separator = "v2", array.metadata.dimension_separator
    else:
        encoding = array.metadata.chunk_key_encoding.name
        separator = array.metadata.chunk_key_encoding.separator
    assert writers.list_chunk_keys(path) == [separator.join(["c", "0", "0"][encoding == "v2" :])]
    return writers.chunk_grid_keys(
        "", BIG_SHAPE, BIG_CHUNKS, encoding=encoding, separator=separator
    )


def test_killed_register_keeps_images_and_chunks_consistent(warm, tmp_path):
    # Dataset X flips between two stores (Zarr v2 and v3 keys) at every kill
    # (register --replace), so the states before and after each killed run differ.
    uris, arrays = {}, {}
    for name, zarr_format in (("v2", 2), ("v3", 3)):
        path = tmp_path / f"big_{name}.zarr"
        arrays[name] = {"": ("", _big_array(path, zarr_format))}
        uris[name] = str(path.resolve())
    folder = tmp_path / "catalog"
    model = CatalogModel(
        folder, {"X": {name: _variant("X", uris[name], arrays[name]) for name in uris}}
    )
    runner = Runner({WAREHOUSE_ENV: str(folder)}, tmp_path / "register.log")

    def args(store: str) -> list[str]:
        return ["register", uris[store], "--publish-chunks", "--dataset-id", "X", "--replace"]

    runner.complete(args("v2"))
    duration = min(runner.complete(args(name)) for name in ("v3", "v2"))
    delays = _delays(random.Random(SEED + 1), duration)
    history: list[tuple[Any, ...]] = []
    before, _ = model.read()
    assert before == {"X": ("v2", "v2")}, f"registering v2 as X gave {before}"
    for kill, delay in enumerate(delays):
        target = "v3" if before["X"][0] == "v2" else "v2"
        code = runner.kill_after(delay, args(target))
        state, interrupted = model.read()
        where = (
            f"seed {SEED + 1}, kill {kill} of {KILLS} after {delay:.4f}s (one run takes "
            f"{duration:.3f}s; exit {code}), register X -> {target} over {before}; earlier "
            f"kills (delay, target, exit, outcome): {history}"
        )
        _check_catalog(state, interrupted, before, {"X": target}, code, where)
        history.append((delay, target, code, _outcome(state, interrupted, before)))
        before = state
    _report("register", duration, history)

    target = "v3" if before["X"][0] == "v2" else "v2"
    runner.complete(args(target))
    state, interrupted = model.read()
    assert state == {"X": (target, target)} and interrupted == {}, (
        f"the re-run left {state}, interrupted {interrupted}"
    )
    assert _leftovers(folder) == []


def test_killed_ingest_keeps_images_and_chunks_consistent(datasets, warm, tmp_path):
    # Two folders holding plates with the same names (so the same dataset ids) but
    # different content; every kill ingests the folder the catalog does not show.
    # The first kills land on an empty catalog (tables not even created yet).
    names = tuple(f"p{i:02d}" for i in range(16))
    sources = {
        "A": ("plate04", "plate05") * 8,
        "B": ("plate05", "plate04") * 8,
    }
    variants: dict[str, dict[str, tuple[pa.Table, pa.Table]]] = {name: {} for name in names}
    for folder_name, plates in sources.items():
        for name, plate in zip(names, plates, strict=True):
            store = tmp_path / folder_name / f"{name}.ome.zarr"
            shutil.copytree(datasets[plate].path, store)
            uri = str(store.resolve())
            variants[name][folder_name] = _plate_variant(name, datasets[plate], uri)
    folder = tmp_path / "catalog"
    model = CatalogModel(folder, variants)
    runner = Runner({WAREHOUSE_ENV: str(folder)}, tmp_path / "ingest.log")

    def args(source: str) -> list[str]:
        return ["ingest", "--glob", "*.ome.zarr", str((tmp_path / source).resolve()), "--replace"]

    # time two complete runs in a scratch catalog; the kills start on an empty one
    timer = Runner({WAREHOUSE_ENV: str(tmp_path / "timing")}, tmp_path / "timing.log")
    duration = min(timer.complete(args(source)) for source in ("A", "B"))
    delays = _delays(random.Random(SEED + 2), duration)
    history: list[tuple[Any, ...]] = []
    before, _ = model.read()
    assert before == {}
    for kill, delay in enumerate(delays):
        target = "B" if {images for images, _ in before.values()} == {"A"} else "A"
        code = runner.kill_after(delay, args(target))
        state, interrupted = model.read()
        where = (
            f"seed {SEED + 2}, kill {kill} of {KILLS} after {delay:.4f}s (one run takes "
            f"{duration:.3f}s; exit {code}), ingest {target} over {before}; earlier kills "
            f"(delay, target, exit, outcome): {history}"
        )
        _check_catalog(state, interrupted, before, dict.fromkeys(names, target), code, where)
        # one commit per table for the whole batch: all datasets flip together
        assert set(state) in (set(), set(names)), f"{where}: only some datasets: {state}"
        assert len(set(state.values())) <= 1, f"{where}: datasets disagree: {state}"
        history.append((delay, target, code, _outcome(state, interrupted, before)))
        before = state
    _report("ingest", duration, history)

    target = "B" if {images for images, _ in before.values()} == {"A"} else "A"
    runner.complete(args(target))
    state, interrupted = model.read()
    assert state == dict.fromkeys(names, (target, target)) and interrupted == {}, (
        f"the re-run left {state}, interrupted {interrupted}"
    )
    assert _leftovers(folder) == []
