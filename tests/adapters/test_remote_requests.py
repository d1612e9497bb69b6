"""Request economy of remote scans, counted by a proxy in front of a real S3 server (moto).

The plate is 96 wells × 4 fields × 3 levels (OME-NGFF 0.4, metadata only). A scan
must read each metadata document with one GET (no HEAD before it: s3fs does that
when ``max_concurrency`` > 1, our default is 1), list the store at most twice, and
with consolidated metadata make a handful of requests in all.
"""

from __future__ import annotations

import shutil
import warnings
from collections import Counter

import pytest
import zarr

from fixtures.remote_plate import FIELDS, LEVEL_SHAPES, write_remote_plate
from iceberg_bioimage import scan_store
from iceberg_bioimage.adapters.storage import effective_storage_options
from s3_proxy import counting_proxy, request_kind
from s3_server import s3_storage_options

WELLS = 96
IMAGES = WELLS * FIELDS
ARRAYS = IMAGES * len(LEVEL_SHAPES)
# what the scanner must read: the plate's, wells' and fields' .zattrs, every .zarray
DOCUMENTS = 1 + WELLS + IMAGES + ARRAYS
# what it must ask for although absent: each image's NGFF ``labels`` group, and at
# the root the format probes (.zgroup, .zarray, .zmetadata, zarr.json)
PROBES = IMAGES + 4


@pytest.fixture(scope="module")
def remote_plates(tmp_path_factory, s3_upload):
    """The plate uploaded as it is and consolidated: ``{"plain": uri, "consolidated": uri}``."""
    root = tmp_path_factory.mktemp("remote-requests")
    plate = write_remote_plate(root / "plate.ome.zarr")
    copy = root / "consolidated" / plate.name
    shutil.copytree(plate, copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(copy))
    # A consolidated scan reads only the root's documents: upload just those (the
    # per-node files are in .zmetadata), which also proves nothing else is fetched.
    for child in copy.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    return {
        "plain": s3_upload(plate, "requests/plate.ome.zarr"),
        "consolidated": s3_upload(copy, "requests/consolidated/plate.ome.zarr"),
    }


def _counted_scan(endpoint, uri, **options):
    with counting_proxy(endpoint) as counter:
        result = scan_store(
            uri, storage_options={**s3_storage_options(counter.endpoint), **options}
        )
    return result, counter


def test_one_get_per_document_no_head_per_get(s3_endpoint, remote_plates):
    result, counter = _counted_scan(s3_endpoint, remote_plates["plain"])
    assert (result.image_count, result.array_count) == (IMAGES, ARRAYS)
    counts = counter.snapshot()
    assert counts["GET"] <= DOCUMENTS + PROBES, counts
    assert counts["HEAD"] <= 2, counts
    assert counts["LIST"] <= 2, counts
    gets = Counter(path for method, path in counter.log if request_kind(method, path) == "GET")
    assert max(gets.values()) == 1, [p for p, n in gets.items() if n > 1][:5]


def test_the_control_s3fs_defaults_send_a_head_per_get(s3_endpoint, remote_plates):
    """Without our default (s3fs's max_concurrency=10) every document costs a HEAD too."""
    _result, counter = _counted_scan(s3_endpoint, remote_plates["plain"], max_concurrency=10)
    assert counter.snapshot()["HEAD"] > DOCUMENTS


def test_consolidated_metadata_takes_a_handful_of_requests(s3_endpoint, remote_plates):
    result, counter = _counted_scan(s3_endpoint, remote_plates["consolidated"])
    assert (result.image_count, result.array_count) == (IMAGES, ARRAYS)
    assert counter.total <= 10, counter.log


def test_user_options_win_over_the_s3_defaults():
    merged = effective_storage_options(
        "s3://b/p.zarr", {"max_concurrency": 4, "config_kwargs": {"retries": {"max_attempts": 2}}}
    )
    assert merged["max_concurrency"] == 4
    assert merged["config_kwargs"] == {"max_pool_connections": 64, "retries": {"max_attempts": 2}}
    assert effective_storage_options("s3://b/p.zarr", None) == {
        "max_concurrency": 1,
        "config_kwargs": {"max_pool_connections": 64},
    }
    assert effective_storage_options("memory://p.zarr", {"x": 1}) == {"x": 1}
