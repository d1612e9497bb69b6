"""The rules of a Dask scheduler address and of the time to wait for it (pure).

``ingest --scheduler ADDRESS`` and :func:`iceberg_bioimage.dask_client` check the
address before anything starts, so a typo or the dashboard's ``http://`` URL is one
clear line at once rather than a 30 s wait; a scheduler that does not answer is given
up after :func:`connect_timeout` seconds (default 10 s, ``ICEBERG_BIOIMAGE_DASK_TIMEOUT``;
distributed's own default is 30 s).
"""

from __future__ import annotations

import os
import re

from iceberg_bioimage.exceptions import SchedulerError

#: Seconds to wait for a scheduler to answer (distributed's own default is 30 s).
DEFAULT_CONNECT_TIMEOUT_S = 10.0
#: Environment variable that moves :data:`DEFAULT_CONNECT_TIMEOUT_S`.
TIMEOUT_VARIABLE = "ICEBERG_BIOIMAGE_DASK_TIMEOUT"
#: The transports a Dask scheduler listens on (``distributed.comm`` backends).
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})")


def connect_timeout(timeout: float | None = None) -> float:
    """The connect timeout: ``timeout``, else ``ICEBERG_BIOIMAGE_DASK_TIMEOUT``, else 10 s."""
    if timeout is None:
        text = os.environ.get(TIMEOUT_VARIABLE)
        if text is None:
            return DEFAULT_CONNECT_TIMEOUT_S
        try:
            timeout = float(text)
        except ValueError:
            raise SchedulerError(
                TIMEOUT_VARIABLE, f"must be a number of seconds, got {text!r}"
            ) from None
    if not 0 < timeout <= 3600:
        raise SchedulerError(TIMEOUT_VARIABLE, f"must be between 0 and 3600 seconds, got {timeout}")
    return timeout


def check_scheduler_address(address: str) -> str:
    """``address`` if it is a Dask scheduler address (``tcp://host:8786``); else refused.

    A bare ``host:port`` means ``tcp://``. The dashboard's ``http://`` URL, a missing
    port or anything else is refused with a :class:`SchedulerError` saying what is expected.
    """
    text = address.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    expected = "expected a scheduler address such as tcp://127.0.0.1:8786"
    if scheme in ("http", "https"):
        raise SchedulerError(
            address,
            f"an {scheme}:// URL (the dashboard?) is not a Dask scheduler address; {expected}",
        )
    if scheme not in SCHEMES:
        raise SchedulerError(address, f"unknown transport {scheme!r}; {expected}")
    if scheme != "inproc":
        match = _HOST_PORT.fullmatch(rest.rstrip("/"))
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise SchedulerError(address, f"not host:port; {expected}")
    return f"{scheme}://{rest.rstrip('/')}"
