"""Resolve a catalog argument into a PyIceberg :class:`Catalog`.

A name goes through :func:`pyiceberg.catalog.load_catalog` (``~/.pyiceberg.yaml`` and
``PYICEBERG_CATALOG__<NAME>__*`` variables) when configured. The name ``default`` with
nothing configured is an embedded SQLite catalog in ``./iceberg-warehouse``
(``ICEBERG_BIOIMAGE_WAREHOUSE`` moves it): zero configuration on a laptop.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.utils.config import Config

from iceberg_bioimage.exceptions import (
    CatalogConfigError,
    InvalidNameError,
    MissingDependencyError,
)

WAREHOUSE_ENV = "ICEBERG_BIOIMAGE_WAREHOUSE"
DEFAULT_WAREHOUSE = "iceberg-warehouse"
CONNECT_ATTEMPTS = 5
EMBEDDED_DB = "catalog.db"

_NAMESPACE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True, kw_only=True)
class ResolvedCatalog:
    """A catalog plus how it was found (for the CLI's one-time notice)."""

    catalog: Catalog
    name: str
    embedded_warehouse: Path | None = None


def embedded_warehouse() -> Path:
    """Embedded catalog folder: ``$ICEBERG_BIOIMAGE_WAREHOUSE`` or ``./iceberg-warehouse``."""
    return Path(os.environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE).expanduser().resolve()


def embedded_catalog(
    warehouse: str | os.PathLike[str] | None = None, *, name: str = "default"
) -> Catalog:
    """The embedded SQLite catalog in ``warehouse`` (default: :func:`embedded_warehouse`).

    Use it to get the zero-configuration catalog even when ``~/.pyiceberg.yaml``
    defines a catalog called ``default``.
    """
    from pyiceberg.catalog.sql import SqlCatalog

    folder = Path(warehouse).expanduser().resolve() if warehouse else embedded_warehouse()
    folder.mkdir(parents=True, exist_ok=True)
    return _first_connection(
        lambda: SqlCatalog(name, uri=f"sqlite:///{folder / EMBEDDED_DB}", warehouse=folder.as_uri())
    )


def _creation_race(error: Exception) -> bool:
    """A SQL catalog's tables were being created by another process at the same time."""
    text = str(error).lower()
    return type(error).__module__.startswith("sqlalchemy") and (
        "already exists" in text or "duplicate key" in text
    )


def _first_connection(connect: Callable[[], Catalog]) -> Catalog:
    """Connect, retrying while a concurrent first connection creates the catalog tables.

    A SqlCatalog creates its tables on first connect; two writers doing so at once
    make one of them fail with "already exists" / "duplicate key".
    """
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            return connect()
        except Exception as error:
            if not _creation_race(error) or attempt == CONNECT_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _embedded(name: str) -> ResolvedCatalog:
    warehouse = embedded_warehouse()
    return ResolvedCatalog(
        catalog=embedded_catalog(warehouse, name=name), name=name, embedded_warehouse=warehouse
    )


def resolve_catalog(catalog: str | Catalog) -> ResolvedCatalog:
    """Return the catalog for a name or object (see module docs for the rules)."""
    if isinstance(catalog, Catalog):
        return ResolvedCatalog(catalog=catalog, name=catalog.name)
    name = str(catalog)
    configured = Config().get_catalog_config(name)
    if not configured:
        if name == "default":
            return _embedded(name)
        env = f"PYICEBERG_CATALOG__{name.upper().replace('-', '_')}__URI"
        raise CatalogConfigError(
            f"catalog '{name}'",
            f"not configured: add it to ~/.pyiceberg.yaml or set {env} (and its "
            "other PYICEBERG_CATALOG__ variables); the name 'default' with no "
            "configuration uses an embedded SQLite catalog",
        )
    try:
        catalog = _first_connection(lambda: load_catalog(name, **configured))
        return ResolvedCatalog(catalog=catalog, name=name)
    except ImportError as error:
        extra = "postgres" if "psycopg" in str(error) else "s3" if "s3fs" in str(error) else None
        if extra:
            raise MissingDependencyError(f"catalog '{name}'", extra) from error
        raise CatalogConfigError(
            f"catalog '{name}'", f"cannot load its backend: {error}"
        ) from error
    except (ValueError, OSError) as error:
        raise CatalogConfigError(f"catalog '{name}'", f"cannot be loaded: {error}") from error


def namespace_parts(namespace: str) -> tuple[str, ...]:
    """Split and check a dotted namespace (``bioimage.cytotable``), used exactly as given."""
    parts = tuple(namespace.split("."))
    bad = [part for part in parts if not _NAMESPACE_PART.match(part)]
    if not namespace or bad:
        raise InvalidNameError(
            f"namespace '{namespace}'",
            "each dot-separated part must be letters, digits, '_' or '-' (e.g. bioimage.cytotable)",
        )
    return parts
