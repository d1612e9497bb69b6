"""Read-only access to the files of a store, local or remote.

Scanners ask for many small metadata files at once; locally they are read by a
few threads in batches, remotely through fsspec's batched (async where the
filesystem supports it) ``cat``. The scheme of a URI picks the implementation
through :data:`_STORE_TYPES`, never an if/else chain at the call sites.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from iceberg_bioimage.exceptions import MetadataError, StoreNotFoundError
from iceberg_bioimage.models.limits import Limits
from iceberg_bioimage.models.paths import (
    NAMED_FILES,
    is_inside,
    open_inside,
    os_reason,
    read_heads_inside,
    read_inside,
)

_LOCAL_READ_WORKERS = 8
_SEQUENTIAL_BELOW = 64
#: A head read taking longer than this waited for the device (a page-cached one takes
#: ~10 µs): the files are read by threads, whose waits overlap.
WAITED_READ_S = 100e-6
# Remote files opened for parsing (TIFF) read small cached blocks: fsspec's
# defaults (s3fs: 50 MiB read-ahead) fetch far more than the metadata.
_OPEN_BLOCK_SIZE = 256 * 1024

_S3_DEFAULTS: dict[str, Any] = {
    # s3fs sends a HEAD (for the size) before every whole-object GET when
    # max_concurrency > 1, to split big objects into parallel ranges: two
    # requests per metadata document. 1 = one GET per document.
    "max_concurrency": 1,
    # aiobotocore's default pool (10 connections) would queue a batch of reads.
    "config_kwargs": {"max_pool_connections": 64},
}

#: Default fsspec options per URI scheme, merged under the caller's options.
DEFAULT_STORAGE_OPTIONS: dict[str, Mapping[str, Any]] = {
    "s3": _S3_DEFAULTS,
    "s3a": _S3_DEFAULTS,
}


#: Appended to a credential error on ``s3://``: public buckets are read anonymously.
CREDENTIAL_HINT = (
    "; if the bucket is public, read it without credentials: "
    "--storage-option anon=true (storage_options={'anon': True})"
)
#: Client error names and codes that mean "no, missing or refused credentials".
_CREDENTIAL_WORDS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "Unable to locate credentials",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "AccessDenied",
    "Forbidden",
)


def _is_credential_error(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is about credentials."""
    seen: BaseException | None = error
    for _ in range(5):  # the chain of causes, bounded
        if seen is None:
            return False
        text = f"{type(seen).__name__} {seen}"
        if isinstance(seen, PermissionError) or any(w in text for w in _CREDENTIAL_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _scheme(uri: str) -> str:
    return urlsplit(uri).scheme if "://" in uri else ""


def effective_storage_options(
    uri: str, storage_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The caller's fsspec options over the defaults for ``uri``'s scheme.

    The caller wins; a dict-valued option (``config_kwargs``, ``client_kwargs``)
    is merged key by key, so ``config_kwargs={"retries": ...}`` keeps the pool size.
    """
    merged = {
        k: dict(v) if isinstance(v, Mapping) else v
        for k, v in DEFAULT_STORAGE_OPTIONS.get(_scheme(uri), {}).items()
    }
    for key, value in (storage_options or {}).items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, Mapping):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


class Store(Protocol):
    """What a scanner needs from a store: batched reads, listings and ranges."""

    uri: str
    name: str
    limits: Limits

    def is_dir(self) -> bool:
        """Whether the store root is a folder (prefix) rather than a single file."""
        ...

    def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Read files relative to the root; ``None`` for each missing one."""
        ...

    def list_children(self, key: str) -> list[str]:
        """Names of the sub-folders directly below ``key``."""
        ...

    def list_objects(self, key: str) -> dict[str, int]:
        """Every file below ``key`` (recursive), as root-relative key → size."""
        ...

    def glob_objects(self, pattern: str) -> dict[str, int]:
        """Files below the root matching the glob ``pattern``, as key → size."""
        ...

    def read_ranges(self, requests: Sequence[tuple[str, int, int | None]]) -> list[bytes | None]:
        """Read ``(key, start, end)`` byte ranges; negative start = suffix."""
        ...

    def read_heads(
        self, requests: Sequence[tuple[str, int, int]]
    ) -> list[tuple[bytes, int | None] | None]:
        """``(key, start, length)`` reads of many files: data and file size when known.

        One request per file (no size query first); ``None`` for a missing file.
        """
        ...

    def open(self, key: str = "") -> BinaryIO:
        """Open a file for binary reading (the root itself when ``key`` is empty)."""
        ...

    def location(self, key: str) -> str:
        """Human-readable location of ``key`` for messages."""
        ...


def _join(root: str, key: str) -> str:
    if not key:
        return root
    return f"{root}{key}" if root.endswith("/") else f"{root}/{key}"


class LocalStore:
    """A store on the local filesystem, read only inside its (resolved) root.

    Every file is opened without blocking (a FIFO cannot hang a scan), must be a
    regular file, and must resolve inside the root: a symlink that points out of
    the store is refused, one that stays inside works
    (:func:`~iceberg_bioimage.models.paths.open_inside`). Metadata documents are
    read up to :attr:`Limits.max_metadata_bytes`.

    ``named_files=True`` opens the store of files a LoadData table names one by one:
    each is read where it is (a symlink out of the root too), since the table named
    it (:data:`~iceberg_bioimage.models.paths.NAMED_FILES`); only regular files.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        limits: Limits | None = None,
        *,
        named_files: bool = False,
    ) -> None:
        given = Path(path).expanduser()
        try:
            root = given.resolve(strict=True)
            mode = root.stat().st_mode
        except FileNotFoundError:
            raise StoreNotFoundError(str(path), "no such file or folder") from None
        except (OSError, RuntimeError) as error:
            raise StoreNotFoundError(str(path), f"cannot be opened: {os_reason(error)}") from error
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise StoreNotFoundError(
                str(path), "not a regular file or folder (FIFO, device or socket); refused"
            )
        self.root = str(root)
        self.uri = self.root
        self.name = root.name
        self.limits = limits or Limits.from_env()
        #: The root files must resolve inside (``None``: files named one by one).
        self.bound: str | None = NAMED_FILES if named_files else self.root

    def is_dir(self) -> bool:
        """Whether the root is a folder."""
        return os.path.isdir(self.root)

    def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Read metadata files, in a few threads when there are many."""
        paths = [_join(self.root, key) for key in keys]
        if len(paths) < _SEQUENTIAL_BELOW:
            return self._read_batch(paths)
        size = -(-len(paths) // _LOCAL_READ_WORKERS)
        batches = [paths[i : i + size] for i in range(0, len(paths), size)]
        with ThreadPoolExecutor(_LOCAL_READ_WORKERS) as pool:
            return [data for batch in pool.map(self._read_batch, batches) for data in batch]

    def _read_batch(self, paths: Sequence[str]) -> list[bytes | None]:
        cap = self.limits.max_metadata_bytes
        return [read_inside(self.bound, path, cap) for path in paths]

    def list_children(self, key: str) -> list[str]:
        """Sub-folder names below ``key``, sorted."""
        folder = _join(self.root, key)
        try:
            with os.scandir(folder) as entries:
                return sorted(e.name for e in entries if e.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as error:
            raise MetadataError(folder, f"cannot be listed: {os_reason(error)}") from error

    def list_objects(self, key: str) -> dict[str, int]:
        """Every regular file below ``key`` (resolving inside the root) with its size.

        One ``stat`` per file (the directory entry says whether it is a symlink);
        folders are walked without following symlinks, as :func:`os.walk` does.
        """
        offset = len(self.root) + 1
        found: dict[str, int] = {}
        folders = [_join(self.root, key)]
        while folders:
            try:
                with os.scandir(folders.pop()) as entries:
                    listed = list(entries)
            except OSError:
                continue
            for entry in listed:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                        continue
                    if entry.is_symlink() and not is_inside(
                        self.root, os.path.realpath(entry.path)
                    ):
                        continue
                    info = entry.stat()
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found[entry.path[offset:].replace(os.sep, "/")] = info.st_size
        return found

    def glob_objects(self, pattern: str) -> dict[str, int]:
        """Regular files matching ``pattern`` (resolving inside the root) with their sizes."""
        _check_pattern(pattern)
        offset = len(self.root) + 1
        found: dict[str, int] = {}
        for path in sorted(Path(self.root).glob(pattern)):
            text = str(path)
            if path.is_symlink() and not is_inside(self.root, os.path.realpath(text)):
                continue
            try:
                info = path.stat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found[text[offset:].replace(os.sep, "/")] = info.st_size
        return found

    def read_ranges(self, requests: Sequence[tuple[str, int, int | None]]) -> list[bytes | None]:
        """Read byte ranges, in a few threads."""
        jobs = [(_join(self.root, key), start, end) for key, start, end in requests]
        if len(jobs) == 1:
            return [self._read_range(jobs[0])]
        with ThreadPoolExecutor(_LOCAL_READ_WORKERS) as pool:
            return list(pool.map(self._read_range, jobs))

    def _read_range(self, job: tuple[str, int, int | None]) -> bytes | None:
        path, start, end = job
        fd = open_inside(self.bound, path)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as handle:
            if start < 0:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(size + start, 0))
                return handle.read()
            handle.seek(start)
            return handle.read() if end is None else handle.read(end - start)

    def read_heads(
        self, requests: Sequence[tuple[str, int, int]]
    ) -> list[tuple[bytes, int | None] | None]:
        """Positioned reads of many files: in this thread while they come from memory.

        Files in the page cache are read fastest by one thread: more threads would
        only hand the GIL around between system calls of a few microseconds. The
        first :data:`_SEQUENTIAL_BELOW` files are read here and timed; when they made
        the reader wait (a cold disk, a network filesystem), the rest are read by a
        few threads, each taking a slice of them. Either way the answers are the same.
        """
        jobs = [(_join(self.root, key), start, length) for key, start, length in requests]
        if len(jobs) < _SEQUENTIAL_BELOW:
            return self._read_heads(jobs)
        started = time.perf_counter()
        first = self._read_heads(jobs[:_SEQUENTIAL_BELOW])
        jobs = jobs[_SEQUENTIAL_BELOW:]
        if not jobs or time.perf_counter() - started < _SEQUENTIAL_BELOW * WAITED_READ_S:
            return first + self._read_heads(jobs)
        size = -(-len(jobs) // _LOCAL_READ_WORKERS)
        batches = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        with ThreadPoolExecutor(_LOCAL_READ_WORKERS) as pool:
            return first + [found for part in pool.map(self._read_heads, batches) for found in part]

    def _read_heads(
        self, jobs: Sequence[tuple[str, int, int]]
    ) -> list[tuple[bytes, int | None] | None]:
        return read_heads_inside(self.bound, jobs)

    def open(self, key: str = "") -> BinaryIO:
        """Open a regular file inside the root for reading."""
        path = _join(self.root, key)
        fd = open_inside(self.bound, path)
        if fd is None:
            raise StoreNotFoundError(path, "no such file")
        return os.fdopen(fd, "rb")

    def location(self, key: str) -> str:
        """Absolute path of ``key``."""
        return _join(self.root, key)


class FsspecStore:
    """A store on any fsspec filesystem (``s3://``, ``gs://``, ``http(s)://``...)."""

    def __init__(self, uri: str, storage_options: Mapping[str, Any] | None) -> None:
        import fsspec

        try:
            fs, root = fsspec.core.url_to_fs(uri, **effective_storage_options(uri, storage_options))
        except ImportError as error:
            raise StoreNotFoundError(
                uri, f"no filesystem for this URI scheme is installed ({error})"
            ) from error
        self.fs = fs
        self.limits = Limits.from_env()
        self.root = root.rstrip("/")
        self.uri = uri.rstrip("/")
        self.name = self.root.rsplit("/", 1)[-1]
        self._root_documents: dict[str, bytes | None] = {}
        # fsspec shares one filesystem instance per set of options, listings
        # cached included: forget them so a scan sees the store as it is now.
        fs.invalidate_cache()
        self._anonymous = bool((storage_options or {}).get("anon"))
        try:
            exists = fs.exists(self.root)
        except Exception as error:  # OSError, or the client's own (botocore: no endpoint)
            raise StoreNotFoundError(
                uri, f"cannot reach the store: {error}{self._credential_hint(error)}"
            ) from error
        if not exists:
            raise StoreNotFoundError(uri, "no such file or prefix")

    def _credential_hint(self, error: BaseException) -> str:
        """How to read a public bucket, when ``error`` is about missing/refused credentials."""
        if self._anonymous or _scheme(self.uri) not in ("s3", "s3a"):
            return ""
        return CREDENTIAL_HINT if _is_credential_error(error) else ""

    def is_dir(self) -> bool:
        """Whether the root is a prefix (folder)."""
        return bool(self.fs.isdir(self.root))

    def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Read whole files in one batched call.

        ``cat_ranges`` rather than ``cat``: ``cat`` expands glob characters
        (``[``, ``*``, ``?``), which are legal in object keys and node names.
        """
        if not keys:
            return []
        # The root's few documents are asked for by format detection and again
        # by the scanner it picks: remembered, so each costs one request.
        wanted = [key for key in dict.fromkeys(keys) if key not in self._root_documents]
        listed = self._root_names()
        absent = {k for k in wanted if listed is not None and "/" not in k and k not in listed}
        wanted = [key for key in wanted if key not in absent]
        fresh = dict(zip(wanted, self._read_uncached(wanted), strict=True))
        fresh.update(dict.fromkeys(absent))
        self._root_documents.update((k, v) for k, v in fresh.items() if "/" not in k)
        return [fresh[key] if key in fresh else self._root_documents[key] for key in keys]

    def _root_names(self) -> frozenset[str] | None:
        """Names at the root when a listing of it is already cached (``is_dir`` lists it).

        Root documents that are not listed are known absent without a request (the
        format probes: ``zarr.json``, ``.zmetadata``...). Never lists by itself: some
        filesystems (HTTP) cannot list, and an empty answer would hide real files.
        """
        protocol = self.fs.protocol
        protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        if any(p.startswith("http") for p in protocols):
            return None  # an HTML index page is no listing (dot files are often left out)
        cache = getattr(self.fs, "dircache", None)
        entries = cache.get(self.root) if cache is not None else None
        if not entries:
            return None
        return frozenset(str(e.get("name", "")).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def _read_uncached(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        paths = [_join(self.root, key) for key in keys]
        nones = [None] * len(paths)
        found = self.fs.cat_ranges(paths, nones, nones, on_error="return")
        out: list[bytes | None] = []
        for path, data in zip(paths, found, strict=True):
            if isinstance(data, FileNotFoundError) or data is None:
                out.append(None)
            elif isinstance(data, BaseException):
                raise MetadataError(
                    self.location(path), f"cannot read: {data}{self._credential_hint(data)}"
                ) from data
            elif len(data) > self.limits.max_metadata_bytes:
                raise MetadataError(
                    self.location(path),
                    f"over the {self.limits.max_metadata_bytes:,}-byte metadata limit "
                    "(ICEBERG_BIOIMAGE_MAX_METADATA_BYTES)",
                )
            else:
                out.append(bytes(data))
        return out

    def list_children(self, key: str) -> list[str]:
        """Sub-prefix names below ``key``, sorted."""
        try:
            entries = self.fs.ls(_join(self.root, key), detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            e["name"].rstrip("/").rsplit("/", 1)[-1]
            for e in entries
            if e.get("type") == "directory"
        )

    def list_objects(self, key: str) -> dict[str, int]:
        """Every object below ``key`` with its size (one listing)."""
        offset = len(self.root) + 1
        found = self.fs.find(_join(self.root, key), detail=True)
        return {
            name[offset:]: int(info.get("size") or 0)
            for name, info in found.items()
            if info.get("type") != "directory"
        }

    def glob_objects(self, pattern: str) -> dict[str, int]:
        """Objects matching ``pattern`` below the root, with their sizes (one listing)."""
        _check_pattern(pattern)
        offset = len(self.root) + 1
        found = self.fs.glob(_join(self.root, pattern), detail=True)
        return {
            name[offset:]: int(info.get("size") or 0)
            for name, info in sorted(found.items())
            if info.get("type") != "directory"
        }

    def read_ranges(self, requests: Sequence[tuple[str, int, int | None]]) -> list[bytes | None]:
        """Read byte ranges in one batched call."""
        if not requests:
            return []
        paths = [_join(self.root, key) for key, _, _ in requests]
        starts = [start for _, start, _ in requests]
        ends = [end for _, _, end in requests]
        data = self.fs.cat_ranges(paths, starts, ends, on_error="return")
        return [None if isinstance(item, BaseException) else bytes(item) for item in data]

    def read_heads(
        self, requests: Sequence[tuple[str, int, int]]
    ) -> list[tuple[bytes, int | None] | None]:
        """Ranged GETs of many objects in one batched call (sizes unknown; ``None`` on error)."""
        if not requests:
            return []
        paths = [_join(self.root, key) for key, _, _ in requests]
        starts = [start for _, start, _ in requests]
        ends = [start + length for _, start, length in requests]
        data = self.fs.cat_ranges(paths, starts, ends, on_error="return")
        out: list[tuple[bytes, int | None] | None] = []
        for item in data:
            failed = item is None or isinstance(item, BaseException)
            out.append(None if failed else (bytes(item), None))
        return out

    def open(self, key: str = "") -> BinaryIO:
        """Open an object for reading (small cached blocks, no big read-ahead)."""
        return self.fs.open(
            _join(self.root, key), "rb", block_size=_OPEN_BLOCK_SIZE, cache_type="blockcache"
        )

    def location(self, key: str) -> str:
        """URI of ``key``."""
        if key.startswith(self.root):
            key = key[len(self.root) + 1 :]
        return _join(self.uri, key)


def _local_from_uri(uri: str, _options: Mapping[str, Any] | None) -> Store:
    parts = urlsplit(uri)
    return LocalStore(parts.path if parts.scheme == "file" else uri)


_STORE_TYPES: dict[str, Callable[[str, Mapping[str, Any] | None], Store]] = {
    "": _local_from_uri,
    "file": _local_from_uri,
}


def open_store(
    uri: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> Store:
    """Open ``uri`` with the store type registered for its scheme (fsspec otherwise)."""
    text = os.fspath(uri)
    scheme = urlsplit(text).scheme if "://" in text else ""
    factory = _STORE_TYPES.get(scheme, FsspecStore)
    return factory(text, storage_options)


def _check_pattern(pattern: str) -> None:
    if pattern.startswith("/") or ".." in pattern.replace("\\", "/").split("/"):
        raise StoreNotFoundError(pattern, "a glob pattern must stay inside its folder (no '..')")


_GLOB_MAGIC = re.compile(r"[*?\[]")


def split_glob(uri: str | os.PathLike[str]) -> tuple[str, str] | None:
    """``(folder, pattern)`` when ``uri`` is a glob of files rather than a store, else ``None``.

    A path holding ``*``, ``?`` or ``[`` is a glob unless it exists as written (checked
    here for local paths; the caller tries a remote one as a store first): the folder
    is the part before the first component with a wildcard, the pattern the rest
    (``plate/Images/*.tiff`` → ``plate/Images``, ``*.tiff``).
    """
    text = os.fspath(uri)
    scheme = urlsplit(text).scheme if "://" in text else ""
    prefix, path = (
        (text.split("://", 1)[0] + "://", text.split("://", 1)[1]) if scheme else ("", text)
    )
    if not _GLOB_MAGIC.search(path):
        return None
    if scheme in ("", "file") and os.path.exists(urlsplit(text).path if scheme else text):
        return None
    parts = path.split("/")
    first = next(i for i, part in enumerate(parts) if _GLOB_MAGIC.search(part))
    folder = "/".join(parts[:first]) or ("/" if path.startswith("/") else ".")
    return prefix + folder, "/".join(parts[first:])


def expand_glob(
    uri: str | os.PathLike[str], pattern: str, storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """Stores matching ``pattern`` inside the folder or prefix ``uri``, sorted."""
    text = os.fspath(uri)
    scheme = urlsplit(text).scheme if "://" in text else ""
    _check_pattern(pattern)
    if scheme in ("", "file"):
        folder = Path(urlsplit(text).path if scheme == "file" else text).expanduser()
        if not folder.is_dir():
            raise StoreNotFoundError(text, "not a folder to search with --glob")
        root = str(folder.resolve())
        found = sorted(folder.glob(pattern))
        outside = [p for p in found if not is_inside(root, str(p.resolve()))]
        if outside:
            raise StoreNotFoundError(
                str(outside[0]), f"resolves outside {root} (a symlink); refused"
            )
        return [str(path) for path in found]
    import fsspec

    fs, root = fsspec.core.url_to_fs(text, **effective_storage_options(text, storage_options))
    protocol = text.split("://", 1)[0]
    return [f"{protocol}://{path}" for path in sorted(fs.glob(f"{root.rstrip('/')}/{pattern}"))]
