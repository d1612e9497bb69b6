"""The Cytomining warehouse manifest (the merged Cytomining Warehouse Specification, 1.0.0).

Roles come from the specification's controlled vocabulary. Each role has the one
namespace the specification requires for it (profile tables in ``profiles``, image
tables in ``images``, quality control in ``quality_control``); roles without one
(``embeddings``, ``annotations``, ``reports``) default to ``profiles``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from iceberg_bioimage.exceptions import InvalidNameError
from iceberg_bioimage.models.names import check_table_name
from iceberg_bioimage.models.paths import relative_key

WAREHOUSE_SPEC_VERSION = "1.0.0"
MANIFEST_NAME = "warehouse_manifest.json"
Layout = Literal["namespaced", "flat"]
Mode = Literal["overwrite", "append"]


@dataclass(frozen=True, kw_only=True)
class RoleSpec:
    """The facts of one manifest role, read by the writer, the validator, the API and the CLI.

    Attributes:
        role: the role as the manifest writes it.
        namespace: the namespace the specification requires (MUST) for the role's
            tables; ``None`` when it requires none (bare names go to ``profiles``).
        required: in the vocabulary every implementation MUST know.
        image_keyed: rows join images, so carry ``dataset_id`` and ``image_id``
            (``image_ids`` at well grain).
        from_images: profile-like rows lacking ``image_id`` get it from the warehouse's
            ``images.image_assets`` (by plate/well/site keys).
        object_rows: one kind of object per table, each row with a unique
            ``object_id`` (unless the table is an image- or well-level aggregate).
        table_name: the canonical table of the role, when it has one.
        join_keys: the canonical table's join keys.
        grain: the canonical table's ``grain`` (``profile_level``, ``level``...).
    """

    role: str
    namespace: str | None
    required: bool
    image_keyed: bool = False
    from_images: bool = False
    object_rows: bool = False
    table_name: str | None = None
    join_keys: tuple[str, ...] = ()
    grain: dict[str, str | None] = field(default_factory=dict)


#: Every role of the merged specification's controlled vocabulary, one entry each.
TABLE_SPECS: dict[str, RoleSpec] = {
    spec.role: spec
    for spec in (
        RoleSpec(
            role="profiles",
            namespace="profiles",
            required=True,
            image_keyed=True,
            from_images=True,
            object_rows=True,
        ),
        RoleSpec(
            role="image_assets",
            namespace="images",
            required=True,
            image_keyed=True,
            table_name="images.image_assets",
            join_keys=("dataset_id", "image_id"),
            grain={"level": "array"},
        ),
        RoleSpec(
            role="chunk_index",
            namespace="images",
            required=True,
            image_keyed=True,
            table_name="images.chunk_index",
            join_keys=("dataset_id", "image_id", "array_path"),
            grain={"level": "chunk"},
        ),
        RoleSpec(
            role="joined_profiles",
            namespace="profiles",
            required=True,
            image_keyed=True,
            from_images=True,
            object_rows=True,
            table_name="profiles.joined_profiles",
        ),
        RoleSpec(
            role="quality_control",
            namespace="quality_control",
            required=True,
            image_keyed=True,
            from_images=True,
        ),
        RoleSpec(
            role="image_crops",
            namespace="images",
            required=False,
            image_keyed=True,
            table_name="images.image_crops",
            join_keys=("dataset_id", "image_id", "object_id"),
            grain={"profile_level": "object"},
        ),
        RoleSpec(
            role="source_images",
            namespace="images",
            required=False,
            image_keyed=True,
            table_name="images.source_images",
            join_keys=("dataset_id", "image_id"),
            grain={"profile_level": "image", "compartment": None},
        ),
        RoleSpec(
            role="profile_with_images",
            namespace="profiles",
            required=False,
            image_keyed=True,
            object_rows=True,
            table_name="profiles.profile_with_images",
            join_keys=("dataset_id", "image_id", "object_id"),
            grain={"profile_level": "object"},
        ),
        RoleSpec(role="embeddings", namespace=None, required=False),
        RoleSpec(
            role="annotations",
            namespace=None,
            required=False,
            table_name="images.platemap",
            join_keys=("plate_id", "well_id"),
            grain={"level": "well"},
        ),
        RoleSpec(
            role="reports",
            namespace=None,
            required=False,
            image_keyed=True,
            table_name="images.thumbnails",
            join_keys=("dataset_id", "image_id"),
            grain={"profile_level": "image", "compartment": None},
        ),
    )
}
ROLES = tuple(TABLE_SPECS)
REQUIRED_ROLES = tuple(role for role, spec in TABLE_SPECS.items() if spec.required)
OPTIONAL_ROLES = tuple(role for role, spec in TABLE_SPECS.items() if not spec.required)
#: The namespace the specification requires for a role (MUST).
ROLE_NAMESPACES = {role: spec.namespace for role, spec in TABLE_SPECS.items() if spec.namespace}
#: Namespace of a bare table name whose role requires none.
DEFAULT_NAMESPACE = "profiles"
#: Names of the boolean flag of quality-control tables (the specification's is the first).
QC_PASS_COLUMNS = ("qc_pass", "QC_Pass", "qcpass", "Metadata_qc_pass")


def table_spec(role: str) -> RoleSpec:
    """The facts of ``role``; a project role outside the vocabulary gets none of them."""
    return TABLE_SPECS.get(role) or RoleSpec(role=role, namespace=None, required=False)


def qualified_table_name(name: str, role: str) -> str:
    """``pycytominer_profiles`` → ``profiles.pycytominer_profiles`` (dotted, as written).

    Raises :class:`InvalidNameError` when a dotted name puts the table outside the
    namespace its role requires (``profiles.qc`` with role ``quality_control``).
    """
    required = ROLE_NAMESPACES.get(role)
    if "." not in name:
        return f"{required or DEFAULT_NAMESPACE}.{name}"
    namespace = name.split(".", 1)[0]
    if required is not None and namespace != required:
        raise InvalidNameError(
            f"table {name}",
            f"{role} tables live in the {required} namespace "
            f"({required}.{name.split('.', 1)[1]}), as the warehouse specification requires",
        )
    return name


def required_namespace(role: str) -> str | None:
    """The namespace the specification requires for ``role``, if it requires one."""
    return ROLE_NAMESPACES.get(role)


def table_path(table_name: str, layout: Layout) -> str:
    """Folder of a table relative to the root: ``images/image_assets`` or ``image_assets``."""
    return table_name.replace(".", "/") if layout == "namespaced" else table_name.rsplit(".", 1)[-1]


@dataclass(frozen=True, kw_only=True)
class TableFile:
    """One Parquet file of a table and the dataset it holds."""

    path: str
    dataset_id: str | None
    rows: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values."""
        return {"path": self.path, "dataset_id": self.dataset_id, "rows": self.rows}


@dataclass(frozen=True, kw_only=True)
class TableEntry:
    """A manifest entry: where a table is, what it holds, how it joins."""

    table_name: str
    role: str
    path: str
    join_keys: tuple[str, ...]
    columns: tuple[dict[str, str], ...]
    grain: dict[str, str | None]
    files: tuple[TableFile, ...]
    provenance: dict[str, Any]
    format: str = "parquet"

    @property
    def row_count(self) -> int:
        """Rows over every file."""
        return sum(f.rows for f in self.files)

    @property
    def datasets(self) -> tuple[str, ...]:
        """Datasets present, sorted."""
        return tuple(sorted({f.dataset_id for f in self.files if f.dataset_id is not None}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values."""
        return {
            "table_name": self.table_name,
            "role": self.role,
            "format": self.format,
            "path": self.path,
            "join_keys": list(self.join_keys),
            "columns": [dict(c) for c in self.columns],
            "row_count": self.row_count,
            "grain": dict(self.grain),
            "datasets": list(self.datasets),
            "files": [f.to_dict() for f in self.files],
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TableEntry:
        """Read an entry written by :meth:`to_dict`.

        Raises ``KeyError``/``TypeError``/``ValueError`` if malformed, including a
        table ``path`` that could leave the warehouse root and a file ``path`` that
        is not a plain ``.parquet`` file name in the table folder.
        """
        if not isinstance(doc, dict):
            raise TypeError(f"a table entry must be an object, got {type(doc).__name__}")
        return cls(
            table_name=check_table_name(doc["table_name"]),
            role=doc["role"],
            format=doc.get("format", "parquet"),
            path=table_folder(doc["path"]),
            join_keys=tuple(doc.get("join_keys") or ()),
            columns=tuple(doc.get("columns") or ()),
            grain=dict(doc.get("grain") or {}),
            files=tuple(
                TableFile(
                    path=file_name(f["path"]), dataset_id=f.get("dataset_id"), rows=int(f["rows"])
                )
                for f in doc.get("files") or ()
            ),
            provenance=dict(doc.get("provenance") or {}),
        )


def table_folder(path: Any) -> str:
    """A manifest table ``path``: relative and inside the root; ``ValueError`` otherwise."""
    try:
        ok = isinstance(path, str) and not path.startswith("/") and relative_key(path) == path
    except ValueError:
        ok = False
    if not ok or not path:
        raise ValueError(f"table path {path!r} must be a relative folder inside the root")
    return path


def file_name(path: Any) -> str:
    """A manifest file ``path``: a plain ``.parquet`` name in its table folder."""
    if (
        not isinstance(path, str)
        or not path.endswith(".parquet")
        or any(c in path for c in "/\\\x00")
        or path.startswith(".")
    ):
        raise ValueError(f"file {path!r} must be a plain .parquet file name in its table folder")
    return path


@dataclass(frozen=True, kw_only=True)
class WarehouseManifest:
    """``warehouse_manifest.json`` of a warehouse root."""

    layout: Layout
    tables: tuple[TableEntry, ...] = ()
    producer: dict[str, str] = field(default_factory=dict)
    warehouse_spec_version: str = WAREHOUSE_SPEC_VERSION
    updated_at: str | None = None

    def table(self, table_name: str) -> TableEntry | None:
        """The entry of ``table_name``, if any."""
        return next((t for t in self.tables if t.table_name == table_name), None)

    def with_table(self, entry: TableEntry) -> WarehouseManifest:
        """A copy with ``entry`` added or replacing the entry of the same name."""
        others = tuple(t for t in self.tables if t.table_name != entry.table_name)
        return replace(self, tables=tuple(sorted((*others, entry), key=lambda t: t.table_name)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values, as written to the manifest file."""
        return {
            "warehouse_spec_version": self.warehouse_spec_version,
            "layout": self.layout,
            "producer": dict(self.producer),
            "updated_at": self.updated_at,
            "tables": [t.to_dict() for t in self.tables],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> WarehouseManifest:
        """Read a manifest document (``KeyError``/``TypeError``/``ValueError`` if malformed)."""
        if not isinstance(doc, dict):
            raise TypeError(f"the manifest must be a JSON object, got {type(doc).__name__}")
        layout = doc.get("layout", "namespaced")
        if layout not in ("namespaced", "flat"):
            raise ValueError(f"unknown layout {layout!r}")
        return cls(
            layout=layout,
            tables=tuple(TableEntry.from_dict(t) for t in doc.get("tables") or ()),
            producer=dict(doc.get("producer") or {}),
            warehouse_spec_version=str(doc["warehouse_spec_version"]),
            updated_at=doc.get("updated_at"),
        )


#: A folder a migrated table moves from, the folder it moves to, and its file names.
TableMove = tuple[str, str, tuple[str, ...]]


def migrated(manifest: WarehouseManifest) -> tuple[WarehouseManifest, list[TableMove]]:
    """A 0.2 manifest brought to the merged specification, and the folders to move.

    0.2 followed an earlier draft that put quality-control tables under
    ``profiles.``; they move to ``quality_control.<name>``. Returns the new manifest
    and ``(old folder, new folder)`` pairs (empty when nothing moves).
    """
    moves: list[tuple[str, str]] = []
    tables = []
    names = {t.table_name for t in manifest.tables}
    for entry in manifest.tables:
        required = required_namespace(entry.role)
        namespace, _dot, rest = entry.table_name.partition(".")
        if required is None or namespace == required or f"{required}.{rest}" in names:
            tables.append(entry)
            continue
        name = f"{required}.{rest}"
        path = table_path(name, manifest.layout)
        if path != entry.path:
            moves.append((entry.path, path, tuple(f.path for f in entry.files)))
        tables.append(replace(entry, table_name=name, path=path))
    tables.sort(key=lambda t: t.table_name)
    return replace(manifest, tables=tuple(tables)), moves
