"""The map in docs/architecture.md is true of the code: the layers, the options, the traces."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import iceberg_bioimage
from iceberg_bioimage import api
from iceberg_bioimage.engines import ENGINES
from iceberg_bioimage.formats import READERS
from iceberg_bioimage.formats.registry import FormatReader
from iceberg_bioimage.models.instruments import PRESETS
from iceberg_bioimage.models.warehouse import TABLE_SPECS
from iceberg_bioimage.profiles import sources

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "iceberg_bioimage"


def _verbs() -> list[tuple[str, object]]:
    return [
        (name, value)
        for name in api.__all__
        if inspect.isfunction(value := getattr(api, name)) and not name.startswith("_")
    ]


@pytest.mark.parametrize(("name", "verb"), _verbs(), ids=[n for n, _ in _verbs()])
def test_public_verbs_take_at_most_eight_keywords(name, verb):
    keywords = [
        p
        for p in inspect.signature(verb).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert len(keywords) <= 8, f"{name} takes {len(keywords)} keywords"
    assert verb.__doc__, f"{name} has no docstring"


def test_public_names_are_listed_once_and_all_import():
    assert len(iceberg_bioimage.__all__) == len(set(iceberg_bioimage.__all__))
    for name in iceberg_bioimage.__all__:
        assert getattr(iceberg_bioimage, name) is not None


def test_importing_the_package_loads_no_heavy_library():
    code = (
        "import sys, iceberg_bioimage, iceberg_bioimage.cli;"
        "print(sorted(m for m in ('pyarrow', 'numpy', 'pyiceberg', 'duckdb', 'tifffile', 'zarr')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_format_module_reader_is_in_the_registry():
    """An image format = one module defining a FormatReader + one line in READERS."""
    formats = importlib.import_module("iceberg_bioimage.formats")
    defined = {}
    for module in pkgutil.walk_packages(formats.__path__, "iceberg_bioimage.formats."):
        loaded = importlib.import_module(module.name)
        for value in vars(loaded).values():
            if isinstance(value, FormatReader):
                defined[value.name] = value
    assert sorted(defined) == sorted(r.name for r in READERS)
    assert len({r.name for r in READERS}) == len(READERS)


def test_every_profile_source_module_is_discovered():
    """A profile source = one module of profiles/sources defining a SourceReader."""
    modules = {m.name for m in pkgutil.iter_modules(sources.__path__) if m.name != "base"}
    owners = {reader.read.__module__.rsplit(".", 1)[-1] for reader in sources.READERS}
    assert modules == owners
    orders = [reader.order for reader in sources.READERS]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


def test_every_engine_entry_is_one_module_with_its_function():
    for name, (module, function) in ENGINES.items():
        assert callable(getattr(importlib.import_module(module), function)), name


def test_table_specs_cover_the_specification_roles():
    required = {"profiles", "image_assets", "chunk_index", "joined_profiles", "quality_control"}
    assert {r for r, s in TABLE_SPECS.items() if s.required} == required
    for role, spec in TABLE_SPECS.items():
        if spec.table_name and spec.namespace:
            assert spec.table_name.split(".", 1)[0] == spec.namespace, role


def test_instrument_presets_are_data():
    assert {"phenix", "imagexpress", "cellomics", "cv7000", "scanr"} <= set(PRESETS)


def test_layer_contracts_hold():
    """The layer order of pyproject.toml, checked by import-linter."""
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert "Contracts: 3 kept, 0 broken." in run.stdout, run.stdout[-3000:] + run.stderr
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_tests_mirror_the_package():
    layers = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("_")}
    test_dirs = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir()}
    stray = test_dirs - layers - {"fixtures", "data", "interop", "bad_input_doors"}
    assert not stray, f"test folders with no package layer: {stray}"
