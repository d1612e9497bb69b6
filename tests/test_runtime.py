"""runtime.prefetched: order, errors and early stops of the read-ahead thread."""

from __future__ import annotations

import threading

import pytest

from iceberg_bioimage.runtime import prefetched


def test_items_arrive_in_order() -> None:
    assert list(prefetched(iter(range(100)), depth=2)) == list(range(100))


def test_a_producer_error_is_raised_in_the_consumer() -> None:
    def items():
        yield 1
        raise ValueError("broken batch")

    seen = []
    with pytest.raises(ValueError, match="broken batch"):
        for item in prefetched(items()):
            seen.append(item)
    assert seen == [1]


def test_stopping_early_stops_the_producer() -> None:
    produced = []

    def items():
        for i in range(1_000):
            produced.append(i)
            yield i

    reader = prefetched(items(), depth=1)
    assert next(reader) == 0
    reader.close()  # the consumer stops: the thread ends instead of reading everything
    assert len(produced) < 10
    assert not any(t.name == "iceberg-bioimage-prefetch" for t in threading.enumerate())
