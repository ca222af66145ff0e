"""Split and dividend adjustment of as-traded bars (pure functions, no I/O).

For a bar on session day d:

* ``S(d)`` = product of the ratios of splits whose ex-date is after d (4.0 for a
  4-for-1 split, 1/3 for a 1-for-3 reverse split);
* ``D(d)`` = product over cash dividends with ex-date e after d of
  ``1 - cash_e / close(session before e)``, cash and close both as traded then
  (the rule of Yahoo's Adj Close and of CRSP-style total-return series).

``splits``: prices / S(d), volume x S(d).  ``total``: prices / S(d) x D(d), volume
x S(d) (dividends never change volume).  ``raw``: unchanged. Which of these a query
gets, and from what, is decided in one place: :mod:`finrpt_providers.pipeline`.
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


def dividend_factor(days: pd.DatetimeIndex, dividends: pd.Series, prev_close: pd.Series) -> np.ndarray:
    """D(d) for each of ``days``. ``dividends``: cash as declared by ex-date; ``prev_close``:
    the as-traded close of the session immediately before each ex-date; one that adjusts
    a bar here but has no close is an error, never skipped (nor taken from an older close)."""
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


def apply_factors(bars: pd.DataFrame, price, volume) -> pd.DataFrame:
    """A new frame: prices (and vwap) times ``price``, volume times ``volume``; attrs kept."""
    out = bars.copy()
    for c in PRICE_COLUMNS:
        out[c] = out[c].to_numpy() * price
    out["volume"] = out["volume"].to_numpy() * volume
    return out
