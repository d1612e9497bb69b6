"""The public API for the commands, imported on first use.

``iceberg-bioimage --version`` and ``--help`` never touch the API, so they do not
pay for numpy, tifffile or anything behind them; a command imports the API (and
through it only the layers it uses) when it first calls a verb.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

_NAME = "iceberg_bioimage.api"


def _lazy_module(name: str) -> ModuleType:
    """The module ``name``, executed on its first attribute access (importlib's LazyLoader)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


api = _lazy_module(_NAME)
