"""Split and dividend adjustment of as-traded bars (pure functions, no I/O).

For a bar on session day d:

* ``S(d)`` = product of the ratios of splits whose ex-date is after d (4.0 for a
  4-for-1 split, 1/3 for a 1-for-3 reverse split);
* ``D(d)`` = product over cash dividends with ex-date e after d of
  ``1 - cash_e / close(session before e)``, cash and close both as traded then
  (the rule of Yahoo's Adj Close and of CRSP-style total-return series).

``splits``: prices / S(d), volume x S(d).  ``total``: prices / S(d) x D(d), volume
x S(d) (dividends never change volume).  ``raw``: unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import DataIntegrityError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close", "vwap")


def _days(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return index.normalize()


def split_factor(days: pd.DatetimeIndex, splits: pd.Series) -> np.ndarray:
    """S(d) for each of ``days`` (ET midnights); ``splits``: ratio by ex-date (ET)."""
    import numpy as np

    out = np.ones(len(days))
    for ex, ratio in splits.items():
        if not ratio or ratio <= 0 or not np.isfinite(ratio):
            raise DataIntegrityError(f"split on {ex.date()} has an impossible ratio {ratio}")
        out[days < ex] *= ratio
    return out


def prev_closes(closes: pd.Series, ex_dates) -> pd.Series:
    """For each ex-date, the last close strictly before it (the session before, or the
    last one the stock traded); ex-dates with no earlier close are left out."""
    import pandas as pd

    closes = closes.sort_index()
    out = {}
    for ex in ex_dates:
        before = closes[closes.index < ex]
        if len(before):
            out[ex] = float(before.iloc[-1])
    return pd.Series(out, dtype="float64")


def dividend_factor(days: pd.DatetimeIndex, dividends: pd.Series, prev_close: pd.Series) -> np.ndarray:
    """D(d) for each of ``days``. ``dividends``: cash as declared by ex-date; ``prev_close``:
    the as-traded close before each ex-date (see :func:`prev_closes`); one that adjusts
    a bar here but has no close is an error, never skipped."""
    import numpy as np

    out = np.ones(len(days))
    if len(days) == 0:
        return out
    first = days.min()
    for ex, cash in dividends.items():
        if ex <= first or not cash:
            continue  # affects no bar here
        if ex not in prev_close.index:
            raise DataIntegrityError(f"no close before the {ex.date()} ex-dividend date to adjust with")
        close = float(prev_close[ex])
        factor = 1.0 - float(cash) / close
        if not 0.0 < factor <= 1.0:
            raise DataIntegrityError(f"dividend {cash} on {ex.date()} is not below the prior close "
                                     f"{close}: the corporate-action data is wrong")
        out[days < ex] *= factor
    return out


def adjust_bars(raw: pd.DataFrame, adjustment: str, splits: pd.Series,
                dividends: pd.Series | None = None, prev_close: pd.Series | None = None) -> pd.DataFrame:
    """As-traded bars -> ``adjustment`` ('raw', 'splits' or 'total'); a new frame, attrs kept.
    ``total`` needs ``dividends`` and ``prev_close`` (see :func:`dividend_factor`)."""
    if adjustment == "raw" or raw.empty:
        return raw.copy()
    days = _days(raw.index)
    s = split_factor(days, splits)
    price = 1.0 / s
    if adjustment == "total":
        if dividends is None or prev_close is None:
            raise ValueError("total adjustment needs dividends and the closes before their ex-dates")
        price = price * dividend_factor(days, dividends, prev_close)
    elif adjustment != "splits":
        raise ValueError(f"unknown adjustment {adjustment!r}")
    out = raw.copy()
    for c in PRICE_COLUMNS:
        out[c] = out[c].to_numpy() * price
    out["volume"] = out["volume"].to_numpy() * s
    return out
