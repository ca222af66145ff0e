"""The bar frame and the one gate every frame passes on its way into the core.

The bar frame (what every provider, the chain and the CLI return):

* index: ``DatetimeIndex`` named ``timestamp``, ``datetime64[ns, America/New_York]``,
  the START of each bar; daily bars sit at 00:00 of the session date; sorted, unique;
* columns ``open high low close volume vwap`` as float64 and ``transactions`` as
  nullable ``Int64``; ``vwap``/``transactions`` are missing where a source lacks them.

A long frame is the same, indexed by (``ticker``, ``timestamp``), sorted by ticker then
time. A single ticker is a long frame of one ticker: :func:`gate` checks both the same
way, vectorised over the whole frame (12,000 tickers cost one pass, not 12,000).

What the gate checks (a Base module: it imports only :mod:`errors` and :mod:`timebase`):
finite positive prices, high >= max(open, close, low), low <= min(open, close), finite
non-negative volume (missing for an index, ``I:SPX``: it has none), integral transactions, unique (ticker, timestamp), every bar on an
asked session inside the asked range and (intraday) inside the session's hours, daily
bars at 00:00, the asked tickers only. A bad bar is its ticker's failure: that ticker's
rows are removed and the error names the bar; the other tickers pass. Only a frame that
is not a bar frame at all (wrong type, columns, index) fails as a whole.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from .errors import DataIntegrityError
from .timebase import DAY_NS, ET, ET_DTYPE, EXTENDED_HOURS, MINUTE_NS, ordinal, wall_ns

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BAR_COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "transactions")
FLOAT_COLUMNS = BAR_COLUMNS[:6]
PRICE_COLUMNS = ("open", "high", "low", "close", "vwap")
LONG_INDEX = ("ticker", "timestamp")
#: the grid intraday bars start on (minutes; the clock's, or from the regular session's open)
_GRID_MINUTES = {"5m": 5, "15m": 15, "30m": 30, "1h": 60}
#: high may sit this (relative) hair below max(open, close) from rounding at the source
_BOUND_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class Expect:
    """What an answer may hold: the asked tickers (None: any, a market), the asked sessions
    ``start``..``end`` (inclusive, New York dates), the bar ``interval`` and, for intraday
    bars, the minutes of the day a bar may start in (``hours``, New York wall clock,
    [first, end))."""

    start: dt.date
    end: dt.date
    interval: str | None = "1d"
    tickers: Collection[str] | None = None
    hours: tuple[int, int] = EXTENDED_HOURS
    #: the exchange's sessions in the range (None: any day in it): a bar on another day fails
    sessions: tuple[dt.date, ...] | None = None
    #: intraday bars asked for the regular session only: a bar starting outside its day's
    #: regular hours (the calendar's, half days included) fails its ticker
    regular: bool = False

    @property
    def daily(self) -> bool:
        return self.interval == "1d"


def empty_bars() -> pd.DataFrame:
    """An empty frame with the exact bar-frame schema."""
    import pandas as pd

    idx = pd.DatetimeIndex([], dtype=ET_DTYPE, name="timestamp")
    df = pd.DataFrame({c: pd.Series(dtype="float64", index=idx) for c in FLOAT_COLUMNS}, index=idx)
    df["transactions"] = pd.Series(dtype="Int64", index=idx)
    return df


def empty_long() -> pd.DataFrame:
    """An empty long frame (index ticker, timestamp) with the bar columns."""
    import pandas as pd

    base = empty_bars()
    base.index = pd.MultiIndex.from_arrays([pd.Index([], dtype="object"), base.index], names=list(LONG_INDEX))
    return base


def is_long(frame: Any) -> bool:
    import pandas as pd

    return isinstance(frame, pd.DataFrame) and isinstance(frame.index, pd.MultiIndex) \
        and list(frame.index.names) == list(LONG_INDEX)


def long_frame(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-ticker bar frames -> one long frame sorted by ticker then time, bar columns and
    dtypes unchanged (empty when ``frames`` is)."""
    import pandas as pd

    frames = {t: f for t, f in frames.items() if len(f)} or {}
    if not frames:
        return empty_long()
    order = sorted(frames)
    if len(order) == 1:  # a basket of one: the index from codes (no per-row strings)
        import numpy as np

        one = frames[order[0]]
        out = one.copy(deep=False)
        out.index = long_index(np.zeros(len(one), dtype=np.int64), [order[0]], one.index)
    else:
        out = pd.concat([frames[t] for t in order], keys=order, names=list(LONG_INDEX))
    out.attrs = {}
    return out


def long_index(codes, names, stamps) -> pd.MultiIndex:
    """The (ticker, timestamp) index from ticker ``codes`` (positions in ``names``, which is
    sorted) and ``stamps``, built from codes: no Python string per row (a market's year is
    millions of rows)."""
    import numpy as np
    import pandas as pd

    ts_codes, ts_levels = pd.factorize(stamps, sort=True)
    return pd.MultiIndex(levels=[pd.Index(np.asarray(names, dtype=object), dtype="object"),
                                 ts_levels.rename("timestamp")],
                         codes=[np.asarray(codes), ts_codes], names=list(LONG_INDEX), verify_integrity=False)


def closes_by_session(long: pd.DataFrame) -> pd.Series:
    """A long frame's closes by (ticker, session day at 00:00 New York): what the adjustment
    reads for the close before an ex-date, and what closes sources hand back."""
    import pandas as pd

    from .timebase import session_days

    return pd.Series(long["close"].to_numpy(), index=pd.MultiIndex.from_arrays(
        [long.index.get_level_values(0), session_days(long.index.get_level_values(1))]))


def one_ticker(long: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """``ticker``'s rows of a sorted long frame as a bar frame (an empty one when absent)."""
    if not len(long):
        return empty_bars()
    tickers = long.index.get_level_values(0)
    lo, hi = tickers.searchsorted(ticker, "left"), tickers.searchsorted(ticker, "right")
    if lo == hi:
        return empty_bars()
    out = long.iloc[lo:hi].droplevel(0)
    out.attrs = {}
    return out


def runs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, stop) positions of each run of equal values in ``codes`` (a sorted frame's
    ticker codes: one run per ticker)."""
    import numpy as np

    if not len(codes):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    return starts, np.r_[starts[1:], len(codes)]


def split_long(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A sorted long frame -> ticker -> its bars (index: timestamp), by position (no groupby)."""
    if not len(frame):
        return {}
    tickers = frame.index.get_level_values(0)
    codes, uniques = tickers.factorize()
    starts, stops = runs(codes)
    inner = frame.droplevel(0)
    out = {}
    for a, b in zip(starts, stops):
        part = inner.iloc[a:b]
        part.attrs = {}
        out[uniques[codes[a]]] = part
    return out


# -- the gate ---------------------------------------------------------------------------------
def gate(frame: Any, expect: Expect, provider: str | None = None, *, ticker: str | None = None,
         identical_duplicates: str = "fail") -> tuple[pd.DataFrame, dict[str, DataIntegrityError]]:
    """Check ``frame`` (a long frame, or with ``ticker`` a one-ticker bar frame) against the
    bar-frame contract and ``expect``: (the long frame of every ticker that passed, ticker ->
    DataIntegrityError for each that did not). Lossless fixes are made (column order, numeric
    dtypes, the index's unit and zone, the sort). ``identical_duplicates="drop"`` keeps one of
    two identical bars (a stream repeating itself); a conflicting pair always fails its
    ticker. Rows of tickers not asked are left out (logged by the caller when it cares).
    Raises DataIntegrityError when ``frame`` is not a bar frame at all."""
    return _rebuild(*_check(frame, expect, provider, ticker, identical_duplicates))


def _check(frame: Any, expect: Expect, provider: str | None, ticker: str | None, identical_duplicates: str):
    """The checks of :func:`gate`: the pieces it (or :func:`check_bars`) builds the answer from."""
    import numpy as np
    import pandas as pd

    def bad(msg: str) -> DataIntegrityError:
        return DataIntegrityError(f"bar frame breaks the contract: {msg}", provider=provider)

    if not isinstance(frame, pd.DataFrame):
        raise bad(f"expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise bad(f"missing column(s) {', '.join(missing)}")
    if ticker is None:
        if not is_long(frame):
            raise bad("expected a frame indexed by (ticker, timestamp)")
        names = frame.index.get_level_values(0)
        stamps = frame.index.get_level_values(1)
    else:
        names = None
        stamps = frame.index
    if not isinstance(stamps, pd.DatetimeIndex):
        raise bad(f"the timestamps must be a DatetimeIndex, got {type(stamps).__name__}")
    if stamps.tz is None:
        raise bad("the timestamps are tz-naive: localise them (bars are stamped in America/New_York)")
    if str(stamps.dtype) != ET_DTYPE:
        stamps = stamps.tz_convert(ET).as_unit("ns")
    cols: dict[str, np.ndarray] = {}
    dtypes = frame.dtypes
    in_contract = list(frame.columns) == list(BAR_COLUMNS) and str(dtypes.iloc[6]) == "Int64" \
        and all(d == "float64" for d in dtypes.iloc[:6])  # the common case: nothing to convert
    for c in FLOAT_COLUMNS:
        s = frame[c]
        try:
            cols[c] = s.to_numpy() if in_contract or s.dtype == "float64" else s.to_numpy(dtype="float64",
                                                                                          na_value=np.nan)
        except (TypeError, ValueError) as e:
            raise bad(f"column {c} is not numeric ({e})") from None
    tx = frame["transactions"]
    try:
        txf = tx.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as e:
        raise bad(f"transactions is not integer ({e})") from None

    n = len(frame)
    if names is None:
        codes = np.zeros(n, dtype=np.int64)
        uniques = np.array([ticker], dtype=object)
    else:
        # the MultiIndex has factorized the tickers already: codes ranked by name give (ticker,
        # time) order without touching a string per row
        level = frame.index.levels[0]
        raw_codes = np.asarray(frame.index.codes[0], dtype=np.int64)
        if (raw_codes < 0).any() or any(not isinstance(x, str) or not x for x in level):
            # a bar nobody can own fails nobody else: it is left out, loudly
            owned = np.asarray([isinstance(x, str) and bool(x) for x in level], dtype=bool)
            orphan = (raw_codes < 0) | ~owned[np.maximum(raw_codes, 0)]
            import logging

            logging.getLogger(__name__).warning(
                "%s: %d bar(s) without a ticker left out (first at %s)", provider or "a provider",
                int(orphan.sum()), stamps[int(np.argmax(orphan))] if len(stamps) else "?")
            owned_rows = frame[~orphan]
            owned_rows.index = owned_rows.index.remove_unused_levels()
            return _check(owned_rows, expect, provider, ticker, identical_duplicates)
        level_names = np.array([str(x) for x in level], dtype=object)
        if len(level_names) > 1 and not pd.Index(level_names).is_monotonic_increasing:
            by_name = np.argsort(level_names.astype(str), kind="stable")
            rank = np.empty(len(by_name), dtype=np.int64)
            rank[by_name] = np.arange(len(by_name))
            codes, uniques = rank[raw_codes], level_names[by_name]
        else:
            codes, uniques = raw_codes, level_names
    wall = wall_ns(stamps)
    # sort by (ticker, time) when needed: stable, so the first of two duplicates stays first
    order = None
    if n > 1:
        if names is None:
            if not stamps.is_monotonic_increasing:
                order = np.argsort(stamps.asi8, kind="stable")
        elif not (bool((np.diff(codes) >= 0).all()) and _sorted_within(codes, stamps.asi8)):
            order = np.lexsort((stamps.asi8, codes))
    if order is not None:
        codes, wall = codes[order], wall[order]
        stamps = stamps[order]
        cols = {c: a[order] for c, a in cols.items()}
        txf = txf[order]
        frame_rows = order
    else:
        frame_rows = None

    why = np.zeros(n, dtype=np.int8)  # 0: fine; else an index into REASONS (the first one found)

    def mark(mask: np.ndarray, reason: int) -> None:
        np.copyto(why, np.int8(reason), where=mask & (why == 0))

    o, h, lo, c = cols["open"], cols["high"], cols["low"], cols["close"]
    with np.errstate(invalid="ignore"):
        prices_ok = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) \
            & (o > 0) & (h > 0) & (lo > 0) & (c > 0)
        mark(~prices_ok, 1)
        tol = _BOUND_TOLERANCE * np.abs(h)
        mark(prices_ok & ((h + tol < np.maximum(np.maximum(o, c), lo)) | (lo - tol > np.minimum(o, c))), 2)
        v = cols["volume"]
        volume_ok = np.isfinite(v) & (v >= 0)
        index_codes = [k for k, t in enumerate(uniques) if isinstance(t, str) and t.startswith("I:")]
        if index_codes:  # an index (I:SPX) has no volume: missing is its volume, never 0
            volume_ok |= np.isnan(v) & np.isin(codes, index_codes)
        mark(~volume_ok, 3)
        vw = cols["vwap"]
        mark(~(np.isnan(vw) | (np.isfinite(vw) & (vw > 0))), 4)
        mark(~(np.isnan(txf) | ((txf >= 0) & (txf % 1 == 0) & np.isfinite(txf))), 5)
    day = wall // DAY_NS
    mark((day < ordinal(expect.start)) | (day > ordinal(expect.end)), 6)
    if expect.sessions is not None:
        mark(~np.isin(day, np.fromiter((ordinal(d) for d in expect.sessions), dtype=np.int64,
                                       count=len(expect.sessions))), 11)
    minute = (wall % DAY_NS) // MINUTE_NS
    if expect.interval is None:
        pass  # any bar length: only the range is known
    elif expect.daily:
        mark(wall % DAY_NS != 0, 7)
    else:
        mark((minute < expect.hours[0]) | (minute >= expect.hours[1]) | (wall % MINUTE_NS != 0), 8)
        width = _GRID_MINUTES.get(expect.interval, 1) * MINUTE_NS
        if expect.regular:
            from .calendar import regular_hours

            opens, closes = regular_hours(day)
            mark((wall < opens) | (wall >= closes), 12)
            if width > MINUTE_NS:  # the session's grid: from its open (hourly bars at 09:30)
                mark((wall - opens) % width != 0, 13)
        elif width > MINUTE_NS:  # every hour: the clock's grid
            mark(wall % width != 0, 13)
    if n > 1:
        same = (codes[1:] == codes[:-1]) & (wall[1:] == wall[:-1])
        if same.any():
            dup = np.r_[False, same]
            if identical_duplicates == "drop":
                equal = np.ones(n - 1, dtype=bool)
                for a in [*cols.values(), txf]:
                    equal &= (a[1:] == a[:-1]) | (np.isnan(a[1:]) & np.isnan(a[:-1]))
                conflict = np.r_[False, same & ~equal]
                mark(conflict, 9)
                drop = dup & ~conflict
            else:
                mark(dup, 10)
                drop = np.zeros(n, dtype=bool)
        else:
            drop = None
    else:
        drop = None

    failed: dict[str, DataIntegrityError] = {}
    keep = why == 0
    asked = None if expect.tickers is None else set(expect.tickers)
    foreign = None
    if asked is not None and names is not None:
        is_asked = np.fromiter((u in asked for u in uniques), dtype=bool, count=len(uniques))
        foreign = ~is_asked[codes]
        keep &= ~foreign
    if not keep.all() and (why != 0).any():
        bad_codes = np.unique(codes[why != 0])
        for k in bad_codes:
            t = uniques[k]
            if asked is not None and t not in asked:
                continue
            i = int(np.flatnonzero((codes == k) & (why != 0))[0])
            failed[t] = bad(f"{t}: {_REASONS[why[i]](stamps[i], o[i], h[i], lo[i], c[i], v[i], expect)}")
            failed[t].at = stamps[i]  # the first bad bar's start (the store's verify names its session)
        keep &= ~np.isin(codes, bad_codes)
    if drop is not None:
        keep &= ~drop
    return frame, names is None, uniques, codes, stamps, cols, txf, keep, frame_rows, failed, in_contract


def _sorted_within(codes: np.ndarray, stamps: np.ndarray) -> bool:
    import numpy as np

    same = codes[1:] == codes[:-1]
    return bool(np.all(~same | (stamps[1:] >= stamps[:-1])))


def _rebuild(frame, single: bool, uniques, codes, stamps, cols, txf, keep, rows, failed, in_contract
             ) -> tuple[pd.DataFrame, dict[str, DataIntegrityError]]:
    """The checked rows as a long frame with the contract's dtypes; the input's own frame
    (a shallow copy) when nothing changed, which is the common case on the warm path."""
    import numpy as np
    import pandas as pd

    allkeep = bool(keep.all())
    untouched = allkeep and rows is None and not single and in_contract \
        and str(frame.index.levels[1].dtype) == ET_DTYPE and frame.index.names == list(LONG_INDEX)
    if untouched:
        out = frame.copy(deep=False)
        out.attrs = {}
        return out, failed
    sel = slice(None) if allkeep else keep
    kept = codes[sel]
    present = np.unique(kept)
    remap = np.zeros(len(uniques), dtype=np.int64)
    remap[present] = np.arange(len(present))
    index = long_index(remap[kept], np.asarray(uniques, dtype=object)[present], stamps[sel])
    return pd.DataFrame(_columns(cols, txf, sel), index=index), failed


def _columns(cols, txf, sel) -> dict:
    import numpy as np
    import pandas as pd

    data = {c: cols[c][sel] for c in FLOAT_COLUMNS}
    t = txf[sel]
    nan = np.isnan(t)
    data["transactions"] = pd.arrays.IntegerArray(np.where(nan, 0, t).astype("int64"), nan)
    return data


_REASONS = {
    1: lambda ts, o, h, lo, c, v, e: f"{_price_problem(o, h, lo, c)} prices at {ts} (o={o} h={h} l={lo} c={c})",
    2: lambda ts, o, h, lo, c, v, e: f"high/low do not bound open/close at {ts} (o={o} h={h} l={lo} c={c})",
    3: lambda ts, o, h, lo, c, v, e: f"missing, infinite or negative volume at {ts} (volume={v})",
    4: lambda ts, *a: f"infinite or non-positive vwap at {ts}",
    5: lambda ts, *a: f"fractional, negative or infinite transactions at {ts}",
    6: lambda ts, o, h, lo, c, v, e: f"bar {ts} is outside the asked range {e.start}..{e.end}",
    7: lambda ts, *a: f"daily bar {ts} is not stamped 00:00 New York of its session date",
    8: lambda ts, o, h, lo, c, v, e: (f"bar {ts} starts outside the session's hours "
                                      f"({e.hours[0] // 60:02d}:{e.hours[0] % 60:02d}-"
                                      f"{e.hours[1] // 60:02d}:{e.hours[1] % 60:02d} New York) or off the minute"),
    9: lambda ts, *a: f"the bar {ts} was sent twice with different values",
    10: lambda ts, *a: f"duplicate bars at {ts}",
    11: lambda ts, *a: f"bar {ts} is on a day the exchange had no session",
    12: lambda ts, *a: (f"bar {ts} starts outside its day's regular session, which was asked alone "
                        "(extended_hours=False)"),
    13: lambda ts, o, h, lo, c, v, e: (f"{e.interval} bar {ts} is off the "
                                       + ("regular session's grid (from the open: hourly bars at 09:30, 10:30 ...)"
                                          if e.regular else f"clock's grid (every hour: {e.interval} bars on the clock)")),
}


def _price_problem(*prices: float) -> str:
    import math

    if any(math.isnan(p) for p in prices):
        return "missing"
    if any(math.isinf(p) for p in prices):
        return "infinite"
    return "non-positive"


def check_bars(frame: Any, expect: Expect, ticker: str, provider: str | None = None) -> pd.DataFrame:
    """One ticker's bar frame through the checks of :func:`gate`: the checked frame (attrs
    kept; the input itself, shallowly copied, when it needed no fix: the warm path), or the
    DataIntegrityError naming its first bad bar."""
    import pandas as pd

    parts = _check(frame, expect, provider, ticker, "fail")
    _frame, _single, _uniques, _codes, stamps, cols, txf, keep, rows, failed, in_contract = parts
    if ticker in failed:
        raise failed[ticker]
    attrs = dict(frame.attrs)
    if rows is None and in_contract and bool(keep.all()) and str(frame.index.dtype) == ET_DTYPE \
            and frame.index.name == "timestamp":
        out = frame.copy(deep=False)
    else:
        sel = slice(None) if bool(keep.all()) else keep
        out = pd.DataFrame(_columns(cols, txf, sel), index=stamps[sel].rename("timestamp"))
    out.attrs = attrs
    return out


def tickers_of(long: pd.DataFrame) -> list[str]:
    """The tickers of a sorted long frame, in order (from the index's codes: no string per row)."""
    import numpy as np

    if not len(long):
        return []
    codes = np.asarray(long.index.codes[0])
    used = np.unique(codes)
    return sorted(str(t) for t in np.asarray(long.index.levels[0], dtype=object)[used])


__all__ = ["BAR_COLUMNS", "FLOAT_COLUMNS", "PRICE_COLUMNS", "Expect", "gate", "check_bars", "empty_bars",
           "empty_long", "long_frame", "one_ticker", "split_long", "is_long", "runs", "tickers_of"]
