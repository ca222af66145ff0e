"""A deterministic synthetic US market, the one truth every fake service renders.

Over real NYSE sessions (holidays, half days) it generates, from a seed:

* minute bars 04:00-20:00 ET (04:00-17:00 on half days) for a few tickers; minutes
  without trades are absent; prices in cents, volumes whole shares before
  2026-02-23 and fractional after (as Massive's feeds since then);
* daily bars aggregated from them (open = 09:30 bar open, close = last regular
  minute's close; high, low, volume, vwap, transactions over the whole day);
* corporate actions: a 4-for-1 split (NVDA), a 1-for-3 reverse split (RSPL),
  quarterly cash dividends (AAPL, SPY, NVDA), a share class with a dot (BRK.B),
  and a listing in the middle of the range (NEWC);
* the truth for the three adjustments (:meth:`SyntheticMarket.truth`).

Everything is AS TRADED ("raw") at the source. Adjustment rules (the same as
Yahoo's Adj Close and Massive's ``adjusted=true``):

* splits: for a bar on day d, ``S(d)`` = product of the ratios of splits whose
  ex-date is after d; prices are divided by ``S(d)``, volumes multiplied;
* total: additionally multiplied by ``D(d)`` = product over cash dividends with
  ex-date e after d of ``1 - cash_e / raw_close(session before e)``.

The tickers are real symbols so examples read naturally, but every number is made up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd

from .. import calendar
from ..intervals import resample_minutes as resample_bars
from ..provider import BAR_COLUMNS, ET, empty_bars

FRACTIONAL_VOLUME_FROM = dt.date(2026, 2, 23)
DEFAULT_START = dt.date(2025, 6, 2)
DEFAULT_END = dt.date(2026, 6, 30)


@dataclasses.dataclass(frozen=True)
class TickerSpec:
    ticker: str
    price: float  # price at the start, in the final (post-split) basis
    sigma: float  # daily volatility of log returns
    volume: float  # average daily volume, final basis
    listed: dt.date | None = None  # first session, None = before the range
    splits: tuple[tuple[dt.date, float], ...] = ()  # (ex-date, ratio): 4.0 = 4-for-1, 1/3 = 1-for-3
    dividend: float = 0.0  # quarterly cash per share, final basis
    dividend_months: tuple[int, ...] = ()
    minutes: bool = True  # False: daily bars only, drawn directly (cheap fillers for whole-market tests)


DEFAULT_TICKERS: tuple[TickerSpec, ...] = (
    TickerSpec("AAPL", 201.0, 0.016, 52e6, dividend=0.26, dividend_months=(8, 11, 2, 5)),
    TickerSpec("SPY", 590.0, 0.009, 61e6, dividend=1.76, dividend_months=(6, 9, 12, 3)),
    TickerSpec("NVDA", 142.0, 0.028, 180e6, splits=((dt.date(2025, 11, 17), 4.0),), dividend=0.01,
               dividend_months=(9, 12, 3, 6)),
    TickerSpec("RSPL", 7.8, 0.045, 2.6e6, splits=((dt.date(2026, 1, 20), 1 / 3),)),
    TickerSpec("BRK.B", 476.0, 0.010, 4.1e6),
    TickerSpec("NEWC", 24.0, 0.035, 3.3e6, listed=dt.date(2026, 3, 16)),
)


def _round_price(x: np.ndarray) -> np.ndarray:
    # US quotes: cents above $1, hundredths of a cent below.
    return np.where(x >= 1.0, np.round(x, 2), np.round(x, 4))


class SyntheticMarket:
    """The synthetic market between ``start`` and ``end`` (inclusive), fixed by ``seed``."""

    def __init__(self, start: dt.date | str = DEFAULT_START, end: dt.date | str = DEFAULT_END,
                 seed: int = 20250602, tickers: tuple[TickerSpec, ...] = DEFAULT_TICKERS):
        self.start = dt.date.fromisoformat(start) if isinstance(start, str) else start
        self.end = dt.date.fromisoformat(end) if isinstance(end, str) else end
        self.seed = seed
        self.specs = {s.ticker: s for s in tickers}
        self.sessions: list[dt.date] = calendar.sessions(self.start, self.end)
        self._session_pos = {d: i for i, d in enumerate(self.sessions)}
        self._anchors = {t: self._daily_anchors(i, s) for i, (t, s) in enumerate(self.specs.items())}
        self._daily_cache: dict[str, pd.DataFrame] = {}
        self.minute = lru_cache(maxsize=4096)(self._minute)

    # -- what exists ---------------------------------------------------------------
    @property
    def tickers(self) -> list[str]:
        """The stocks and ETFs (what the stocks flat files hold); indices are :attr:`INDICES`."""
        return list(self.specs)

    #: indices (Massive's spelling) -> (the ETF they are drawn from, level per ETF dollar): an
    #: index computes in the regular session only, has no volume and no corporate actions
    INDICES = {"I:SPX": ("SPY", 10.0), "I:NDX": ("SPY", 32.5)}

    def knows(self, ticker: str) -> bool:
        """A stock or ETF of the market, or one of its indices."""
        return ticker in self.specs or ticker in self.INDICES

    def today(self) -> dt.date:
        """The day after the last session: 'now' for fakes serving this market."""
        return self.end + dt.timedelta(days=1)

    def trading_days(self, ticker: str) -> list[dt.date]:
        if ticker in self.INDICES:
            return self.trading_days(self.INDICES[ticker][0])
        listed = self.specs[ticker].listed
        return [d for d in self.sessions if listed is None or d >= listed]

    def splits(self, ticker: str) -> pd.Series:
        """Split ratio by ex-date (4.0 = 4-for-1; 1/3 = 1-for-3 reverse)."""
        if ticker in self.INDICES:
            return pd.Series([], dtype="float64", name="ratio", index=pd.DatetimeIndex([], tz=ET))
        spec = self.specs[ticker]
        items = [(d, r) for d, r in spec.splits if self.start <= d <= self.end]
        return pd.Series([r for _, r in items], dtype="float64", name="ratio",
                         index=pd.DatetimeIndex([pd.Timestamp(d) for d, _ in items], dtype="datetime64[ns]").tz_localize(ET))

    def dividends(self, ticker: str) -> pd.Series:
        """Cash dividend per share AS DECLARED (pre-split basis before a split), by ex-date."""
        spec = self.specs.get(ticker)
        if spec is None or not spec.dividend:  # an index pays none
            return pd.Series(dtype="float64", name="cash", index=pd.DatetimeIndex([], tz=ET))
        days = self.trading_days(ticker)
        out = {}
        for year in range(self.start.year, self.end.year + 1):
            for month in spec.dividend_months:
                nominal = dt.date(year, month, 10)
                ex = next((d for d in days if d >= nominal), None)
                if ex is None or ex > self.end or ex <= days[0]:
                    continue
                out[ex] = round(spec.dividend * self._split_factor(ticker, ex), 4)
        items = sorted(out.items())
        return pd.Series([v for _, v in items], index=pd.DatetimeIndex([pd.Timestamp(d, tz=ET) for d, _ in items]),
                         dtype="float64", name="cash")

    def _split_factor(self, ticker: str, day: dt.date) -> float:
        """S(day): product of split ratios with ex-date after ``day``."""
        f = 1.0
        for ex, r in (self.specs[ticker].splits if ticker in self.specs else ()):
            if ex > day:
                f *= r
        return f

    # -- generation ---------------------------------------------------------------
    def _daily_anchors(self, idx: int, spec: TickerSpec) -> dict[dt.date, tuple[float, float]]:
        """(open, close) of each session in the final basis: a seeded random walk."""
        rng = np.random.default_rng([self.seed, idx, 0])
        n = len(self.sessions)
        gaps = rng.normal(0.0, spec.sigma * 0.35, n)
        moves = rng.normal(0.0003, spec.sigma, n)
        out: dict[dt.date, tuple[float, float]] = {}
        price = spec.price
        for i, day in enumerate(self.sessions):
            if spec.listed is not None and day < spec.listed:
                continue
            o = price * np.exp(gaps[i])
            c = o * np.exp(moves[i])
            out[day] = (float(o), float(c))
            price = c
        return out

    def _minute(self, ticker: str, day: dt.date) -> pd.DataFrame:
        """Raw (as traded) 1-minute bars of one session; empty frame when none."""
        if ticker in self.INDICES:
            return self._index_minute(ticker, day)
        if ticker not in self.specs or day not in self._anchors[ticker] or not self.specs[ticker].minutes:
            return empty_bars()
        spec = self.specs[ticker]
        idx = list(self.specs).index(ticker)
        rng = np.random.default_rng([self.seed, idx, day.toordinal()])
        o_anchor, c_anchor = self._anchors[ticker][day]
        reg_open, reg_close = calendar.session_hours(day)
        first = pd.Timestamp(day, tz=ET) + pd.Timedelta(hours=4)
        last = reg_close + pd.Timedelta(hours=4)  # 20:00, or 17:00 on half days
        stamps = pd.date_range(first, last, freq="min", inclusive="left")
        n = len(stamps)
        reg = (stamps >= reg_open) & (stamps < reg_close)
        i_open = int(np.argmax(reg))
        i_close = int(len(reg) - 1 - np.argmax(reg[::-1]))
        step = spec.sigma / np.sqrt(390) * 0.9
        # path[k] is the price at the END of minute k; path before the open is a walk
        # backwards from the open, after the close a walk forward from the close, and
        # in between a Brownian bridge from open to close.
        path = np.empty(n + 1)  # path[k] = price at the START of minute k, path[n] = end
        m = i_close - i_open + 1
        walk = np.cumsum(rng.normal(0, step, m))
        bridge = walk - np.linspace(0, 1, m) * walk[-1]
        path[i_open + 1:i_close + 2] = np.log(o_anchor) + bridge + np.linspace(0, 1, m) * (np.log(c_anchor) - np.log(o_anchor))
        path[i_open] = np.log(o_anchor)
        pre = np.cumsum(rng.normal(0, step * 0.6, i_open))[::-1]
        path[:i_open] = np.log(o_anchor) + pre
        post = np.cumsum(rng.normal(0, step * 0.6, n - i_close - 1))
        path[i_close + 2:] = np.log(c_anchor) + post
        path = np.exp(path)
        factor = self._split_factor(ticker, day)
        opens = _round_price(path[:-1] * factor)
        closes = _round_price(path[1:] * factor)
        wiggle = np.abs(rng.normal(0, step * 0.5, (2, n)))
        highs = np.maximum(_round_price(np.maximum(opens, closes) * (1 + wiggle[0])), np.maximum(opens, closes))
        lows = np.minimum(_round_price(np.minimum(opens, closes) * (1 - wiggle[1])), np.minimum(opens, closes))
        vwap = np.clip(np.round((highs + lows + 2 * closes) / 4, 4), lows, highs)
        # Who trades: every regular minute for liquid names, few outside regular hours.
        liquid = spec.volume > 10e6
        p_trade = np.where(reg, 0.999 if liquid else 0.93, 0.55 if liquid else 0.12)
        traded = rng.random(n) < p_trade
        traded[i_open] = traded[i_close] = True
        tod = np.linspace(-1, 1, m)
        shape = np.ones(n) * 0.004
        shape[i_open:i_close + 1] = 0.6 + 1.6 * tod ** 2  # U-shaped intraday volume
        vol = spec.volume / (factor * shape[traded].sum()) * shape * rng.lognormal(0, 0.45, n)
        vol = np.maximum(vol, 1.0)
        vol = np.round(vol, 6) if day >= FRACTIONAL_VOLUME_FROM else np.round(vol)
        tx = np.maximum(1, np.round(vol * factor / rng.uniform(60, 140, n))).astype("int64")
        sel = np.flatnonzero(traded)
        df = pd.DataFrame({
            "open": opens[sel], "high": highs[sel], "low": lows[sel], "close": closes[sel],
            "volume": vol[sel], "vwap": vwap[sel],
        }, index=pd.DatetimeIndex(stamps[sel], name="timestamp").as_unit("ns"))
        df["transactions"] = pd.array(tx[sel], dtype="Int64")
        return df

    def _index_minute(self, ticker: str, day: dt.date) -> pd.DataFrame:
        """An index's minutes: its ETF's regular-session minutes times the level, every
        minute of the session (an index ticks whether or not the ETF trades: a quiet minute
        repeats the last level), no volume, vwap or trade count."""
        etf, level = self.INDICES[ticker]
        m = self.minute(etf, day)
        if m.empty:
            return empty_bars()
        opens, closes = calendar.session_hours(day)
        m = m[(m.index >= opens) & (m.index < closes)]
        grid = pd.date_range(opens, closes - pd.Timedelta(minutes=1), freq="1min").as_unit("ns")
        close = m["close"].reindex(grid).ffill().bfill().to_numpy() * level
        have = m.reindex(grid)
        o = np.where(have["open"].notna(), have["open"].to_numpy() * level, close)
        h = np.where(have["high"].notna(), have["high"].to_numpy() * level, close)
        lo = np.where(have["low"].notna(), have["low"].to_numpy() * level, close)
        c = np.where(have["close"].notna(), close, close)
        r = lambda x: np.round(x, 2)  # noqa: E731
        o, c = r(o), r(c)
        h, lo = np.maximum(r(h), np.maximum(o, c)), np.minimum(r(lo), np.minimum(o, c))
        df = pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": np.nan, "vwap": np.nan},
                          index=pd.DatetimeIndex(grid, name="timestamp"))
        df["transactions"] = pd.array([pd.NA] * len(df), dtype="Int64")
        return df

    def daily(self, ticker: str) -> pd.DataFrame:
        """Raw (as traded) daily bars for the whole range."""
        if ticker in self.INDICES:
            if ticker not in self._daily_cache:
                rows, stamps = [], []
                for day in self.trading_days(ticker):
                    m = self.minute(ticker, day)
                    if m.empty:
                        continue
                    rows.append((m["open"].iloc[0], m["high"].max(), m["low"].min(), m["close"].iloc[-1]))
                    stamps.append(pd.Timestamp(day, tz=ET))
                df = pd.DataFrame(rows, columns=["open", "high", "low", "close"],
                                  index=pd.DatetimeIndex(stamps, name="timestamp").as_unit("ns"))
                df["volume"] = np.nan
                df["vwap"] = np.nan
                df["transactions"] = pd.array([pd.NA] * len(df), dtype="Int64")
                self._daily_cache[ticker] = df if len(df) else empty_bars()
            return self._daily_cache[ticker].copy()
        if ticker not in self._daily_cache and not self.specs[ticker].minutes:
            self._daily_cache[ticker] = self._daily_only(ticker)
        if ticker not in self._daily_cache:
            rows, stamps = [], []
            for day in self.trading_days(ticker):
                m = self.minute(ticker, day)
                reg_open, reg_close = calendar.session_hours(day)
                regular = m[(m.index >= reg_open) & (m.index < reg_close)]
                v = m["volume"].to_numpy()
                rows.append((regular["open"].iloc[0], m["high"].max(), m["low"].min(), regular["close"].iloc[-1],
                             float(v.sum()), float(np.round((m["vwap"].to_numpy() * v).sum() / v.sum(), 4)),
                             int(m["transactions"].sum())))
                stamps.append(pd.Timestamp(day, tz=ET))
            df = pd.DataFrame(rows, columns=list(BAR_COLUMNS),
                              index=pd.DatetimeIndex(stamps, name="timestamp").as_unit("ns"))
            df["transactions"] = df["transactions"].astype("Int64")
            self._daily_cache[ticker] = df if len(df) else empty_bars()
        return self._daily_cache[ticker].copy()

    def cross_section(self, day: dt.date) -> pd.DataFrame:
        """Every ticker's raw daily bar of ``day`` (a ``ticker`` column; built once for all days)."""
        if getattr(self, "_sections", None) is None:
            parts = []
            for t in self.tickers:
                d = self.daily(t)
                if len(d):
                    parts.append(d.assign(ticker=t))
            allbars = pd.concat(parts) if parts else empty_bars().assign(ticker=pd.Series(dtype="object"))
            self._sections = {k.date(): g for k, g in allbars.groupby(allbars.index.normalize())}
        return self._sections.get(day, empty_bars().assign(ticker=pd.Series(dtype="object")))

    def _daily_only(self, ticker: str) -> pd.DataFrame:
        """Daily bars drawn straight from the anchors (a ticker without minute bars)."""
        spec = self.specs[ticker]
        days = self.trading_days(ticker)
        if not days:
            return empty_bars()
        rng = np.random.default_rng([self.seed, list(self.specs).index(ticker), 1])
        factor = np.array([self._split_factor(ticker, d) for d in days])
        o = _round_price(np.array([self._anchors[ticker][d][0] for d in days]) * factor)
        c = _round_price(np.array([self._anchors[ticker][d][1] for d in days]) * factor)
        wiggle = np.abs(rng.normal(0, spec.sigma * 0.4, (2, len(days))))
        h = np.maximum(_round_price(np.maximum(o, c) * (1 + wiggle[0])), np.maximum(o, c))
        lo = np.minimum(_round_price(np.minimum(o, c) * (1 - wiggle[1])), np.minimum(o, c))
        vol = spec.volume / factor * rng.lognormal(0, 0.3, len(days))
        vol = np.array([round(v, 6) if d >= FRACTIONAL_VOLUME_FROM else float(round(v)) for v, d in zip(vol, days)])
        df = pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": vol,
                           "vwap": np.clip(np.round((h + lo + 2 * c) / 4, 4), lo, h)},
                          index=pd.DatetimeIndex([pd.Timestamp(d, tz=ET) for d in days], name="timestamp").as_unit("ns"))
        df["transactions"] = pd.array(np.maximum(1, np.round(vol * factor / 90)).astype("int64"), dtype="Int64")
        return df

    # -- truth --------------------------------------------------------------------
    def factors(self, ticker: str, days: pd.DatetimeIndex, adjustment: str,
                as_of: dt.date | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(price multiplier, volume multiplier) for bars on ``days`` (normalised, ET); with
        ``as_of``, only the events with an ex-date on or before it (prices as known then).

        Written apart from :mod:`finrpt_providers.adjust` on purpose: the truth the
        providers are checked against must not share their code.
        """
        price = np.ones(len(days))
        volume = np.ones(len(days))
        if adjustment == "raw":
            return price, volume
        known = pd.Timestamp(as_of, tz=ET) if as_of is not None else None
        for ex, ratio in self.splits(ticker).items():
            if known is not None and ex > known:
                continue
            before = days < ex
            price[before] /= ratio
            volume[before] *= ratio
        if adjustment == "total":
            closes = self.daily(ticker)["close"]
            for ex, cash in self.dividends(ticker).items():
                if known is not None and ex > known:
                    continue
                prev = closes[closes.index < ex]
                if prev.empty:
                    continue
                price[days < ex] *= 1.0 - cash / prev.iloc[-1]
        return price, volume

    def raw(self, ticker: str, start: dt.date, end: dt.date, interval: str = "1d",
            extended_hours: bool = False) -> pd.DataFrame:
        """As-traded bars in [start, end] at ``interval`` (intraday resampled from 1m, bar-start
        labels). Intraday: the regular session (each day's open to close from the calendar,
        hourly bars from the open) unless ``extended_hours`` (every minute, clock-aligned)."""
        if interval == "1d":
            df = self.daily(ticker)
            days = df.index.normalize()
            return df[(days >= pd.Timestamp(start, tz=ET)) & (days <= pd.Timestamp(end, tz=ET))]
        frames = []
        for d in self.trading_days(ticker):
            if start <= d <= end:
                f = self.minute(ticker, d)
                if not extended_hours:  # each day's own hours: a half day closes at 13:00
                    opens, closes = calendar.session_hours(d)
                    f = f[(f.index >= opens) & (f.index < closes)]
                frames.append(f)
        frames = [f for f in frames if len(f)]
        if not frames:
            return empty_bars()
        df = pd.concat(frames)
        if interval == "1m":
            return df
        return resample_bars(df, interval, regular=not extended_hours)

    def truth(self, ticker: str, start: dt.date | str, end: dt.date | str, interval: str = "1d",
              adjustment: str = "splits", extended_hours: bool = False,
              as_of: dt.date | str | None = None) -> pd.DataFrame:
        """The exact bar frame a perfect provider returns for this question (intraday: the
        regular session unless ``extended_hours``, as :func:`finrpt_providers.get_prices`).

        Periods (``1wk 1mo 3mo``) cover the range widened to whole periods, built here
        with pandas Periods (apart from the package's own code on purpose)."""
        start = dt.date.fromisoformat(start) if isinstance(start, str) else start
        end = dt.date.fromisoformat(end) if isinstance(end, str) else end
        if interval in _PERIOD_FREQ:
            return _period_truth(self, ticker, start, end, interval, adjustment)
        df = self.raw(ticker, start, end, interval, extended_hours).copy()
        if df.empty:
            return empty_bars()
        as_of = dt.date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
        pf, vf = self.factors(ticker, df.index.normalize(), adjustment, as_of)
        for c in ("open", "high", "low", "close", "vwap"):
            df[c] = df[c].to_numpy() * pf
        df["volume"] = df["volume"].to_numpy() * vf
        return df


_PERIOD_FREQ = {"1wk": "W-SUN", "1mo": "M", "3mo": "Q-DEC"}


def _period_bounds(day: dt.date, interval: str) -> tuple[dt.date, dt.date]:
    p = pd.Period(day, freq=_PERIOD_FREQ[interval])
    return p.start_time.date(), p.end_time.date()


def _period_truth(market: "SyntheticMarket", ticker: str, start: dt.date, end: dt.date, interval: str,
                       adjustment: str) -> pd.DataFrame:
    lo, _ = _period_bounds(start, interval)
    _, hi = _period_bounds(end, interval)
    daily = market.truth(ticker, lo, hi, "1d", adjustment)
    if daily.empty:
        return empty_bars()
    rows, labels = [], []
    periods = daily.index.tz_localize(None).to_period(_PERIOD_FREQ[interval])
    for period in periods.unique():
        d = daily[periods == period]
        v = d["volume"].to_numpy()
        vw = d["vwap"].to_numpy()
        tx = d["transactions"]
        rows.append((d["open"].iloc[0], d["high"].max(), d["low"].min(), d["close"].iloc[-1], float(v.sum()),
                     float((vw * v).sum() / v.sum()) if not np.isnan(vw).any() else np.nan,
                     int(tx.sum()) if tx.notna().all() else pd.NA))
        labels.append(pd.Timestamp(period.start_time.date(), tz=ET))
    df = pd.DataFrame(rows, columns=list(BAR_COLUMNS), index=pd.DatetimeIndex(labels, name="timestamp").as_unit("ns"))
    df["transactions"] = df["transactions"].astype("Int64")
    return df


def _trade_rng(market: SyntheticMarket, ticker: str, day: dt.date, salt: int) -> np.random.Generator:
    return np.random.default_rng([market.seed, list(market.specs).index(ticker), day.toordinal(), salt])


def trades(market: SyntheticMarket, ticker: str, day: dt.date, per_day: int = 2000) -> pd.DataFrame:
    """Synthetic trades of one ticker-day in Massive's trades_v1 columns (ns timestamps)."""
    bars = market.minute(ticker, day)
    cols = ["ticker", "conditions", "correction", "exchange", "id", "participant_timestamp", "price",
            "sequence_number", "sip_timestamp", "size", "tape", "trf_id", "trf_timestamp"]
    if bars.empty:
        return pd.DataFrame(columns=cols)
    rng = _trade_rng(market, ticker, day, 1)
    weights = bars["volume"].to_numpy() / bars["volume"].sum()
    counts = rng.multinomial(per_day, weights)
    which = np.repeat(np.arange(len(bars)), counts)
    starts = bars.index.asi8[which]
    part = np.sort(starts + rng.integers(0, 60_000_000_000, len(which)))
    lo, hi = bars["low"].to_numpy()[which], bars["high"].to_numpy()[which]
    price = np.round(lo + (hi - lo) * rng.random(len(which)), 2 if lo.min() >= 1 else 4)
    size = rng.integers(1, 500, len(which)).astype("float64")
    if day >= FRACTIONAL_VOLUME_FROM:
        size = size + np.round(rng.random(len(which)), 6) * (rng.random(len(which)) < 0.2)
    conds = np.array(["", "12,37", "14,41", "37"])[rng.integers(0, 4, len(which))]
    trf = rng.random(len(which)) < 0.3
    return pd.DataFrame({
        "ticker": ticker, "conditions": conds, "correction": 0, "exchange": rng.integers(1, 21, len(which)),
        "id": [str(x) for x in rng.integers(10**13, 10**14, len(which))], "participant_timestamp": part,
        "price": price, "sequence_number": np.arange(1, len(which) + 1) * 7 + 1000, "sip_timestamp": part + 150_000,
        "size": size, "tape": 1 + (list(market.specs).index(ticker) % 3),
        "trf_id": np.where(trf, "201", ""), "trf_timestamp": np.where(trf, (part + 90_000).astype(str), ""),
    }, columns=cols)


def quotes(market: SyntheticMarket, ticker: str, day: dt.date, per_day: int = 2000) -> pd.DataFrame:
    """Synthetic NBBO quotes of one ticker-day in Massive's quotes_v1 columns (ns timestamps)."""
    bars = market.minute(ticker, day)
    cols = ["ticker", "ask_exchange", "ask_price", "ask_size", "bid_exchange", "bid_price", "bid_size",
            "conditions", "indicators", "participant_timestamp", "sequence_number", "sip_timestamp", "tape",
            "trf_timestamp"]
    if bars.empty:
        return pd.DataFrame(columns=cols)
    rng = _trade_rng(market, ticker, day, 2)
    which = np.sort(rng.integers(0, len(bars), per_day))
    part = np.sort(bars.index.asi8[which] + rng.integers(0, 60_000_000_000, per_day))
    mid = bars["close"].to_numpy()[which]
    half = np.maximum(0.005, np.round(mid * 0.0002, 2))
    return pd.DataFrame({
        "ticker": ticker, "ask_exchange": rng.integers(1, 21, per_day), "ask_price": np.round(mid + half, 2),
        "ask_size": rng.integers(1, 40, per_day) * 100.0, "bid_exchange": rng.integers(1, 21, per_day),
        "bid_price": np.round(mid - half, 2), "bid_size": rng.integers(1, 40, per_day) * 100.0,
        "conditions": "1", "indicators": "", "participant_timestamp": part,
        "sequence_number": np.arange(1, per_day + 1) * 3 + 500, "sip_timestamp": part + 120_000,
        "tape": 1 + (list(market.specs).index(ticker) % 3), "trf_timestamp": "",
    }, columns=cols)


def second_bars(minutes: pd.DataFrame) -> pd.DataFrame:
    """Three 1-second bars per minute bar, at :00, :20 and :40, walking open -> high ->
    low -> close, so they aggregate back to the minute exactly (first open, max high, min
    low, last close, summed volume); each carries the minute's VWAP; no trade count.
    The fake WebSocket's ``A`` events and the fake REST's ``second`` bars both use it."""
    if minutes.empty:
        return empty_bars()
    o, h, l, c = (minutes[k].to_numpy() for k in ("open", "high", "low", "close"))
    v = minutes["volume"].to_numpy()
    v1 = np.round(v / 3, 6)
    v3 = v - 2 * v1
    legs = [(o, h, o, h, v1), (h, h, l, l, v1), (l, np.maximum(l, c), l, c, v3)]
    stamps = minutes.index
    frames = []
    for k, (op, hi, lo, cl, vol) in enumerate(legs):
        frames.append(pd.DataFrame({"open": op, "high": np.maximum(hi, np.maximum(op, cl)),
                                    "low": np.minimum(lo, np.minimum(op, cl)), "close": cl, "volume": vol,
                                    "vwap": minutes["vwap"].to_numpy()},
                                   index=stamps + pd.Timedelta(seconds=20 * k)))
    out = pd.concat(frames).sort_index()
    out.index.name = "timestamp"
    out["transactions"] = pd.array([pd.NA] * len(out), dtype="Int64")
    return out
