"""A counting HTTP proxy on 127.0.0.1 in front of an S3 endpoint (the moto server).

``counting_proxy(upstream, delay=0.02)`` yields a :class:`RequestCounter` whose
``endpoint`` is used as the S3 ``endpoint_url``. Every request is forwarded
unchanged (path-style S3: ``/bucket/key``), after an optional fixed delay that
stands in for a network round trip; requests run concurrently, each in its own
thread, as they would against a real object store. The counter classifies what
it forwards: ``GET`` (object reads), ``HEAD`` and ``LIST`` (a ``GET`` with
``list-type`` in the query or on a bucket root), plus anything else by method, and the
most requests it held at once (``peak_in_flight``: 1 for a client that waits for each
answer before asking again).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["RequestCounter", "counting_proxy", "request_kind"]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}
)


def request_kind(method: str, target: str) -> str:
    """``LIST`` for a bucket listing, else the HTTP method (``GET``, ``HEAD``, ``PUT``...)."""
    parts = urlsplit(target)
    if method == "GET":
        query = parse_qs(parts.query, keep_blank_values=True)
        bucket_root = parts.path.strip("/").count("/") == 0
        if "list-type" in query or bucket_root:
            return "LIST"
    return method


@dataclass
class RequestCounter:
    """Requests seen by the proxy: counts by kind and the full log."""

    endpoint: str = ""
    delay: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, str]] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, method: str, target: str) -> None:
        """Count one request, now in flight."""
        with self._lock:
            self.counts[request_kind(method, target)] += 1
            self.log.append((method, target))
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def answered(self) -> None:
        """One request's answer is sent: it is no longer in flight."""
        with self._lock:
            self.in_flight -= 1

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self.counts.clear()
            self.log.clear()
            self.peak_in_flight = self.in_flight

    @property
    def total(self) -> int:
        """All requests counted."""
        return sum(self.counts.values())

    def snapshot(self) -> dict[str, int]:
        """``GET``/``HEAD``/``LIST`` (always present) and any other kinds, as a dict."""
        with self._lock:
            return {"GET": 0, "HEAD": 0, "LIST": 0, **self.counts}


def _handler(upstream: str, counter: RequestCounter) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)
    local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the counter is the log."""

        def _connection(self) -> http.client.HTTPConnection:
            if getattr(local, "connection", None) is None:
                local.connection = http.client.HTTPConnection(
                    target.hostname, target.port, timeout=60
                )
            return local.connection

        def _forward(self) -> None:
            counter.record(self.command, self.path)
            try:
                self._answer()
            finally:
                counter.answered()

        def _answer(self) -> None:
            if counter.delay:
                time.sleep(counter.delay)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            for attempt in range(2):
                connection = self._connection()
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    break
                except (http.client.HTTPException, OSError):
                    connection.close()
                    local.connection = None
                    if attempt:
                        raise
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            declared = response.getheader("Content-Length")
            size = len(data) if self.command != "HEAD" else int(declared or 0)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # a batch of concurrent reads must not be refused


@contextmanager
def counting_proxy(upstream: str, delay: float = 0.0) -> Iterator[RequestCounter]:
    """Run a counting proxy to ``upstream`` on a free loopback port; stop it afterwards."""
    counter = RequestCounter(delay=delay)
    server = _Server(("127.0.0.1", 0), _handler(upstream, counter))
    counter.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="s3-proxy", daemon=True)
    thread.start()
    try:
        yield counter
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
