"""Split and dividend adjustment of long bar frames (pure functions, no I/O; Base layer).

For a bar of ticker t on session day d:

* ``S(t, d)`` = product of the ratios of t's splits whose ex-date is after d (4.0 for a
  4-for-1 split, 1/3 for a 1-for-3 reverse split);
* ``D(t, d)`` = product over t's cash dividends with ex-date e after d of
  ``1 - cash_e / close(session before e)``, cash and close both as traded then
  (the rule of Yahoo's Adj Close and of CRSP-style total-return series).

``splits``: prices / S, volume x S.  ``total``: prices / S x D, volume x S (dividends
never change volume).  ``raw``: unchanged. :func:`factors` turns bars served as ``have``
(raw or splits) into ``want`` for a whole long frame at once: events sit in one sorted
table keyed by (ticker, ex-day) and each bar finds the product of the events after it
with one ``searchsorted``; no loop over tickers or bars. A single ticker is a frame of one.

Events are long Series indexed by (ticker, ex-date at 00:00 New York); closes before
ex-dates likewise. Which adjustment a query gets, and from what, is decided in
:mod:`finrpt_providers.pipeline`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import DataIntegrityError
from .frames import PRICE_COLUMNS
from .timebase import DAY_NS, ET, wall_ns

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_SPAN = 1 << 22  # day ordinals stay below this (year 13,000): key = code * _SPAN + day


class Events(NamedTuple):
    """Events of many tickers as plain arrays (what :func:`event_table` reads without building
    an index): ``tickers`` (object), ex-``days`` (day ordinals, int64), ``values`` (float64)."""

    tickers: Any
    days: Any
    values: Any

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.values)


def event_table(events: "pd.Series | Events | None", uniques) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, day ordinals, values) of ``events`` (a Series by (ticker, ex-date), or
    :class:`Events`) for the tickers in ``uniques`` (their position is the code), sorted by
    (code, day)."""
    import numpy as np
    import pandas as pd

    if events is None or not len(events):
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0)
    if isinstance(events, Events):
        if len(uniques) == 1:  # a basket of one: a comparison, not a hash table
            codes = np.where(np.asarray(events.tickers, dtype=object) == uniques[0], 0, -1)
        else:
            codes = pd.Index(uniques).get_indexer(events.tickers)
        days, vals = np.asarray(events.days, dtype=np.int64), np.asarray(events.values, dtype="float64")
    else:
        codes = pd.Index(uniques).get_indexer(events.index.get_level_values(0))
        days = wall_ns(events.index.get_level_values(1)) // DAY_NS
        vals = events.to_numpy(dtype="float64")
    keep = codes >= 0
    codes, days, vals = codes[keep].astype(np.int64), days[keep], vals[keep]
    order = np.lexsort((days, codes))
    return codes[order], days[order], vals[order]


def after_product(row_codes: np.ndarray, row_days: np.ndarray, ev_codes: np.ndarray, ev_days: np.ndarray,
                  ev_vals: np.ndarray) -> np.ndarray:
    """For each row, the product of its ticker's event values with an ex-day after the row's
    day (1.0 when none): suffix products per ticker, found by one searchsorted."""
    import numpy as np

    out = np.ones(len(row_codes))
    if not len(ev_codes) or not len(row_codes):
        return out
    suffix = np.empty(len(ev_vals))
    acc, prev = 1.0, -1
    for i in range(len(ev_vals) - 1, -1, -1):  # events are few (a market's year: thousands)
        if ev_codes[i] != prev:
            acc, prev = 1.0, ev_codes[i]
        acc *= ev_vals[i]
        suffix[i] = acc
    ev_key = ev_codes * _SPAN + ev_days
    at = np.searchsorted(ev_key, row_codes * _SPAN + row_days, side="right")
    hit = at < len(ev_key)
    hit[hit] = ev_codes[at[hit]] == row_codes[hit]
    out[hit] = suffix[at[hit]]
    return out


def find(codes: np.ndarray, days: np.ndarray, want_codes: np.ndarray, want_days: np.ndarray) -> np.ndarray:
    """Position of each (want code, want day) in the table sorted by (``codes``, ``days``), or -1."""
    import numpy as np

    key = codes * _SPAN + days
    want = want_codes * _SPAN + want_days
    at = np.searchsorted(key, want)
    hit = at < len(key)
    hit[hit] = key[at[hit]] == want[hit]
    return np.where(hit, at, -1)


def bad_splits(ev_codes: np.ndarray, ev_vals: np.ndarray) -> np.ndarray:
    """Codes of tickers with an impossible split ratio (not finite, not positive)."""
    import numpy as np

    return np.unique(ev_codes[~(np.isfinite(ev_vals) & (ev_vals > 0))])


def factors(row_codes: np.ndarray, row_days: np.ndarray, uniques, have: str, want: str,
            splits: pd.Series | None, dividends: pd.Series | None = None,
            prev_close: pd.Series | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """(price factor, volume factor, ticker -> why it cannot be adjusted) turning bars served
    as ``have`` ("raw" or "splits") into ``want``, for rows given by ticker code (position in
    ``uniques``) and session-day ordinal. ``splits``/``dividends``: events by (ticker,
    ex-date) that have happened; ``prev_close``: the as-traded close of the session before
    each ex-dividend date, by (ticker, ex-date) (for ``total``). A dividend that adjusts a
    row here but has no close, or is not below it, fails its ticker: never skipped, never
    weighed against an older close."""
    import numpy as np

    failed: dict[str, str] = {}
    sc, sd, sv = event_table(splits, uniques)
    broken = bad_splits(sc, sv)
    for k in broken:
        failed[uniques[k]] = "a split with an impossible ratio (not a positive number)"
    if len(broken):
        ok = ~np.isin(sc, broken)
        sc, sd, sv = sc[ok], sd[ok], sv[ok]
    s = after_product(row_codes, row_days, sc, sd, sv)
    to_raw = s if have == "splits" else np.ones(len(s))
    if want == "raw":
        price, volume = to_raw, 1.0 / to_raw
    elif want in ("splits", "total"):
        price, volume = to_raw / s, s / to_raw
        if want == "total":
            d, why = dividend_factors(row_codes, row_days, uniques, dividends, prev_close)
            price = price * d
            failed.update(why)
    else:  # validated by PriceQuery: this would be our bug
        raise ValueError(f"unknown adjustment {want!r}")
    return price, volume, failed


def dividend_factors(row_codes: np.ndarray, row_days: np.ndarray, uniques, dividends: pd.Series | None,
                     prev_close: pd.Series | None) -> tuple[np.ndarray, dict[str, str]]:
    """D for each row, and ticker -> why not for tickers whose dividends cannot be weighed."""
    import numpy as np
    import pandas as pd

    failed: dict[str, str] = {}
    dc, dd, dv = event_table(dividends, uniques)
    if not len(dc):
        return np.ones(len(row_codes)), failed
    # only dividends after a ticker's first row adjust anything here
    first = np.full(len(uniques), np.iinfo(np.int64).max)
    np.minimum.at(first, row_codes, row_days)
    matters = dd > first[dc]
    close = np.full(len(dc), np.nan)
    if prev_close is not None and len(prev_close):
        pc, pd_, pv = event_table(prev_close, uniques)
        at = find(pc, pd_, dc, dd)
        close[at >= 0] = pv[at[at >= 0]]
    with np.errstate(invalid="ignore", divide="ignore"):
        f = 1.0 - dv / close
    missing = matters & ~np.isfinite(close)
    wrong = matters & np.isfinite(close) & ~((f > 0) & (f <= 1.0))
    for mask, text in ((missing, "no close for {b}, the session before the ex-date of its {d} dividend (a "
                                 "factor from an older close would be wrong)"),
                       (wrong, "its {d} dividend of {v} is not below the prior close {c}: the corporate-action "
                               "data is wrong")):
        for i in np.flatnonzero(mask):
            t = uniques[dc[i]]
            if t not in failed:
                from .calendar import session_before

                day = pd.Timestamp(int(dd[i]) * DAY_NS).date()
                failed[t] = text.format(d=day, v=dv[i], c=close[i], b=session_before(day))
    f = np.where(matters & np.isfinite(f) & (f > 0) & (f <= 1.0), f, 1.0)
    return after_product(row_codes, row_days, dc, dd, f), failed


def split_factor(days: pd.DatetimeIndex, splits: pd.Series) -> np.ndarray:
    """S(d) for each of ``days`` (one ticker; ``splits``: ratio by ex-date)."""
    import numpy as np

    rows = wall_ns(days) // DAY_NS
    sc = np.zeros(len(splits), dtype=np.int64)
    sd = wall_ns(splits.index) // DAY_NS if len(splits) else sc
    sv = splits.to_numpy(dtype="float64")
    if len(bad_splits(sc, sv)):
        ex = splits.index[~(np.isfinite(sv) & (sv > 0))][0]
        raise DataIntegrityError(f"split on {ex.date()} has an impossible ratio {splits[ex]}")
    order = np.argsort(sd, kind="stable")
    return after_product(np.zeros(len(rows), dtype=np.int64), rows, sc, sd[order], sv[order])


def apply_factors(bars: pd.DataFrame, price, volume) -> pd.DataFrame:
    """A new frame: prices (and vwap) times ``price``, volume times ``volume``; attrs kept."""
    out = bars.copy()
    for c in PRICE_COLUMNS:
        out[c] = out[c].to_numpy() * price
    out["volume"] = out["volume"].to_numpy() * volume
    return out


def as_single(events: pd.Series, ticker: str) -> pd.Series:
    """One ticker's events by ex-date -> the long form by (ticker, ex-date)."""
    import pandas as pd

    idx = events.index if events.index.tz is not None else events.index.tz_localize(ET)
    return pd.Series(events.to_numpy(dtype="float64"),
                     index=pd.MultiIndex.from_arrays([pd.Index([ticker] * len(events), dtype="object"), idx],
                                                     names=["ticker", "ex_date"]))
