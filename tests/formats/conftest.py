"""Adapter fixtures: S3 filesystems and uploads against the session's moto server."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from s3_server import s3_filesystem, upload


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
