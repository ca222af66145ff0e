"""What an equity-research report needs, ready to use (finrpt's charts, key-data table and
prompts), built on the chain and the corporate-actions sources:

* :func:`key_data`: last close, 52-week high and low, 6-month average volume, currency,
  shares outstanding and market cap when a source knows them;
* :func:`performance`: a JSON-safe price-performance list for report caches
  (``date`` 'YYYY-MM-DD', ``close``, ``rebased`` to 100 at the first session);
* :func:`statement_text`: a statement frame as prompt text that keeps each line item's
  label (finrpt's ``convert_df_to_text`` drops them: the LLM read unlabelled numbers);
* :func:`prompt_price`: a price rounded for a prompt.

Rounding for prompts (finrpt cuts prompt text at a length, so digits cost context):
prices at or above $1 to cents, below $1 to 4 decimals (US quoting ticks); statement
values in B/M/K with 2 decimals, per-share items (EPS) as they are, to 2 decimals.
Which prices: 52-week high/low, last close and volumes are split-adjusted (as quoted:
a split does not move them, a dividend does not either); the performance series is
total return (splits and dividends), as a chart of what a holder earned.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from . import redact, text

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

log = redact.logger(__name__)


def prompt_price(x: float) -> float:
    """A price rounded for a prompt: cents at or above $1, 4 decimals below (US ticks)."""
    return round(float(x), 2 if abs(x) >= 1 else 4)


def _end(end_date: Any, cfg: Config) -> dt.date:
    from .provider import to_date

    return to_date(end_date, "end_date") - dt.timedelta(days=1) if end_date is not None else cfg.today()


def key_data(ticker: str, end_date: Any = None, config: Config | dict | None = None) -> dict[str, Any]:
    """The key-data table of a report, as of the session before ``end_date`` (exclusive, as
    finrpt's; default: today). Values are JSON-safe; ``None`` where no source knows them. A
    share count or market cap the source gives that is no positive finite number (NaN, inf,
    "15.2B", ``True``, zero, negative) is left out, never computed with; ``notes`` (present
    only then) says which and why, and a warning too."""
    import pandas as pd

    from .chain import get_prices
    from .config import resolve_config
    from .yf import Ticker

    cfg = resolve_config(config)
    last = _end(end_date, cfg)
    year = get_prices(ticker, (pd.Timestamp(last) - pd.DateOffset(weeks=52)).date(), last, adjustment="splits",
                      config=cfg)
    half = year[year.index >= year.index[-1] - pd.DateOffset(months=6)]
    info = Ticker(ticker, config=cfg).info
    close = float(year["close"].iloc[-1])
    notes: list[str] = []
    shares = _positive(info.get("sharesOutstanding"), "sharesOutstanding", notes)
    cap = _positive(info.get("marketCap"), "marketCap", notes) if not shares else None
    out = {
        "symbol": year.attrs["ticker"], "as_of": str(year.index[-1].date()),
        "currency": info.get("currency", "USD"),
        "last_close": prompt_price(close),
        "high_52w": prompt_price(year["high"].max()), "low_52w": prompt_price(year["low"].min()),
        # an index has no volume: None, not a number made up
        "avg_volume_6m": None if half["volume"].isna().all() else int(round(float(half["volume"].mean()))),
        "shares_outstanding": int(round(shares)) if shares else None,
        "market_cap": int(round(close * shares)) if shares else int(round(cap)) if cap else None,
        "provider": year.attrs["provider"],
    }
    if notes:
        out["notes"] = notes
        for n in notes:
            log.warning("key_data(%s): %s", out["symbol"], n)
    return out


def _positive(value: Any, what: str, notes: list[str]) -> float | None:
    """``value`` as a positive finite number, or None; a value that is there but is not one
    (a bool, a text such as "15.2B", NaN, inf, zero or negative) is left out, and ``notes``
    says so (a share count of ``True`` is not one share; a negative one no market cap)."""
    import math
    import numbers

    if value is None:
        return None
    shown = text.short(repr(value))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        notes.append(f"the source's {what} is {shown} ({type(value).__name__}), not a number: left out")
        return None
    try:
        x = float(value)
    except (OverflowError, ValueError):
        x = math.inf
    if not math.isfinite(x):
        notes.append(f"the source's {what} is {shown}, not a finite number: left out")
        return None
    if x <= 0:
        notes.append(f"the source's {what} is {shown}, not positive: left out")
        return None
    return x


def performance(ticker: str, start: Any, end_date: Any = None, config: Config | dict | None = None
                ) -> list[dict[str, Any]]:
    """Daily total-return closes from ``start`` to the session before ``end_date``
    (exclusive): ``[{"date": "YYYY-MM-DD", "close": 123.45, "rebased": 100.0}, ...]``,
    ``rebased`` = close / first close x 100, rounded to 2 decimals. JSON-safe."""
    from .chain import get_prices
    from .config import resolve_config

    cfg = resolve_config(config)
    bars = get_prices(ticker, start, _end(end_date, cfg), adjustment="total", config=cfg)
    if bars.empty:
        return []
    first = float(bars["close"].iloc[0])
    return [{"date": str(ts.date()), "close": prompt_price(c), "rebased": round(float(c) / first * 100.0, 2)}
            for ts, c in bars["close"].items()]


def relative_performance(ticker: str, benchmark: str = "I:SPX", start: Any = None, end: Any = None,
                         config: Config | dict | None = None, as_of: Any = None) -> dict[str, Any]:
    """``ticker`` next to ``benchmark`` (default the S&P 500, ``I:SPX``; ``^GSPC`` or a fund
    such as ``SPY`` too) from ``start`` to ``end`` (both inclusive; ``end`` defaults to today):
    total-return closes on the sessions both have, each rebased to 100 on the first one.
    JSON-safe: ``{"ticker", "benchmark", "benchmark_proxy" (the fund that answered for the
    index under FINRPT_INDEX_PROXIES, else None), "providers", "series": [{"date",
    "close", "rebased", "benchmark_close", "benchmark_rebased"}, ...], "return",
    "benchmark_return", "excess_return"}`` (returns in percent, 2 decimals)."""
    from .chain import get_prices
    from .config import resolve_config
    from .errors import InvalidQuery

    cfg = resolve_config(config)
    if start is None:
        raise InvalidQuery("relative_performance needs a start date (YYYY-MM-DD)")
    last = end if end is not None else cfg.today()
    mine = get_prices(ticker, start, last, adjustment="total", config=cfg, as_of=as_of)
    bench = get_prices(benchmark, start, last, adjustment="total", config=cfg, as_of=as_of)
    both = mine.index.intersection(bench.index)
    out: dict[str, Any] = {"ticker": mine.attrs.get("ticker", ticker), "benchmark": bench.attrs.get("ticker", benchmark),
                           "benchmark_proxy": bench.attrs.get("proxy"),
                           "providers": {"ticker": mine.attrs.get("provider"), "benchmark": bench.attrs.get("provider")},
                           "series": [], "return": None, "benchmark_return": None, "excess_return": None}
    if not len(both):
        return out
    a, b = mine["close"].loc[both], bench["close"].loc[both]
    a0, b0 = float(a.iloc[0]), float(b.iloc[0])
    out["series"] = [{"date": str(ts.date()), "close": prompt_price(x), "rebased": round(float(x) / a0 * 100.0, 2),
                      "benchmark_close": prompt_price(y), "benchmark_rebased": round(float(y) / b0 * 100.0, 2)}
                     for ts, x, y in zip(both, a.to_numpy(), b.to_numpy())]
    ra, rb = (float(a.iloc[-1]) / a0 - 1) * 100, (float(b.iloc[-1]) / b0 - 1) * 100
    out.update({"return": round(ra, 2), "benchmark_return": round(rb, 2), "excess_return": round(ra - rb, 2)})
    return out


def _amount(v: float, per_share: bool) -> str:
    if per_share:
        return f"{v:.2f}"
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= div:
            return f"{v / div:.2f}{unit}"
    return f"{v:.2f}"


def statement_text(frame: pd.DataFrame, title: str = "") -> str:
    """A statement (line items as rows, period ends as columns) as prompt text, one line per
    item with its label: ``Total Revenue: 2026-03-31 96.46B; 2025-12-31 94.64B``. Periods
    newest first; missing values skipped; per-share items (EPS) unscaled."""
    import pandas as pd

    if frame is None or frame.empty:
        return f"{title}: no data" if title else "no data"
    cols = sorted(frame.columns, key=lambda c: pd.Timestamp(c), reverse=True)
    lines = [title] if title else []
    for label, row in frame[cols].iterrows():
        per_share = "EPS" in str(label) or "Per Share" in str(label)
        cells = [f"{pd.Timestamp(c).date()} {_amount(float(v), per_share)}" for c, v in row.items() if pd.notna(v)]
        if cells:
            lines.append(f"{label}: " + "; ".join(cells))
    return "\n".join(lines)


__all__ = ["key_data", "performance", "relative_performance", "statement_text", "prompt_price"]
