"""The cleaner's pure cell transforms: each edge case, then properties with Hypothesis."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, strategies as st

from pipeline import transforms as tf
from pipeline.dates import EXCEL_EPOCH, Order
from pipeline.values import placeholder_set

DAY = Order.DAY_FIRST
MONTH = Order.MONTH_FIRST


# --- dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, order, date_only, expected, rule",
    [
        ("2025-05-20 08:42:00", DAY, False, "2025-05-20 08:42:00", None),
        ("2025-05-20 08:42", DAY, False, "2025-05-20 08:42:00", "date_iso"),
        ("2025-05-20T08:42:00", DAY, False, "2025-05-20 08:42:00", "date_iso"),
        ("2025-05-20", DAY, False, "2025-05-20 00:00:00", "date_iso"),
        ("2025-05-20 08:42:00.250000", DAY, False, "2025-05-20 08:42:00.250000", None),
        ("20/05/2025 8:42", DAY, False, "2025-05-20 08:42:00", "date_iso"),
        ("2/07/2025 16:21", DAY, False, "2025-07-02 16:21:00", "date_iso"),
        ("2/07/2025 16:21", MONTH, False, "2025-02-07 16:21:00", "date_iso"),
        ("2/07/2025 4:21 PM", DAY, False, "2025-07-02 16:21:00", "date_iso"),
        ("02.07.2025", DAY, True, "2025-07-02", "date_iso"),
        ("2/07/2025", DAY, True, "2025-07-02", "date_iso"),
        ("2025-07-02", DAY, True, "2025-07-02", None),
        ("2025-07-02 00:00:00", DAY, True, "2025-07-02", "date_iso"),
        (45658, DAY, True, "2025-01-01", "excel_serial"),
        (45658.5, DAY, False, "2025-01-01 12:00:00", "excel_serial"),
        ("45658.25", DAY, False, "2025-01-01 06:00:00", "excel_serial"),
        (None, DAY, False, None, None),
    ],
)
def test_rewrite_date(value, order, date_only, expected, rule):
    out = tf.rewrite_date(value, order, date_only)
    assert out.reason is None
    assert out.value == expected
    assert out.rule == rule


@pytest.mark.parametrize(
    "value, order, date_only, why",
    [
        ("not a date", DAY, False, "not a date"),
        ("", DAY, False, "blank"),
        ("   ", DAY, False, "blank"),
        ("31/02/2025", DAY, False, "not a day-first date"),
        ("20/05/2025", MONTH, False, "not a month-first date"),
        ("2/07/2025", None, False, "no decided order"),
        ("2025-02-30", DAY, False, "not a date"),
        ("2025-02-30 10:00:00", DAY, False, "not a calendar date"),
        (12, DAY, False, "not a date"),
        (True, DAY, False, "not a date"),
        ("2025-07-02 10:30:00", DAY, True, "time of day"),
        (45658.5, DAY, True, "time of day"),
        ("13/13/2025", DAY, False, "month must be in 1..12"),
    ],
)
def test_rewrite_date_refuses_to_guess(value, order, date_only, why):
    out = tf.rewrite_date(value, order, date_only)
    assert out.failed and why in out.reason
    assert out.value is value and out.rule is None


moments = st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2099, 12, 31)).map(lambda d: d.replace(microsecond=0))


@given(moments)
def test_iso_rendering_is_kept_and_rewrites_round_trip(moment):
    iso = moment.strftime("%Y-%m-%d %H:%M:%S")
    assert tf.rewrite_date(iso, DAY) == tf.Outcome(iso)
    for rendering in (moment.isoformat(), moment.strftime("%Y-%m-%dT%H:%M:%S")):
        out = tf.rewrite_date(rendering, DAY)
        assert out.value == iso


@given(moments, st.booleans())
def test_day_first_rendering_round_trips(moment, padded):
    day = f"{moment.day:02d}" if padded else str(moment.day)
    hour = f"{moment.hour:02d}" if padded else str(moment.hour)
    text = f"{day}/{moment.month:02d}/{moment.year} {hour}:{moment.minute:02d}:{moment.second:02d}"
    out = tf.rewrite_date(text, DAY)
    assert out.rule == "date_iso"
    assert datetime.fromisoformat(out.value) == moment
    # and the result is a fixed point
    assert tf.rewrite_date(out.value, DAY) == tf.Outcome(out.value)


@given(moments)
def test_month_first_rendering_round_trips(moment):
    text = f"{moment.month}/{moment.day}/{moment.year} {moment.hour}:{moment.minute:02d}"
    out = tf.rewrite_date(text, MONTH)
    assert datetime.fromisoformat(out.value) == moment.replace(second=0)


@given(st.dates(min_value=date(1950, 1, 1), max_value=date(2099, 12, 31)))
def test_excel_serials_round_trip(day):
    serial = (datetime(day.year, day.month, day.day) - EXCEL_EPOCH).days
    for value in (serial, float(serial), str(serial)):
        out = tf.rewrite_date(value, DAY, date_only=True)
        assert out == tf.Outcome(day.isoformat(), "excel_serial")


@given(st.text(max_size=30))
def test_rewrite_date_never_guesses_on_text(text):
    out = tf.rewrite_date(text, DAY)
    if out.failed:
        assert out.value == text
    else:
        # Whatever it accepted is a real timestamp, and rewriting again changes nothing.
        datetime.fromisoformat(out.value)
        assert tf.rewrite_date(out.value, DAY) == tf.Outcome(out.value)


def test_future_cap_and_check():
    limit = date(2026, 1, 31)
    assert not tf.is_future("2026-01-31 23:59:59", limit)
    assert tf.is_future("2026-02-01", limit)
    assert tf.cap_future("2027-03-01 10:00:00", limit, False) == tf.Outcome("2026-01-31 00:00:00", "future_capped")
    assert tf.cap_future("2027-03-01", limit, True) == tf.Outcome("2026-01-31", "future_capped")
    assert tf.cap_future("2025-03-01", limit, True) == tf.Outcome("2025-03-01")
    assert tf.future_limit(date(2026, 1, 1), 30) == date(2026, 1, 31)


# --- missing values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", tf.Outcome(None, "empty_to_null")),
        ("   ", tf.Outcome(None, "whitespace_to_null")),
        ("\t\n", tf.Outcome(None, "whitespace_to_null")),
        (" x ", tf.Outcome(" x ")),
        (0, tf.Outcome(0)),
        (None, tf.Outcome(None)),
    ],
)
def test_blank_to_null(value, expected):
    assert tf.blank_to_null(value) == expected


TOKENS = placeholder_set(["--None--", "PendingAssignment", "N/A"])


@pytest.mark.parametrize(
    "value, nulled",
    [
        ("--None--", True),
        (" PendingAssignment", True),
        ("N/A ", True),
        ("n/a", False),  # tokens are exact (after trimming): case is meaning
        ("None of these", False),
        ("", False),
        (None, False),
        (3, False),
    ],
)
def test_placeholder_to_null(value, nulled):
    out = tf.placeholder_to_null(value, TOKENS)
    assert out == (tf.Outcome(None, "placeholder_to_null") if nulled else tf.Outcome(value))


def test_no_tokens_no_change():
    assert tf.placeholder_to_null("--None--", frozenset()) == tf.Outcome("--None--")


@given(st.sampled_from(sorted(TOKENS)), st.text(alphabet=" \t", max_size=3), st.text(alphabet=" \t", max_size=3))
def test_tokens_match_whatever_the_padding(token, left, right):
    assert tf.placeholder_to_null(left + token + right, TOKENS).value is None


@given(st.text(min_size=1).filter(lambda t: t.strip() not in TOKENS))
def test_other_text_is_never_a_token(text):
    assert tf.placeholder_to_null(text, TOKENS) == tf.Outcome(text)


# --- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (3652948.0, tf.Outcome(3652948, "integer_from_real")),
        ("42", tf.Outcome(42, "integer_from_text")),
        (" 42 ", tf.Outcome(42, "integer_from_text")),
        ("3652948.0", tf.Outcome(3652948, "integer_from_text")),
        ("-7", tf.Outcome(-7, "integer_from_text")),
        (42, tf.Outcome(42)),
        (None, tf.Outcome(None)),
    ],
)
def test_normalise_integer(value, expected):
    out = tf.normalise_integer(value)
    assert out == expected
    assert type(out.value) is type(expected.value)


@pytest.mark.parametrize("value", [3.5, "abc", "4.2", "12a", float("nan"), float("inf"), 1e30, "9" * 30, True, ""])
def test_normalise_integer_refuses(value):
    out = tf.normalise_integer(value)
    assert out.failed and "not an integer" in out.reason


@pytest.mark.parametrize(
    "value, expected",
    [
        ("7.5", tf.Outcome(7.5, "number_from_text")),
        ("8", tf.Outcome(8, "number_from_text")),
        (" .25 ", tf.Outcome(0.25, "number_from_text")),
        ("1e2", tf.Outcome(100.0, "number_from_text")),
        (7.5, tf.Outcome(7.5)),
        (3, tf.Outcome(3)),
        (None, tf.Outcome(None)),
    ],
)
def test_normalise_number(value, expected):
    assert tf.normalise_number(value) == expected


@pytest.mark.parametrize("value", ["seven", "7,5", "7.5h", "", float("inf"), "nan", True])
def test_normalise_number_refuses(value):
    assert tf.normalise_number(value).failed


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_integers_from_real_and_text_round_trip(n):
    assert tf.normalise_integer(float(n)) == tf.Outcome(n, "integer_from_real")
    assert tf.normalise_integer(str(n)) == tf.Outcome(n, "integer_from_text")
    assert tf.normalise_integer(n) == tf.Outcome(n)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_numbers_from_text_round_trip(x):
    out = tf.normalise_number(repr(x))
    assert out.rule == "number_from_text"
    assert out.value == x
    assert tf.normalise_number(out.value) == tf.Outcome(out.value)


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()))
def test_fractions_are_never_integers(x):
    assert tf.normalise_integer(x).failed


@pytest.mark.parametrize(
    "value, bounds, reason_part",
    [
        (0, (0, 24, False, True), "outside (0, 24]"),
        (24.5, (0, 24, False, True), "outside (0, 24]"),
        (-1, (0, None, True, True), "outside [0, inf"),
    ],
)
def test_check_range(value, bounds, reason_part):
    assert reason_part in tf.check_range(value, *bounds)


def test_range_bounds_included_and_capped():
    hours = (0, 24, False, True)
    assert tf.check_range(24, *hours) is None
    assert tf.check_range(0.25, *hours) is None
    assert tf.cap_range(30.0, *hours) == tf.Outcome(24.0, "range_capped")
    assert tf.cap_range(0, *hours).failed  # (0 is excluded: nothing to cap to)
    assert tf.cap_range(-3, 0, 100, True, True) == tf.Outcome(0, "range_capped")
    assert tf.cap_range(50, 0, 100, True, True) == tf.Outcome(50)


# --- text ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, max_blank, expected, rule",
    [
        ("plain", 2, "plain", None),
        ("a\x00b", 2, "ab", "nul_removed"),
        ("a\r\nb\nc\rd", 2, "a\nb\nc\nd", "line_endings"),
        ("a\n\n\n\n\n\nb", 2, "a\n\n\nb", "blank_lines_capped"),
        ("a\n\n\nb", 2, "a\n\n\nb", None),
        ("a\n \n\t\n\n\nb", 1, "a\n\nb", "blank_lines_capped"),
        ("a\r\n\r\n\r\n\r\n\x00b", 2, "a\n\n\nb", "nul_removed+line_endings+blank_lines_capped"),
        ("a" + "\n" * 150 + "b", 0, "a\nb", "blank_lines_capped"),
        (None, 2, None, None),
        (42, 2, 42, None),
    ],
)
def test_text_hygiene(text, max_blank, expected, rule):
    out = tf.text_hygiene(text, max_blank)
    assert out == tf.Outcome(expected, rule)


text_with_noise = st.lists(st.sampled_from(["a", "b", " ", "\n", "\r", "\r\n", "\x00", "\t"]), max_size=40).map("".join)


@given(text_with_noise, st.integers(min_value=0, max_value=4))
def test_text_hygiene_properties(text, max_blank):
    out = tf.text_hygiene(text, max_blank)
    new = out.value
    assert "\x00" not in new and "\r" not in new
    # no run of more than max_blank blank lines survives
    assert "\n" * (max_blank + 2) not in new.replace(" ", "").replace("\t", "")
    # the words are untouched
    assert new.replace("\n", "").replace(" ", "").replace("\t", "") == text.replace("\x00", "").replace("\r", "").replace("\n", "").replace(" ", "").replace("\t", "")
    # idempotent: cleaning clean text changes nothing
    assert tf.text_hygiene(new, max_blank) == tf.Outcome(new)
    assert (out.rule is None) == (new == text)
    if out.rule:
        assert set(tf.split_rule(out.rule)) <= {"nul_removed", "line_endings", "blank_lines_capped"}


def test_rule_names_are_listed():
    for rule in ("date_iso", "excel_serial", "integer_from_real", "duplicate_dropped", "quarantined"):
        assert rule in tf.RULES
