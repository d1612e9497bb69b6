"""The Dask scheduler address rule and the connect timeout setting."""

from __future__ import annotations

import pytest

from iceberg_bioimage.exceptions import SchedulerError
from iceberg_bioimage.models.scheduler import (
    DEFAULT_CONNECT_TIMEOUT_S,
    TIMEOUT_VARIABLE,
    check_scheduler_address,
    connect_timeout,
)


@pytest.mark.parametrize(
    ("given", "address"),
    [
        ("tcp://127.0.0.1:8786", "tcp://127.0.0.1:8786"),
        ("127.0.0.1:8786", "tcp://127.0.0.1:8786"),
        ("tls://scheduler.example.org:8786/", "tls://scheduler.example.org:8786"),
        ("tcp://[::1]:8786", "tcp://[::1]:8786"),
        ("ws://node-7:8786", "ws://node-7:8786"),
        ("inproc://10.0.0.1/1234/1", "inproc://10.0.0.1/1234/1"),
    ],
)
def test_scheduler_addresses_accepted(given: str, address: str) -> None:
    assert check_scheduler_address(given) == address


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("not a url at all", "not host:port"),
        ("http://127.0.0.1:9/", "the dashboard?"),
        ("https://dask.example.org/status", "the dashboard?"),
        ("tcp://127.0.0.1", "not host:port"),
        ("tcp://127.0.0.1:0", "not host:port"),
        ("tcp://127.0.0.1:70000", "not host:port"),
        ("ftp://127.0.0.1:21", "unknown transport 'ftp'"),
        ("", "not host:port"),
    ],
)
def test_bad_scheduler_addresses_refused_naming_them(given: str, says: str) -> None:
    with pytest.raises(SchedulerError) as caught:
        check_scheduler_address(given)
    assert caught.value.subject == given
    assert says in caught.value.problem
    assert "tcp://127.0.0.1:8786" in caught.value.problem  # what is expected


def test_connect_timeout_default_argument_and_environment(monkeypatch) -> None:
    monkeypatch.delenv(TIMEOUT_VARIABLE, raising=False)
    assert connect_timeout() == DEFAULT_CONNECT_TIMEOUT_S <= 10
    assert connect_timeout(2.5) == 2.5
    monkeypatch.setenv(TIMEOUT_VARIABLE, "3")
    assert connect_timeout() == 3.0
    assert connect_timeout(1) == 1  # an explicit timeout wins


@pytest.mark.parametrize("text", ["soon", "0", "-1", "nan", "inf", "7200"])
def test_bad_timeouts_refused(monkeypatch, text: str) -> None:
    monkeypatch.setenv(TIMEOUT_VARIABLE, text)
    with pytest.raises(SchedulerError) as caught:
        connect_timeout()
    assert caught.value.subject == TIMEOUT_VARIABLE
