"""Request economy of remote scans, counted by a proxy in front of a real S3 server (moto).

The plate is 96 wells × 4 fields × 3 levels (OME-NGFF 0.4, metadata only). Issue 13,
acceptance 3: GETs ≤ metadata documents + 2, HEADs ≤ 2, LISTs ≤ 2; with 20 ms added
to every request the scan takes ≤ 1.5× its 0 ms time (timed by
``benchmarks/remote_scan.py``; here, the overlap of requests that makes it hold); with
consolidated metadata ≤ 10 requests in all. The metadata documents are the ones the scan
needs and the store holds: the root's ``.zgroup`` and ``.zattrs``, every well's and field's
``.zattrs`` and every ``.zarray``. Any other GET asks for something absent (a probe).
"""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from pathlib import Path

import pytest
import zarr

from fixtures.remote_plate import FIELDS, LEVEL_SHAPES, write_remote_plate
from iceberg_bioimage import scan_store
from iceberg_bioimage.io.storage import effective_storage_options
from s3_proxy import counting_proxy, request_kind
from s3_server import s3_storage_options

WELLS = 96
IMAGES = WELLS * FIELDS
ARRAYS = IMAGES * len(LEVEL_SHAPES)
DOCUMENTS = 2 + WELLS + IMAGES + ARRAYS
DELAY_S = 0.02
#: Half of the 64 connections our S3 defaults pool (``io/storage.py``); 64 are seen.
MIN_IN_FLIGHT = 32


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
        "local": plate,
        "plain": s3_upload(plate, "requests/plate.ome.zarr"),
        "consolidated": s3_upload(copy, "requests/consolidated/plate.ome.zarr"),
    }


def _counted_scan(endpoint, uri, delay=0.0, **options):
    with counting_proxy(endpoint, delay=delay) as counter:
        result = scan_store(
            uri, storage_options={**s3_storage_options(counter.endpoint), **options}
        )
    return result, counter


def _absent_gets(counter, bucket_prefix: str, local: Path) -> list[str]:
    """GETs of keys the store does not hold (probes answered 404)."""
    paths = [p for m, p in counter.log if request_kind(m, p) == "GET"]
    return [p for p in paths if not (local / p.split(bucket_prefix, 1)[1]).is_file()]


def test_gets_at_most_documents_plus_two_heads_and_lists_at_most_two(s3_endpoint, remote_plates):
    result, counter = _counted_scan(s3_endpoint, remote_plates["plain"])
    assert (result.image_count, result.array_count) == (IMAGES, ARRAYS)
    counts = counter.snapshot()
    assert counts["GET"] <= DOCUMENTS + 2, counts
    assert counts["HEAD"] <= 2, counts
    assert counts["LIST"] <= 2, counts
    gets = Counter(path for method, path in counter.log if request_kind(method, path) == "GET")
    assert max(gets.values()) == 1, [p for p, n in gets.items() if n > 1][:5]
    absent = _absent_gets(counter, "/requests/plate.ome.zarr/", remote_plates["local"])
    # the first field's NGFF labels group: one probe for the plate, not one per field
    assert absent == ["/requests/plate.ome.zarr/A/1/0/labels/.zattrs"], absent[:5]
    assert counts["GET"] - len(absent) == DOCUMENTS


def test_requests_overlap_so_round_trips_add_little(s3_endpoint, remote_plates):
    """With 20 ms per request, many requests are in flight at once, not one at a time.

    1,600 round trips one after another would add 32 s; the scan keeps at least
    :data:`MIN_IN_FLIGHT` requests waiting together, which is what keeps the 20 ms scan
    within 1.5× the 0 ms one. The seconds themselves are measured by
    ``benchmarks/remote_scan.py``: a wall-clock ratio in a test fails at random on a
    loaded machine, the count of overlapping requests does not.
    """
    result, counter = _counted_scan(s3_endpoint, remote_plates["plain"], DELAY_S)
    assert result.array_count == ARRAYS
    assert counter.peak_in_flight >= MIN_IN_FLIGHT, counter.peak_in_flight


def test_the_control_s3fs_defaults_send_a_head_per_get(s3_endpoint, remote_plates):
    """Without our default (s3fs's max_concurrency=10) every document costs a HEAD too."""
    _result, counter = _counted_scan(s3_endpoint, remote_plates["plain"], max_concurrency=10)
    assert counter.snapshot()["HEAD"] >= DOCUMENTS


def test_consolidated_metadata_takes_a_handful_of_requests(s3_endpoint, remote_plates):
    result, counter = _counted_scan(s3_endpoint, remote_plates["consolidated"])
    assert (result.image_count, result.array_count) == (IMAGES, ARRAYS)
    assert counter.total <= 10, counter.log


@pytest.mark.parametrize(
    ("labelled", "found"),
    [
        # every field labelled: all found, one probe per field
        (("A/1/0", "A/1/1", "A/2/0", "A/2/1", "B/1/0", "B/1/1", "B/2/0", "B/2/1"), 8),
        # only the first field: found (the others are probed, 404)
        (("A/1/0",), 1),
        # the first field has none: remotely the others are not probed (defined
        # behaviour, see zarr_store._labels); locally and consolidated they are found
        (("A/2/1",), 0),
    ],
)
def test_plate_labels_are_probed_under_the_first_field(
    tmp_path, s3_endpoint, s3_upload, labelled, found
):
    plate = write_remote_plate(
        tmp_path / "labelled.ome.zarr", rows=("A", "B"), columns=("1", "2"), labelled=labelled
    )
    for field in range(2, FIELDS):  # two fields per well keep it small
        for well in ("A/1", "A/2", "B/1", "B/2"):
            shutil.rmtree(plate / well / str(field))
    for well in ("A/1", "A/2", "B/1", "B/2"):
        attrs = zarr.open_group(plate / well, mode="r+").attrs
        attrs["well"] = {"version": "0.4", "images": [{"path": "0"}, {"path": "1"}]}
    local = scan_store(plate)
    uri = s3_upload(plate, f"requests/labelled-{len(labelled)}-{found}.ome.zarr")
    remote, counter = _counted_scan(s3_endpoint, uri)
    expected = {f"{f}/labels/nuclei" for f in labelled} if found else set()
    local_labels = [a.image_id.split(":", 1)[1] for a in local.image_assets if a.is_label]
    assert set(local_labels) == {f"{f}/labels/nuclei" for f in labelled}  # every field probed
    labels = [a.image_id.split(":", 1)[1] for a in remote.image_assets if a.is_label]
    assert len(labels) == found and set(labels) == expected
    probes = [p for m, p in counter.log if p.endswith("/labels/.zattrs")]
    assert len(probes) == (8 if found else 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(plate))
    consolidated = scan_store(plate)
    assert sum(a.is_label for a in consolidated.image_assets) == len(labelled)


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


def test_a_tiff_folder_plate_costs_one_ranged_get_per_file(tmp_path, s3_endpoint, s3_upload):
    """Each file's header is one ranged GET (no HEAD, no whole-object read)."""
    from fixtures import instrument_plates as ip

    plate = ip.write_phenix(tmp_path)[ip.PLATES[0]].path
    files = sorted(p for p in plate.rglob("*.tiff"))
    uri = s3_upload(plate, f"requests/tiff-folder/{plate.name}")
    result, counter = _counted_scan(s3_endpoint, uri)
    assert result.image_count == len(ip.WELLS) * ip.SITES
    counts = counter.snapshot()
    gets = [p for m, p in counter.log if request_kind(m, p) == "GET"]
    tiff_gets = [p for p in gets if p.endswith(".tiff")]
    assert sorted(p.rsplit("/", 1)[-1] for p in tiff_gets) == [f.name for f in files]
    assert len(gets) == len(tiff_gets), gets  # no format probe: the root listing answers
    # LISTs: the existence check, the root listing, the recursive listing of the files
    assert counts["HEAD"] <= 2 and counts["LIST"] <= 3, counts


def test_a_header_at_end_plate_costs_one_ranged_get_per_file(tmp_path, s3_endpoint, s3_upload):
    """Harmony files keep their IFD after the pixels: after a few probed files (two GETs
    each), every file's IFD is read from the window before its end in one GET."""
    from fixtures.harmony_tiffs import write_harmony_plate

    files = write_harmony_plate(tmp_path / "harmony" / "Images", 200)
    uri = s3_upload(files[0].parent, "requests/harmony/Images")
    result, counter = _counted_scan(s3_endpoint, uri)
    assert result.image_count == 200 // 5
    gets = [p for m, p in counter.log if request_kind(m, p) == "GET"]
    assert all(p.endswith(".tiff") for p in gets), gets
    assert len(gets) / len(files) <= 1.1, len(gets)
    local = scan_store(str(files[0].parent))

    def pixels(scan):  # what the headers give each image, wherever it is stored
        fields = ("image_id", "shape", "dtype", "codecs", "physical_size_x", "object_sizes")
        fields += ("chunk_byte_offsets", "chunk_byte_lengths")
        return [tuple(getattr(a, name) for name in fields) for a in scan.image_assets]

    assert pixels(result) == pixels(local)
    assert result.warnings == local.warnings
