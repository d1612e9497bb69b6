"""Shared fixtures: every dataset is written once per session by the real libraries."""

from __future__ import annotations

import pytest

from fixtures import writers

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
