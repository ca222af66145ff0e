"""NYSE sessions (holidays, half days) from exchange_calendars, imported lazily."""

from __future__ import annotations

import bisect
import datetime as dt
from functools import lru_cache

from .timebase import DAY_NS, ET, from_ordinal, wall_today as today_et  # noqa: F401 (the one ET, the one wall clock)


@lru_cache(maxsize=4)
def _calendar(first_year: int):
    import warnings

    with warnings.catch_warnings():
        # exchange_calendars trips pandas 3 deprecation warnings while building: not ours to show.
        warnings.simplefilter("ignore")
        import exchange_calendars as xcals  # heavy: ~0.5 s, so only when needed

        return xcals.get_calendar("XNYS", start=f"{first_year}-01-01")


def _cal_for(start: dt.date):
    # exchange_calendars builds its tables from `start`; most queries are recent,
    # so the common calendar starts in 1990 and older questions get their own.
    return _calendar(min(1990, start.year))


@lru_cache(maxsize=4)
def _all_sessions(first_year: int) -> tuple[dt.date, ...]:
    """Every session of the calendar starting ``first_year``, as dates (built once)."""
    cal = _calendar(first_year)
    return tuple(ts.date() for ts in cal.sessions)


def sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    """NYSE session dates in [start, end], both inclusive (a bisection of the calendar's
    sessions: the warm path asks on every query)."""
    if end < start:
        return []
    every = _all_sessions(min(1990, start.year))
    return list(every[bisect.bisect_left(every, start):bisect.bisect_right(every, end)])


def session_before(day: dt.date) -> dt.date | None:
    """The NYSE session immediately before ``day`` (None when the calendar has none)."""
    prev = sessions(day - dt.timedelta(days=10), day - dt.timedelta(days=1))  # longest closure: 4 days
    return prev[-1] if prev else None


@lru_cache(maxsize=8192)
def session_hours(day: dt.date):
    """Regular open and close of a session as ET Timestamps (close is 13:00 on half days)."""
    import pandas as pd

    cal = _cal_for(day)
    ts = pd.Timestamp(day)
    return cal.session_open(ts).tz_convert(ET), cal.session_close(ts).tz_convert(ET)


@lru_cache(maxsize=4)
def _hours_table(first_year: int):
    """(session day ordinals, regular open, regular close as New York wall-clock ns since
    1970-01-01), sorted, for every session of the calendar starting ``first_year``."""
    import numpy as np

    cal = _calendar(first_year)
    day = np.asarray(cal.sessions.asi8, dtype=np.int64) // DAY_NS
    wall = lambda s: np.asarray(s.dt.tz_convert(ET).dt.tz_localize(None).astype("M8[ns]").astype(np.int64))  # noqa: E731
    return day, wall(cal.opens), wall(cal.closes)


def regular_hours(days):
    """The regular session of each day ordinal in ``days`` (an int64 array, days since
    1970-01-01 in New York) as (open, close): New York wall-clock ns since 1970-01-01, the
    close at 13:00 on half days. A day that is no session gets open == close (an empty
    session). Vectorised: a market's minutes cost one search of the calendar."""
    import numpy as np

    days = np.asarray(days, dtype=np.int64)
    if not len(days):
        return days.copy(), days.copy()
    first = from_ordinal(int(days.min())).year
    table, opens, closes = _hours_table(min(1990, first))
    at = np.clip(np.searchsorted(table, days), 0, max(len(table) - 1, 0))
    hit = table[at] == days if len(table) else np.zeros(len(days), dtype=bool)
    start = days * DAY_NS
    return np.where(hit, opens[at], start), np.where(hit, closes[at], start)

