"""Refuse user regular expressions that can backtrack catastrophically.

Python's ``re`` backtracks and cannot be interrupted: ``(a+)+$`` on a 32-character
name that does not match runs for hours. A ``--pattern`` is therefore checked before
it is used, from its parse tree (``re._parser``, the parser ``re.compile`` itself
uses), and refused when it has one of the two shapes that make backtracking
exponential:

* a repeat inside a repeat, where the inner one can run into what follows it:
  ``(a+)+``, ``(\\w+_?)*``, ``(.*,)*``. The usual folder idiom ``(?:[^/]+/)*`` is
  kept: its inner repeat cannot match the ``/`` that ends each round.
* an alternation inside a repeat whose branches can begin alike: ``(a|ab)+``,
  ``(\\d|1)*``. ``(?:foo|bar)+`` is kept (distinct first characters).

The check is conservative on those two shapes and linear in the pattern's size.
"""

from __future__ import annotations

import re
from typing import Any

try:  # Python >= 3.11
    from re import _constants as _c
    from re import _parser as _p
except ImportError:  # pragma: no cover - older interpreters
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)}
#: Characters tried when deciding whether two one-character items overlap.
_PROBES = [chr(i) for i in range(32, 127)] + ["\t", "\n", "é", "\u00a0"]
_CATEGORIES = {
    _c.CATEGORY_DIGIT: re.compile(r"\d"),
    _c.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    _c.CATEGORY_SPACE: re.compile(r"\s"),
    _c.CATEGORY_NOT_SPACE: re.compile(r"\S"),
    _c.CATEGORY_WORD: re.compile(r"\w"),
    _c.CATEGORY_NOT_WORD: re.compile(r"\W"),
}


class UnsafePattern(ValueError):
    """The pattern can backtrack catastrophically; the message says which part."""


def _char_set(item: tuple[Any, Any]) -> frozenset[str] | None:
    """Probe characters a one-character item matches; ``None`` if it is not one character."""
    op, arg = item
    if op == _c.LITERAL:
        return frozenset({chr(arg)})
    if op == _c.NOT_LITERAL:
        return frozenset(ch for ch in _PROBES if ord(ch) != arg)
    if op == _c.ANY:
        return frozenset(ch for ch in _PROBES if ch != "\n")
    if op == _c.IN:
        negate = False
        found: set[str] = set()
        for sub_op, sub_arg in arg:
            if sub_op == _c.NEGATE:
                negate = True
            elif sub_op == _c.LITERAL:
                found.add(chr(sub_arg))
            elif sub_op == _c.RANGE:
                found.update(ch for ch in _PROBES if sub_arg[0] <= ord(ch) <= sub_arg[1])
            elif sub_op == _c.CATEGORY and sub_arg in _CATEGORIES:
                found.update(ch for ch in _PROBES if _CATEGORIES[sub_arg].match(ch))
            else:
                return frozenset(_PROBES)  # unknown member: assume it matches anything
        return frozenset(ch for ch in _PROBES if ch not in found) if negate else frozenset(found)
    return None


def _first_set(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
    """Characters a sequence can begin with (``None``: unknown or it can be empty)."""
    if not items:
        return None
    op, arg = items[0]
    one = _char_set(items[0])
    if one is not None:
        return one
    if op == _c.SUBPATTERN:
        return _first_set(list(arg[-1]))
    if op in _REPEATS and arg[0] >= 1:
        return _first_set(list(arg[2]))
    return None


def _has_repeat(items: list[tuple[Any, Any]]) -> bool:
    for op, arg in items:
        if op in _REPEATS and arg[1] > 1:
            return True
        for sub in _subsequences(op, arg):
            if _has_repeat(sub):
                return True
    return False


def _subsequences(op: Any, arg: Any) -> list[list[tuple[Any, Any]]]:
    if op == _c.SUBPATTERN:
        return [list(arg[-1])]
    if op in _REPEATS:
        return [list(arg[2])]
    if op == _c.BRANCH:
        return [list(b) for b in arg[1]]
    if op == getattr(_c, "ATOMIC_GROUP", None) or op in (_c.ASSERT, _c.ASSERT_NOT):
        return [list(arg if op == getattr(_c, "ATOMIC_GROUP", None) else arg[1])]
    return []


def _delimited(body: list[tuple[Any, Any]], index: int) -> bool:
    """Whether the repeat ``body[index]`` is one character set ended by one it cannot match."""
    _op, arg = body[index]
    inner = list(arg[2])
    chars = _char_set(inner[0]) if len(inner) == 1 else None
    if chars is None or index + 1 >= len(body):
        return False
    after = _char_set(body[index + 1])
    return after is not None and not (chars & after)


def _check_body(body: list[tuple[Any, Any]], source: str) -> None:
    """Inside a repeat: refuse inner repeats that can overlap and ambiguous alternations."""
    for index, (op, arg) in enumerate(body):
        if op in _REPEATS and arg[1] > 1 and not _delimited(body, index):
            raise UnsafePattern(
                f"a repeat inside a repeat can backtrack without end on names that do not "
                f"match ({source}); make the inner part end with a character it cannot match "
                "(like '(?:[^_]+_)*'), or drop one of the repeats"
            )
        if op == _c.BRANCH:
            firsts = [_first_set(list(b)) for b in arg[1]]
            for i, a in enumerate(firsts):
                for b in firsts[i + 1 :]:
                    if a is None or b is None or a & b:
                        raise UnsafePattern(
                            f"alternatives inside a repeat that can begin alike can backtrack "
                            f"without end ({source}); make each alternative begin with a "
                            "different character"
                        )
        for sub in _subsequences(op, arg):
            if op in _REPEATS and arg[1] > 1:
                continue  # checked as its own repeat below
            _check_body(sub, source)


def _walk(items: list[tuple[Any, Any]], source: str) -> None:
    for op, arg in items:
        if op in _REPEATS and arg[1] > 1:
            _check_body(list(arg[2]), source)
        for sub in _subsequences(op, arg):
            _walk(sub, source)


def check_pattern_safety(regex: str) -> None:
    """Raise :class:`UnsafePattern` if ``regex`` can backtrack catastrophically.

    >>> check_pattern_safety(r"(?:[^/]+/)*?(?P<well>[A-P]\\d{2})_(?P<channel>w\\d+)\\.tif")
    >>> check_pattern_safety(r"(?P<well>(a+)+)$")
    Traceback (most recent call last):
    ...
    iceberg_bioimage.models.regex_safety.UnsafePattern: a repeat inside a repeat ...
    """
    _walk(list(_p.parse(regex)), "e.g. '(a+)+'")
