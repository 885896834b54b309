"""Pure cell transforms of the cleaner: one value in, the fixed value or a reason out.

Each function looks at one stored value and returns an ``Outcome``: the value to store
and the audit rule that produced it (``rule`` is None when nothing changed), or, when
the value cannot be fixed without guessing, ``reason`` (the cleaner then quarantines
the row). No I/O, no column-name knowledge: the cleaner decides which transform a
column gets from its contract and the profiler's findings.

Rule names (they are what ``_audit.rule`` and the summaries show):
``date_iso``, ``excel_serial``, ``empty_to_null``, ``whitespace_to_null``,
``placeholder_to_null``, ``integer_from_real``, ``integer_from_text``,
``number_from_text``, ``nul_removed``, ``line_endings``, ``blank_lines_capped``,
``unparseable_to_null``, ``range_capped``, ``future_capped``; and for whole rows
``duplicate_dropped``, ``quarantined``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.dates import DateParseError, Order, Shape, parse_date, shape_of
from pipeline.dates import _SLASH as _SLASH_DATE  # the profiler's slash shape, to read it once
from pipeline.dates import _slash_datetime, slash_parts_of_match
from pipeline.values import BIGINT_MAX, BIGINT_MIN, is_placeholder, to_integer, to_number

RULES = (
    "date_iso",
    "excel_serial",
    "empty_to_null",
    "whitespace_to_null",
    "placeholder_to_null",
    "integer_from_real",
    "integer_from_text",
    "number_from_text",
    "nul_removed",
    "line_endings",
    "blank_lines_capped",
    "unparseable_to_null",
    "range_capped",
    "future_capped",
    "duplicate_dropped",
    "quarantined",
)

# The target forms: text matching these (and a real calendar date) is left as it is.
ISO_TIMESTAMP_TEXT = _ISO_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{6})?$")
ISO_DATE_TEXT = _ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Outcome:
    """What a transform made of one value.

    ``rule`` names the change (None: the value is kept as it is); ``reason`` is set
    when the value cannot be fixed, and then ``value`` is the original value.
    """

    value: Any
    rule: str | None = None
    reason: str | None = None

    @property
    def changed(self) -> bool:
        return self.rule is not None

    @property
    def failed(self) -> bool:
        return self.reason is not None


def keep(value: Any) -> Outcome:
    return Outcome(value)


def fail(value: Any, reason: str) -> Outcome:
    return Outcome(value, None, reason)


# --- dates ------------------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 with a space: seconds always, microseconds only when there are some."""
    # f-strings rather than strftime: this runs once per rewritten date.
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    return f"{text}.{moment.microsecond:06d}" if moment.microsecond else text


def rewrite_date(value: Any, order: Order | None, date_only: bool = False) -> Outcome:
    """Rewrite a date value as ISO 8601 (``YYYY-MM-DD HH:MM:SS``, or ``YYYY-MM-DD``).

    ``order`` is how the column's slash dates are read (the profiler's decision); None
    means the column has no trustworthy order, so any slash date in it fails. Excel
    serials become dates (rule ``excel_serial``); other shapes ``date_iso``. A
    date-only column refuses a value with a time of day: dropping it would be a guess.
    NULL and values already in the target form are kept.
    """
    if value is None:
        return keep(value)
    if isinstance(value, str):
        if (date_only and _ISO_DATE.match(value)) or (not date_only and _ISO_TIMESTAMP.match(value)):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return fail(value, f"{value!r} is not a calendar date")
            return keep(value)
        if order is not None:
            # The bulk of a raw column: a slash date in the decided order. The same
            # reading as ``parse_date``'s (shape, parts, calendar), with one regex match.
            m = _SLASH_DATE.match(value.strip())
            if m is not None:
                try:
                    moment = _slash_datetime(slash_parts_of_match(m), order, value)
                except DateParseError as exc:
                    return fail(value, str(exc))
                return _iso_outcome(value, moment, "date_iso", date_only)
    shape = shape_of(value)
    if shape is Shape.EMPTY:
        return fail(value, "blank value where a date is required")
    if shape is Shape.UNPARSEABLE:
        return fail(value, f"{_show(value)} is not a date in any known format")
    try:
        moment = parse_date(value, order)
    except DateParseError as exc:
        return fail(value, str(exc))
    except (ValueError, OverflowError) as exc:  # e.g. a serial at the edge of datetime
        return fail(value, f"{_show(value)} is not a date: {exc}")
    return _iso_outcome(value, moment, "excel_serial" if shape is Shape.SERIAL else "date_iso", date_only)


def _iso_outcome(value: Any, moment: datetime, rule: str, date_only: bool) -> Outcome:
    if date_only:
        if moment.time() != datetime.min.time():
            return fail(value, f"{_show(value)} has a time of day in a date-only column")
        new: Any = moment.strftime("%Y-%m-%d")
    else:
        new = format_timestamp(moment)
    if new == value:
        return keep(value)
    return Outcome(new, rule)


def parse_clean_date(value: str) -> datetime:
    """Read a value already rewritten by ``rewrite_date`` (ISO text)."""
    return datetime.fromisoformat(value)


def cap_future(value: Any, limit: date, date_only: bool) -> Outcome:
    """A clean ISO date later than ``limit``: the reason, or (capping) the limit itself."""
    if value is None:
        return keep(value)
    moment = parse_clean_date(value)
    if moment.date() <= limit:
        return keep(value)
    capped = limit.isoformat() if date_only else format_timestamp(datetime.combine(limit, datetime.min.time()))
    return Outcome(capped, "future_capped")


def is_future(value: Any, limit: date) -> bool:
    return value is not None and parse_clean_date(value).date() > limit


def future_limit(today: date, days: int) -> date:
    return today + timedelta(days=days)


# --- missing values ---------------------------------------------------------------------


def blank_to_null(value: Any) -> Outcome:
    """``''`` becomes NULL (``empty_to_null``), whitespace-only ``whitespace_to_null``."""
    if isinstance(value, str) and not value.strip():
        return Outcome(None, "empty_to_null" if value == "" else "whitespace_to_null")
    return keep(value)


def placeholder_to_null(value: Any, tokens: frozenset[str]) -> Outcome:
    """A token meaning "missing" (compared trimmed: ``' PendingAssignment'``) becomes NULL."""
    if tokens and is_placeholder(value, tokens):
        return Outcome(None, "placeholder_to_null")
    return keep(value)


# --- numbers ----------------------------------------------------------------------------


def normalise_integer(value: Any) -> Outcome:
    """An integer stored as REAL (``3652948.0``) or text (``'42'``) becomes an int.

    Anything else (``3.5``, ``'abc'``, beyond bigint) fails: it is not an integer.
    """
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and BIGINT_MIN <= value <= BIGINT_MAX):
        return keep(value)
    number = to_integer(value)
    if number is None or not BIGINT_MIN <= number <= BIGINT_MAX:
        return fail(value, f"{_show(value)} is not an integer")
    if isinstance(value, float):
        return Outcome(number, "integer_from_real")
    if isinstance(value, str):
        return Outcome(number, "integer_from_text")
    return Outcome(number, "integer_from_real")  # Decimal and friends


def normalise_number(value: Any) -> Outcome:
    """Numeric text (``'7.5'``) becomes a number; non-numbers and non-finite values fail."""
    if value is None:
        return keep(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return fail(value, f"{value!r} is not a finite number")
        return keep(value)
    if isinstance(value, Decimal) and value.is_finite():
        return Outcome(float(value), "number_from_text")
    number = to_number(value)
    if number is None:
        return fail(value, f"{_show(value)} is not a number")
    return Outcome(number, "number_from_text")


def check_range(
    value: Any, low: float | None, high: float | None, include_low: bool, include_high: bool
) -> str | None:
    """None when a number lies within the range, else the reason it does not."""
    if value is None:
        return None
    below = low is not None and (value < low or (value == low and not include_low))
    above = high is not None and (value > high or (value == high and not include_high))
    if below or above:
        lo = "-inf" if low is None else f"{'[' if include_low else '('}{low:g}"
        hi = "inf" if high is None else f"{high:g}{']' if include_high else ')'}"
        return f"{value!r} is outside {lo}, {hi}"
    return None


def cap_range(
    value: Any, low: float | None, high: float | None, include_low: bool, include_high: bool
) -> Outcome:
    """Cap a number to an inclusive bound; a value beyond an exclusive bound cannot be capped."""
    reason = check_range(value, low, high, include_low, include_high)
    if reason is None:
        return keep(value)
    if high is not None and value >= high:
        if include_high:
            return Outcome(type(value)(high), "range_capped")
        return fail(value, reason + " (an exclusive bound cannot be capped to)")
    if include_low and low is not None:
        return Outcome(type(value)(low), "range_capped")
    return fail(value, reason + " (an exclusive bound cannot be capped to)")


# --- text -------------------------------------------------------------------------------

_LINE_BREAKS = re.compile(r"\r\n?")


def _blank_run(max_blank_lines: int) -> re.Pattern[str]:
    # A line break followed by more than max_blank_lines lines that are empty or
    # whitespace-only, and the break ending the run.
    return re.compile(r"\n(?:[ \t]*\n){%d,}" % (max_blank_lines + 1))


_RUNS: dict[int, re.Pattern[str]] = {}


def text_hygiene(text: Any, max_blank_lines: int = 2) -> Outcome:
    """NUL bytes removed, CR LF and lone CR made LF, runs of blank lines capped.

    The rule names every step that changed something, joined by ``+`` (e.g.
    ``nul_removed+line_endings``): one audit row per cell, every rule accounted for.
    """
    if not isinstance(text, str):
        return keep(text)
    rules: list[str] = []
    new = text
    if "\x00" in new:
        new = new.replace("\x00", "")
        rules.append("nul_removed")
    if "\r" in new:
        new = _LINE_BREAKS.sub("\n", new)
        rules.append("line_endings")
    if new.count("\n") > max_blank_lines:
        pattern = _RUNS.get(max_blank_lines)
        if pattern is None:
            pattern = _RUNS.setdefault(max_blank_lines, _blank_run(max_blank_lines))
        capped = pattern.sub("\n" * (max_blank_lines + 1), new)
        if capped != new:
            new = capped
            rules.append("blank_lines_capped")
    if not rules:
        return keep(text)
    return Outcome(new, "+".join(rules))


def split_rule(rule: str) -> list[str]:
    """The single rules of a combined rule name (``nul_removed+line_endings``)."""
    return rule.split("+")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
