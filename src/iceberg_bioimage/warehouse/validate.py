"""Check a Cytomining Parquet warehouse against the merged Cytomining Warehouse Specification.

:func:`validate_warehouse` reads ``warehouse_manifest.json`` and the footers of the
Parquet files (row counts and schemas); of the rows it reads only ``object_id`` of
object-level profile tables (uniqueness) and, for a warehouse without a manifest,
``dataset_id``. Every problem is one message naming the table or file. An error
starts with the requirement (a MUST of the specification, see :data:`REQUIREMENTS`)
it breaks, e.g. ``[namespaces] table profiles.qc: ...``; warnings (SHOULDs, leftovers
of interrupted writes) leave the warehouse usable.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from iceberg_bioimage.exceptions import MetadataError
from iceberg_bioimage.models.limits import Limits, load_json
from iceberg_bioimage.models.paths import read_inside, resolve_inside
from iceberg_bioimage.models.results import WarehouseValidationResult
from iceberg_bioimage.models.warehouse import (
    MANIFEST_NAME,
    QC_PASS_COLUMNS,
    ROLES,
    TABLE_SPECS,
    WAREHOUSE_SPEC_VERSION,
    Layout,
    TableEntry,
    TableFile,
    WarehouseManifest,
    required_namespace,
    table_path,
)
from iceberg_bioimage.warehouse.foreign import (
    ForeignTable,
    describe,
    find_registry,
    folder_tables,
    registry_tables,
)
from iceberg_bioimage.warehouse.write import STAGING_PREFIX, WRITTEN_FILE

#: The specification's MUSTs, by the id that starts each error message.
REQUIREMENTS = {
    "manifest": "<root>/warehouse_manifest.json exists and is a readable JSON object",
    "version": "warehouse_spec_version is a semantic version with a major version readers know",
    "entries": "every table entry has a unique dotted table_name, a role, format, join_keys "
    "and columns",
    "roles": "roles come from the controlled vocabulary",
    "layout": "table <namespace>.<table> lives at <root>/<namespace>/<table>/",
    "namespaces": "profile tables in profiles, image tables in images, quality-control tables "
    "in quality_control",
    "image-assets": "image metadata is in images.image_assets",
    "profile-ids": "every profile table includes image identifiers and unique object identifiers",
    "files": "readers see complete tables: every listed file exists, is Parquet, has the rows "
    "and columns the manifest says, and table folders hold nothing else",
}
#: Roles whose tables join images, so carry ``dataset_id`` and ``image_id``.
JOINABLE_ROLES = tuple(role for role, spec in TABLE_SPECS.items() if spec.image_keyed)
#: Roles of profile tables (one kind of object per table, with object and image ids).
PROFILE_ROLES = tuple(role for role, spec in TABLE_SPECS.items() if spec.object_rows)
#: Profile levels whose rows are not objects (no object_id needed).
AGGREGATES = ("image", "well")
#: Tables of warehouses written before the manifest existed, found by their folders.
LEGACY_TABLES = {
    str(TABLE_SPECS[role].table_name): role
    for role in ("image_assets", "chunk_index", "joined_profiles")
}
IMAGE_ASSETS = str(TABLE_SPECS["image_assets"].table_name)
_REQUIREMENT = re.compile(r"\[([a-z-]+)\] ")
_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:[-+].*)?")
_TABLE_NAME = re.compile(r"[^./\\\s]+(?:\.[^./\\\s]+)+")


@dataclass(frozen=True, kw_only=True)
class _TableCheck:
    """One table's summary, errors and warnings."""

    summary: dict[str, Any]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]


def validate_warehouse(root: str | os.PathLike[str]) -> WarehouseValidationResult:
    """Check the warehouse at ``root``: manifest, layout, table folders and Parquet footers.

    Never raises for a broken warehouse; an unknown major ``warehouse_spec_version``
    stops the check at once (readers fail fast), a newer minor one is a warning.
    A warehouse without a manifest is invalid, but the tables its ``namespaced``
    or ``flat`` folders hold are still checked and reported.
    """
    base = Path(root)
    if not base.is_dir():
        return _result(
            base, errors=[_must("manifest", f"{base}: no warehouse folder here")], warnings=[]
        )
    warnings = _leftover_warnings(base)
    if not (base / MANIFEST_NAME).is_file():
        return _without_manifest(base, warnings)
    return _with_manifest(base, warnings)


def _result(
    base: Path,
    *,
    errors: Sequence[str],
    warnings: Sequence[str],
    layout: Layout | None = None,
    spec_version: str | None = None,
    checks: Sequence[_TableCheck] = (),
) -> WarehouseValidationResult:
    failed = {m[1] for e in errors if (m := _REQUIREMENT.match(e))}
    return WarehouseValidationResult(
        root=str(base),
        is_valid=not errors,
        layout=layout,
        spec_version=spec_version,
        failed_requirements=tuple(r for r in REQUIREMENTS if r in failed),
        tables=tuple(c.summary for c in checks),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )


def _leftover_warnings(base: Path) -> list[str]:
    """Staging folders and temporary manifests left by interrupted (or running) writes."""
    staging = sorted(base.glob(f"{STAGING_PREFIX}*"))
    temporary = sorted(base.glob(f".{MANIFEST_NAME}.*.tmp"))
    return [
        *(f"{p}: staging folder left by an interrupted or running write" for p in staging),
        *(f"{p}: temporary manifest left by an interrupted or running write" for p in temporary),
    ]


# -- Warehouses with a manifest ----------------------------------------------------


def _with_manifest(base: Path, warnings: list[str]) -> WarehouseValidationResult:
    path = base / MANIFEST_NAME
    doc = _load_document(path)
    if isinstance(doc, str):
        return _result(base, errors=[_must("manifest", doc)], warnings=warnings)
    version = doc.get("warehouse_spec_version")
    spec_version = version if isinstance(version, str) else None
    version_errors, version_warnings = _version_problems(path, version)
    warnings = [*warnings, *version_warnings]
    if version_errors:
        errors = [_must("version", e) for e in version_errors]
        return _result(base, errors=errors, warnings=warnings, spec_version=spec_version)
    try:
        manifest = WarehouseManifest.from_dict({**doc, "tables": []})
    except (KeyError, TypeError, ValueError) as error:
        problem = _must("manifest", f"{path}: invalid manifest: {error}")
        return _result(base, errors=[problem], warnings=warnings, spec_version=spec_version)
    entries, errors = _parse_entries(path, doc.get("tables"))
    errors = [_must("entries", e) for e in errors]
    checks = [_check_entry(base, entry, manifest.layout) for entry in entries]
    errors += [*_manifest_problems(path, entries), *(e for c in checks for e in c.errors)]
    warnings += [
        *(w for c in checks for w in c.warnings),
        *_interrupted_write_warnings(base, entries),
        *_unlisted_folders(base, entries),
        *_draft_warnings(path, doc),
    ]
    if manifest.layout == "flat":
        warnings.append(
            f"{path}: the flat layout is read by every reader, but the specification places "
            "tables at <namespace>/<table>/ (export with layout='namespaced')"
        )
    return _result(
        base,
        errors=errors,
        warnings=warnings,
        layout=manifest.layout,
        spec_version=spec_version,
        checks=checks,
    )


def _load_document(path: Path) -> dict[str, Any] | str:
    """The manifest's JSON object, or the message saying why it cannot be read."""
    limits = Limits.from_env()
    try:
        raw = read_inside(str(path.parent.resolve()), str(path), limits.max_metadata_bytes)
        doc = load_json(raw or b"", str(path), limits)
    except MetadataError as error:
        return f"{path}: unreadable manifest: {error.problem}"
    return doc if isinstance(doc, dict) else f"{path}: the manifest is not a JSON object"


def _version_problems(path: Path, version: Any) -> tuple[list[str], list[str]]:
    """Errors and warnings of ``warehouse_spec_version`` against the version spoken here."""
    theirs = _SEMVER.fullmatch(version) if isinstance(version, str) else None
    if theirs is None:
        return [f"{path}: warehouse_spec_version {version!r} is not a semantic version"], []
    our_major, our_minor = (int(part) for part in WAREHOUSE_SPEC_VERSION.split(".")[:2])
    if int(theirs[1]) != our_major:
        return [
            f"{path}: warehouse_spec_version {version} has an unknown major version; "
            f"this validator reads {WAREHOUSE_SPEC_VERSION}"
        ], []
    if int(theirs[2]) > our_minor:
        return [], [
            f"{path}: warehouse_spec_version {version} is newer than {WAREHOUSE_SPEC_VERSION}; "
            "what it added is not checked"
        ]
    return [], []


def _parse_entries(path: Path, raw_tables: Any) -> tuple[list[TableEntry], list[str]]:
    """Manifest entries that parse, and one message per entry that does not."""
    if not isinstance(raw_tables, list):
        return [], [f"{path}: 'tables' must be a list of table entries"]
    entries, errors = [], []
    for index, raw in enumerate(raw_tables):
        try:
            entries.append(_parse_entry(raw))
        except (KeyError, TypeError, ValueError) as error:
            name = raw.get("table_name") if isinstance(raw, dict) else None
            errors.append(
                f"{path}: table entry {index} ({name}) is malformed: "
                f"{type(error).__name__}: {error}"
            )
    return entries, errors


def _parse_entry(raw: Any) -> TableEntry:
    entry = TableEntry.from_dict(raw)
    if not all(isinstance(v, str) for v in (entry.table_name, entry.role, entry.path)):
        raise TypeError("table_name, role and path must be strings")
    if not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in entry.columns):
        raise ValueError("every column needs a name")
    return entry


def _manifest_problems(path: Path, entries: Sequence[TableEntry]) -> list[str]:
    """Duplicate names or folders, and a missing ``image_assets`` table."""
    counts = Counter(e.table_name for e in entries)
    problems = [
        _must("entries", f"{path}: table {n} is listed {k} times")
        for n, k in counts.items()
        if k > 1
    ]
    by_folder: defaultdict[str, set[str]] = defaultdict(set)
    for entry in entries:
        by_folder[entry.path].add(entry.table_name)
    problems += [
        _must("layout", f"{path}: tables {', '.join(sorted(names))} share the folder {folder}")
        for folder, names in by_folder.items()
        if len(names) > 1
    ]
    if not any(e.role == "image_assets" and e.table_name == IMAGE_ASSETS for e in entries):
        problems.append(
            _must("image-assets", f"{path}: no {IMAGE_ASSETS} table (role image_assets)")
        )
    return problems


def _unlisted_folders(base: Path, entries: Sequence[TableEntry]) -> list[str]:
    """Folders holding Parquet files that no manifest entry names (staging excluded)."""
    listed = {e.path for e in entries}
    folders = {
        p.parent.relative_to(base).as_posix()
        for p in base.rglob("*.parquet")
        if not any(part.startswith(STAGING_PREFIX) for part in p.relative_to(base).parts)
    }
    return [
        f"{base / folder}: holds Parquet files but no manifest entry names it"
        for folder in sorted(folders - listed)
    ]


def _interrupted_write_warnings(base: Path, entries: Sequence[TableEntry]) -> list[str]:
    """Files an interrupted write renamed into place before its manifest was replaced."""
    found = []
    for entry in entries:
        folder = base / entry.path
        listed = {f.path for f in entry.files}
        if folder.is_dir() and not folder.is_symlink():
            found += [
                f"{folder / child.name}: not listed in the manifest, left by an interrupted "
                "write (readers that follow the manifest ignore it; the next write removes it)"
                for child in sorted(folder.iterdir())
                if child.name not in listed and WRITTEN_FILE.fullmatch(child.name)
            ]
    return found


def _draft_warnings(path: Path, doc: dict[str, Any]) -> list[str]:
    """What a manifest written to an earlier draft of the specification still says."""
    claims = doc.get("conformance_profiles")
    if not claims:
        return []
    return [
        f"{path}: the manifest claims conformance profiles {claims!r}, which the merged "
        "specification does not define; the next write drops the claim"
    ]


def _must(requirement: str, message: str) -> str:
    """An error message that names the requirement it breaks."""
    return f"[{requirement}] {message}"


# -- Warehouses without a manifest ---------------------------------------------------


def _without_manifest(base: Path, warnings: list[str]) -> WarehouseValidationResult:
    registry = find_registry(base)
    if registry is not None:
        return _iceberg_registry(base, registry, warnings)
    layout, entries = _legacy_entries(base)
    if layout is None:
        found = folder_tables(base)
        if found:
            where = "Iceberg table folders (<namespace>/<table>/data/, no catalog.json)"
            return _foreign_result(base, found, where, warnings)
        return _result(
            base,
            errors=[_must("manifest", f"{base}: no {MANIFEST_NAME} and no warehouse tables")],
            warnings=warnings,
        )
    checks = [_check_entry(base, entry, layout) for entry in entries]
    missing = _must(
        "manifest",
        f"{base}: no {MANIFEST_NAME}; found the {layout} layout's tables "
        f"{', '.join(e.table_name for e in entries)}, which readers accept, but only a "
        "manifest makes the warehouse conformant (export to it again to write one)",
    )
    errors = [missing, *(e for c in checks for e in c.errors)]
    warnings += [*(w for c in checks for w in c.warnings), *_unlisted_folders(base, entries)]
    return _result(base, errors=errors, warnings=warnings, layout=layout, checks=checks)


def _iceberg_registry(base: Path, registry: Path, warnings: list[str]) -> WarehouseValidationResult:
    """What an Iceberg warehouse another tool wrote (CytoTable's) lacks, table by table."""
    tables, views, problem = registry_tables(base, registry)
    if problem is not None:
        return _result(base, errors=[_must("manifest", problem)], warnings=warnings)
    warnings = [
        *warnings,
        *(f"{registry}: view {name} is not a table; readers of Parquet skip it" for name in views),
    ]
    return _foreign_result(base, tables, f"{registry.name} registers Iceberg tables", warnings)


def _foreign_result(
    base: Path, tables: Sequence[ForeignTable], found: str, warnings: list[str]
) -> WarehouseValidationResult:
    """The tables another tool wrote, each with what the specification still needs."""
    errors = [
        _must(
            "manifest",
            f"{base}: no {MANIFEST_NAME}; {found}: {describe(list(tables))} (CytoTable's "
            "layout), which the specification reads only through a manifest (export them to "
            "a warehouse with export-cytomining-profiles)",
        )
    ]
    checks = [_foreign_check(table) for table in tables]
    errors += [e for c in checks for e in c.errors]
    if not any(t.table_name == IMAGE_ASSETS for t in tables):
        errors.append(_must("image-assets", f"{base}: no {IMAGE_ASSETS} table"))
    return _result(base, errors=errors, warnings=warnings, checks=checks)


def _foreign_check(table: ForeignTable) -> _TableCheck:
    """One foreign table: its folder and identifier columns against the specification."""
    label = f"table {table.table_name}"
    problems = [] if table.problem is None else [_must("files", f"{label}: {table.problem}")]
    if table.problem is None:
        expected = table_path(table.table_name, "namespaced")
        folders = sorted({Path(f).parent.as_posix() for f in table.data_files})
        if table.folder != expected or any(f != expected for f in folders):
            problems.append(
                _must(
                    "layout",
                    f"{label}: Iceberg table folder {table.folder}/ (data files in "
                    f"{', '.join(f + '/' for f in folders) or 'no folder'}), not {expected}/ "
                    "holding only Parquet files",
                )
            )
        problems += _foreign_id_problems(label, table)
    summary = {
        "table_name": table.table_name,
        "role": table.role,
        "path": table.folder,
        "rows": table.rows,
        "datasets": (),
        "ok": not problems,
        "lacks": [_REQUIREMENT.sub("", p, count=1) for p in problems],
    }
    return _TableCheck(summary=summary, errors=tuple(problems), warnings=())


def _foreign_id_problems(label: str, table: ForeignTable) -> list[str]:
    """Identifier columns the specification needs that a foreign table lacks."""
    needed = ["dataset_id", "image_id"]
    if table.role in PROFILE_ROLES or table.role == "image_crops":
        needed.append("object_id")
    missing = [c for c in needed if c not in table.columns]
    if not missing or table.role not in JOINABLE_ROLES:
        return []
    present = [c for c in table.columns if c.startswith("Metadata_")][:8]
    has = ", ".join(present) or "no Metadata_ columns"
    return [_must("profile-ids", f"{label}: lacks {', '.join(missing)} (it has {has})")]


def _legacy_entries(base: Path) -> tuple[Layout | None, list[TableEntry]]:
    """Entries describing the known table folders that hold Parquet, namespaced first."""
    layouts: tuple[Layout, ...] = ("namespaced", "flat")
    for layout in layouts:
        entries = [
            entry
            for name, role in LEGACY_TABLES.items()
            if (entry := _legacy_entry(base, name, role, layout)) is not None
        ]
        if entries:
            return layout, entries
    return None, []


def _legacy_entry(base: Path, table_name: str, role: str, layout: Layout) -> TableEntry | None:
    """What a manifest would say about one table folder (None if it holds no Parquet)."""
    path = table_path(table_name, layout)
    footers = {p: _footer(p) for p in sorted((base / path).glob("*.parquet"))}
    if not footers:
        return None
    readable = {p: f for p, f in footers.items() if not isinstance(f, str)}
    names = next(iter(readable.values())).schema.to_arrow_schema().names if readable else []
    files = tuple(
        TableFile(
            path=p.name,
            dataset_id=_single_dataset(p, readable[p]) if p in readable else None,
            rows=readable[p].num_rows if p in readable else 0,
        )
        for p in footers
    )
    return TableEntry(
        table_name=table_name,
        role=role,
        path=path,
        join_keys=(),
        columns=tuple({"name": n} for n in names),
        grain={},
        files=files,
        provenance={},
    )


def _single_dataset(path: Path, footer: pq.FileMetaData) -> str | None:
    """The file's dataset id when it holds exactly one (reads only that column)."""
    if "dataset_id" not in footer.schema.to_arrow_schema().names:
        return None
    try:
        values = pq.read_table(path, columns=["dataset_id"])["dataset_id"].unique()
    except (pa.ArrowException, OSError):
        return None
    return values[0].as_py() if len(values) == 1 else None


# -- One table ---------------------------------------------------------------------


def _check_entry(base: Path, entry: TableEntry, layout: Layout) -> _TableCheck:
    """Check one table's manifest entry against the layout and its folder's Parquet files."""
    label = f"table {entry.table_name}"
    errors = [*_naming_problems(label, entry, layout), *_column_problems(label, entry)]
    footers: dict[str, pq.FileMetaData] = {}
    warnings = []
    if _locatable(entry, layout):
        try:
            folder = resolve_inside(base, entry.path, what=f"folder of {label}")
        except MetadataError as error:
            errors.append(_must("layout", f"{label}: {error}"))
        else:
            footers, disk_errors = _disk_problems(label, folder, entry, listed_ok=not errors)
            errors += [_must("files", e) for e in disk_errors]
            if not errors and footers:
                id_errors, warnings = _object_id_problems(label, folder, entry, footers)
                errors += id_errors
    warnings += [*_qc_warnings(label, entry, footers), *_type_warnings(label, footers)]
    summary = {
        "table_name": entry.table_name,
        "role": entry.role,
        "path": entry.path,
        "rows": sum(f.num_rows for f in footers.values()),
        "datasets": entry.datasets,
        "ok": not errors,
    }
    return _TableCheck(
        summary=summary,
        errors=tuple(errors),
        warnings=tuple(warnings),
    )


def _column_names(entry: TableEntry) -> list[str]:
    return [c["name"] for c in entry.columns]


def _locatable(entry: TableEntry, layout: Layout) -> bool:
    """Whether the entry's folder is where its name says, inside the root, in Parquet."""
    return (
        entry.format == "parquet"
        and _TABLE_NAME.fullmatch(entry.table_name) is not None
        and entry.path == table_path(entry.table_name, layout)
    )


def _naming_problems(label: str, entry: TableEntry, layout: Layout) -> list[str]:
    """Name, role, namespace, format and folder of an entry."""
    problems = []
    if _TABLE_NAME.fullmatch(entry.table_name) is None:
        problems.append(_must("entries", f"{label}: table names are dotted, <namespace>.<table>"))
    if entry.role not in ROLES:
        problems.append(
            _must("roles", f"{label}: unknown role {entry.role!r}; use one of {', '.join(ROLES)}")
        )
    required = required_namespace(entry.role)
    namespace = entry.table_name.split(".", 1)[0]
    if required is not None and namespace != required:
        problems.append(
            _must(
                "namespaces",
                f"{label}: {entry.role} tables live in the {required} namespace, not {namespace}",
            )
        )
    if entry.role == "image_assets" and entry.table_name != IMAGE_ASSETS:
        problems.append(_must("image-assets", f"{label}: image metadata goes in {IMAGE_ASSETS}"))
    if entry.format != "parquet":
        problems.append(_must("entries", f"{label}: format {entry.format!r} is not parquet"))
    expected = table_path(entry.table_name, layout)
    if entry.path != expected:
        problems.append(
            _must(
                "layout",
                f"{label}: path {entry.path!r} does not match the {layout} layout ({expected!r})",
            )
        )
    return problems


def _column_problems(label: str, entry: TableEntry) -> list[str]:
    """Join keys, image keys and ``object_id`` against the columns the manifest lists."""
    columns = _column_names(entry)
    if not columns:
        return [_must("entries", f"{label}: no columns are listed or readable")]
    problems = []
    stray_keys = [k for k in entry.join_keys if k not in columns]
    if stray_keys:
        problems.append(
            _must("entries", f"{label}: join_keys {stray_keys} are not among its columns")
        )
    image_key = "image_ids" if entry.grain.get("profile_level") == "well" else "image_id"
    missing = [k for k in ("dataset_id", image_key) if k not in columns]
    if entry.role in JOINABLE_ROLES and missing:
        problems.append(
            _must(
                "profile-ids",
                f"{label}: {entry.role} tables carry dataset_id and {image_key}; no {missing}",
            )
        )
    level = entry.grain.get("profile_level")
    object_level = level == "object" or (entry.role in PROFILE_ROLES and level not in AGGREGATES)
    if object_level and "object_id" not in columns:
        problems.append(
            _must("profile-ids", f"{label}: object-level profile tables carry object_id; none")
        )
    return problems


def _disk_problems(
    label: str, folder: Path, entry: TableEntry, *, listed_ok: bool = True
) -> tuple[dict[str, pq.FileMetaData], list[str]]:
    """Footers of the listed files that can be read, and every problem in the folder.

    ``listed_ok`` false: the entry's columns are already reported wrong, so files
    holding columns it does not list are not reported a second time.
    """
    if not folder.is_dir():
        return {}, [f"{label}: folder {folder} is missing"] if entry.files else []
    footers, problems = {}, []
    for listed in entry.files:
        footer = _listed_footer(label, folder, entry.path, listed.path)
        if isinstance(footer, str):
            problems.append(footer)
            continue
        footers[listed.path] = footer
        if footer.num_rows != listed.rows:
            problems.append(
                f"{label}: {entry.path}/{listed.path} has {footer.num_rows} rows; "
                f"the manifest says {listed.rows}"
            )
    problems += _stray_problems(label, folder, entry)
    problems += _schema_problems(label, entry, footers, listed_ok=listed_ok)
    return footers, problems


def _footer(path: Path) -> pq.FileMetaData | str:
    """A Parquet file's footer, or why it cannot be read."""
    try:
        return pq.read_metadata(path)
    except (pa.ArrowException, OSError) as error:
        return str(error)


def _listed_footer(label: str, folder: Path, path: str, name: str) -> pq.FileMetaData | str:
    """The footer of file ``name`` listed for the table at ``path``, or the problem with it."""
    where = f"{path}/{name}"
    if Path(name).name != name:
        return f"{label}: file {name!r} is not a plain file name"
    if not (folder / name).is_file():
        return f"{label}: {where} is listed in the manifest but missing"
    footer = _footer(folder / name)
    if isinstance(footer, str):
        return f"{label}: {where} is not a readable Parquet file ({footer})"
    return footer


def _stray_problems(label: str, folder: Path, entry: TableEntry) -> list[str]:
    """Anything in the folder the manifest does not list (folders hold only Parquet)."""
    listed = {f.path for f in entry.files}
    problems = []
    for child in sorted(folder.iterdir()):
        if child.name in listed or WRITTEN_FILE.fullmatch(child.name):
            continue  # ours but unlisted: see _interrupted_write_warnings
        if child.is_file() and child.suffix == ".parquet":
            problems.append(f"{label}: {entry.path}/{child.name} is not listed in the manifest")
        else:
            problems.append(
                f"{label}: stray {entry.path}/{child.name}; table folders hold only .parquet "
                "files (pycytominer's load_profiles reads the whole folder)"
            )
    return problems


def _schema_problems(
    label: str, entry: TableEntry, footers: dict[str, pq.FileMetaData], *, listed_ok: bool
) -> list[str]:
    """The manifest's ``columns`` against the files: their union, every key in each.

    Plates differ in their feature columns and readers union the files by name, so
    a file may lack a feature column; it may not lack a join key or identifier, nor
    hold a column the manifest does not list, and every listed column is in a file.
    """
    columns = _column_names(entry)
    keys = [c for c in (*entry.join_keys, "dataset_id", "image_id", "object_id") if c in columns]
    problems = []
    seen: set[str] = set()
    for name, footer in footers.items():
        present = footer.schema.to_arrow_schema().names
        seen.update(present)
        missing = [c for c in dict.fromkeys(keys) if c not in present]
        if missing:
            problems.append(f"{label}: {entry.path}/{name} lacks key columns {missing}")
        unlisted = [c for c in present if c not in columns]
        if unlisted and listed_ok:
            problems.append(
                f"{label}: {entry.path}/{name} holds columns the manifest does not list: "
                f"{_some(unlisted)}"
            )
    never = [c for c in columns if c not in seen]
    if footers and never:
        problems.append(f"{label}: no file holds the listed columns {never}")
    return problems


def _type_warnings(label: str, footers: dict[str, pq.FileMetaData]) -> list[str]:
    """Columns whose type differs between a table's files (plates written apart)."""
    types: dict[str, dict[str, str]] = defaultdict(dict)
    for name, footer in footers.items():
        for field in footer.schema.to_arrow_schema():
            types[field.name].setdefault(str(field.type), name)
    return [
        f"{label}: column {column} is "
        + ", ".join(f"{kind} in {name}" for kind, name in sorted(kinds.items()))
        + "; DuckDB's union_by_name casts it, pyarrow's default promotion refuses it"
        for column, kinds in types.items()
        if len(kinds) > 1
    ]


def _some(names: Sequence[str], limit: int = 8) -> str:
    """``['a', 'b', …] (and N more)`` for messages about many columns."""
    shown = ", ".join(names[:limit])
    return f"{shown} (and {len(names) - limit:,} more)" if len(names) > limit else shown


def _qc_warnings(label: str, entry: TableEntry, footers: dict[str, pq.FileMetaData]) -> list[str]:
    """The SHOULD of quality-control tables: a boolean flag such as ``qc_pass``."""
    if entry.role != "quality_control":
        return []
    columns = _column_names(entry)
    name = next((c for c in QC_PASS_COLUMNS if c in columns), None)
    if name is None:
        return [f"{label}: quality_control tables should carry a boolean qc_pass column"]
    warnings = [] if name == "qc_pass" else [f"{label}: {name} accepted; the spec names it qc_pass"]
    for file_name, footer in footers.items():
        schema = footer.schema.to_arrow_schema()
        if name in schema.names and not pa.types.is_boolean(schema.field(name).type):
            warnings.append(
                f"{label}: {entry.path}/{file_name} stores {name} as "
                f"{schema.field(name).type}, not boolean"
            )
    return warnings


def _object_id_problems(
    label: str, folder: Path, entry: TableEntry, footers: dict[str, pq.FileMetaData]
) -> tuple[list[str], list[str]]:
    """Repeated ``object_id`` values (errors) and rows without one (warnings: no image).

    Reads that one column of profile tables.
    """
    if entry.role not in PROFILE_ROLES or "object_id" not in _column_names(entry):
        return [], []
    try:
        ids = pa.chunked_array(
            [pq.read_table(folder / name, columns=["object_id"])["object_id"] for name in footers]
        )
    except (pa.ArrowException, OSError) as error:
        return [_must("files", f"{label}: cannot read object_id: {error}")], []
    present = ids.drop_null()
    repeated = len(present) - len(present.unique())
    errors = (
        [_must("profile-ids", f"{label}: {repeated:,} rows repeat the object_id of another row")]
        if repeated
        else []
    )
    warnings = (
        [f"{label}: {ids.null_count:,} rows have no object_id (they matched no image)"]
        if ids.null_count
        else []
    )
    return errors, warnings
