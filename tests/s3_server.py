"""A real S3 endpoint for tests: moto's server on 127.0.0.1, plus s3fs helpers.

``moto_s3_server()`` starts ``moto_server -H 127.0.0.1 -p <free port>`` in a
subprocess, waits until it answers HTTP, yields its endpoint URL and always
stops it. ``s3_storage_options(endpoint)`` are the fsspec/s3fs options that
reach it; ``upload`` copies a local folder or file to ``s3://bucket/...``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "MotoServerError",
    "moto_s3_server",
    "s3_filesystem",
    "s3_storage_options",
    "upload",
]

_READY_TIMEOUT = 15.0
_START_ATTEMPTS = 3
# a plain opener that ignores any *_proxy variables: the server is on loopback
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MotoServerError(RuntimeError):
    """The moto S3 server could not be started."""


def s3_storage_options(endpoint: str) -> dict[str, Any]:
    """fsspec/s3fs options that reach the moto server at ``endpoint``."""
    return {
        "key": "testing",
        "secret": "testing",
        "endpoint_url": endpoint,
        "client_kwargs": {"region_name": "us-east-1"},
    }


def s3_filesystem(endpoint: str) -> Any:
    """A fresh (uncached) ``S3FileSystem`` talking to ``endpoint``."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, **s3_storage_options(endpoint))


def upload(endpoint: str, local: str | os.PathLike[str], remote: str) -> str:
    """Copy a local folder (recursively) or file to ``remote`` (``bucket/key``).

    The bucket is created when missing. Returns the ``s3://`` URI of the copy.
    """
    fs = s3_filesystem(endpoint)
    remote = remote.removeprefix("s3://").rstrip("/")
    bucket = remote.split("/", 1)[0]
    if not fs.exists(bucket):
        # not fs.mkdir: s3fs would send LocationConstraint=us-east-1, which S3
        # (and moto) reject; us-east-1 is the default region of a bare create.
        fs.call_s3("create_bucket", Bucket=bucket)
        fs.invalidate_cache()
    local = Path(local)
    files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local]
    targets = [
        f"{remote}/{p.relative_to(local).as_posix()}" if local.is_dir() else remote for p in files
    ]
    # explicit file lists: ``put(dir, target, recursive=True)`` would nest ``dir``
    # in an existing target and expand glob characters (``[``) in the names
    fs.put([str(p) for p in files], targets)
    return f"s3://{remote}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(port: int) -> list[str]:
    args = ["-H", "127.0.0.1", "-p", str(port)]
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe), *args]
    found = shutil.which("moto_server")
    if found:
        return [found, *args]
    return [sys.executable, "-m", "moto.server", *args]


def _answers(endpoint: str) -> bool:
    try:
        with _OPENER.open(f"{endpoint}/moto-api/", timeout=1.0) as response:
            return response.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


def _start(log: Any) -> tuple[subprocess.Popen[bytes], str]:
    """Start one server and wait until it answers; raise if it exits or stalls."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.Popen(
        _command(port), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MotoServerError(f"moto_server exited with code {proc.returncode}")
        if _answers(endpoint):
            return proc, endpoint
        time.sleep(0.05)
    _stop(proc)
    raise MotoServerError(f"moto_server did not answer on {endpoint} within {_READY_TIMEOUT} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Run a moto S3 server on 127.0.0.1 and yield its endpoint URL.

    The port is picked free just before the start; if another process takes it
    in between (the server then exits at once) a new port is tried.
    """
    with tempfile.TemporaryFile() as log:
        proc = None
        errors: list[str] = []
        for _ in range(_START_ATTEMPTS):
            try:
                proc, endpoint = _start(log)
                break
            except MotoServerError as error:
                errors.append(str(error))
        if proc is None:
            log.seek(0)
            output = log.read().decode(errors="replace")[-4000:]
            raise MotoServerError("; ".join(errors) + f"\nserver output:\n{output}")
        try:
            yield endpoint
        finally:
            _stop(proc)
