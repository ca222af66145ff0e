"""Bar intervals: their names, and how the core derives one from another.

* Minute intervals ``5m 15m 30m 1h`` are derived from ``1m`` when a provider does not
  serve them natively: ET buckets labelled by their start. Over the extended session
  (04:00-20:00) they are clock-aligned (09:00, 10:00...); over the regular session they
  start at the session's open, as yfinance gives them: hourly bars at 09:30, 10:30 ...
  15:30 (the last one half an hour; on a half day 12:30-13:00). Buckets of 5, 15 and 30
  minutes are the same either way (09:30 is on their grid).
* The regular session of a day is the exchange calendar's (09:30-16:00 New York, 13:00
  on half days): :func:`in_regular_session` is the one test of it.
* Period intervals ``1wk 1mo 3mo`` (yfinance's names) are always derived from ``1d``,
  after adjustment and after the chain has stitched the daily history, so a period is
  whole whoever served its sessions. A bar starts on the period's first CALENDAR day
  (Monday; the 1st; Jan/Apr/Jul/Oct 1st) at 00:00 America/New_York. open = first
  session's open, high/low = max/min, close = last session's close, volume = sum,
  vwap = volume-weighted when every session has one (else missing), transactions =
  sum (missing if any session lacks it).

Names are case-sensitive where case matters: ``1M`` could be a minute or a month and
``1W`` is no yfinance name, so both are refused with the name to use.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from .errors import InvalidQuery

if TYPE_CHECKING:
    import pandas as pd

MINUTE_INTERVALS = ("1m", "5m", "15m", "30m", "1h")
PERIOD_INTERVALS = ("1wk", "1mo", "3mo")
#: the intervals a provider may serve natively (periods are always derived)
BASE_INTERVALS = (*MINUTE_INTERVALS, "1d")
INTERVALS = (*BASE_INTERVALS, *PERIOD_INTERVALS)
INTERVAL_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "1d": 1440}

# Accepted spellings (matched after lower-casing, once the case-ambiguous ones are refused).
_ALIASES = {"1min": "1m", "60m": "1h", "60min": "1h", "1hr": "1h", "1day": "1d", "d": "1d", "day": "1d",
            "daily": "1d", "5min": "5m", "15min": "15m", "30min": "30m", "1w": "1wk", "week": "1wk",
            "weekly": "1wk", "1week": "1wk", "month": "1mo", "monthly": "1mo", "1month": "1mo",
            "3month": "3mo", "3months": "3mo", "quarter": "3mo", "quarterly": "3mo", "1q": "3mo"}


def normalize_interval(interval: Any) -> str:
    """A user's spelling -> one of :data:`INTERVALS` (InvalidQuery naming the fix otherwise)."""
    if not isinstance(interval, str):
        raise InvalidQuery(f"interval must be a string such as '1d', not {type(interval).__name__}")
    text = interval.strip()
    if text in INTERVALS:
        return text
    key = text.lower()
    if key != text and any(c in "MW" for c in text):
        if key in ("1m", "3m", "1min"):
            n = key[0]
            raise InvalidQuery(f"interval {interval!r} is ambiguous: write '{n}m' for {n} minute(s) or "
                               f"'{n}mo' for {n} month(s)")
        raise InvalidQuery(f"interval {interval!r} is ambiguous in case: write it in lower case, one of "
                           f"{', '.join(INTERVALS)}")
    if key in INTERVALS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    raise InvalidQuery(f"interval {interval!r} is not supported: use one of {', '.join(INTERVALS)}")


def is_period(interval: str) -> bool:
    return interval in PERIOD_INTERVALS


#: the intervals a finer one may be built from, coarsest first
_BASES = ("30m", "15m", "5m", "1m")


def derive_base(interval: str, served, regular: bool = False) -> str | None:
    """What a provider serving ``served`` (clock-aligned bars of every hour) answers minute
    ``interval`` from: ``interval`` itself when served (unless it is a regular-session hour,
    whose grid starts at 09:30, off the clock), else the coarsest served interval that
    divides it (a regular hour from 30m, 15m, 5m or 1m: their grids hold 09:30); None when
    there is none."""
    if interval in served and not (regular and interval == "1h"):
        return interval
    want = INTERVAL_MINUTES.get(interval)
    if want is None or interval not in MINUTE_INTERVALS:
        return None
    return next((b for b in _BASES if b in served and INTERVAL_MINUTES[b] < want
                 and want % INTERVAL_MINUTES[b] == 0), None)


def in_regular_session(stamps) -> Any:
    """Boolean mask: which bars of a tz-aware DatetimeIndex start inside their day's regular
    session (the exchange calendar's open to close, half days included); vectorised."""
    import numpy as np

    from .calendar import regular_hours
    from .timebase import DAY_NS, wall_ns

    wall = wall_ns(stamps)
    if not len(wall):
        return np.zeros(0, dtype=bool)
    start, end = regular_hours(wall // DAY_NS)
    return (wall >= start) & (wall < end)


def period_start(day: dt.date, interval: str) -> dt.date:
    """First calendar day of the period holding ``day``."""
    if interval == "1wk":
        return day - dt.timedelta(days=day.weekday())
    if interval == "1mo":
        return day.replace(day=1)
    if interval == "3mo":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    raise ValueError(f"{interval} is not a period interval")


def period_end(day: dt.date, interval: str) -> dt.date:
    """Last calendar day of the period holding ``day``."""
    start = period_start(day, interval)
    if interval == "1wk":
        return start + dt.timedelta(days=6)
    months = 1 if interval == "1mo" else 3
    y, m = divmod(start.month - 1 + months, 12)
    return dt.date(start.year + y, m + 1, 1) - dt.timedelta(days=1)


def widen(start: dt.date, end: dt.date, interval: str) -> tuple[dt.date, dt.date]:
    """The range grown to whole periods."""
    return period_start(start, interval), period_end(end, interval)


def resample_minutes(df: pd.DataFrame, interval: str, regular: bool = False) -> pd.DataFrame:
    """1m bars -> ``interval`` bars in ET labelled by bar start (``regular``: from the session's
    open, else clock-aligned): one ticker as a basket of one (:func:`resample_long`, whose
    rules these are)."""
    import numpy as np
    import pandas as pd

    if interval == "1m" or df.empty:
        return df
    long = df.copy(deep=False)
    idx = df.index.as_unit("ns")
    long.index = pd.MultiIndex(levels=[pd.Index(["_"], dtype="object"), idx.unique()],
                               codes=[np.zeros(len(df), dtype=np.int64), idx.unique().get_indexer(idx)],
                               names=["ticker", "timestamp"], verify_integrity=False)
    out = resample_long(long, interval, regular).droplevel(0)
    out.attrs = dict(df.attrs)
    return out


def resample_periods(df: pd.DataFrame, interval: str, today: dt.date | None = None) -> pd.DataFrame:
    """Daily bars -> ``1wk``/``1mo``/``3mo`` bars (see the module docstring for the rules).
    With ``today``, ``attrs["partial_last"]`` says whether the last period is still running
    (today falls in it: its bar ends at the last session so far). One ticker is a basket of
    one: :func:`resample_periods_long`."""
    import numpy as np
    import pandas as pd

    if df.empty:
        out = df.copy()
        out.attrs = {**df.attrs, "interval": interval, **({"partial_last": False} if today else {})}
        return out
    long = df.copy(deep=False)
    long.index = pd.MultiIndex(levels=[pd.Index(["_"], dtype="object"), df.index.unique()],
                               codes=[np.zeros(len(df), dtype=np.int64), df.index.unique().get_indexer(df.index)],
                               names=["ticker", "timestamp"], verify_integrity=False)
    got = resample_periods_long(long, interval, today)
    out = got.droplevel(0)
    out.attrs = {**df.attrs, "interval": interval}
    if today is not None:
        out.attrs["partial_last"] = got.attrs["partial_last"]["_"]
    return out


def _period_start_days(days, interval: str):
    """Day ordinals -> the ordinal of their period's first calendar day (numpy, no loop)."""
    import numpy as np

    if interval == "1wk":
        return days - (days + 3) % 7  # 1970-01-01 was a Thursday: Monday is 0
    months = days.astype("M8[D]").astype("M8[M]").astype(np.int64)
    if interval == "3mo":
        months = months - months % 3
    elif interval != "1mo":
        raise ValueError(f"{interval} is not a period interval")
    return months.astype("M8[M]").astype("M8[D]").astype(np.int64)


def resample_periods_long(long: pd.DataFrame, interval: str, today: dt.date | None = None) -> pd.DataFrame:
    """Daily bars of a sorted long frame -> period bars of every ticker at once (the rules of
    :func:`resample_periods`: runs of equal (ticker, period) reduced with ``reduceat``).
    ``attrs["partial_last"]``: ticker -> whether its last period is still running (with ``today``)."""
    import numpy as np
    import pandas as pd

    tz = "America/New_York"
    if len(long) and not long.index.is_monotonic_increasing:  # runs below need (ticker, time) order
        long = long.sort_index()
    if not len(long):
        out = long.copy()
        out.attrs = {**long.attrs, "interval": interval, **({"partial_last": {}} if today else {})}
        return out
    codes = np.asarray(long.index.codes[0], dtype=np.int64)
    names = long.index.levels[0]
    stamps = long.index.get_level_values(1).as_unit("ns")
    days = np.asarray(stamps.tz_convert(tz).tz_localize(None).asi8) // (86_400 * 10**9)
    start = _period_start_days(days, interval)
    edge = np.r_[True, (codes[1:] != codes[:-1]) | (start[1:] != start[:-1])]
    at = np.flatnonzero(edge)
    last = np.r_[at[1:], len(long)] - 1
    col = {c: long[c].to_numpy(dtype="float64") for c in ("open", "high", "low", "close", "volume", "vwap")}
    vol = np.add.reduceat(col["volume"], at)
    vw = col["vwap"]
    all_known = np.minimum.reduceat((~np.isnan(vw)).astype(np.int8), at).astype(bool)
    pv = np.add.reduceat(np.where(np.isnan(vw), 0.0, vw * col["volume"]), at)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(all_known & (vol > 0), pv / np.where(vol > 0, vol, 1.0), np.nan)
    tx = long["transactions"].to_numpy(dtype="float64", na_value=np.nan)
    tx_known = np.minimum.reduceat((~np.isnan(tx)).astype(np.int8), at).astype(bool)
    tsum = np.add.reduceat(np.where(np.isnan(tx), 0.0, tx), at)
    period = pd.DatetimeIndex((start[at] * 86_400 * 10**9).view("M8[ns]")).tz_localize(tz).rename("timestamp")
    index = pd.MultiIndex.from_arrays([pd.Index(np.asarray(names, dtype=object)[codes[at]], dtype="object"),
                                       period], names=["ticker", "timestamp"])
    out = pd.DataFrame({
        "open": col["open"][at], "high": np.maximum.reduceat(col["high"], at),
        "low": np.minimum.reduceat(col["low"], at), "close": col["close"][last], "volume": vol, "vwap": vwap,
        "transactions": pd.arrays.IntegerArray(tsum.astype("int64"), ~tx_known),
    }, index=index)
    out.attrs = {**long.attrs, "interval": interval}
    if today is not None:
        firsts = np.r_[True, codes[at][1:] != codes[at][:-1]]
        ends = np.r_[np.flatnonzero(firsts)[1:], len(at)] - 1  # each ticker's last period
        out.attrs["partial_last"] = {
            str(names[codes[at][k]]): period_end(dt.date(1970, 1, 1) + dt.timedelta(days=int(start[at][k])),
                                                 interval) >= today for k in ends}
    return out


def resample_long(long: pd.DataFrame, interval: str, regular: bool = False) -> pd.DataFrame:
    """1m (or finer-grid) bars of a sorted long frame (ticker, timestamp) -> ``interval`` bars
    of every ticker at once (the rules of :func:`resample_minutes`): buckets are runs of equal
    (ticker, start), reduced with ``numpy.ufunc.reduceat``; no loop over tickers. ``regular``:
    the bars are the regular session's, and buckets start at its open (hourly bars at 09:30);
    else on the clock."""
    import numpy as np
    import pandas as pd

    if interval == "1m" or not len(long):
        return long
    if not long.index.is_monotonic_increasing:  # runs below need (ticker, time) order
        long = long.sort_index()
    width = INTERVAL_MINUTES[interval] * 60 * 10**9
    levels = long.index.levels[0]
    codes = np.asarray(long.index.codes[0], dtype=np.int64)  # a sorted long frame: one run per ticker
    stamps = long.index.get_level_values(1).as_unit("ns")
    wall = np.asarray(stamps.tz_localize(None).asi8)
    if regular:
        from .calendar import regular_hours
        from .timebase import DAY_NS

        origin, _close = regular_hours(wall // DAY_NS)
        bucket = origin + (wall - origin) // width * width
    else:
        bucket = wall - wall % width
    edge = np.r_[True, (codes[1:] != codes[:-1]) | (bucket[1:] != bucket[:-1])]
    at = np.flatnonzero(edge)
    last = np.r_[at[1:], len(long)] - 1
    col = {c: long[c].to_numpy(dtype="float64") for c in ("open", "high", "low", "close", "volume", "vwap")}
    vol = np.add.reduceat(col["volume"], at)
    # vwap: weighted by the volume of the minutes that have one (a minute without one neither
    # adds value nor dilutes: dividing by every minute's volume would pull it low)
    known = ~np.isnan(col["vwap"])
    pv = np.add.reduceat(np.where(known, col["vwap"] * col["volume"], 0.0), at)
    kvol = np.add.reduceat(np.where(known, col["volume"], 0.0), at)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(kvol > 0, pv / np.where(kvol > 0, kvol, 1.0), np.nan)
    # transactions: summed when every minute counts them, else missing (never an undercount)
    tx = long["transactions"].to_numpy(dtype="float64", na_value=np.nan)
    tknown = ~np.isnan(tx)
    tsum = np.add.reduceat(np.where(tknown, tx, 0.0), at)
    tnone = np.minimum.reduceat(tknown.astype(np.int8), at) == 0
    # the bucket's start in UTC: its wall clock less the offset of its first minute (a bucket of at
    # most an hour never straddles a DST change, which happens at 02:00, outside every session)
    utc = bucket[at] - (wall[at] - np.asarray(stamps.asi8)[at])
    starts = pd.DatetimeIndex(utc.view("M8[ns]"), tz="UTC").tz_convert(stamps.tz)
    out = pd.DataFrame({
        "open": col["open"][at], "high": np.maximum.reduceat(col["high"], at),
        "low": np.minimum.reduceat(col["low"], at), "close": col["close"][last], "volume": vol, "vwap": vwap,
        "transactions": pd.arrays.IntegerArray(tsum.astype("int64"), tnone),
    }, index=pd.MultiIndex.from_arrays([pd.Index(np.asarray(levels, dtype=object)[codes[at]], dtype="object"),
                                        starts.rename("timestamp")], names=["ticker", "timestamp"]))
    out.attrs = dict(long.attrs)
    return out
