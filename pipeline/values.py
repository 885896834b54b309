"""Value-level rules: does a stored value fit a kind, is it a placeholder, and its fix.

Pure functions, shared by the contract executor (does it conform?), the profiler
(what is it really?) and the cleaner (what should it become?). A value "conforms"
to a kind only in the form PostgreSQL's COPY will take without guessing:

- integer: a Python ``int`` (SQLite INTEGER); ``3652948.0`` (REAL) and ``'42'`` (TEXT) do not;
- numeric: ``int``/``float``/``Decimal``, finite;
- timestamp: ``datetime`` or ISO 8601 text; date: ``date`` or ``YYYY-MM-DD`` text;
- text, flag, month: any text (their closed sets and patterns are separate checks).

``None`` is NULL and is judged by the not-null check, never by the type check.
``''`` is not NULL: in a typed column it fails the type check (PostgreSQL refuses
``''`` as a timestamp), which is exactly what sends the data to the cleaner.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from pipeline.dates import is_iso_date, is_iso_timestamp

_INT_TEXT = re.compile(r"^[+-]?\d+(?:\.0+)?$")
_NUM_TEXT = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")

# PostgreSQL bigint range.
BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1


def conforms(kind: str, value: Any) -> bool:
    """True when a non-NULL value already has the form its kind needs."""
    if value is None:
        return True
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool) and BIGINT_MIN <= value <= BIGINT_MAX
    if kind == "numeric":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return math.isfinite(value)
        if isinstance(value, Decimal):
            return value.is_finite()
        return False
    if kind == "timestamp":
        return is_iso_timestamp(value)
    if kind == "date":
        return is_iso_date(value)
    return isinstance(value, str) or not isinstance(value, (bytes, bytearray))


def is_blank(value: Any) -> bool:
    """An empty or whitespace-only string."""
    return isinstance(value, str) and not value.strip()


def placeholder_set(tokens: Iterable[str]) -> frozenset[str]:
    """Tokens compare after trimming (``' PendingAssignment'`` is the same token)."""
    return frozenset(t.strip() for t in tokens if t.strip())


def is_placeholder(value: Any, tokens: frozenset[str]) -> bool:
    return isinstance(value, str) and value.strip() in tokens


def to_integer(value: Any) -> int | None:
    """The integer a value stands for (``3652948.0``, ``'42'``), or None if it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return None
    if isinstance(value, Decimal):
        return int(value) if value.is_finite() and value == value.to_integral_value() else None
    if isinstance(value, str) and _INT_TEXT.match(value.strip()):
        number = int(Decimal(value.strip()))
        return number if BIGINT_MIN <= number <= BIGINT_MAX else None
    return None


def to_number(value: Any) -> int | float | None:
    """The number a value stands for (``'7.5'`` -> 7.5), or None if it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if not isinstance(value, float) or math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, str) and _NUM_TEXT.match(value.strip()):
        try:
            number = float(Decimal(value.strip()))
        except InvalidOperation:  # pragma: no cover - the pattern already excludes it
            return None
        if not math.isfinite(number):
            return None
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return None


def detect_kind(value: Any) -> str | None:
    """The narrowest kind a single non-NULL value fits, judged by content, not storage.

    Used by the profiler's type detection: ``'2025-05-20 08:42:00'`` is a timestamp,
    ``3652948.0`` an integer, ``'7.5'`` numeric. Returns None for NULL and blanks.
    """
    from pipeline.dates import Shape, shape_of

    if value is None or is_blank(value):
        return None
    if to_integer(value) is not None and not (isinstance(value, str) and len(value.strip()) > 18):
        return "integer"
    if to_number(value) is not None:
        return "numeric"
    if isinstance(value, str):
        shape = shape_of(value)
        if shape in (Shape.ISO, Shape.SLASH):
            return "date" if is_iso_date(value) or (shape is Shape.SLASH and ":" not in value) else "timestamp"
    return "text"
