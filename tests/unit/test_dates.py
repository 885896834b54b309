"""Date recognition: examples of every shape, and properties over generated datetimes."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.dates import (
    DateFormat,
    DateFormatVote,
    DateParseError,
    Order,
    Shape,
    date_readings,
    decide_format,
    evidence_label,
    excel_serial_to_datetime,
    parse_date,
    shape_of,
    to_iso,
)

moments = st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2099, 12, 31)).map(lambda d: d.replace(microsecond=0))
whole_minutes = moments.map(lambda d: d.replace(second=0))


def day_first(d: datetime, *, pad: bool = False, seconds: bool = False, sep: str = "/") -> str:
    day = f"{d.day:02d}" if pad else str(d.day)
    hour = f"{d.hour:02d}" if pad else str(d.hour)
    tail = f":{d.second:02d}" if seconds else ""
    return f"{day}{sep}{d.month:02d}{sep}{d.year} {hour}:{d.minute:02d}{tail}"


def month_first(d: datetime) -> str:
    return f"{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}"


# --- examples ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        (None, Shape.NULL),
        ("", Shape.EMPTY),
        ("   ", Shape.EMPTY),
        ("2025-05-20", Shape.ISO),
        ("2025-05-20 08:42", Shape.ISO),
        ("2025-05-20 08:42:00", Shape.ISO),
        ("2025-05-20T08:42:00.123456", Shape.ISO),
        ("2025-02-30 08:42:00", Shape.UNPARSEABLE),
        ("20/05/2025 8:42", Shape.SLASH),
        ("2/07/2025 16:21", Shape.SLASH),
        ("2.07.2025", Shape.SLASH),
        ("2/07/2025 4:21 PM", Shape.SLASH),
        ("2/07-2025", Shape.UNPARSEABLE),
        (45_900.5, Shape.SERIAL),
        ("45900", Shape.SERIAL),
        (12, Shape.UNPARSEABLE),
        (True, Shape.UNPARSEABLE),
        (b"2025-05-20", Shape.UNPARSEABLE),
        ("yesterday", Shape.UNPARSEABLE),
        (datetime(2025, 5, 20), Shape.ISO),
    ],
)
def test_shapes(value: object, shape: Shape) -> None:
    assert shape_of(value) is shape


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("20/05/2025 8:42", "day_first"),
        ("05/20/2025 8:42", "month_first"),
        ("2/07/2025 16:21", "slash_ambiguous"),
        ("20/20/2025", "unparseable"),
        ("2025-05-20 08:42:00", "iso"),
        ("", "empty"),
    ],
)
def test_evidence_labels(value: str, label: str) -> None:
    assert evidence_label(value) == label
    vote = DateFormatVote()
    assert vote.add(value, key=1) == label
    assert vote.counts == {label: 1} and vote.examples[label] == [1]


def test_the_first_migrations_values() -> None:
    assert to_iso("20/05/2025 8:42") == "2025-05-20 08:42:00"
    assert to_iso("2/07/2025 16:21") == "2025-07-02 16:21:00"  # 2 July, not 7 February
    assert to_iso("2/07/2025 16:21", Order.MONTH_FIRST) == "2025-02-07 16:21:00"
    assert to_iso("2025-05-20 08:42:00", date_only=True) == "2025-05-20"


def test_meridiem_and_serials() -> None:
    assert parse_date("2/07/2025 4:21 PM") == datetime(2025, 7, 2, 16, 21)
    assert parse_date("2/07/2025 12:05 am") == datetime(2025, 7, 2, 0, 5)
    with pytest.raises(DateParseError):
        parse_date("2/07/2025 13:05 pm")
    assert excel_serial_to_datetime(45_658.5) == datetime(2025, 1, 1, 12, 0)
    assert parse_date("45658") == datetime(2025, 1, 1)
    with pytest.raises(DateParseError):
        excel_serial_to_datetime(12)


@pytest.mark.parametrize("value", ["31/02/2025", "yesterday", "", None, "2/07/2025 25:00", 3.5])
def test_non_dates_raise(value: object) -> None:
    with pytest.raises(DateParseError):
        parse_date(value)


def test_slash_without_order_raises() -> None:
    with pytest.raises(DateParseError):
        parse_date("2/07/2025", None)


def test_date_objects_pass_through() -> None:
    assert parse_date(date(2025, 5, 20)) == datetime(2025, 5, 20)


def test_merge_keeps_examples_bounded() -> None:
    a, b = DateFormatVote(max_examples=2), DateFormatVote(max_examples=2)
    for i in range(3):
        a.add("20/05/2025", key=i)
        b.add("21/05/2025", key=10 + i)
    a.merge(b)
    assert a.counts == {"day_first": 6} and a.examples["day_first"] == [0, 1]


def test_decisions() -> None:
    iso = DateFormatVote()
    iso.add("2025-05-20 08:42:00")
    assert decide_format(iso).format is DateFormat.ISO
    empty = DateFormatVote()
    empty.add("")
    assert decide_format(empty).format is DateFormat.EMPTY
    serial = DateFormatVote()
    serial.add(45_900.0)
    assert decide_format(serial).format is DateFormat.EXCEL_SERIAL
    conflict = DateFormatVote()
    for v in ("20/05/2025", "20/05/2025", "05/20/2025"):
        conflict.add(v)
    d = decide_format(conflict)
    assert d.inconsistent and d.order is Order.DAY_FIRST and not d.ambiguous
    assert d.families == ["slash"]
    assert d.to_json()["counts"] == {"day_first": 2, "month_first": 1}


# --- properties ----------------------------------------------------------------------------


@given(st.lists(moments, min_size=1, max_size=30), st.data())
def test_any_day_first_rendering_with_a_day_above_12_decides_day_first(values: list[datetime], data: st.DataObject) -> None:
    deciding = data.draw(moments.filter(lambda d: d.day > 12))
    vote = DateFormatVote()
    for v in [*values, deciding]:
        vote.add(day_first(v, pad=data.draw(st.booleans()), seconds=data.draw(st.booleans())))
    decision = decide_format(vote, Order.MONTH_FIRST)  # evidence beats the locale
    assert decision.format is DateFormat.DAY_FIRST
    assert decision.order is Order.DAY_FIRST
    assert not decision.ambiguous and not decision.inconsistent


@given(st.lists(moments.filter(lambda d: d.day <= 12), min_size=1, max_size=30), st.sampled_from(list(Order)))
def test_a_column_of_only_ambiguous_slash_dates_follows_the_locale_and_is_flagged(values: list[datetime], locale: Order) -> None:
    vote = DateFormatVote()
    for v in values:
        vote.add(day_first(v))
    decision = decide_format(vote, locale)
    assert decision.ambiguous
    assert decision.order is locale
    assert decision.format is (DateFormat.DAY_FIRST if locale is Order.DAY_FIRST else DateFormat.MONTH_FIRST)


@given(whole_minutes, st.booleans(), st.booleans(), st.sampled_from(["/", ".", "-"]))
def test_day_first_text_reads_back_to_the_same_moment(moment: datetime, pad: bool, seconds: bool, sep: str) -> None:
    text = day_first(moment, pad=pad, seconds=seconds, sep=sep)
    assert parse_date(text, Order.DAY_FIRST) == moment
    label, df, mf = date_readings(text)
    assert label == evidence_label(text)
    assert df == moment


@given(whole_minutes)
def test_month_first_text_reads_back(moment: datetime) -> None:
    assert parse_date(month_first(moment), Order.MONTH_FIRST) == moment


@given(moments)
def test_iso_round_trips(moment: datetime) -> None:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    assert to_iso(text) == text
    assert parse_date(text) == moment
    assert to_iso(moment) == text
    assert to_iso(moment.strftime("%Y-%m-%dT%H:%M:%S")) == text
    assert to_iso(text, date_only=True) == text[:10]
    assert evidence_label(text) == "iso"


@given(st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2099, 12, 30)))
def test_excel_serials_round_trip_to_the_second(moment: datetime) -> None:
    serial = (moment - datetime(1899, 12, 30)).total_seconds() / 86400
    assert abs((excel_serial_to_datetime(serial) - moment).total_seconds()) <= 1


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=25), st.floats(allow_nan=True), st.integers(), st.none()))
def test_date_readings_agree_with_parse_date(value: object) -> None:
    """The profiler's one-pass reader says what evidence_label and parse_date say."""
    label, df, mf = date_readings(value)
    assert label == evidence_label(value)
    for order, reading in ((Order.DAY_FIRST, df), (Order.MONTH_FIRST, mf)):
        try:
            expected = parse_date(value, order)
        except (DateParseError, ValueError, OverflowError):
            expected = None
        if label in ("null", "empty", "unparseable"):
            assert reading is None
        else:
            assert reading == expected


@given(st.text(max_size=40))
def test_shape_of_never_raises_on_text(text: str) -> None:
    assert isinstance(shape_of(text), Shape)
    try:
        parse_date(text)
    except DateParseError:
        pass
