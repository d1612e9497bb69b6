"""Bad Dask options of ``ingest``: unreachable or malformed scheduler addresses, bad waits.

Each case folder holds a small valid OME-TIFF that a correct run never needs to scan:
every one of these is refused before (or instead of) the scan, with one line naming the
address or the variable, and no catalog is made. Case ids start with ``dask_options-``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile

CLASS = "dask_options"


def _store(folder: Path) -> str:
    tifffile.imwrite(
        folder / "img.ome.tiff", np.zeros((2, 16, 16), "uint8"), ome=True, metadata={"axes": "CYX"}
    )
    return "img.ome.tiff"


def build(b: Any) -> None:
    """Add the Dask option cases to the builder ``b`` (see :mod:`bad_inputs`)."""
    for slug, address, names, description, env in (
        (
            "nothing-listening",
            "tcp://127.0.0.1:1",
            "tcp://127.0.0.1:1",
            "no scheduler on the port: given up after ICEBERG_BIOIMAGE_DASK_TIMEOUT",
            {"ICEBERG_BIOIMAGE_DASK_TIMEOUT": "2"},
        ),
        ("not-a-url", "not a url at all", "not a url at all", "words, not an address", {}),
        ("dashboard-url", "http://127.0.0.1:9/", "http://127.0.0.1:9/", "an http:// URL", {}),
        ("no-port", "tcp://127.0.0.1", "tcp://127.0.0.1", "a host without a port", {}),
        ("port-zero", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "port 0", {}),
        ("port-too-big", "tcp://127.0.0.1:99999", "99999", "port 99999", {}),
        ("unknown-transport", "ftp://127.0.0.1:21", "ftp://127.0.0.1:21", "ftp://", {}),
        (
            "timeout-not-a-number",
            "tcp://127.0.0.1:1",
            "ICEBERG_BIOIMAGE_DASK_TIMEOUT",
            "ICEBERG_BIOIMAGE_DASK_TIMEOUT=soon",
            {"ICEBERG_BIOIMAGE_DASK_TIMEOUT": "soon"},
        ),
        (
            "timeout-negative",
            "tcp://127.0.0.1:1",
            "ICEBERG_BIOIMAGE_DASK_TIMEOUT",
            "ICEBERG_BIOIMAGE_DASK_TIMEOUT=-5",
            {"ICEBERG_BIOIMAGE_DASK_TIMEOUT": "-5"},
        ),
    ):
        d = b.case(f"dask_options-{slug}", CLASS)
        store = _store(d)
        b.add(
            d.name,
            CLASS,
            ["ingest", "-q", "--scheduler", address, store],
            "error",
            names,
            env=env,
            description=description,
        )
