"""One rule for the names we turn into paths: dataset ids, table names, namespaces.

A name that breaks the rule is refused with :class:`InvalidNameError`, never
silently encoded: a dataset id becomes a file name (``<dataset_id>.<token>.parquet``)
and an Iceberg partition folder, a table name becomes folders below the warehouse
root, so each must stay one plain path segment that every reader accepts.
"""

from __future__ import annotations

import re

from iceberg_bioimage.exceptions import InvalidNameError

MAX_NAME_LENGTH = 200

#: Characters no dataset id may hold: path separators and control characters (NUL
#: included). Everything else a real file or folder name carries is kept: Olympus
#: scan^R names begin with ``--``, folders may begin with ``_`` or ``.``.
_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f-\x9f]")
#: One part of a dotted table name or namespace.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")

DATASET_ID_RULE = (
    "dataset ids are 1-200 characters, are not '.' or '..', and hold no '/', '\\' "
    "or control characters"
)
IDENTIFIER_RULE = (
    "each dot-separated part is letters, digits, '_' or '-' and starts with a letter or digit"
)


def check_dataset_id(dataset_id: str) -> str:
    """Return ``dataset_id`` if it is legal, else raise :class:`InvalidNameError`.

    Any name a real file or folder carries is legal (SPEC §2): where a dataset id
    becomes a file name, :func:`file_safe` encodes it; where it goes into a command
    line, it follows ``--``/``=`` so that a leading ``-`` is never read as an option.

    >>> check_dataset_id("BR00116991")
    'BR00116991'
    >>> check_dataset_id("--W00001--P00001--Z00000--T00000--cherry")
    '--W00001--P00001--Z00000--T00000--cherry'
    """
    if (
        not isinstance(dataset_id, str)
        or not dataset_id
        or len(dataset_id) > MAX_NAME_LENGTH
        or dataset_id in (".", "..")
        or _FORBIDDEN.search(dataset_id)
    ):
        raise InvalidNameError(f"dataset id {dataset_id!r}", f"not a legal name: {DATASET_ID_RULE}")
    return dataset_id


#: Characters kept as they are in a file name made from a dataset id.
_FILE_SAFE = re.compile(r"[A-Za-z0-9 _.+,=@~()\[\]{}-]")


def file_safe(dataset_id: str) -> str:
    """``dataset_id`` as one plain file-name part every reader lists.

    Characters outside a portable set are percent-encoded (``%3A`` for ``:``), and so is
    a leading ``.`` or ``_``, which Arrow datasets and Spark treat as hidden files.
    Distinct ids stay distinct (``%`` itself is encoded).

    >>> file_safe("--W00001--cherry"), file_safe("_x:y")
    ('--W00001--cherry', '%5Fx%3Ay')
    """
    out = [
        ch if _FILE_SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode())
        for ch in check_dataset_id(dataset_id)
    ]
    if out[0] in (".", "_"):
        out[0] = f"%{ord(out[0]):02X}"
    return "".join(out)


def dotted_parts(name: str, what: str) -> tuple[str, ...]:
    """Split a dotted table name or namespace, checking every part."""
    parts = tuple(name.split(".")) if isinstance(name, str) else ()
    if (
        not parts
        or len(name) > MAX_NAME_LENGTH
        or not all(_IDENTIFIER.match(part) for part in parts)
    ):
        raise InvalidNameError(f"{what} {name!r}", f"not a legal name: {IDENTIFIER_RULE}")
    return parts


def check_table_name(table_name: str) -> str:
    """Return a dotted warehouse table name (``profiles.joined_profiles``) if legal."""
    if len(dotted_parts(table_name, "table name")) != 2:
        raise InvalidNameError(
            f"table name {table_name!r}", "needs exactly two parts: <namespace>.<table>"
        )
    return table_name
