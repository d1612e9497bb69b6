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

#: Characters no dataset id may hold: path separators, the image-id separator
#: ``:``, characters Windows refuses in file names, and control characters.
_FORBIDDEN = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
#: One part of a dotted table name or namespace.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")

DATASET_ID_RULE = (
    "dataset ids are 1-200 characters, start with a letter or digit, do not end with "
    "a space or '.', and hold no '/', '\\', ':', '*', '?', '\"', '<', '>', '|' or control "
    "characters"
)
IDENTIFIER_RULE = (
    "each dot-separated part is letters, digits, '_' or '-' and starts with a letter or digit"
)


def check_dataset_id(dataset_id: str) -> str:
    """Return ``dataset_id`` if it is legal, else raise :class:`InvalidNameError`.

    >>> check_dataset_id("BR00116991")
    'BR00116991'
    """
    if (
        not isinstance(dataset_id, str)
        or not dataset_id
        or len(dataset_id) > MAX_NAME_LENGTH
        or not dataset_id[0].isalnum()
        or dataset_id[-1] in " ."
        or _FORBIDDEN.search(dataset_id)
    ):
        raise InvalidNameError(f"dataset id {dataset_id!r}", f"not a legal name: {DATASET_ID_RULE}")
    return dataset_id


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
