"""Date recognition and rewriting: pure functions, no I/O.

The format of a column is decided by evidence over all its values, never per value:
``2/07/2025`` alone could be 2 July or 7 February, but a column where some value reads
``20/05/2025`` is day-first throughout. A column with slash dates and no deciding value
is ambiguous and follows the configured locale policy (day-first for this service desk).

Shapes recognised:

- ISO 8601: ``2025-05-20``, ``2025-05-20 08:42``, ``2025-05-20 08:42:00(.ffffff)``, ``T`` too;
- slash dates with a four-digit year: ``20/05/2025 8:42``, ``2/07/2025 16:21:05``
  (also ``.`` or ``-`` as separator), day and month in either order;
- Excel serial numbers (days since 1899-12-30), as numbers or numeric text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

ISO_FORMAT = "%Y-%m-%d %H:%M:%S"
ISO_DATE_FORMAT = "%Y-%m-%d"

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?$"
)
_SLASH = re.compile(
    r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*([AaPp][Mm])?)?$"
)
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")

# Excel's day zero (it wrongly believes 1900 was a leap year, hence the 30th).
EXCEL_EPOCH = datetime(1899, 12, 30)
# Serials accepted as dates: 1950-01-01 .. 2099-12-31. A number outside is not a date.
EXCEL_SERIAL_MIN = 18264
EXCEL_SERIAL_MAX = 73415


class Shape(str, Enum):
    """What one value looks like, before any column-level decision."""

    NULL = "null"
    EMPTY = "empty"  # '' or whitespace only
    ISO = "iso"
    SLASH = "slash"
    SERIAL = "serial"
    UNPARSEABLE = "unparseable"


class DateFormat(str, Enum):
    """The decision for a whole column."""

    ISO = "ISO"
    DAY_FIRST = "DAY_FIRST"
    MONTH_FIRST = "MONTH_FIRST"
    EXCEL_SERIAL = "EXCEL_SERIAL"
    MIXED = "MIXED"
    EMPTY = "EMPTY"  # no date-like value at all


class Order(str, Enum):
    DAY_FIRST = "day-first"
    MONTH_FIRST = "month-first"


class DateParseError(ValueError):
    """A value that is not a date in the decided format; never guessed."""


@dataclass(frozen=True)
class SlashParts:
    first: int
    second: int
    year: int
    hour: int | None
    minute: int | None
    second_of_minute: int | None
    micro: int
    meridiem: str | None


def shape_of(value: Any) -> Shape:
    """Classify one stored value."""
    if value is None:
        return Shape.NULL
    if isinstance(value, (datetime, date)):
        return Shape.ISO
    if isinstance(value, bool):
        return Shape.UNPARSEABLE
    if isinstance(value, (int, float)):
        return Shape.SERIAL if _is_serial(value) else Shape.UNPARSEABLE
    if isinstance(value, bytes):
        return Shape.UNPARSEABLE
    text = str(value).strip()
    if not text:
        return Shape.EMPTY
    if _ISO.match(text):
        return Shape.ISO if _iso_valid(text) else Shape.UNPARSEABLE
    if _SLASH.match(text):
        return Shape.SLASH
    if _NUMBER.match(text) and _is_serial(float(text)):
        return Shape.SERIAL
    return Shape.UNPARSEABLE


def _is_serial(number: float) -> bool:
    return math.isfinite(number) and EXCEL_SERIAL_MIN <= number <= EXCEL_SERIAL_MAX


def _iso_valid(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def slash_parts(text: str) -> SlashParts | None:
    m = _SLASH.match(text.strip())
    if not m:
        return None
    return slash_parts_of_match(m)


def slash_parts_of_match(m: re.Match[str]) -> SlashParts:
    """The parts of a slash date already matched by the slash-date pattern."""
    first, _, second, year, hour, minute, sec, frac, meridiem = m.groups()
    return SlashParts(
        first=int(first),
        second=int(second),
        year=int(year),
        hour=None if hour is None else int(hour),
        minute=None if minute is None else int(minute),
        second_of_minute=None if sec is None else int(sec),
        micro=int((frac or "0").ljust(6, "0")),
        meridiem=meridiem.lower() if meridiem else None,
    )


def is_iso_timestamp(value: Any) -> bool:
    """True for a datetime, or ISO text with a time (or a date: midnight)."""
    if isinstance(value, datetime):
        return True
    if isinstance(value, date):
        return True
    return isinstance(value, str) and bool(_ISO.match(value)) and _iso_valid(value)


def is_iso_date(value: Any) -> bool:
    """True for a date, or ISO ``YYYY-MM-DD`` text (no time part)."""
    if isinstance(value, datetime):
        return value.time() == datetime.min.time()
    if isinstance(value, date):
        return True
    if not isinstance(value, str) or len(value) != 10:
        return False
    return bool(_ISO.match(value)) and _iso_valid(value)


def evidence_label(value: Any) -> str:
    """The evidence class of one value: a ``Shape`` value, or for slash dates
    ``day_first`` / ``month_first`` (a part above 12 decides), ``slash_ambiguous``
    (both parts 12 or under) or ``unparseable`` (both parts above 12)."""
    shape = shape_of(value)
    if shape is not Shape.SLASH:
        return shape.value
    parts = slash_parts(str(value))
    assert parts is not None
    if parts.first > 12 and parts.second <= 12:
        return "day_first"
    if parts.second > 12 and parts.first <= 12:
        return "month_first"
    if parts.first > 12 and parts.second > 12:
        return "unparseable"
    return "slash_ambiguous"


def date_readings(value: Any) -> tuple[str, datetime | None, datetime | None]:
    """One value's evidence label (``evidence_label``) and its reading day-first and
    month-first (``parse_date`` in each order; None where that order gives no date), in
    one pass over the text: the profiler calls this once per distinct value."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return Shape.EMPTY.value, None, None
        m = _SLASH.match(text)
        if m is None:
            if _ISO.match(text):
                try:
                    dt = datetime.fromisoformat(text)
                except ValueError:
                    return Shape.UNPARSEABLE.value, None, None
                return Shape.ISO.value, dt, dt
            if _NUMBER.match(text) and _is_serial(float(text)):
                dt = excel_serial_to_datetime(float(text))
                return Shape.SERIAL.value, dt, dt
            return Shape.UNPARSEABLE.value, None, None
        first, second = int(m.group(1)), int(m.group(3))
        if first > 12 and second <= 12:
            label = "day_first"
        elif second > 12 and first <= 12:
            label = "month_first"
        elif first > 12 and second > 12:
            return "unparseable", None, None
        else:
            label = "slash_ambiguous"
        hour, minute, sec, frac, meridiem = m.group(5, 6, 7, 8, 9)
        parts = SlashParts(
            first=first,
            second=second,
            year=int(m.group(4)),
            hour=None if hour is None else int(hour),
            minute=None if minute is None else int(minute),
            second_of_minute=None if sec is None else int(sec),
            micro=int((frac or "0").ljust(6, "0")),
            meridiem=meridiem.lower() if meridiem else None,
        )
        readings = []
        for order in (Order.DAY_FIRST, Order.MONTH_FIRST):
            try:
                readings.append(_slash_datetime(parts, order, text))
            except DateParseError:
                readings.append(None)
        return label, readings[0], readings[1]
    label = evidence_label(value)
    if label in (Shape.ISO.value, Shape.SERIAL.value):
        dt = parse_date(value)
        return label, dt, dt
    return label, None, None


@dataclass
class DateFormatVote:
    """Evidence gathered over a column's values, one ``add`` per value."""

    max_examples: int = 5
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, value: Any, key: Any = None, count: int = 1) -> str:
        """Count one value (``count`` times); returns the evidence class it fell in."""
        label = evidence_label(value)
        self.add_label(label, count, () if key is None else (key,))
        return label

    def add_label(self, label: str, count: int = 1, keys: Any = ()) -> None:
        """Count ``count`` values already classified by ``evidence_label``, with example keys."""
        self.counts[label] = self.counts.get(label, 0) + count
        bucket = self.examples.setdefault(label, [])
        for key in keys:
            if len(bucket) >= self.max_examples:
                break
            bucket.append(key)

    def merge(self, other: "DateFormatVote") -> None:
        for label, count in other.counts.items():
            self.counts[label] = self.counts.get(label, 0) + count
            bucket = self.examples.setdefault(label, [])
            room = self.max_examples - len(bucket)
            bucket.extend(other.examples.get(label, [])[: max(room, 0)])

    def count(self, label: str) -> int:
        return self.counts.get(label, 0)


@dataclass(frozen=True)
class DateFormatDecision:
    """How a column's dates are to be read, with the evidence behind it."""

    format: DateFormat
    order: Order | None  # how slash dates are read; None when the column has none
    ambiguous: bool  # slash dates present, none deciding: the locale policy chose
    inconsistent: bool  # more than one family of formats, or conflicting evidence
    counts: dict[str, int]
    examples: dict[str, list[Any]]

    @property
    def families(self) -> list[str]:
        present = []
        if self.counts.get("iso"):
            present.append("iso")
        if any(self.counts.get(k) for k in ("day_first", "month_first", "slash_ambiguous")):
            present.append("slash")
        if self.counts.get("serial"):
            present.append("serial")
        return present

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format.value,
            "order": self.order.value if self.order else None,
            "ambiguous": self.ambiguous,
            "inconsistent": self.inconsistent,
            "counts": dict(sorted(self.counts.items())),
            "examples": {k: list(v) for k, v in sorted(self.examples.items()) if v},
        }


def decide_format(vote: DateFormatVote, locale: Order = Order.DAY_FIRST) -> DateFormatDecision:
    """Decide a column's date format from the evidence of all its values."""
    day, month = vote.count("day_first"), vote.count("month_first")
    ambiguous_slash = vote.count("slash_ambiguous")
    slash_total = day + month + ambiguous_slash
    order: Order | None = None
    ambiguous = False
    conflict = False
    if slash_total:
        if day and not month:
            order = Order.DAY_FIRST
        elif month and not day:
            order = Order.MONTH_FIRST
        elif day and month:
            # Both orders proven by evidence: the column is broken; read the majority
            # order only for reporting, the values of the minority cannot be trusted.
            conflict = True
            order = Order.DAY_FIRST if day >= month else Order.MONTH_FIRST
        else:
            ambiguous = True
            order = locale
    families = [
        name
        for name, n in (("iso", vote.count("iso")), ("slash", slash_total), ("serial", vote.count("serial")))
        if n
    ]
    if not families:
        fmt = DateFormat.EMPTY
    elif len(families) > 1:
        fmt = DateFormat.MIXED
    elif families[0] == "iso":
        fmt = DateFormat.ISO
    elif families[0] == "serial":
        fmt = DateFormat.EXCEL_SERIAL
    else:
        fmt = DateFormat.DAY_FIRST if order is Order.DAY_FIRST else DateFormat.MONTH_FIRST
    return DateFormatDecision(
        format=fmt,
        order=order,
        ambiguous=ambiguous,
        inconsistent=len(families) > 1 or conflict,
        counts=dict(vote.counts),
        examples={k: list(v) for k, v in vote.examples.items()},
    )


def parse_date(value: Any, order: Order | None = Order.DAY_FIRST) -> datetime:
    """Read one value as a datetime, slash dates in the given order.

    Raises ``DateParseError`` for anything that is not a date: nothing is guessed.
    """
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    shape = shape_of(value)
    if shape is Shape.ISO:
        return datetime.fromisoformat(str(value).strip())
    if shape is Shape.SERIAL:
        return excel_serial_to_datetime(float(value))
    if shape is Shape.SLASH:
        if order is None:
            raise DateParseError(f"slash date {value!r} in a column with no decided order")
        parts = slash_parts(str(value))
        assert parts is not None
        return _slash_datetime(parts, order, value)
    raise DateParseError(f"{value!r} is not a date")


def _slash_datetime(parts: SlashParts, order: Order, value: Any) -> datetime:
    day, month = (parts.first, parts.second) if order is Order.DAY_FIRST else (parts.second, parts.first)
    hour = parts.hour or 0
    if parts.meridiem:
        if not 1 <= hour <= 12:
            raise DateParseError(f"hour {hour} with {parts.meridiem} in {value!r}")
        hour = hour % 12 + (12 if parts.meridiem == "pm" else 0)
    try:
        return datetime(parts.year, month, day, hour, parts.minute or 0, parts.second_of_minute or 0, parts.micro)
    except ValueError as exc:
        raise DateParseError(f"{value!r} is not a {order.value} date: {exc}") from None


def excel_serial_to_datetime(serial: float) -> datetime:
    if not _is_serial(serial):
        raise DateParseError(f"{serial!r} is outside the Excel serial range of dates")
    # Round to the second: Excel stores times as binary fractions of a day.
    return EXCEL_EPOCH + timedelta(seconds=round(serial * 86400))


def to_iso(value: Any, order: Order | None = Order.DAY_FIRST, *, date_only: bool = False) -> str:
    """Rewrite one date value as ISO 8601 text (``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD``)."""
    parsed = parse_date(value, order)
    if date_only:
        return parsed.strftime(ISO_DATE_FORMAT)
    return parsed.strftime(ISO_FORMAT)
