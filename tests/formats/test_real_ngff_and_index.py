"""Real OME-Zarr (IDR, bioformats2raw, ome-zarr-py) and real Phenix index files.

Each store's metadata documents are read here with ``json`` alone, as the independent
reader: every array document must become one ``image_assets`` row of the same shape
and dtype, inner chunks from the document (the sharding codec's ``chunk_shape`` for a
sharded array), and ``chunk_index`` must hold one row per inner chunk of the grid the
documents define. The IDR stores are metadata only (documents from ome-zarr-models-py's
recordings): the scan never needs a chunk file. The Phenix ``Index.idx.xml`` files of
pe2loaddata name each plane's row, column, field, plane and channel: the ``phenix``
preset must read the same from the file names the index lists.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from iceberg_bioimage import scan_result_as_arrow_table, scan_store
from iceberg_bioimage.models.instruments import PRESETS

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
IDR = REAL / "ome-zarr-models-py" / "idr-cassette-documents"


def _roots() -> list[Path]:
    """Every store root among the real Zarr trees (a folder whose parent is no Zarr node)."""
    found = []
    for base in (IDR, REAL / "ome-zarr-py"):
        for doc in sorted([*base.rglob("zarr.json"), *base.rglob(".zgroup")]):
            folder = doc.parent
            parent = folder.parent
            if not any((parent / name).is_file() for name in ("zarr.json", ".zgroup")):
                found.append(folder)
    return sorted(set(found))


def _arrays(root: Path) -> dict[str, dict]:
    """``array path -> (shape, dtype, inner chunks)`` from the documents alone."""
    arrays = {}
    for doc in root.rglob("zarr.json"):
        meta = json.loads(doc.read_text())
        if meta.get("node_type") != "array":
            continue
        chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
        for codec in meta.get("codecs", []):
            if codec.get("name") == "sharding_indexed":
                chunks = codec["configuration"]["chunk_shape"]
        arrays[doc.parent.relative_to(root).as_posix()] = {
            "shape": tuple(meta["shape"]),
            "dtype": np.dtype(meta["data_type"]).name,
            "chunks": tuple(chunks),
        }
    for doc in root.rglob(".zarray"):
        meta = json.loads(doc.read_text())
        arrays[doc.parent.relative_to(root).as_posix()] = {
            "shape": tuple(meta["shape"]),
            "dtype": np.dtype(meta["dtype"]).name,
            "chunks": tuple(meta["chunks"]),
        }
    return arrays


def _labels(root: Path) -> set[str]:
    """Array paths below a ``labels`` group (scanned only when the label is complete)."""
    return {path for path in _arrays(root) if "labels" in path.split("/")}


@pytest.mark.parametrize("root", _roots(), ids=lambda p: p.name)
def test_real_zarr_store_matches_its_documents(root):
    result = scan_store(root)
    expected = {p: a for p, a in _arrays(root).items() if p not in _labels(root)}
    assets = {a.array_path: a for a in result.image_assets if not a.array_path.count("labels")}
    assert sorted(assets) == sorted(expected)
    for path, want in expected.items():
        asset = assets[path]
        assert asset.shape == want["shape"], path
        assert asset.dtype == want["dtype"], path
        assert asset.chunks == want["chunks"], path
    chunks = scan_result_as_arrow_table(result, table="chunk_index")
    per_array = {
        path: math.prod(math.ceil(s / c) for s, c in zip(a["shape"], a["chunks"], strict=True))
        for path, a in expected.items()
    }
    counted = chunks.group_by("array_path").aggregate([("chunk_key", "count")]).to_pylist()
    assert {row["array_path"]: row["chunk_key_count"] for row in counted} == per_array


def test_idr_plate_fields_and_channels_from_the_omero_block():
    root = next(r for r in _roots() if r.name == "BR00109990_C2.zarr")
    result = scan_store(root)
    omero = json.loads((root / "0" / "zarr.json").read_text())["attributes"]["ome"]["omero"]
    labels = tuple(channel["label"] for channel in omero["channels"])
    assert {a.image_id for a in result.image_assets} == {f"BR00109990_C2:{i}" for i in range(9)}
    assert all(a.channel_names == labels for a in result.image_assets)


def _index_planes(path: Path) -> list[dict[str, str]]:
    """Every image of a Harmony index: its file name and the numbers the index gives it."""
    tree = ElementTree.parse(path)
    ns = tree.getroot().tag.split("}")[0] + "}"
    planes = []
    for image in tree.getroot().iter(f"{ns}Image"):
        url = image.find(f"{ns}URL")
        if url is None or not url.text:
            continue
        planes.append(
            {
                "url": url.text,
                **{
                    key: image.find(f"{ns}{tag}").text
                    for key, tag in (
                        ("row", "Row"),
                        ("column", "Col"),
                        ("site", "FieldID"),
                        ("z", "PlaneID"),
                        ("channel", "ChannelID"),
                    )
                },
            }
        )
    return planes


INDEXES = sorted(
    [*REAL.glob("pe2loaddata/*/images/Index.idx.xml"), *REAL.glob("pe2loaddata/*/images/Index.xml")]
)


@pytest.mark.parametrize("index", INDEXES, ids=lambda p: p.parent.parent.name)
def test_phenix_preset_reads_the_names_a_real_index_lists(index):
    planes = _index_planes(index)
    assert planes, index
    pattern = re.compile(PRESETS["phenix"].regex)
    for plane in planes:
        match = pattern.fullmatch(plane["url"])
        assert match is not None, plane["url"]
        assert int(match["row"]) == int(plane["row"])
        assert int(match["column"]) == int(plane["column"])
        assert int(match["site"]) == int(plane["site"])
        assert int(match["z"]) == int(plane["z"])
        assert match["channel"] == f"ch{int(plane['channel'])}"
