"""Catalog bioimaging metadata with Apache Iceberg and export Cytomining warehouses.

Every public name is defined once in :mod:`iceberg_bioimage.api` (the verbs and the
classes they take and return) or :mod:`iceberg_bioimage.exceptions`, and re-exported
here. Importing the package is cheap: pyarrow, pyiceberg and DuckDB load only when a
verb that needs them is called.
"""

from __future__ import annotations

from iceberg_bioimage import api, exceptions
from iceberg_bioimage._version import __version__
from iceberg_bioimage.api import *  # noqa: F403
from iceberg_bioimage.exceptions import *  # noqa: F403

__all__ = ["__version__"]
__all__ += api.__all__
__all__ += exceptions.__all__
