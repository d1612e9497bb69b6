"""Error types raised by iceberg-bioimage.

Every error derives from :class:`IcebergBioimageError`, and each subclass also
derives from the matching builtin so ordinary ``except`` clauses keep working.
Messages always start with the file or table they concern.
"""

from __future__ import annotations


class IcebergBioimageError(Exception):
    """Root of every error raised by iceberg-bioimage."""

    def __init__(self, subject: str, problem: str) -> None:
        super().__init__(f"{subject}: {problem}")
        self.subject = subject
        self.problem = problem

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle by subject and problem (errors cross process boundaries, e.g. Dask)."""
        return (_rebuild, (type(self), self.subject, self.problem), self.__dict__)


def _rebuild(cls: type[IcebergBioimageError], subject: str, problem: str) -> IcebergBioimageError:
    """An error of ``cls`` with this subject and problem, whatever ``cls.__init__`` takes."""
    error = cls.__new__(cls)
    IcebergBioimageError.__init__(error, subject, problem)
    return error


class StoreNotFoundError(IcebergBioimageError, FileNotFoundError):
    """The given store, file or folder does not exist."""


class MetadataError(IcebergBioimageError, ValueError):
    """Metadata is unreadable, corrupt or describes something we cannot scan."""


class ContractError(IcebergBioimageError, ValueError):
    """A table does not satisfy the microscopy join contract."""


class MissingDependencyError(IcebergBioimageError, ImportError):
    """An optional extra is needed for this feature but is not installed."""

    def __init__(self, feature: str, extra: str | None = None, *, requirement: str = "") -> None:
        if extra is not None:
            problem = f"requires the optional extra: pip install 'iceberg-bioimage[{extra}]'"
        else:
            problem = f"requires {requirement}: pip install '{requirement}'"
        super().__init__(feature, problem)
        self.extra = extra


class CatalogConfigError(IcebergBioimageError, LookupError):
    """A catalog name is not configured, or its backend cannot be loaded."""


class TableNotFoundError(IcebergBioimageError, LookupError):
    """A namespace or table does not exist in the catalog."""


class InvalidNameError(IcebergBioimageError, ValueError):
    """A namespace, table or dataset id is not a legal name."""


class SchemaConflictError(IcebergBioimageError, ValueError):
    """An existing table's schema is incompatible with the canonical schema."""


class DatasetConflictError(IcebergBioimageError, ValueError):
    """A dataset id is already registered for another store, or already present."""


class DatasetNotFoundError(IcebergBioimageError, LookupError):
    """No rows of this dataset (or store) exist where they were looked for."""


class WarehouseError(IcebergBioimageError, ValueError):
    """A warehouse write or read cannot proceed (mode, layout or manifest problem)."""


class FilterError(IcebergBioimageError, ValueError):
    """A row filter is malformed (operator, value or pattern)."""


class DistributedIngestError(IcebergBioimageError, RuntimeError):
    """A store kept failing on the Dask workers (or they were lost), so the batch aborted."""


class SchedulerError(IcebergBioimageError, ConnectionError):
    """A Dask scheduler address is malformed, or no scheduler answered there in time."""


__all__ = [
    "CatalogConfigError",
    "ContractError",
    "DatasetConflictError",
    "DatasetNotFoundError",
    "DistributedIngestError",
    "FilterError",
    "IcebergBioimageError",
    "InvalidNameError",
    "MetadataError",
    "MissingDependencyError",
    "SchedulerError",
    "SchemaConflictError",
    "StoreNotFoundError",
    "TableNotFoundError",
    "WarehouseError",
]
