"""A read-only S3 endpoint on 127.0.0.1 that serves a local folder as one bucket.

moto keeps every object it is given, pixels included: a 17,280-file Phenix plate
is ~23-40 GB of uploads. This server answers the S3 calls a scan makes straight
from a local folder, so sparse files (real TIFF headers, pixel bytes as holes)
are served at their full size without being stored or uploaded:

* ``ListObjectsV2`` (``GET /<bucket>?list-type=2``: prefix, delimiter, max-keys,
  continuation-token, start-after, ``encoding-type=url``), from one sorted
  listing made at start-up (later changes to the folder are not seen);
* ``HeadObject`` / ``GetObject`` with or without a ``Range`` (206 and
  ``Content-Range``), read with ``pread`` (holes read as zeros, no disk used);
* ``HeadBucket`` and ``GetBucketLocation``.

Writes are refused (405). Put ``tests/s3_proxy.counting_proxy`` in front of it to
count the requests (and add latency), as the other S3 benchmarks do with moto.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

__all__ = ["folder_s3_server"]

_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_MODIFIED_ISO = "2026-01-01T00:00:00.000Z"
_MODIFIED_HTTP = formatdate(1767225600, usegmt=True)
_MAX_KEYS = 1000


class _Listing:
    """Every file below ``root`` as sorted ``(keys, sizes)``."""

    def __init__(self, root: Path) -> None:
        found: list[tuple[str, int]] = []
        offset = len(str(root)) + 1
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                found.append((path[offset:].replace(os.sep, "/"), os.stat(path).st_size))
        found.sort()
        self.keys = [key for key, _ in found]
        self.sizes = [size for _, size in found]

    def page(
        self, prefix: str, delimiter: str, after: str, max_keys: int
    ) -> tuple[list[tuple[str, int]], list[str], str | None]:
        """Objects and common prefixes after ``after``; the last name when truncated."""
        keys = self.keys
        if after < prefix:
            index = bisect.bisect_left(keys, prefix)
        elif delimiter and after.endswith(delimiter):  # a common prefix: skip all below it
            index = bisect.bisect_left(keys, after + "\U0010ffff")
        else:
            index = bisect.bisect_right(keys, after)
        contents: list[tuple[str, int]] = []
        prefixes: list[str] = []
        last = None
        while index < len(keys) and keys[index].startswith(prefix):
            if len(contents) + len(prefixes) == max_keys:
                return contents, prefixes, last
            key = keys[index]
            rest = key[len(prefix) :]
            cut = rest.find(delimiter) if delimiter else -1
            if cut >= 0:
                common = prefix + rest[: cut + len(delimiter)]
                prefixes.append(common)
                last = common
                # skip every key under this common prefix
                index = bisect.bisect_left(keys, common + "\U0010ffff", index)
                continue
            contents.append((key, self.sizes[index]))
            last = key
            index += 1
        return contents, prefixes, None


def _handler(bucket: str, root: Path, listing: _Listing) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

        def _error(self, status: int, code: str) -> None:
            body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code></Error>'
            self._reply(status, body.encode(), {"Content-Type": "application/xml"})

        def _target(self) -> tuple[str, str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            path = unquote(parts.path).lstrip("/")
            name, _, key = path.partition("/")
            return name, key, parse_qs(parts.query, keep_blank_values=True)

        def do_HEAD(self) -> None:
            self._object_or_bucket()

        def do_GET(self) -> None:
            self._object_or_bucket()

        def _refuse(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._error(405, "MethodNotAllowed")

        do_PUT = do_POST = do_DELETE = _refuse

        def _object_or_bucket(self) -> None:
            name, key, query = self._target()
            if name != bucket:
                self._error(404, "NoSuchBucket")
            elif key:
                self._object(key)
            elif "location" in query:
                body = f'<?xml version="1.0" encoding="UTF-8"?><LocationConstraint xmlns="{_NS}"/>'
                self._reply(200, body.encode(), {"Content-Type": "application/xml"})
            elif self.command == "HEAD":
                self._reply(200, headers={"x-amz-bucket-region": "us-east-1"})
            else:
                self._list(query)

        def _object(self, key: str) -> None:
            index = bisect.bisect_left(listing.keys, key)
            if index == len(listing.keys) or listing.keys[index] != key:
                self._error(404, "NoSuchKey")
                return
            size = listing.sizes[index]
            headers = {
                "Content-Type": "binary/octet-stream",
                "ETag": f'"{abs(hash(key)):032x}"',
                "Last-Modified": _MODIFIED_HTTP,
                "Accept-Ranges": "bytes",
            }
            start, end, status = 0, size - 1, 200
            wanted = self.headers.get("Range")
            if wanted and wanted.startswith("bytes="):
                first, _, last = wanted[len("bytes=") :].partition("-")
                if first:
                    start, end = int(first), min(int(last) if last else size - 1, size - 1)
                else:  # suffix range: the last N bytes
                    start = max(size - int(last), 0)
                if start >= size:
                    self._error(416, "InvalidRange")
                    return
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            if self.command == "HEAD":
                self.send_response(200)
                for header, value in headers.items():
                    self.send_header(header, value)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                return
            fd = os.open(root / key, os.O_RDONLY)
            try:
                body = os.pread(fd, end - start + 1, start)
            finally:
                os.close(fd)
            self._reply(status, body, headers)

        def _list(self, query: dict[str, list[str]]) -> None:
            def one(name: str, default: str = "") -> str:
                return query.get(name, [default])[0]

            prefix, delimiter = one("prefix"), one("delimiter")
            token = one("continuation-token")
            after = bytes.fromhex(token).decode() if token else one("start-after")
            max_keys = min(int(one("max-keys", str(_MAX_KEYS))), _MAX_KEYS)
            url = one("encoding-type") == "url"

            def enc(text: str) -> str:
                return escape(quote(text, safe="/") if url else text)

            contents, prefixes, last = listing.page(prefix, delimiter, after, max_keys)
            parts = [
                f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{_NS}">',
                f"<Name>{bucket}</Name><Prefix>{enc(prefix)}</Prefix>",
                f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>",
                f"<MaxKeys>{max_keys}</MaxKeys>",
                f"<Delimiter>{enc(delimiter)}</Delimiter>" if delimiter else "",
                "<EncodingType>url</EncodingType>" if url else "",
                f"<IsTruncated>{'true' if last else 'false'}</IsTruncated>",
            ]
            parts.extend(
                f"<Contents><Key>{enc(key)}</Key><LastModified>{_MODIFIED_ISO}</LastModified>"
                f'<ETag>"{abs(hash(key)):032x}"</ETag><Size>{size}</Size>'
                "<StorageClass>STANDARD</StorageClass></Contents>"
                for key, size in contents
            )
            parts.extend(
                f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes
            )
            if token:
                parts.append(f"<ContinuationToken>{token}</ContinuationToken>")
            if last:
                parts.append(
                    f"<NextContinuationToken>{last.encode().hex()}</NextContinuationToken>"
                )
            parts.append("</ListBucketResult>")
            self._reply(200, "".join(parts).encode(), {"Content-Type": "application/xml"})

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


@contextmanager
def folder_s3_server(root: str | os.PathLike[str], bucket: str) -> Iterator[str]:
    """Serve ``root`` as ``s3://<bucket>/`` on a free loopback port; yield the endpoint URL."""
    root = Path(root).resolve()
    server = _Server(("127.0.0.1", 0), _handler(bucket, root, _Listing(root)))
    thread = threading.Thread(target=server.serve_forever, name="folder-s3", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
