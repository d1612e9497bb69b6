"""Every Cytomining warehouse a test writes must pass ``validate-warehouse``.

The project's rule for writers, checked by the ``written_warehouses`` fixture
(``tests/conftest.py``): it records the root of every warehouse the test writes in
this process (at the commit, when the manifest is replaced) and, once the test has
passed, validates each one; a rejected warehouse fails the test with the validator's
messages. A warehouse written by a subprocess is registered with
:meth:`WrittenWarehouses.add`; one written by a fixture of a wider scope is checked
there with :func:`assert_valid_warehouse`.

A test that leaves an invalid warehouse on purpose (damages it, or writes a partial
one) is marked ``@pytest.mark.invalid_warehouse("why")``; it must then leave at least
one rejected warehouse, so a stale exclusion fails too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from iceberg_bioimage import validate_warehouse
from iceberg_bioimage.models.results import WarehouseValidationResult

#: The marker that excludes a test which leaves an invalid warehouse on purpose.
INVALID_MARKER = "invalid_warehouse"


def _rejection(result: WarehouseValidationResult) -> str:
    return "\n".join([f"{result.root}:", *(f"  {error}" for error in result.errors)])


def rejections(roots: Iterable[str | os.PathLike[str]]) -> list[str]:
    """For each of ``roots`` that ``validate-warehouse`` rejects: the root and its errors."""
    results = (validate_warehouse(root) for root in roots)
    return [_rejection(result) for result in results if not result.is_valid]


def assert_valid_warehouse(root: str | os.PathLike[str]) -> None:
    """Fail (with the validator's messages) unless the warehouse at ``root`` validates."""
    result = validate_warehouse(root)
    if not result.is_valid:
        pytest.fail(f"validate-warehouse rejects {_rejection(result)}", pytrace=False)


class WrittenWarehouses:
    """The roots of the warehouses one test wrote, in the order first written."""

    def __init__(self) -> None:
        self.roots: list[Path] = []

    def add(self, root: str | os.PathLike[str]) -> Path:
        """Record ``root`` (e.g. the ``--warehouse-root`` of a subprocess); returns it."""
        path = Path(root)
        if path.resolve() not in (r.resolve() for r in self.roots):
            self.roots.append(path)
        return path

    def recording(self, commit: Callable[..., Path]) -> Callable[..., Path]:
        """``commit`` (the writer's manifest replace) that also records the root it wrote."""

        def _commit(root: Path, *args: object, **kwargs: object) -> Path:
            written = commit(root, *args, **kwargs)
            self.add(root)
            return written

        return _commit

    def check(self, item: pytest.Item) -> None:
        """Validate every recorded root; what fails depends on ``invalid_warehouse``."""
        rejected = rejections(self.roots)
        marker = item.get_closest_marker(INVALID_MARKER)
        if marker is not None and not marker.args:
            pytest.fail(f"{INVALID_MARKER} needs the reason the warehouse is invalid", False)
        if marker is None and rejected:
            messages = "\n".join(rejected)
            pytest.fail(f"validate-warehouse rejects what this test wrote:\n{messages}", False)
        if marker is not None and not rejected:
            pytest.fail(
                f"marked {INVALID_MARKER} but every warehouse it wrote validates "
                f"({[str(r) for r in self.roots]}): drop the marker",
                pytrace=False,
            )
