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


def dividend_factor(days: pd.DatetimeIndex, dividends: pd.Series, raw_closes: pd.Series) -> np.ndarray:
    """D(d) for each of ``days``. ``dividends``: cash as declared by ex-date; ``raw_closes``:
    as-traded daily closes by session (ET midnights), covering the session before every
    ex-date that falls after the first of ``days``."""
    import numpy as np

    out = np.ones(len(days))
    if len(days) == 0:
        return out
    first = days.min()
    for ex, cash in dividends.items():
        if ex <= first or not cash:
            continue  # affects no bar here
        before = raw_closes[raw_closes.index < ex]
        if before.empty:
            raise DataIntegrityError(f"no close before the {ex.date()} ex-dividend date to adjust with")
        factor = 1.0 - float(cash) / float(before.iloc[-1])
        if not 0.0 < factor <= 1.0:
            raise DataIntegrityError(f"dividend {cash} on {ex.date()} is not below the prior close "
                                     f"{before.iloc[-1]}: the corporate-action data is wrong")
        out[days < ex] *= factor
    return out


def adjust_bars(raw: pd.DataFrame, adjustment: str, splits: pd.Series,
                dividends: pd.Series | None = None, raw_closes: pd.Series | None = None) -> pd.DataFrame:
    """As-traded bars -> ``adjustment`` ('raw', 'splits' or 'total'); a new frame, attrs kept."""
    if adjustment == "raw" or raw.empty:
        return raw.copy()
    days = _days(raw.index)
    s = split_factor(days, splits)
    price = 1.0 / s
    if adjustment == "total":
        if dividends is None or raw_closes is None:
            raise ValueError("total adjustment needs dividends and raw closes")
        price = price * dividend_factor(days, dividends, raw_closes)
    elif adjustment != "splits":
        raise ValueError(f"unknown adjustment {adjustment!r}")
    out = raw.copy()
    for c in PRICE_COLUMNS:
        out[c] = out[c].to_numpy() * price
    out["volume"] = out["volume"].to_numpy() * s
    return out
