"""The one place that turns a derived path into a location, inside its root.

Paths taken from store metadata (NGFF dataset, well and field paths, consolidated
keys), from warehouse manifests and from names are relative paths below a root
the user named: a store, a warehouse root or a catalog warehouse. They are
normalised here and refused when they would leave that root, whether through
``..`` segments or, locally, through a symlink that resolves outside it.
Symlinks that stay inside the root keep working.

Files named one by one are the exception: a CellProfiler LoadData table names each
file it describes (absolute paths, ``..`` and symlinks included, as CellProfiler
reads them), so those files are what the user named and are opened where they are
(``root=None`` below, :data:`NAMED_FILES`). They must still be regular files, and
nothing else is read: no folder is listed, no other file is opened.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from iceberg_bioimage.exceptions import MetadataError

#: Segments of letters, digits and ``_-`` joined by single slashes, no slash at either end.
_PLAIN = re.compile(r"[\w\-]+(?:/[\w\-]+)*")


def relative_key(path: str) -> str:
    """Normalise a store-relative path; ``ValueError`` if it could leave the root.

    Leading, trailing and repeated ``/`` and ``.`` segments are dropped; ``..``
    segments, backslashes and NUL characters are refused.

    >>> relative_key("/A/./1/")
    'A/1'
    """
    if not isinstance(path, str):
        raise ValueError(f"path must be a string, got {type(path).__name__}")
    if "." not in path and "//" not in path and _PLAIN.fullmatch(path):
        return path  # the common case (``A/1/0``): nothing to normalise
    if "\\" in path or "\x00" in path:
        raise ValueError(f"path {path!r} holds a backslash or NUL character")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"path {path!r} leaves its folder ('..')")
    return "/".join(parts)


def join_key(parent: str, child: str) -> str:
    """Join a trusted store-relative ``parent`` and a derived ``child`` path."""
    child = relative_key(child)
    return f"{parent}/{child}" if parent and child else parent or child


def is_inside(root: str, path: str) -> bool:
    """Whether the absolute ``path`` is ``root`` or below it (both already resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_inside(root: str | os.PathLike[str], relative: str, *, what: str = "path") -> Path:
    """The real location of ``relative`` below ``root``; :class:`MetadataError` if outside.

    ``relative`` is normalised by :func:`relative_key` and symlinks are resolved,
    so ``../x`` and a symlink pointing out of ``root`` are both refused.
    """
    base = Path(root).resolve()
    try:
        key = relative_key(relative)
    except ValueError as error:
        raise MetadataError(f"{base}: {what} {relative!r}", str(error)) from error
    target = (base / key).resolve() if key else base
    if not is_inside(str(base), str(target)):
        raise MetadataError(
            f"{base / key}", f"{what} resolves to {target}, outside {base}; refused"
        )
    return target


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_PROC_FD = "/proc/self/fd"
_HAS_PROC_FD = os.path.isdir(_PROC_FD)


def real_path(fd: int, path: str) -> str:
    """Where an open descriptor really points (one syscall on Linux)."""
    if _HAS_PROC_FD:
        try:
            return os.readlink(f"{_PROC_FD}/{fd}")
        except OSError:
            pass
    return os.path.realpath(path)


def os_reason(error: BaseException) -> str:
    """A short lower-case reason for an OS error (ELOOP named as a symlink loop)."""
    if isinstance(error, OSError) and error.errno == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[0].lower() + error.strerror[1:]
    return str(error)


#: The ``root`` of files named one by one (a LoadData table's): opened where they are.
NAMED_FILES = None


def open_inside(root: str | None, path: str) -> int | None:
    """A read-only descriptor of the regular file ``path``, which must resolve inside ``root``.

    ``None`` when nothing (or a folder) is there. The file is opened without
    blocking, so a FIFO cannot hang the caller; FIFOs, devices, sockets and
    anything resolving outside ``root`` (a symlink out of it) raise
    :class:`MetadataError`, as does an unreadable file (permission, symlink loop).
    With ``root=None`` (:data:`NAMED_FILES`) the file may be anywhere.
    """
    opened = _open_regular(root, path)
    return None if opened is None else opened[0]


def _open_regular(root: str | None, path: str) -> tuple[int, int] | None:
    """``(descriptor, size)`` of a regular file inside ``root`` (see :func:`open_inside`)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise MetadataError(path, f"cannot be read: {os_reason(error)}") from error
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            os.close(fd)
            return None
        if not stat.S_ISREG(info.st_mode):
            raise MetadataError(path, "not a regular file (FIFO, device or socket); refused")
        if root is not None:
            real = real_path(fd, path)
            if not is_inside(root, real):
                raise MetadataError(path, f"resolves to {real}, outside {root}; refused")
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_inside(root: str | None, path: str, max_bytes: int) -> bytes | None:
    """Read a regular file inside ``root`` of at most ``max_bytes`` (``None`` if absent)."""
    opened = _open_regular(root, path)
    if opened is None:
        return None
    fd, size = opened
    try:
        if size > max_bytes:
            raise MetadataError(
                path,
                f"{size:,} bytes is over the {max_bytes:,}-byte limit "
                "(ICEBERG_BIOIMAGE_MAX_METADATA_BYTES)",
            )
        parts = [os.read(fd, size + 1)]  # one read for a file that does not grow
        total = len(parts[0])
        while total > size and parts[-1]:
            if total > max_bytes:
                raise MetadataError(
                    path, f"grew past the {max_bytes:,}-byte limit while being read"
                )
            parts.append(os.read(fd, max_bytes + 1 - total))
            total += len(parts[-1])
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_head_inside(
    root: str | None, path: str, start: int, length: int
) -> tuple[bytes, int] | None:
    """``length`` bytes from ``start`` of a regular file inside ``root``, and the file's size.

    One open, one positioned read; ``None`` when nothing is there (see :func:`open_inside`).
    """
    opened = _open_regular(root, path)
    if opened is None:
        return None
    fd, size = opened
    try:
        return os.pread(fd, length, start), size
    finally:
        os.close(fd)


_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: Files opened relative to their checked folder (``openat``), not following a symlink.
_OPEN_AT = _HAS_PROC_FD and bool(_NOFOLLOW) and os.open in os.supports_dir_fd


def read_heads_inside(
    root: str | None, jobs: Sequence[tuple[str, int, int]]
) -> list[tuple[bytes, int] | None]:
    """:func:`read_head_inside` of many ``(path, start, length)``, the same answers, fewer calls.

    Each folder is opened once and checked once to resolve inside ``root``; its files
    are opened relative to it without following a symlink (then neither the file nor
    its folder can lead out of ``root``), so a file costs an open, a ``fstat``, a
    positioned read and a close. A symlinked file, or anything unusual, is read by
    :func:`read_head_inside` with its checks and messages.
    """
    if root is None or not _OPEN_AT:
        return [read_head_inside(root, path, start, length) for path, start, length in jobs]
    found: list[tuple[bytes, int] | None] = []
    folder, folder_fd = "", None
    try:
        for path, start, length in jobs:
            parent, _, name = path.rpartition(os.sep)
            if parent != folder:
                if folder_fd is not None:
                    os.close(folder_fd)
                folder, folder_fd = parent, _open_folder(root, parent)
            if folder_fd is None:
                found.append(read_head_inside(root, path, start, length))
            else:
                found.append(_read_head_at(folder_fd, name, root, path, start, length))
    finally:
        if folder_fd is not None:
            os.close(folder_fd)
    return found


def _open_folder(root: str, folder: str) -> int | None:
    """A descriptor of ``folder`` if it resolves inside ``root``; else ``None``."""
    try:
        fd = os.open(folder, _FOLDER_FLAGS)
    except OSError:
        return None
    try:
        if is_inside(root, real_path(fd, folder)):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def _read_head_at(
    folder_fd: int, name: str, root: str, path: str, start: int, length: int
) -> tuple[bytes, int] | None:
    """One file of a checked folder (see :func:`read_heads_inside`)."""
    try:
        fd = os.open(name, _OPEN_FLAGS | _NOFOLLOW, dir_fd=folder_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:  # a symlink (ELOOP), or an error: the usual way says which
        return read_head_inside(root, path, start, length)
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            return os.pread(fd, length, start), info.st_size
    finally:
        os.close(fd)
    return read_head_inside(root, path, start, length)  # a folder or a FIFO: the usual answer
