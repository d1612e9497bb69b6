"""Batched reading of Zarr node metadata (v2 or v3, plain or consolidated).

A :class:`NodeReader` turns store-relative node paths into :class:`Node`
objects, reading every requested metadata document of a batch at once and
memoising parsed documents and array metadata by their raw bytes (a plate
repeats the same few: every well's and every field's ``.zattrs`` alike). Nodes
read from identical documents share one parsed object: treat it as read-only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.formats.zarr.metadata import (
    ArrayMetadata,
    node_type_of_v3,
    parse_v2_array,
    parse_v3_array,
)
from iceberg_bioimage.io.storage import Store
from iceberg_bioimage.models.limits import load_json
from iceberg_bioimage.models.paths import join_key, relative_key

#: Documents up to this size are parsed once per distinct content.
_MEMO_BYTES = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class Node:
    """A Zarr group or array found in the store."""

    path: str
    kind: Literal["group", "array"]
    attributes: Mapping[str, Any]
    array: ArrayMetadata | None = None


def join_path(parent: str, child: str) -> str:
    """Join store-relative paths without a leading slash (``..`` is refused)."""
    return join_key(parent, child)


def _object(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise MetadataError(where, f"expected a JSON object, got {type(doc).__name__}")
    return doc


class NodeReader:
    """Reads node metadata of one store in batches."""

    def __init__(
        self, store: Store, zarr_format: Literal[2, 3], root_docs: Mapping[str, bytes]
    ) -> None:
        self.store = store
        self.zarr_format = zarr_format
        self._array_cache: dict[bytes, ArrayMetadata] = {}
        self._json_cache: dict[bytes, Any] = {}
        self.consolidated = self._consolidated(root_docs)

    # -- documents ---------------------------------------------------------
    def _consolidated(self, root_docs: Mapping[str, bytes]) -> dict[str, Any] | None:
        if self.zarr_format == 2 and root_docs.get(".zmetadata"):
            doc = _object(
                self._decode(root_docs[".zmetadata"], ".zmetadata"), self.where(".zmetadata")
            )
            metadata = doc.get("metadata")
            if not isinstance(metadata, dict):
                raise MetadataError(self.where(".zmetadata"), "'metadata' must be an object")
            return self._contained(metadata, ".zmetadata")
        if self.zarr_format == 3 and root_docs.get("zarr.json"):
            doc = _object(
                self._decode(root_docs["zarr.json"], "zarr.json"), self.where("zarr.json")
            )
            consolidated = doc.get("consolidated_metadata")
            if isinstance(consolidated, dict) and isinstance(consolidated.get("metadata"), dict):
                nodes = self._contained(consolidated["metadata"], "zarr.json")
                return {join_path(path, "zarr.json"): value for path, value in nodes.items()} | {
                    "zarr.json": doc
                }
        return None

    def _contained(self, metadata: Mapping[str, Any], name: str) -> dict[str, Any]:
        """Consolidated entries keyed by normalised paths; keys leaving the store refused."""
        out: dict[str, Any] = {}
        for key, value in metadata.items():
            try:
                out[relative_key(key)] = value
            except ValueError as error:
                raise MetadataError(
                    self.where(name), f"consolidated metadata key {key!r}: {error}"
                ) from error
        return out

    def _decode(self, data: bytes, key: str) -> Any:
        """Parse one metadata document within the store's limits."""
        return load_json(data, self.where(key), self.store.limits)

    def where(self, key: str) -> str:
        """Location of a metadata document, for messages."""
        return self.store.location(key)

    def _documents(self, keys: Sequence[str]) -> list[Any]:
        """Return parsed JSON per key (``None`` when absent)."""
        if self.consolidated is not None:
            return [self.consolidated.get(key) for key in keys]
        raw = self.store.read_many(keys)
        return [
            None if data is None else self._json(data, key)
            for key, data in zip(keys, raw, strict=True)
        ]

    def _raw_documents(self, keys: Sequence[str]) -> list[Any]:
        """Like :meth:`_documents` but keeps raw bytes (for memoised parsing)."""
        if self.consolidated is not None:
            return [self.consolidated.get(key) for key in keys]
        return self.store.read_many(keys)

    # -- nodes -------------------------------------------------------------
    def groups(self, paths: Sequence[str]) -> list[Node | None]:
        """Group nodes at ``paths`` (attributes only); ``None`` where absent."""
        if self.zarr_format == 3:
            return [
                None if node is None or node.kind != "group" else node
                for node in self._v3_nodes(paths)
            ]
        docs = self._documents([join_path(p, ".zattrs") for p in paths])
        return [
            None
            if doc is None
            else Node(
                path=p,
                kind="group",
                attributes=_object(doc, self.where(join_path(p, ".zattrs"))),
            )
            for p, doc in zip(paths, docs, strict=True)
        ]

    def arrays(self, paths: Sequence[str]) -> list[Node | None]:
        """Array nodes at ``paths``; ``None`` where absent."""
        if self.zarr_format == 3:
            return [
                None if node is None or node.kind != "array" else node
                for node in self._v3_nodes(paths)
            ]
        keys = [join_path(p, ".zarray") for p in paths]
        out: list[Node | None] = []
        for path, key, raw in zip(paths, keys, self._raw_documents(keys), strict=True):
            out.append(
                None
                if raw is None
                else Node(
                    path=path,
                    kind="array",
                    attributes={},
                    array=self._v2_array(raw, key, {}),
                )
            )
        return out

    def probe(self, paths: Sequence[str]) -> list[Node | None]:
        """Nodes of unknown kind at ``paths`` (``None`` where no Zarr node is)."""
        if self.zarr_format == 3:
            return self._v3_nodes(paths)
        suffixes = (".zarray", ".zgroup", ".zattrs")
        keys = [join_path(p, s) for p in paths for s in suffixes]
        raw = self._raw_documents(keys)
        out: list[Node | None] = []
        for index, path in enumerate(paths):
            zarray, zgroup, zattrs = raw[3 * index : 3 * index + 3]
            attrs_key = join_path(path, ".zattrs")
            attributes = (
                {}
                if zattrs is None
                else _object(self._json(zattrs, attrs_key), self.where(attrs_key))
            )
            if zarray is not None:
                array = self._v2_array(zarray, join_path(path, ".zarray"), attributes)
                out.append(Node(path=path, kind="array", attributes=attributes, array=array))
            elif zgroup is not None or zattrs is not None:
                if zgroup is not None:
                    self._check_v2_group(zgroup, join_path(path, ".zgroup"))
                out.append(Node(path=path, kind="group", attributes=attributes))
            else:
                out.append(None)
        return out

    def _check_v2_group(self, raw: Any, key: str) -> None:
        """A ``.zgroup`` must be a JSON object with ``zarr_format`` 2."""
        doc = _object(self._json(raw, key), self.where(key))
        if doc.get("zarr_format") != 2:
            raise MetadataError(
                self.where(key), f"'zarr_format' must be 2, got {doc.get('zarr_format')!r:.60}"
            )

    def _json(self, raw: Any, key: str) -> Any:
        """The parsed document: decoded once per distinct (small) content."""
        if not isinstance(raw, bytes):
            return raw
        if len(raw) > _MEMO_BYTES:
            return self._decode(raw, key)
        found = self._json_cache.get(raw)
        if found is None:
            found = self._json_cache[raw] = self._decode(raw, key)
        return found

    def _v2_array(self, raw: Any, key: str, attributes: Mapping[str, Any]) -> ArrayMetadata:
        cacheable = isinstance(raw, bytes) and not attributes
        if cacheable and raw in self._array_cache:
            return self._array_cache[raw]
        doc = _object(self._json(raw, key), self.where(key))
        try:
            parsed = parse_v2_array(doc, attributes)
        except ValueError as error:
            raise MetadataError(self.where(key), f"invalid array metadata: {error}") from error
        if cacheable:
            self._array_cache[raw] = parsed
        return parsed

    def _v3_nodes(self, paths: Sequence[str]) -> list[Node | None]:
        keys = [join_path(p, "zarr.json") for p in paths]
        out: list[Node | None] = []
        for path, raw in zip(paths, self._raw_documents(keys), strict=True):
            out.append(None if raw is None else self.v3_node(path, raw))
        return out

    def v3_node(self, path: str, raw: Any) -> Node:
        """Parse one ``zarr.json`` (bytes or an already-decoded object)."""
        key = join_path(path, "zarr.json")
        if isinstance(raw, bytes) and raw in self._array_cache:
            array = self._array_cache[raw]
            return Node(path=path, kind="array", attributes=array.attributes, array=array)
        doc = _object(self._json(raw, key), self.where(key))
        try:
            kind = node_type_of_v3(doc)
            array = parse_v3_array(doc) if kind == "array" else None
        except ValueError as error:
            raise MetadataError(
                self.where(key),
                f"invalid {doc.get('node_type', 'node')} metadata: {error}",
            ) from error
        attributes = doc.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise MetadataError(self.where(key), "'attributes' must be an object")
        if array is not None and isinstance(raw, bytes):
            self._array_cache[raw] = array
        return Node(path=path, kind=kind, attributes=attributes, array=array)

    def children(self, path: str) -> list[str]:
        """Child paths of a group (from consolidated metadata when present)."""
        if self.consolidated is None:
            return [join_path(path, name) for name in self.store.list_children(path)]
        prefix = f"{path}/" if path else ""
        names = {
            key[len(prefix) :].split("/", 1)[0]
            for key in self.consolidated
            if key.startswith(prefix) and "/" in key[len(prefix) :]
        }
        return [join_path(path, name) for name in sorted(names)]
