"""The validated question (Base layer): :class:`PriceQuery` and the normalisers of its
parts (ticker, dates, adjustment). Everything that does not depend on today is checked
here, before any I/O."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from .errors import InvalidQuery
from .intervals import MINUTE_INTERVALS, normalize_interval
from .text import shown
from .timebase import ET

ADJUSTMENTS = ("raw", "splits", "total")
#: the adjustment every surface uses when none is asked (Massive's adjusted=true, yfinance's Close)
DEFAULT_ADJUSTMENT = "splits"
EARLIEST_DATE = dt.date(1900, 1, 1)

# US tickers as the SIP feeds and Massive write them: a root of letters/digits and an
# optional share class after a dot (BRK.B); Massive also uses lower-case letters
# inside some symbols (preferreds such as "JPMpC"), so case is kept when mixed.
_TICKER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,9}(\.[A-Za-z0-9]{1,5})?$")


#: the caret spellings of the major US indices (``^GSPC``) -> the canonical one (``I:SPX``)
CARET_INDICES = {"^GSPC": "I:SPX", "^SPX": "I:SPX", "^NDX": "I:NDX", "^DJI": "I:DJI", "^IXIC": "I:COMP",
                 "^RUT": "I:RUT", "^VIX": "I:VIX", "^OEX": "I:OEX", "^MID": "I:MID", "^SOX": "I:SOX",
                 "^NYA": "I:NYA", "^XAX": "I:XAX"}
_INDEX_RE = re.compile(r"^I:[A-Z0-9]{1,12}$")


def is_index(ticker: str) -> bool:
    """True for an index in its canonical spelling (``I:SPX``): no volume, no corporate actions."""
    return ticker.startswith("I:")


def normalize_ticker(ticker: Any) -> str:
    """Check a US ticker and return it in SIP spelling (``brk-b`` -> ``BRK.B``); an index in
    Massive's (``I:SPX``; Yahoo's ``^GSPC`` and ``^...`` are accepted and mapped)."""
    if isinstance(ticker, str) and ticker[:1] == "^" and ticker.upper() in CARET_INDICES:
        return CARET_INDICES[ticker.upper()]
    if isinstance(ticker, str) and ticker[:2].upper() == "I:" and _INDEX_RE.match(ticker.upper()):
        return ticker.upper()
    if isinstance(ticker, str) and ticker[:1] == "^" and re.fullmatch(r"\^[A-Za-z0-9]{1,12}", ticker):
        return "I:" + ticker[1:].upper()
    if not isinstance(ticker, str):
        raise InvalidQuery(f"ticker must be a string such as 'AAPL', not {type(ticker).__name__}")
    if ticker == "":
        raise InvalidQuery("ticker is empty: pass a symbol such as 'AAPL' or 'BRK.B'")
    if any(ord(c) < 32 or ord(c) == 127 for c in ticker):
        raise InvalidQuery(f"ticker {ticker!r} contains control characters: pass a plain symbol such as 'AAPL'")
    if any(c.isspace() for c in ticker):
        raise InvalidQuery(f"ticker {ticker!r} contains whitespace: remove it (e.g. 'AAPL', not ' AAPL')")
    if "/" in ticker or "\\" in ticker or ".." in ticker:
        raise InvalidQuery(f"ticker {ticker!r} contains a path separator: pass a plain symbol such as 'BRK.B'")
    # Yahoo writes share classes with a dash; accept it and use the SIP dot.
    candidate = ticker.replace("-", ".") if ticker.count("-") == 1 else ticker
    if not _TICKER_RE.match(candidate):
        hint = ""
        if re.match(r"^\d{6}(\.(SS|SZ))?$", ticker, re.IGNORECASE):
            hint = " (it looks like an A-share code; this package serves US equities only)"
        elif ticker[:1] == "^" or ticker[:2].upper() == "I:":
            hint = " (an index is written 'I:' and letters, e.g. 'I:SPX'; the caret spelling '^GSPC' is accepted)"
        raise InvalidQuery(
            f"ticker {ticker!r} is not a US ticker{hint}: use letters and digits, with an optional "
            "share class after one dot, e.g. 'AAPL' or 'BRK.B'"
        )
    return candidate.upper() if candidate == candidate.lower() else candidate


def to_date(value: Any, what: str) -> dt.date:
    """A 'YYYY-MM-DD' string, date, datetime or pandas Timestamp as a session date (ET)."""
    if value is None or (not isinstance(value, str) and _is_missing(value)):  # NaT, NaN, pd.NA
        raise InvalidQuery(f"{what} is missing ({value!r}): give a date such as '2024-01-02'")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidQuery(f"{what} {value!r} is not a date: write it as 'YYYY-MM-DD'") from None
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp, without importing pandas
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(ZoneInfo(ET)).replace(tzinfo=None)
        if value.time() != dt.time(0):
            raise InvalidQuery(
                f"{what} {value.isoformat()} has a time of day: ranges are whole sessions, so pass a "
                "date and slice the returned frame by time (df.loc['2024-01-02 09:30':])"
            )
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise InvalidQuery(f"{what} must be 'YYYY-MM-DD', a date or a datetime, not {type(value).__name__}")


def _is_missing(value: Any) -> bool:
    try:
        return bool(value != value)  # NaT and NaN are not equal to themselves
    except (TypeError, ValueError):  # pd.NA refuses to be a bool
        return True


def normalize_adjustment(adjustment: Any) -> str:
    if isinstance(adjustment, str) and adjustment.strip().lower() in ADJUSTMENTS:
        return adjustment.strip().lower()
    raise InvalidQuery(
        f"adjustment {adjustment!r} is not supported: use 'raw' (as traded), 'splits' "
        "(split-adjusted) or 'total' (splits and dividends)"
    )


def normalize_as_of(value: Any) -> dt.date | None:
    """None (today's knowledge) or a session date, as ``start`` and ``end`` are read."""
    if value is None:
        return None
    return to_date(value, "as_of")


def is_numpy_bool(value: Any) -> bool:
    """A NumPy bool (``numpy.bool_``, named ``bool`` in NumPy 2), without importing NumPy."""
    kind = type(value)
    return kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool")


def normalize_extended_hours(value: Any) -> bool:
    """True or False (a NumPy bool too); anything else is refused, "false" above all (a
    non-empty string is truthy: taken as is it would silently mean the opposite)."""
    if isinstance(value, bool) or is_numpy_bool(value):
        return bool(value)
    raise InvalidQuery(f"extended_hours must be True or False, not {shown(value)}: False (the default) gives the "
                       "regular session 09:30-16:00 New York, True the extended one 04:00-20:00")


@dataclasses.dataclass(frozen=True)
class PriceQuery:
    """A validated question: one ticker, an inclusive range of session dates (ET).

    Construct it with any accepted spelling; the fields hold the normalised values.
    Everything that does not depend on the date today is checked here, so a bad
    question fails before any I/O (the chain checks "not in the future" against the
    configured clock).
    """

    ticker: str
    start: dt.date
    end: dt.date
    interval: str = "1d"
    adjustment: str = DEFAULT_ADJUSTMENT
    #: intraday bars of the extended session (04:00-20:00 New York, hourly bars on the clock)
    #: instead of the regular one (09:30-16:00, 13:00 on half days; hourly bars from 09:30),
    #: OpenBB's name and default. Daily and longer bars are regular sessions whatever it says.
    extended_hours: bool = False
    #: point in time: adjust only for corporate actions with an ex-date on or before this
    #: date, as the prices were known that day (None: every event known today)
    as_of: dt.date | None = None

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("ticker", normalize_ticker(self.ticker))
        set_("start", to_date(self.start, "start"))
        set_("end", to_date(self.end, "end"))
        set_("interval", normalize_interval(self.interval))
        set_("adjustment", normalize_adjustment(self.adjustment))
        set_("extended_hours", normalize_extended_hours(self.extended_hours))
        set_("as_of", normalize_as_of(self.as_of))
        if self.start > self.end:
            raise InvalidQuery(f"start {self.start} is after end {self.end}: swap them (both are inclusive)")
        if self.as_of is not None and self.end > self.as_of:
            raise InvalidQuery(f"end {self.end} is after as_of {self.as_of}: bars after the as-of date were not known "
                               f"then; ask end <= {self.as_of} (or leave as_of out for today's knowledge)")
        if self.start < EARLIEST_DATE:
            raise InvalidQuery(f"start {self.start} is before {EARLIEST_DATE}: no US price data exists that far back")

    def check_not_future(self, today: dt.date) -> None:
        """InvalidQuery when the range starts after ``today`` (the configured clock's date)."""
        if self.start > today + dt.timedelta(days=1):
            raise InvalidQuery(f"start {self.start} is in the future (today is {today}): no bars exist yet")

    @property
    def intraday(self) -> bool:
        return self.interval in MINUTE_INTERVALS

    def replace(self, **changes: Any) -> "PriceQuery":
        """A copy with ``changes``, each checked as the constructor checks it (only the changed
        fields are normalised again: a basket makes one per ticker per provider)."""
        if any(k not in _NORMALISE for k in changes):
            return dataclasses.replace(self, **changes)
        out = copy.copy(self)
        for k, v in changes.items():
            object.__setattr__(out, k, _NORMALISE[k](v))
        if ("start" in changes or "end" in changes or "as_of" in changes) and (
                out.start > out.end or out.start < EARLIEST_DATE or (out.as_of is not None and out.end > out.as_of)):
            return dataclasses.replace(self, **changes)  # the constructor's error, word for word
        return out

    @property
    def regular_only(self) -> bool:
        """True when the answer holds the regular session only (intraday, not extended)."""
        return self.intraday and not self.extended_hours

    def describe(self) -> str:
        hours = " extended hours" if self.intraday and self.extended_hours else ""
        as_of = f" as of {self.as_of}" if self.as_of is not None else ""
        return f"{self.ticker} {self.interval}{hours} {self.adjustment}{as_of} {self.start}..{self.end}"


_NORMALISE = {"ticker": normalize_ticker, "start": lambda v: to_date(v, "start"), "end": lambda v: to_date(v, "end"),
              "interval": normalize_interval, "adjustment": normalize_adjustment,
              "extended_hours": lambda v: normalize_extended_hours(v), "as_of": lambda v: normalize_as_of(v)}
