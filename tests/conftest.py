"""Shared fixtures: every dataset is written once per session by the real libraries."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import Any

import pytest
from hypothesis import settings

from fixtures import writers
from pg_server import postgres_bin, postgres_server
from s3_server import moto_s3_server, s3_storage_options
from written_warehouses import WrittenWarehouses

# CI runs every property test derandomized: the same examples each run, the bugs they
# found kept as @example. `ICEBERG_BIOIMAGE_FUZZ=wide` draws new ones (with --hypothesis-seed).
# No per-example deadline: a wall-clock deadline fails examples at random on a loaded
# machine; runaway examples are bounded in CPU time and memory instead (tests/bounds.py).
settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("wide", derandomize=False, database=None, deadline=None)
settings.load_profile(os.environ.get("ICEBERG_BIOIMAGE_FUZZ", "ci"))

DATASET_WRITERS = {
    "plate04": writers.write_ngff04_plate,
    "plate05": writers.write_ngff05_plate,
    "image05": writers.write_ngff05_image,
    "sharded": writers.write_sharded_v3,
    "slash": writers.write_v2_slash,
    "v2enc": writers.write_v3_v2encoding,
    "pyramid": writers.write_pyramid_ome_tiff,
    "strips": writers.write_stripped_tiff,
    "hyper": writers.write_imagej_tiff,
}


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, writers.Fixture]:
    """Every test dataset with the ground truth its writer recorded."""
    root = tmp_path_factory.mktemp("datasets")
    return {name: write(root) for name, write in DATASET_WRITERS.items()}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of a moto S3 server on 127.0.0.1, started once per session."""
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_options(s3_endpoint: str) -> dict[str, Any]:
    """fsspec/s3fs ``storage_options`` that reach :func:`s3_endpoint`."""
    return s3_storage_options(s3_endpoint)


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """SQLAlchemy URI of a PostgreSQL server: ``$ICEBERG_BIOIMAGE_TEST_PG_URI`` or a private one.

    CI installs PostgreSQL (`.ci/run`), so there a missing server fails the run.
    """
    given = os.environ.get("ICEBERG_BIOIMAGE_TEST_PG_URI")
    if given:
        yield given
        return
    if postgres_bin() is None:
        message = "PostgreSQL is not installed (apt-get install -y postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with postgres_server() as uri:
        yield uri


@pytest.fixture
def written_warehouses(monkeypatch: pytest.MonkeyPatch) -> WrittenWarehouses:
    """The warehouses this test writes, validated when it passes (``tests/written_warehouses.py``).

    Test files that write warehouses use it for every test:
    ``pytestmark = pytest.mark.usefixtures("written_warehouses")``.
    """
    from iceberg_bioimage.warehouse import write

    written = WrittenWarehouses()
    monkeypatch.setattr(write, "_write_manifest", written.recording(write._write_manifest))
    return written


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Once a test has passed, validate the warehouses it wrote: a rejection fails the test."""
    outcome = yield  # a test that failed on its own is reported as it failed
    written = getattr(item, "funcargs", {}).get("written_warehouses")
    if isinstance(written, WrittenWarehouses):
        written.check(item)
    return outcome
