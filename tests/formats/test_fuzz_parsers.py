"""Fuzzing of the metadata parsers ("Safety first", acceptance 4).

Every target runs 2,000 Hypothesis examples through the real entry points
(``scan_store`` and both canonical tables) on a store written for the example
into fsspec's ``memory://`` filesystem. The only acceptable outcomes are a
result or an :class:`IcebergBioimageError`; anything else (``TypeError``,
``KeyError``, ``OverflowError``, ``RecursionError``, numpy, pyarrow or tifffile
errors...) propagates and fails the example. The ``@example`` inputs are the bugs
the fuzzing found, kept as regressions.
"""

from __future__ import annotations

import base64
import copy
import functools
import io
import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import fsspec
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bounds import bounded
from iceberg_bioimage import scan_result_as_arrow_table, scan_store
from iceberg_bioimage.exceptions import IcebergBioimageError
from iceberg_bioimage.formats.tiff.ome_xml import OmeDocument, parse_ome_xml

pytestmark = pytest.mark.filterwarnings(
    # numpy's own notice for a fuzzed dtype such as "a" (an alias of "S")
    "ignore:Data type alias:DeprecationWarning"
)
FUZZ = settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_MEMORY = fsspec.filesystem("memory")
_SERIAL = itertools.count()


@pytest.fixture(autouse=True, scope="module")
def _small_chunk_limit() -> Iterator[None]:
    """A low ``chunk_index`` row limit: a fuzzed 10**12-chunk shape is refused, not built."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ICEBERG_BIOIMAGE_MAX_CHUNK_ROWS", "10000")
        yield


@pytest.fixture(autouse=True, scope="module")
def _warm_imports() -> None:
    """Import before the first example what its first table would import, outside its bound.

    pyarrow imports pandas on its first ``pa.array`` of Python values (seconds on a loaded
    machine): that is start-up, not the example's work.
    """
    import pyarrow as pa

    pa.array([0])


def _scan_or_refuse(uri: str, **options: bool) -> None:
    """Scan and build both tables; only an :class:`IcebergBioimageError` may stop it.

    Each example runs within 5 s of CPU time and 1 GiB (:func:`bounds.bounded`).
    """
    with bounded():
        try:
            result = scan_store(uri, **options)
            json.dumps(result.to_dict())
            scan_result_as_arrow_table(result, table="image_assets")
            scan_result_as_arrow_table(result, table="chunk_index")
        except IcebergBioimageError:
            pass


def _scan_files(files: Mapping[str, bytes], name: str = "store.zarr", **options: bool) -> None:
    """Write ``files`` (key ``""`` = the store itself is a file) under a fresh prefix, scan."""
    prefix = f"/fuzz-{os.getpid()}/{next(_SERIAL)}"
    root = f"{prefix}/{name}"
    _MEMORY.pipe({f"{root}/{key}" if key else root: data for key, data in files.items()})
    try:
        _scan_or_refuse(f"memory://{root}", **options)
    finally:
        _MEMORY.rm(prefix, recursive=True)


def _encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


# -- value strategies -----------------------------------------------------------

_INTS = st.one_of(
    st.integers(-3, 70),
    st.sampled_from([2**31, 2**32, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64, 2**80, -(2**63)]),
    st.integers(-(2**80), 2**80),
)
_WORDS = st.sampled_from(
    [
        "blosc",
        "zstd",
        "bytes",
        "crc32c",
        "transpose",
        "sharding_indexed",
        "regular",
        "rectilinear",
        "default",
        "v2",
        "array",
        "group",
        "start",
        "end",
        "big",
        "little",
        "space",
        "channel",
        "time",
        "scale",
        "<u2",
        "|u1",
        ">f8",
        "|b1",
        "<U1000000000",
        "V99999999999",
        "O",
        "a",
        "uint16",
        "float64",
        "r0",
        "r7",
        "r16",
        "r" + "9" * 30,
        "r\u00b2",
        "micrometer",
        "translation",
        "\ud800",
        "\x00",
    ]
)
_PATHS = st.one_of(
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "../0",
            "0/../..",
            "/",
            "//",
            "/0",
            "0/",
            "a\\b",
            "..\\..",
            "a\x00b",
            "\x00",
            "A/1",
            "A//1",
            "A/1/0",
            "A/../1",
            "./0",
            "c/0/0",
            "1",
            "0",
            "x/y",
            "ZZZZ/99999999999",
        ]
    ),
    st.text(max_size=10),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    _INTS,
    st.floats(),
    st.text(max_size=12),
    _WORDS,
)
_JUNK = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), _WORDS), inner, max_size=4),
    ),
    max_leaves=6,
)
_INT_LISTS = st.one_of(
    st.lists(_INTS, max_size=5),
    st.lists(st.integers(1, 3), min_size=30, max_size=70),
)
_VALUES = st.one_of(_JUNK, _INT_LISTS, _PATHS, _WORDS)
_OPTIONS = st.fixed_dictionaries({"stat_chunks": st.booleans(), "read_shard_index": st.booleans()})


_PLAIN = {"stat_chunks": False, "read_shard_index": False}


def _slots(node: Any, trail: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key/index path inside a JSON document."""
    items: Sequence[tuple[Any, Any]] = (
        list(node.items()) if isinstance(node, dict) else list(enumerate(node))
    )
    for key, value in items:
        yield (*trail, key)
        if isinstance(value, dict | list):
            yield from _slots(value, (*trail, key))


def _at(doc: Any, trail: Sequence[Any]) -> Any:
    for key in trail:
        doc = doc[key]
    return doc


_ACTIONS = st.sampled_from(["replace", "replace", "replace", "delete", "add"])
_NEW_KEYS = st.one_of(st.sampled_from(["path", "name"]), st.text(max_size=6))


def _index(draw: st.DrawFn, items: Sequence[Any]) -> Any:
    return items[draw(st.integers(0, len(items) - 1))]


@st.composite
def _mutated(draw: st.DrawFn, base: Any, keys: st.SearchStrategy[str]) -> Any:
    """``base`` with 1-3 keys replaced (by junk of any type), deleted or added."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        slots = list(_slots(doc))
        action = draw(_ACTIONS)
        if action == "add" or not slots:
            containers = [()] + [s for s in slots if isinstance(_at(doc, s), dict | list)]
            target = _at(doc, _index(draw, containers))
            value = draw(_VALUES)
            if isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), value)
            else:
                target[draw(keys)] = value
            continue
        slot = _index(draw, slots)
        parent = _at(doc, slot[:-1])
        if action == "delete":
            del parent[slot[-1]]
        else:
            parent[slot[-1]] = draw(_PATHS if slot[-1] == "path" else _VALUES)
    return doc


def _documents(bases: Sequence[Any], keys: Sequence[str] = ()) -> st.SearchStrategy[Any]:
    """Mutations of the valid ``bases`` (mostly), the bases themselves, or random JSON."""
    new_keys = st.one_of(st.sampled_from(keys), _NEW_KEYS) if keys else _NEW_KEYS
    mutations = [_mutated(base, new_keys) for base in bases]
    return st.one_of(*mutations, *mutations, *mutations, st.sampled_from(bases), _JUNK)


# -- 1. Zarr v2 array metadata --------------------------------------------------

_ZARRAY = {
    "zarr_format": 2,
    "shape": [3, 64, 48],
    "chunks": [1, 32, 32],
    "dtype": "<u2",
    "compressor": {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 1},
    "filters": None,
    "fill_value": 0,
    "order": "C",
    "dimension_separator": "/",
}
_ZARRAY_STRUCTURED = {
    "zarr_format": 2,
    "shape": [10],
    "chunks": [4],
    "dtype": [["a", "<i4"], ["b", "<f8", [2]]],
    "compressor": None,
    "filters": [{"id": "delta", "dtype": "<i4"}],
    "fill_value": None,
    "order": "F",
}
_V2_KEYS = [*_ZARRAY, "_ARRAY_DIMENSIONS"]


@FUZZ
@given(
    zarray=_documents([_ZARRAY, _ZARRAY_STRUCTURED], _V2_KEYS),
    zattrs=st.one_of(
        st.none(),
        st.fixed_dictionaries({"_ARRAY_DIMENSIONS": st.one_of(_VALUES, st.just(["c", "y", "x"]))}),
        _JUNK,
    ),
    options=_OPTIONS,
)
@example(zarray={**_ZARRAY, "filters": "."}, zattrs=None, options=_PLAIN)
@example(zarray={**_ZARRAY, "shape": [1] * 70, "chunks": [1] * 70}, zattrs=None, options=_PLAIN)
def test_fuzz_zarr_v2_array(zarray: Any, zattrs: Any, options: dict[str, bool]) -> None:
    files = {".zarray": _encode(zarray)}
    if zattrs is not None:
        files[".zattrs"] = _encode(zattrs)
    _scan_files(files, **options)


# -- 2. Zarr v3 array and group documents ---------------------------------------

_V3_ARRAY = {
    "zarr_format": 3,
    "node_type": "array",
    "shape": [2, 64, 64],
    "data_type": "uint16",
    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 32, 32]}},
    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
    "fill_value": 0,
    "codecs": [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "zstd", "configuration": {"level": 0, "checksum": False}},
    ],
    "dimension_names": ["c", "y", "x"],
    "attributes": {},
}
_V3_SHARDED = {
    "zarr_format": 3,
    "node_type": "array",
    "shape": [2, 64, 64],
    "data_type": "uint8",
    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 64, 64]}},
    "chunk_key_encoding": {"name": "v2", "configuration": {"separator": "."}},
    "fill_value": 0,
    "codecs": [
        {
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": [1, 16, 16],
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                "index_codecs": [
                    {"name": "bytes", "configuration": {"endian": "little"}},
                    {"name": "crc32c"},
                ],
                "index_location": "end",
            },
        }
    ],
    "dimension_names": ["c", "y", "x"],
    "attributes": {"note": "sharded"},
}
_V3_KEYS = [*_V3_ARRAY, "configuration", "chunk_shape", "index_codecs", "index_location"]


def _with_shard_config(**config: Any) -> dict[str, Any]:
    """``_V3_SHARDED`` with its sharding configuration updated."""
    doc = copy.deepcopy(_V3_SHARDED)
    doc["codecs"][0]["configuration"].update(config)
    return doc


@FUZZ
@given(doc=_documents([_V3_ARRAY, _V3_SHARDED], _V3_KEYS), options=_OPTIONS)
@example(doc={**_V3_ARRAY, "data_type": "\ud800"}, options=_PLAIN)
@example(doc={**_V3_ARRAY, "codecs": [{"name": "bytes", "configuration": [0]}]}, options=_PLAIN)
@example(
    doc={**_V3_ARRAY, "chunk_key_encoding": {"name": "v2", "configuration": []}}, options=_PLAIN
)
@example(doc=_with_shard_config(index_codecs=[[0]]), options=_PLAIN)
@example(  # 2**80 inner chunks per shard of a 1-pixel array: never expanded
    doc={
        **_with_shard_config(chunk_shape=[1, 1, 1]),
        "shape": [1, 1, 1],
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 2**40, 2**40]}},
    },
    options={"stat_chunks": False, "read_shard_index": True},
)
def test_fuzz_zarr_v3_array(doc: Any, options: dict[str, bool]) -> None:
    _scan_files({"zarr.json": _encode(doc)}, **options)


_NGFF05_ATTRIBUTES = {
    "ome": {
        "version": "0.5",
        "multiscales": [
            {
                "name": "image",
                "axes": [
                    {"name": "c", "type": "channel"},
                    {"name": "y", "type": "space", "unit": "micrometer"},
                    {"name": "x", "type": "space", "unit": "micrometer"},
                ],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [1, 0.5, 0.5]}],
                    },
                    {
                        "path": "1",
                        "coordinateTransformations": [{"type": "scale", "scale": [1, 1.0, 1.0]}],
                    },
                ],
                "coordinateTransformations": [{"type": "scale", "scale": [1, 2, 2]}],
            }
        ],
        "omero": {
            "channels": [{"label": "DAPI", "color": "0000FF"}, {"label": "GFP"}],
        },
    }
}
_V3_GROUP_PLAIN = {"zarr_format": 3, "node_type": "group", "attributes": {}}
_V3_GROUP_OME = {"zarr_format": 3, "node_type": "group", "attributes": _NGFF05_ATTRIBUTES}
_V3_GROUP_CONSOLIDATED = {
    "zarr_format": 3,
    "node_type": "group",
    "attributes": {},
    "consolidated_metadata": {
        "kind": "inline",
        "must_understand": False,
        "metadata": {"0": _V3_ARRAY, "1": _V3_SHARDED, "sub": _V3_GROUP_PLAIN},
    },
}
_V3_CHILDREN = {
    "0/zarr.json": _encode(_V3_ARRAY),
    "1/zarr.json": _encode(_V3_SHARDED),
    "sub/zarr.json": _encode(_V3_GROUP_PLAIN),
    "sub/a/zarr.json": _encode(_V3_ARRAY),
}


_ZMETADATA = {
    "zarr_consolidated_format": 1,
    "metadata": {
        ".zgroup": {"zarr_format": 2},
        ".zattrs": {},
        "0/.zarray": _ZARRAY,
        "0/.zattrs": {"_ARRAY_DIMENSIONS": ["c", "y", "x"]},
        "sub/.zgroup": {"zarr_format": 2},
        "sub/a/.zarray": _ZARRAY_STRUCTURED,
    },
}
_GROUP_KEYS = [
    "zarr_format",
    "node_type",
    "attributes",
    "consolidated_metadata",
    "metadata",
    ".zgroup",
    ".zarray",
    ".zattrs",
    "0/.zarray",
    "../0/.zarray",
]


@FUZZ
@given(
    store=st.one_of(
        _documents([_V3_GROUP_PLAIN, _V3_GROUP_OME, _V3_GROUP_CONSOLIDATED], _GROUP_KEYS).map(
            lambda doc: {"zarr.json": _encode(doc), **_V3_CHILDREN}
        ),
        _documents([_ZMETADATA], _GROUP_KEYS).map(
            lambda doc: {".zgroup": b'{"zarr_format": 2}', ".zmetadata": _encode(doc)}
        ),
    ),
    options=_OPTIONS,
)
@example(
    store={".zgroup": b'{"zarr_format": 2}', ".zmetadata": b'{"metadata": {}}'}, options=_PLAIN
)
@example(store={".zgroup": b'{"zarr_format": ', "0/.zarray": _encode(_ZARRAY)}, options=_PLAIN)
def test_fuzz_zarr_group_documents(store: dict[str, bytes], options: dict[str, bool]) -> None:
    """Zarr v3 group ``zarr.json`` (plain, NGFF, consolidated) or a v2 ``.zmetadata``."""
    _scan_files(store, **options)


# -- 3. OME-NGFF attributes -----------------------------------------------------

_NGFF04_ATTRIBUTES = {
    "multiscales": [
        {
            "version": "0.4",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": [1, 0.5, 0.5]}],
                },
                {
                    "path": "1",
                    "coordinateTransformations": [{"type": "scale", "scale": [1, 1.0, 1.0]}],
                },
            ],
        }
    ],
    "omero": {"channels": [{"label": "DAPI"}, {"label": "GFP", "active": True}]},
}
_NGFF_KEYS = [
    "multiscales",
    "datasets",
    "axes",
    "coordinateTransformations",
    "scale",
    "type",
    "unit",
    "omero",
    "channels",
    "label",
    "version",
    "plate",
    "well",
    "ome",
]
_ZARRAY_LEVEL1 = {**_ZARRAY, "shape": [3, 32, 24]}
_V3_LEVEL1 = {**_V3_ARRAY, "shape": [2, 32, 32]}


def _v2_image_files(zattrs: Any) -> dict[str, bytes]:
    return {
        ".zgroup": b'{"zarr_format": 2}',
        ".zattrs": _encode(zattrs),
        "0/.zarray": _encode(_ZARRAY),
        "1/.zarray": _encode(_ZARRAY_LEVEL1),
    }


def _v3_image_files(attributes: Any) -> dict[str, bytes]:
    group = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
    return {
        "zarr.json": _encode(group),
        "0/zarr.json": _encode(_V3_ARRAY),
        "1/zarr.json": _encode(_V3_LEVEL1),
    }


def _with_axis_unit(unit: Any) -> dict[str, Any]:
    attributes = copy.deepcopy(_NGFF04_ATTRIBUTES)
    attributes["multiscales"][0]["axes"][2]["unit"] = unit
    return attributes


@FUZZ
@given(
    attributes=_documents([_NGFF04_ATTRIBUTES, _NGFF05_ATTRIBUTES], _NGFF_KEYS),
    zarr_v3=st.booleans(),
)
@example(attributes=_with_axis_unit(True), zarr_v3=False)
@example(
    attributes={
        "multiscales": [
            {
                "axes": ["c", "y", "x"],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [1, 2**1100, 1]}],
                    }
                ],
            }
        ]
    },
    zarr_v3=False,
)
def test_fuzz_ngff_image_attributes(attributes: Any, zarr_v3: bool) -> None:
    files = _v3_image_files(attributes) if zarr_v3 else _v2_image_files(attributes)
    _scan_files(files, name="image.ome.zarr")


_PLATE = {
    "plate": {
        "version": "0.4",
        "name": "plate1",
        "rows": [{"name": "A"}, {"name": "B"}],
        "columns": [{"name": "1"}, {"name": "2"}],
        "wells": [
            {"path": "A/1", "rowIndex": 0, "columnIndex": 0},
            {"path": "B/2", "rowIndex": 1, "columnIndex": 1},
        ],
        "field_count": 1,
    }
}
_WELL = {"well": {"version": "0.4", "images": [{"path": "0", "acquisition": 0}]}}
_PLATE_KEYS = [
    "plate",
    "rows",
    "columns",
    "wells",
    "rowIndex",
    "columnIndex",
    "well",
    "images",
    "acquisitions",
]
_FIELD = {
    "multiscales": [
        {
            "version": "0.4",
            "axes": ["c", "y", "x"],
            "datasets": [{"path": "0"}],
        }
    ]
}


def _plate_files(plate: Any, well: Any, zarr_v3: bool) -> dict[str, bytes]:
    if not zarr_v3:
        files = {".zgroup": b'{"zarr_format": 2}', ".zattrs": _encode(plate)}
        for well_path in ("A/1", "B/2"):
            files[f"{well_path}/.zgroup"] = b'{"zarr_format": 2}'
            files[f"{well_path}/.zattrs"] = _encode(well)
            files[f"{well_path}/0/.zattrs"] = _encode(_FIELD)
            files[f"{well_path}/0/0/.zarray"] = _encode(_ZARRAY)
        return files

    def group(attributes: Any) -> bytes:
        return _encode({"zarr_format": 3, "node_type": "group", "attributes": attributes})

    files = {"zarr.json": group({"ome": plate} if isinstance(plate, dict) else plate)}
    for well_path in ("A/1", "B/2"):
        files[f"{well_path}/zarr.json"] = group({"ome": well} if isinstance(well, dict) else well)
        files[f"{well_path}/0/zarr.json"] = group({"ome": _FIELD})
        files[f"{well_path}/0/0/zarr.json"] = _encode(_V3_ARRAY)
    return files


def _with_plate(**fields: Any) -> dict[str, Any]:
    return {"plate": {**_PLATE["plate"], **fields}}


@FUZZ
@given(
    plate=st.one_of(_documents([_PLATE], _PLATE_KEYS), st.just(_PLATE)),
    well=st.one_of(_documents([_WELL], _PLATE_KEYS), st.just(_WELL)),
    zarr_v3=st.booleans(),
)
@example(plate=_with_plate(columns=[{"name": None}, {"name": "2"}]), well=_WELL, zarr_v3=False)
@example(plate=_with_plate(wells=[{"path": "x/y"}]), well=_WELL, zarr_v3=True)
def test_fuzz_ngff_plate_and_well(plate: Any, well: Any, zarr_v3: bool) -> None:
    _scan_files(_plate_files(plate, well, zarr_v3), name="plate.ome.zarr")


# -- 4. Raw JSON bytes ----------------------------------------------------------

_VALID_BYTES = [
    _encode(_ZARRAY),
    _encode(_V3_SHARDED),
    _encode(_NGFF04_ATTRIBUTES),
    _encode(_PLATE),
    b'{"zarr_format": 2}',
]
_RAW_SPECIALS = [
    b"",
    b"1" * 5000,
    b"-" + b"9" * 4400,
    b"1e999999",
    b'{"zarr_format": 2, "shape": [1e999], "chunks": [1]}',
    b'{"zarr_format": 2, "shape": [' + b"9" * 5000 + b'], "chunks": [1]}',
    b"NaN",
    b"[NaN, Infinity, -Infinity]",
    b'"\\ud800"',
    b'{"a": "\\ud800\\udfff\\udc00"}',
    b"\xef\xbb\xbf" + _encode(_ZARRAY),
    _encode(_ZARRAY).decode().encode("utf-16"),
    b"\xff\xfe\xfd",
    b"\x00" * 16,
]


@st.composite
def _flipped(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        index = draw(st.integers(0, len(out) - 1))
        out[index] = draw(st.integers(0, 255))
    return bytes(out[: draw(st.integers(0, len(out)))] if draw(st.booleans()) else out)


_RAW_JSON = st.one_of(
    st.binary(max_size=300),
    st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 20_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(1, 20_000).map(lambda n: b"[" * n),
    st.integers(60, 70).map(lambda n: b'{"zarr_format":2,"a":' + b"[" * n + b"]" * n + b"}"),
    st.sampled_from(_RAW_SPECIALS),
    st.sampled_from(_VALID_BYTES).flatmap(_flipped),
    _JUNK.map(_encode),
    st.text(max_size=100).map(str.encode),
)
_V2_GROUP = b'{"zarr_format": 2}'
_V3_GROUP = _encode(_V3_GROUP_PLAIN)
_PLACEMENTS: list[tuple[str, dict[str, bytes]]] = [
    (".zarray", {}),
    (".zgroup", {}),
    (".zattrs", {".zgroup": _V2_GROUP}),
    (".zattrs", {".zarray": _encode(_ZARRAY)}),
    (".zmetadata", {".zgroup": _V2_GROUP}),
    ("zarr.json", {}),
    ("0/.zarray", {".zgroup": _V2_GROUP, ".zattrs": _encode(_NGFF04_ATTRIBUTES)}),
    ("0/.zattrs", {".zgroup": _V2_GROUP, "0/.zgroup": _V2_GROUP}),
    ("0/zarr.json", {"zarr.json": _V3_GROUP}),
    ("A/1/.zattrs", {".zgroup": _V2_GROUP, ".zattrs": _encode(_PLATE)}),
]


@FUZZ
@given(data=_RAW_JSON, placement=st.sampled_from(_PLACEMENTS))
@example(data=b"[" * 10_000 + b"]" * 10_000, placement=_PLACEMENTS[0])
@example(data=b"[" * 10_000 + b"]" * 10_000, placement=_PLACEMENTS[5])
@example(data=b'{"a":' * 10_000 + b"1" + b"}" * 10_000, placement=_PLACEMENTS[2])
@example(data=b'{"_ARRAY_DIMENSIONS": ["\\ud800", "y", "x"]}', placement=_PLACEMENTS[3])
def test_fuzz_raw_json_documents(data: bytes, placement: tuple[str, dict[str, bytes]]) -> None:
    key, siblings = placement
    _scan_files({**siblings, key: data})


# -- 5. TIFF headers and OME-XML ------------------------------------------------


def _tiff_bytes(write: Any) -> bytes:
    buffer = io.BytesIO()
    write(buffer)
    return buffer.getvalue()


def _ome_pyramid(buffer: io.BytesIO) -> None:
    with tifffile.TiffWriter(buffer, ome=True) as writer:
        metadata = {
            "axes": "CYX",
            "Channel": {"Name": ["DAPI", "GFP"]},
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.5,
        }
        writer.write(np.zeros((2, 32, 32), np.uint8), tile=(16, 16), subifds=1, metadata=metadata)
        writer.write(np.zeros((2, 16, 16), np.uint8), tile=(16, 16), subfiletype=1)


@functools.cache
def _tiff_bases() -> tuple[bytes, ...]:
    """Small real TIFFs: tiled, OME pyramid (SubIFDs), stripped, ImageJ, BigTIFF."""
    return (
        _tiff_bytes(lambda b: tifffile.imwrite(b, np.zeros((32, 32), np.uint8), tile=(16, 16))),
        _tiff_bytes(_ome_pyramid),
        _tiff_bytes(
            lambda b: tifffile.imwrite(
                b, np.zeros((40, 30), np.uint8), rowsperstrip=16, metadata=None
            )
        ),
        _tiff_bytes(
            lambda b: tifffile.imwrite(
                b,
                np.zeros((2, 2, 16, 16), np.uint8),
                imagej=True,
                resolution=(2.0, 2.0),
                metadata={"axes": "ZCYX", "spacing": 2.0, "unit": "um"},
            )
        ),
        _tiff_bytes(
            lambda b: tifffile.imwrite(
                b, np.zeros((32, 32), np.uint16), bigtiff=True, tile=(16, 16)
            )
        ),
    )


_FIELD_VALUES = st.one_of(
    st.sampled_from([0, 1, 2, 3, 8, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)


@functools.cache
def _tiff_fields(data: bytes) -> tuple[tuple[int, int], ...]:
    """``(offset, width)`` of every IFD entry's type, count and value fields, and IFD heads."""
    big = data[2:4] in (b"+\x00", b"\x00+")
    fields: set[tuple[int, int]] = set()
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        pages = [*tif.pages, *(p for s in tif.series for lv in s.levels for p in lv.pages)]
        for page in pages:
            if not isinstance(page, tifffile.TiffPage):
                continue
            fields.add((page.offset, 8 if big else 2))
            for tag in page.tags:
                width = 8 if big else 4
                fields.add((tag.offset + 2, 2))
                fields.add((tag.offset + 4, width))
                fields.add((tag.offset + 4 + width, width))
    return tuple(sorted(fields))


_TIFF_ACTIONS = st.sampled_from(["tag", "tag", "flip", "range", "field", "truncate"])


@st.composite
def _damaged_tiff(draw: st.DrawFn) -> bytes:
    """A real TIFF with bytes flipped, ranges overwritten, fields set, or truncated."""
    base = draw(st.sampled_from(_tiff_bases()))
    fields = _tiff_fields(base)
    out = bytearray(base)
    window = min(len(out), 4096)
    for _ in range(draw(st.integers(1, 6))):
        action = draw(_TIFF_ACTIONS)
        if len(out) <= 4:
            break
        start = draw(st.integers(4, min(len(out), window) - 1))
        if action == "tag":
            start, width = fields[draw(st.integers(0, len(fields) - 1))]
            order = "big" if out[:2] == b"MM" else "little"
            out[start : start + width] = (draw(_FIELD_VALUES) % (1 << (8 * width))).to_bytes(
                width, order
            )
        elif action == "flip":
            out[start] = draw(st.integers(0, 255))
        elif action == "range":
            chunk = draw(st.binary(min_size=1, max_size=32))
            out[start : start + len(chunk)] = chunk
        elif action == "field":
            width = draw(st.sampled_from([2, 4, 8]))
            value = draw(_FIELD_VALUES) % (1 << (8 * width))
            order = "big" if out[:2] == b"MM" else "little"
            out[start : start + width] = value.to_bytes(width, order)
        else:
            del out[draw(st.integers(0, len(out))) :]
    return bytes(out)


def _with_tags(data: bytes, **values: int) -> bytes:
    """A little-endian classic TIFF with the (LONG) values of first-page tags replaced."""
    out = bytearray(data)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        for name, value in values.items():
            offset = tif.pages.first.tags[name].valueoffset
            out[offset : offset + 4] = value.to_bytes(4, "little")
    return bytes(out)


#: Found with --hypothesis-seed=28: a damaged IFD chain that loops back into the first IFD,
#: with an ImageJ description; tifffile's series detection never returned on it.
_IFD_LOOP_IMAGEJ = base64.b64decode(
    "SUkqAAgAAAAOAAABBAABAAAAEAAAAAEBBAABAAAAEAAAAAIBAwABAAAACAAAAAMBAwABAAAAAQAAAAYBAwABAAAAAQAAAA4BAgBe"
    "AAAAtgAAABEBBAABAAAAcAEAABUBAwABAAAAAQAAABYBBAABAAAAEAAAABcBBAABAAAAAAEAABoBBQABAAAAVAEAABsBBQABAAAA"
    "XAEAUigBAwABAAAAAQAAADEBAgAMAAAAZAEAAHAAAAAAAAAAAEo9MS4xMWEKaW1hZ2VzPTQKY2hhbm5lbHM9MgpzbGljZXM9Mgpo"
    "eXBlcnN0YWNrPVJydWUKbW9kZT1ncmF5c2NhbGUKc3BhY2luZz0yLjAKdW5pdD11bQoAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIAAAABAAAAAgAAAAEAAAB0aWZmZmlsZS5weQAAAAAAAAAA"
    "AAAA"
)


@FUZZ
@given(data=_damaged_tiff())
@example(data=_with_tags(_tiff_bases()[2], ImageWidth=2**32 - 1, ImageLength=2**32 - 1))
@example(data=_IFD_LOOP_IMAGEJ)
def test_fuzz_tiff_headers(data: bytes) -> None:
    _scan_files({"": data}, name="image.ome.tiff")


_OME_WITH_PLATE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
    '<Plate ID="Plate:0" Name="plate1" RowNamingConvention="letter">'
    '<Well ID="Well:0" Row="0" Column="2"><WellSample ID="WellSample:0" Index="0">'
    '<ImageRef ID="Image:0"/></WellSample></Well></Plate>'
    '<Image ID="Image:0" Name="first"><Pixels ID="Pixels:0" DimensionOrder="XYCZT"'
    ' Type="uint8" SizeX="16" SizeY="16" SizeC="2" SizeZ="1" SizeT="1"'
    ' PhysicalSizeX="0.5" PhysicalSizeY="0.5" PhysicalSizeXUnit="µm">'
    '<Channel ID="Channel:0:0" SamplesPerPixel="1" Name="DAPI"/>'
    '<Channel ID="Channel:0:1" SamplesPerPixel="1"/>'
    '<TiffData IFD="0" PlaneCount="2"/></Pixels></Image></OME>'
)
_XML_TOKENS = st.sampled_from(
    [
        "<",
        ">",
        "/>",
        '"',
        "&amp;",
        "&#0;",
        "&bogus;",
        "<Image>",
        "</Image>",
        "<Channel/>",
        '<Well Row="99999999999999999999" Column="-1">',
        'Row="Z" Column="x"',
        'Row="\u00b2" Column="1"',
        'RowNamingConvention="number"',
        'PhysicalSizeX="1e999"',
        'PhysicalSizeX="nan"',
        'PhysicalSizeXUnit=""',
        'SizeC="0"',
        'SizeX="99999999999"',
        'IFD="999"',
        'PlaneCount="-1"',
        "<!DOCTYPE x [<!ENTITY a 'aaaa'>]>",
        "\x00",
        "\ud800",
    ]
)


@st.composite
def _damaged_ome_xml(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from([_OME_WITH_PLATE, _ome_xml_from_tifffile()]))
    for _ in range(draw(st.integers(1, 5))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        text = text[:start] + draw(st.one_of(_XML_TOKENS, st.text(max_size=12))) + text[end:]
    return text


@functools.cache
def _ome_xml_from_tifffile() -> str:
    with tifffile.TiffFile(io.BytesIO(_tiff_bases()[1])) as tif:
        return tif.ome_metadata or ""


def _tiff_with_description(description: str) -> bytes:
    data = description.encode("utf-8", "surrogatepass")
    return _tiff_bytes(
        lambda b: tifffile.imwrite(
            b, np.zeros((2, 16, 16), np.uint8), description=data, metadata=None
        )
    )


@FUZZ
@given(text=_damaged_ome_xml())
@example(text=_OME_WITH_PLATE.replace('"letter"', '"number"'))
def test_fuzz_ome_xml(text: str) -> None:
    try:
        document = parse_ome_xml(text)
    except ValueError:  # the pure parser's contract; scan_tiff turns it into a warning
        pass
    else:
        assert isinstance(document, OmeDocument)
    if text.rstrip().endswith("OME>"):  # what tifffile needs to call it OME-TIFF
        _scan_files({"": _tiff_with_description(text)}, name="image.ome.tiff")


def _with_tag_type(data: bytes, code: int, kind: int) -> bytes:
    """A little-endian classic TIFF with the value type of one first-page tag replaced."""
    out = bytearray(data)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        offset = tif.pages.first.tags[code].offset
    out[offset + 2 : offset + 4] = kind.to_bytes(2, "little")
    return bytes(out)


@FUZZ
@given(data=_damaged_tiff())
@example(data=_with_tag_type(_tiff_bases()[2], 273, 5))  # StripOffsets as RATIONAL
def test_fuzz_fast_tiff_header_equals_tifffile(data: bytes) -> None:
    """The fast IFD parser never disagrees with tifffile on a damaged file."""
    from iceberg_bioimage.formats.tiff import headers as th
    from iceberg_bioimage.io.storage import open_store

    root = f"memory://fuzz-ifd-{next(_SERIAL)}"
    with _MEMORY.open(f"{root}/plane.tif", "wb") as handle:
        handle.write(data)
    store = open_store(root)
    with bounded():
        fast = th.read_plane_headers(store, ["plane.tif"], {"plane.tif": len(data)})["plane.tif"]
        slow = th.read_plane_headers_with_tifffile(store, ["plane.tif"])[0]
    if isinstance(slow, str):
        assert isinstance(fast, str), slow
    else:
        assert fast == slow
