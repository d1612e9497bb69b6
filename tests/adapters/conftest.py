"""Adapter fixtures: a real S3 endpoint (moto's server on 127.0.0.1), once per session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from s3_server import moto_s3_server, s3_filesystem, s3_storage_options, upload


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of a moto S3 server started for this session (stopped after)."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_options(s3_endpoint: str) -> dict[str, Any]:
    """fsspec/s3fs ``storage_options`` that reach :func:`s3_endpoint`."""
    return s3_storage_options(s3_endpoint)


@pytest.fixture
def s3_fs(s3_endpoint: str) -> Any:
    """A fresh ``S3FileSystem`` (not the cached instance the scanner shares)."""
    return s3_filesystem(s3_endpoint)


@pytest.fixture(scope="session")
def s3_upload(s3_endpoint: str) -> Callable[[str | os.PathLike[str], str], str]:
    """``s3_upload(local, "bucket/key")`` copies a folder or file, returns its ``s3://`` URI."""

    def _upload(local: str | os.PathLike[str], remote: str) -> str:
        return upload(s3_endpoint, local, remote)

    return _upload
