"""Typed parsing of Zarr v2 ``.zarray`` and Zarr v3 ``zarr.json`` documents.

We parse the metadata ourselves (a few dozen lines per format, following the
Zarr v2 and v3 specifications) rather than through zarr-python's classes: the
package must scan with a zarr 2 *or* zarr 3 runtime installed, and a plate has
thousands of identical array documents, so parsed results are memoised by the
raw bytes. Every function raises ``ValueError`` naming the offending field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from iceberg_bioimage.models import ChunkKeyEncoding
from iceberg_bioimage.models.limits import INT64_MAX

#: Most dimensions an array may have: numpy (which expands chunk grids) stops at 64,
#: and the expanded grid needs one more.
MAX_NDIM = 32


@dataclass(frozen=True, kw_only=True)
class ShardIndexSpec:
    """Where and how a shard stores the offsets/lengths of its inner chunks."""

    location: Literal["start", "end"]
    byteorder: Literal["<", ">"]
    checksum_bytes: int
    chunks_per_shard: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """Size of the encoded index in bytes."""
        return 16 * math.prod(self.chunks_per_shard) + self.checksum_bytes


@dataclass(frozen=True, kw_only=True)
class ArrayMetadata:
    """The facts of one Zarr array that the canonical tables need."""

    zarr_format: Literal[2, 3]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    dtype: str
    itemsize: int
    dimension_names: tuple[str, ...] | None
    codecs: str
    key_encoding: ChunkKeyEncoding
    shard_index: ShardIndexSpec | None
    attributes: Mapping[str, Any]


def _int_tuple(doc: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= INT64_MAX for v in value
    ):
        raise ValueError(
            f"'{key}' must be a list of non-negative 64-bit integers, got {_short(value)}"
        )
    return tuple(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    """``value`` as a JSON object (``None``: an empty one); ``ValueError`` naming ``field``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"'{field}' must be an object, got {_short(value)}")
    return value


def _mappings(value: Any, field: str) -> list[Mapping[str, Any]]:
    """``value`` as a list of JSON objects (``None``: an empty one)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"'{field}' must be a list of objects, got {_short(value)}")
    return value


def _check_sizes(shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int) -> None:
    """Refuse arrays of too many dimensions, or whose size or chunk count overflows int64."""
    if len(shape) > MAX_NDIM:
        raise ValueError(f"'shape' has {len(shape)} dimensions; at most {MAX_NDIM} are supported")
    if math.prod(shape) * max(itemsize, 1) > INT64_MAX:
        raise ValueError(f"shape {_short(list(shape))} is too large: its size overflows int64")
    grid = math.prod(-(-s // c) for s, c in zip(shape, chunks, strict=True))
    if grid > INT64_MAX:
        raise ValueError(f"chunk grid of shape {_short(list(shape))} has more than 2**63 chunks")


def _numpy_dtype(spec: Any) -> np.dtype:
    if isinstance(spec, list):
        spec = [tuple(_numpy_field(f)) for f in spec]
    try:
        return np.dtype(spec)
    except (TypeError, ValueError) as error:
        raise ValueError(f"unsupported dtype {_short(spec)}") from error


def _numpy_field(field: Any) -> list[Any]:
    if not isinstance(field, list) or len(field) < 2:
        raise ValueError(f"invalid structured dtype field {_short(field)}")
    return [field[0], _numpy_dtype(field[1]), *field[2:]]


def _v2_codec_names(doc: Mapping[str, Any]) -> str:
    names = [_codec_label(f.get("id"), f) for f in _mappings(doc.get("filters"), "filters")]
    compressor = doc.get("compressor")
    if compressor is not None:
        if not isinstance(compressor, dict) or "id" not in compressor:
            raise ValueError(
                f"'compressor' must be null or an object with 'id', got {_short(compressor)}"
            )
        names.append(_codec_label(compressor["id"], compressor))
    return ",".join(names) or "none"


def _codec_label(name: Any, config: Mapping[str, Any]) -> str:
    cname = config.get("cname")
    return f"{name}:{cname}" if name == "blosc" and cname else str(name)


def parse_v2_array(doc: Mapping[str, Any], attributes: Mapping[str, Any]) -> ArrayMetadata:
    """Parse a Zarr v2 ``.zarray`` document (``attributes`` from ``.zattrs``)."""
    if doc.get("zarr_format") != 2:
        raise ValueError(f"'zarr_format' must be 2, got {_short(doc.get('zarr_format'))}")
    shape = _int_tuple(doc, "shape")
    chunks = _int_tuple(doc, "chunks")
    if len(chunks) != len(shape):
        raise ValueError(f"'chunks' {list(chunks)} does not match 'shape' {list(shape)}")
    if any(c == 0 for c in chunks):
        raise ValueError(f"'chunks' must be positive, got {list(chunks)}")
    if "dtype" not in doc:
        raise ValueError("missing 'dtype'")
    dtype = _numpy_dtype(doc["dtype"])
    _check_sizes(shape, chunks, dtype.itemsize)
    separator = doc.get("dimension_separator") or "."
    if separator not in (".", "/"):
        raise ValueError(f"'dimension_separator' must be '.' or '/', got {_short(separator)}")
    names = attributes.get("_ARRAY_DIMENSIONS")
    dimension_names = (
        tuple(str(n) for n in names)
        if isinstance(names, list) and len(names) == len(shape)
        else None
    )
    return ArrayMetadata(
        zarr_format=2,
        shape=shape,
        chunks=chunks,
        shards=None,
        dtype=dtype.name if dtype.names is None else str(dtype),
        itemsize=dtype.itemsize,
        dimension_names=dimension_names,
        codecs=_v2_codec_names(doc),
        key_encoding=ChunkKeyEncoding(name="v2", separator=separator),
        shard_index=None,
        attributes=attributes,
    )


_V3_ITEMSIZE = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "float16": 2,
    "float32": 4,
    "float64": 8,
    "complex64": 8,
    "complex128": 16,
}


def _v3_data_type(spec: Any) -> tuple[str, int]:
    name = spec.get("name") if isinstance(spec, dict) else spec
    if not isinstance(name, str):
        raise ValueError(f"'data_type' must be a string or object, got {_short(spec)}")
    if name in _V3_ITEMSIZE:
        return name, _V3_ITEMSIZE[name]
    if name.startswith("r") and name[1:].isdigit() and int(name[1:]) % 8 == 0:
        return name, int(name[1:]) // 8
    return name, 0


def _v3_key_encoding(doc: Mapping[str, Any]) -> ChunkKeyEncoding:
    spec = doc.get("chunk_key_encoding") or {"name": "default"}
    name = spec.get("name") if isinstance(spec, dict) else None
    if name not in ("default", "v2"):
        raise ValueError(f"unsupported 'chunk_key_encoding' {_short(spec)}")
    config = _mapping(spec.get("configuration"), "chunk_key_encoding.configuration")
    separator = config.get("separator", "/" if name == "default" else ".")
    if separator not in (".", "/"):
        raise ValueError(f"chunk key separator must be '.' or '/', got {_short(separator)}")
    return ChunkKeyEncoding(name=name, separator=separator)


def _regular_chunk_shape(doc: Mapping[str, Any]) -> tuple[int, ...]:
    grid = doc.get("chunk_grid")
    if not isinstance(grid, dict) or grid.get("name") != "regular":
        raise ValueError(f"only the 'regular' chunk_grid is supported, got {_short(grid)}")
    return _int_tuple(
        _mapping(grid.get("configuration"), "chunk_grid.configuration"), "chunk_shape"
    )


def _v3_codec_label(codec: Mapping[str, Any]) -> str:
    name = codec.get("name")
    config = _mapping(codec.get("configuration"), f"codecs[{_short(name)}].configuration")
    if name == "sharding_indexed":
        inner_codecs = _mappings(config.get("codecs"), "sharding_indexed.codecs")
        inner = ",".join(_v3_codec_label(c) for c in inner_codecs)
        return f"sharding_indexed({inner})"
    return _codec_label(name, config)


def _shard_index_spec(config: Mapping[str, Any], cps: tuple[int, ...]) -> ShardIndexSpec | None:
    byteorder: Literal["<", ">"] = "<"
    checksum = 0
    for codec in _mappings(config.get("index_codecs"), "sharding_indexed.index_codecs"):
        name = codec.get("name")
        if name == "bytes":
            bytes_config = _mapping(codec.get("configuration"), "index_codecs.bytes.configuration")
            endian = bytes_config.get("endian", "little")
            byteorder = "<" if endian == "little" else ">"
        elif name == "crc32c":
            checksum = 4
        else:
            return None
    location = config.get("index_location", "end")
    if location not in ("start", "end"):
        raise ValueError(f"'index_location' must be 'start' or 'end', got {_short(location)}")
    return ShardIndexSpec(
        location=location,
        byteorder=byteorder,
        checksum_bytes=checksum,
        chunks_per_shard=cps,
    )


def parse_v3_array(doc: Mapping[str, Any]) -> ArrayMetadata:
    """Parse a Zarr v3 ``zarr.json`` document of ``node_type`` array."""
    shape = _int_tuple(doc, "shape")
    grid_chunks = _regular_chunk_shape(doc)
    if len(grid_chunks) != len(shape) or any(c == 0 for c in grid_chunks):
        raise ValueError(f"chunk shape {list(grid_chunks)} does not fit shape {list(shape)}")
    dtype, itemsize = _v3_data_type(doc.get("data_type"))
    _check_sizes(shape, grid_chunks, itemsize)
    codecs = doc.get("codecs")
    if not isinstance(codecs, list) or not all(isinstance(c, dict) for c in codecs):
        raise ValueError(f"'codecs' must be a list of objects, got {_short(codecs)}")
    chunks, shards, shard_index = grid_chunks, None, None
    sharding = [c for c in codecs if c.get("name") == "sharding_indexed"]
    if sharding:
        config = _mapping(sharding[0].get("configuration"), "sharding_indexed.configuration")
        inner = _int_tuple(config, "chunk_shape")
        if len(inner) != len(shape) or any(
            c == 0 or s % c for s, c in zip(grid_chunks, inner, strict=True)
        ):
            raise ValueError(
                f"inner chunk shape {list(inner)} must divide shard shape {list(grid_chunks)}"
            )
        chunks, shards = inner, grid_chunks
        cps = tuple(s // c for s, c in zip(grid_chunks, inner, strict=True))
        shard_index = _shard_index_spec(config, cps)
    names = doc.get("dimension_names")
    dimension_names = (
        tuple("" if n is None else str(n) for n in names)
        if isinstance(names, list) and len(names) == len(shape)
        else None
    )
    attributes = doc.get("attributes") or {}
    return ArrayMetadata(
        zarr_format=3,
        shape=shape,
        chunks=chunks,
        shards=shards,
        dtype=dtype,
        itemsize=itemsize,
        dimension_names=dimension_names,
        codecs=",".join(_v3_codec_label(c) for c in codecs) or "none",
        key_encoding=_v3_key_encoding(doc),
        shard_index=shard_index,
        attributes=attributes if isinstance(attributes, dict) else {},
    )


def node_type_of_v3(doc: Mapping[str, Any]) -> Literal["array", "group"]:
    """Return the ``node_type`` of a v3 document, checking ``zarr_format``."""
    if doc.get("zarr_format") != 3:
        raise ValueError(f"'zarr_format' must be 3, got {_short(doc.get('zarr_format'))}")
    node_type = doc.get("node_type")
    if node_type not in ("array", "group"):
        raise ValueError(f"'node_type' must be 'array' or 'group', got {_short(node_type)}")
    return node_type


def shard_index_ranges(index: bytes, spec: ShardIndexSpec) -> tuple[np.ndarray, np.ndarray]:
    """Decode a shard index into per-inner-chunk ``(offsets, lengths)``; -1 = absent."""
    count = spec.nbytes - spec.checksum_bytes
    raw = np.frombuffer(index, dtype=f"{spec.byteorder}u8", count=count // 8)
    pairs = raw.reshape(-1, 2)
    empty = (pairs[:, 0] == np.iinfo(np.uint64).max) & (pairs[:, 1] == np.iinfo(np.uint64).max)
    offsets = np.where(empty, -1, pairs[:, 0].astype(np.int64))
    lengths = np.where(empty, -1, pairs[:, 1].astype(np.int64))
    return offsets, lengths


def shard_index_slice(spec: ShardIndexSpec) -> tuple[int, int | None]:
    """Return the ``(start, end)`` byte range of the index inside a shard."""
    return (0, spec.nbytes) if spec.location == "start" else (-spec.nbytes, None)


def axes_label(names: Sequence[str] | None) -> str | None:
    """Join single-letter dimension names into an ``axes`` string (``czyx``)."""
    if not names or not all(isinstance(n, str) and len(n) == 1 for n in names):
        return None
    return "".join(names).lower()
