"""Each MUST of the merged warehouse specification (spec/warehouse-spec-notes.md), broken alone.

A valid warehouse (images, joined profiles, a QC table) is damaged one way per
requirement; ``validate_warehouse`` must then fail exactly that requirement and name it
at the start of its error.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fixtures import writers
from iceberg_bioimage.api import (
    export_profiles_to_cytomining_warehouse,
    export_store_to_cytomining_warehouse,
)
from iceberg_bioimage.models.warehouse import MANIFEST_NAME
from iceberg_bioimage.warehouse.validate import REQUIREMENTS, validate_warehouse


@pytest.fixture(scope="module")
def valid(datasets: dict[str, writers.Fixture], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spec") / "wh"
    profiles = writers.write_profiles(tmp_path_factory.mktemp("profiles"), datasets["plate04"])
    export_store_to_cytomining_warehouse(datasets["plate04"].path, root, profiles=profiles.path)
    joined = pq.read_table(root / "profiles" / "joined_profiles")
    qc = joined.select(["dataset_id", "image_id", "object_id"]).append_column(
        "qc_pass", pc.greater(joined["Cells_AreaShape_Area"], 0)
    )
    export_profiles_to_cytomining_warehouse(
        qc, root, table_name="qc", role="quality_control", mode="overwrite"
    )
    return root


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / MANIFEST_NAME).read_text())


def _save(root: Path, doc: dict[str, Any]) -> None:
    (root / MANIFEST_NAME).write_text(json.dumps(doc))


def _entry(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in doc["tables"] if t["table_name"] == name)


def _edit(edit: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        doc = _manifest(root)
        edit(doc)
        _save(root, doc)

    return damage


def _qc_in_profiles(root: Path) -> None:
    doc = _manifest(root)
    _entry(doc, "quality_control.qc").update(table_name="profiles.qc", path="profiles/qc")
    shutil.move(root / "quality_control" / "qc", root / "profiles" / "qc")
    _save(root, doc)


def _missing_file(root: Path) -> None:
    entry = _entry(_manifest(root), "profiles.joined_profiles")
    (root / entry["path"] / entry["files"][0]["path"]).unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "manifest": lambda root: (root / MANIFEST_NAME).unlink(),
    "version": _edit(lambda doc: doc.update(warehouse_spec_version="2.0.0")),
    "entries": _edit(lambda doc: doc["tables"].append(_entry(doc, "images.chunk_index"))),
    "roles": _edit(lambda doc: _entry(doc, "images.chunk_index").update(role="banana")),
    "layout": _edit(lambda doc: _entry(doc, "images.chunk_index").update(path="chunks")),
    "namespaces": _qc_in_profiles,
    "image-assets": _edit(
        lambda doc: doc.update(
            tables=[t for t in doc["tables"] if t["table_name"] != "images.image_assets"]
        )
    ),
    "profile-ids": _edit(
        lambda doc: _entry(doc, "profiles.joined_profiles").update(
            columns=[
                c
                for c in _entry(doc, "profiles.joined_profiles")["columns"]
                if c["name"] != "object_id"
            ]
        )
    ),
    "files": _missing_file,
}


def test_the_valid_warehouse_meets_every_requirement(valid: Path) -> None:
    result = validate_warehouse(valid)
    assert result.is_valid, result.errors
    assert result.failed_requirements == ()


def test_every_requirement_has_a_damage() -> None:
    assert set(DAMAGE) == set(REQUIREMENTS)


@pytest.mark.parametrize("requirement", list(REQUIREMENTS))
def test_breaking_one_requirement_fails_exactly_it(
    valid: Path, tmp_path: Path, requirement: str
) -> None:
    root = Path(shutil.copytree(valid, tmp_path / "wh"))
    DAMAGE[requirement](root)
    result = validate_warehouse(root)
    assert not result.is_valid
    assert result.failed_requirements == (requirement,), result.errors
    assert all(e.startswith(f"[{requirement}] ") for e in result.errors), result.errors
