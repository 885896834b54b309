"""Value rules: conformance, conversion and type detection, by example and by property."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.values import (
    BIGINT_MAX,
    conforms,
    detect_kind,
    is_blank,
    is_placeholder,
    placeholder_set,
    to_integer,
    to_number,
)

bigints = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@pytest.mark.parametrize(
    ("kind", "value", "ok"),
    [
        ("integer", 42, True),
        ("integer", 3652948.0, False),  # REAL-stored integer: the cleaner rewrites it
        ("integer", "42", False),
        ("integer", True, False),
        ("integer", BIGINT_MAX + 1, False),
        ("numeric", 7.5, True),
        ("numeric", 7, True),
        ("numeric", Decimal("7.5"), True),
        ("numeric", float("inf"), False),
        ("numeric", "7.5", False),
        ("timestamp", "2025-05-20 08:42:00", True),
        ("timestamp", "2025-05-20", True),
        ("timestamp", datetime(2025, 5, 20), True),
        ("timestamp", "20/05/2025 8:42", False),
        ("timestamp", "", False),  # PostgreSQL refuses '' as a timestamp
        ("timestamp", 45900.5, False),
        ("date", "2025-05-20", True),
        ("date", "2025-05-20 08:42:00", False),
        ("date", date(2025, 5, 20), True),
        ("text", "anything", True),
        ("text", 42, True),
        ("text", b"bytes", False),
        ("integer", None, True),  # NULL is the not-null check's business
    ],
)
def test_conforms(kind: str, value: object, ok: bool) -> None:
    assert conforms(kind, value) is ok


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3652948.0, 3652948),
        ("42", 42),
        (" 42 ", 42),
        ("3652948.0", 3652948),
        ("3652948.00", 3652948),
        ("+7", 7),
        ("-7", -7),
        (7.5, None),
        ("7.5", None),
        ("", None),
        ("abc", None),
        (True, None),
        (float("nan"), None),
        (Decimal("12"), 12),
        (Decimal("12.5"), None),
        (str(2**64), None),
    ],
)
def test_to_integer(value: object, expected: int | None) -> None:
    assert to_integer(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7.5", 7.5), ("7", 7), (".5", 0.5), ("1e3", 1000.0), (3, 3), (float("inf"), None), ("inf", None), ("x", None), (False, None)],
)
def test_to_number(value: object, expected: float | None) -> None:
    assert to_number(value) == expected


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        (42, "integer"),
        (3652948.0, "integer"),
        ("3652948", "integer"),
        ("7.5", "numeric"),
        (7.5, "numeric"),
        ("2025-05-20 08:42:00", "timestamp"),
        ("20/05/2025 8:42", "timestamp"),
        ("2025-05-20", "date"),
        ("20/05/2025", "date"),
        ("hello", "text"),
        ("1234567890123456789012", "numeric"),  # too long for an id: a number at most
    ],
)
def test_detect_kind_examples(value: object, kind: str | None) -> None:
    assert detect_kind(value) == kind


def test_placeholders_compare_trimmed() -> None:
    tokens = placeholder_set(["--None--", " PendingAssignment ", "  "])
    assert tokens == frozenset({"--None--", "PendingAssignment"})
    assert is_placeholder(" PendingAssignment", tokens)
    assert not is_placeholder("Pending Assignment", tokens)
    assert not is_placeholder(None, tokens)
    assert is_blank("") and is_blank(" \t") and not is_blank(None) and not is_blank("x")


# --- properties ----------------------------------------------------------------------------


@given(bigints)
def test_integers_in_every_storage_convert_back(n: int) -> None:
    assert to_integer(n) == n
    assert to_integer(str(n)) == n
    assert to_integer(f" {n} ") == n
    assert to_integer(f"{n}.0") == n
    if abs(n) < 2**53:
        assert to_integer(float(n)) == n
    assert conforms("integer", n)
    assert not conforms("integer", str(n))


@given(bigints)
def test_detected_kind_of_integers(n: int) -> None:
    assert detect_kind(n) == "integer"
    if len(str(n)) <= 18:
        assert detect_kind(str(n)) == "integer"
    if abs(n) < 2**53:
        assert detect_kind(float(n)) == "integer"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_are_numbers(x: float) -> None:
    assert to_number(x) == x
    assert conforms("numeric", x)
    assert detect_kind(x) == ("integer" if x.is_integer() else "numeric")
    back = to_number(repr(x))
    assert back is not None and math.isclose(back, x, rel_tol=1e-12, abs_tol=0)


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()))
def test_fractions_are_no_integers(x: float) -> None:
    assert to_integer(x) is None
    assert to_integer(repr(x)) is None


@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",)), min_size=1, max_size=20).filter(lambda s: s.strip()))
def test_text_without_digits_is_no_number(text: str) -> None:
    assert to_integer(text) is None
    if text.strip().lower() not in {"nan", "inf", "infinity"}:
        assert to_number(text) is None
    assert detect_kind(text) == "text"


@given(st.one_of(st.none(), st.text(max_size=30), bigints, st.floats(), st.booleans(), st.binary(max_size=5)))
def test_detect_kind_is_total_and_consistent(value: object) -> None:
    kind = detect_kind(value)
    assert kind in (None, "integer", "numeric", "timestamp", "date", "text")
    if kind == "integer":
        assert to_integer(value) is not None
    if kind == "numeric":
        assert to_number(value) is not None
    if kind is None:
        assert value is None or is_blank(value)
