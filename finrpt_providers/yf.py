"""yfinance's interface over the chain: code written for yfinance switches its source by
changing one import::

    from finrpt_providers import yf      # instead of: import yfinance as yf

    yf.Ticker("AAPL").history(period="1y")          # yfinance's frame, prices from the chain
    yf.download(["AAPL", "MSFT"], start="2024-01-02", end="2024-07-01")

Prices (``history``, ``download``, ``fast_info``'s prices) come from the configured chain
(``FINRPT_PRICE_PROVIDERS``), corporate actions (``dividends``, ``splits``, ``actions``)
from the corporate-actions sources, and what only some sources have (``info``, the
statements) from the first provider in the chain that serves it, with a log line saying
which. Frames have yfinance 1.x's exact shape: ``history``'s index ``Date`` (daily,
seconds on pandas 3) or ``Datetime`` (intraday, microseconds on pandas 3; nanoseconds for
both on pandas 2, as yfinance's there) in New York time, columns
``Open High Low Close Volume Dividends "Stock Splits"`` (``Adj Close`` with
``auto_adjust=False``), ``Volume`` int64 (rounded to whole shares, as Yahoo's),
``end`` exclusive. ``attrs`` carry our provenance (``provider``, ``sources``).

What is not implemented raises ``NotImplementedError`` naming the yfinance equivalent,
never a silently different value. As yfinance does, a ticker that cannot be served gives
an empty frame and an ERROR log line (``raise_errors=True`` raises our error instead).
"""

from __future__ import annotations

import datetime as dt
import functools
import numbers
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import redact
from .errors import InvalidQuery, ProviderError
from .intervals import MINUTE_INTERVALS
from .query import is_numpy_bool
from .text import shown

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

log = redact.logger(__name__)

#: yfinance's interval names -> ours (what yfinance has and we do not derive is refused)
INTERVALS = {"1m": "1m", "5m": "5m", "15m": "15m", "30m": "30m", "60m": "1h", "1h": "1h", "1d": "1d",
             "1wk": "1wk", "1mo": "1mo", "3mo": "3mo"}
PERIODS = ("1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max")


@functools.lru_cache(maxsize=2)
def _unit(daily: bool) -> str:
    """The datetime unit of yfinance's index under the installed pandas, made as yfinance
    makes it: daily rows from dates (pandas 3: ``s``), intraday rows and dividend/split
    events from Unix seconds (pandas 3: ``us``); pandas 2 gives ``ns`` to both."""
    import numpy as np
    import pandas as pd

    if daily:
        return pd.to_datetime([dt.date(2000, 1, 3)]).unit
    return pd.to_datetime(np.array([0]), unit="s").unit


def _not_implemented(what: str, instead: str) -> NotImplementedError:
    return NotImplementedError(f"finrpt_providers.yf does not implement {what}: use the real yfinance ({instead})")


def _config(config: Config | dict | None) -> Config:
    from .config import resolve_config

    return resolve_config(config)


def _ticker_of(symbol: str) -> str:
    """Yahoo's spelling -> ours: share classes with a dot (``BRK-B`` -> ``BRK.B``), indices as
    ``I:`` (``^GSPC`` -> ``I:SPX``)."""
    s = symbol.strip().upper()
    if s.startswith(("^", "I:")):
        from .query import normalize_ticker

        try:
            return normalize_ticker(s)
        except InvalidQuery:
            return s  # the chain's own error names it
    head, _, tail = s.rpartition("-")
    return f"{head}.{tail}" if head and len(tail) == 1 and tail.isalpha() else s


def _range(period: str | None, start: Any, end: Any, today: dt.date) -> tuple[dt.date, dt.date]:
    """yfinance's (period | start, end-exclusive) -> our inclusive session range."""
    import pandas as pd

    from . import calendar
    from .provider import EARLIEST_DATE, to_date

    last = to_date(end, "end") - dt.timedelta(days=1) if end is not None else today
    if start is not None:
        return to_date(start, "start"), last
    period = (period or "1mo").lower()
    if period not in PERIODS:
        raise InvalidQuery(f"period {period!r} is not one of yfinance's ({', '.join(PERIODS)})")
    if period in ("1d", "5d"):  # one session more: today's may have no bar yet (see _last_sessions)
        n = int(period[0]) + 1
        sessions = calendar.sessions(last - dt.timedelta(days=3 * n + 10), last)
        return (sessions[-n] if len(sessions) >= n else last), last
    if period == "ytd":
        return dt.date(last.year, 1, 1), last
    if period == "max":
        return EARLIEST_DATE, last
    months = {"mo": 1, "y": 12}[period.lstrip("0123456789")] * int(period.rstrip("moy"))
    return (pd.Timestamp(last) - pd.DateOffset(months=months)).date(), last


def _last_sessions(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The bars of the ``n`` most recent sessions that have bars (yfinance's ``1d``/``5d``)."""
    from .provider import session_days

    if not len(frame):
        return frame
    days = session_days(frame.index)
    keep = days.isin(days.unique()[-n:])
    attrs = dict(frame.attrs)
    out = frame[keep]
    out.attrs = attrs
    return out


def _interval(interval: str) -> str:
    ours = INTERVALS.get(interval)
    if ours is None:
        raise _not_implemented(f"interval={interval!r}", f"yfinance.Ticker.history(interval={interval!r})")
    return ours


def _yahoo_frame(bars: pd.DataFrame, interval: str, adj_close: pd.Series | None, actions: bool,
                 splits: pd.Series | None, dividends: pd.Series | None) -> pd.DataFrame:
    """Our bar frame -> yfinance's history frame."""
    import numpy as np
    import pandas as pd

    daily = interval not in MINUTE_INTERVALS
    idx = pd.DatetimeIndex(bars.index).as_unit(_unit(daily)).rename("Date" if daily else "Datetime")
    cols: dict[str, Any] = {"Open": bars["open"].to_numpy(), "High": bars["high"].to_numpy(),
                            "Low": bars["low"].to_numpy(), "Close": bars["close"].to_numpy()}
    if adj_close is not None:
        cols["Adj Close"] = adj_close.reindex(bars.index).to_numpy()
    # an index has no volume (NaN here): yfinance shows 0
    cols["Volume"] = np.rint(np.nan_to_num(bars["volume"].to_numpy(), nan=0.0)).astype("int64")
    out = pd.DataFrame(cols, index=idx)
    if actions:
        div = np.zeros(len(out))
        spl = np.zeros(len(out))
        days = np.asarray(out.index.normalize().date)
        first_of_day = ~pd.Index(days).duplicated()
        for ex, ratio in (splits if splits is not None else pd.Series(dtype="float64")).items():
            spl[(days == ex.date()) & first_of_day] = ratio
        later = splits if splits is not None else pd.Series(dtype="float64")
        for ex, cash in (dividends if dividends is not None else pd.Series(dtype="float64")).items():
            factor = float(np.prod(later[later.index > ex].to_numpy())) if len(later) else 1.0
            div[(days == ex.date()) & first_of_day] = cash / factor  # Yahoo's: in today's split basis
        out["Dividends"] = div
        out["Stock Splits"] = spl
    return out


def _no_repair(repair: bool) -> None:
    """``repair=True`` is refused, saying how we differ: yfinance rewrites prices it finds
    wrong (100x errors, missing bars, bad dividend adjustment) from other data; we never
    rewrite a source's price, we refuse an impossible bar and name it (``keepna`` is
    accepted either way: our frames hold no all-NaN rows to keep or drop)."""
    if repair:
        raise NotImplementedError(
            "finrpt_providers.yf does not implement repair=True: yfinance rewrites prices it judges wrong (100x "
            "errors, missing bars, dividend adjustment); finrpt_providers never rewrites a source's price, it "
            "refuses an impossible bar and names it (attrs['failed']). Call without repair, or use the real "
            "yfinance for its repairs")


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """yfinance's ``rounding=True``: every float column to the price hint's decimals (2; 4 when
    the last close is below $1, as Yahoo hints for sub-dollar stocks)."""
    import numpy as np

    closes = frame.filter(like="Close").to_numpy(dtype="float64", na_value=np.nan).ravel()
    closes = closes[~np.isnan(closes)]
    digits = 4 if len(closes) and closes[-1] < 1 else 2
    out = frame.copy()
    for c in out.columns:
        if out[c].dtype.kind == "f":
            out[c] = out[c].round(digits)
    out.attrs = dict(frame.attrs)
    return out


def _empty_history(interval: str, auto_adjust: bool, actions: bool) -> pd.DataFrame:
    import pandas as pd

    daily = INTERVALS.get(interval, interval) not in MINUTE_INTERVALS
    cols = ["Open", "High", "Low", "Close"] + ([] if auto_adjust else ["Adj Close"]) + ["Volume"]
    cols += ["Dividends", "Stock Splits"] if actions else []
    idx = pd.DatetimeIndex([], dtype=f"datetime64[{_unit(daily)}, America/New_York]",
                           name="Date" if daily else "Datetime")
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "Volume" else "float64") for c in cols}, index=idx)


class FastInfo:
    """yfinance's ``fast_info`` for prices: ``last_price``, ``regular_market_previous_close``,
    ``open``, ``day_high``, ``day_low``, ``last_volume`` (the last session's daily bar, as
    yfinance's), ``currency`` (attribute or item access, camelCase too). ``previous_close``
    is refused: yfinance's is the previous day's last extended-hours price, which the chain
    does not serve; other keys raise NotImplementedError naming yfinance's."""

    _KEYS = {"last_price": "lastPrice", "regular_market_previous_close": "regularMarketPreviousClose",
             "open": "open", "day_high": "dayHigh", "day_low": "dayLow", "last_volume": "lastVolume",
             "currency": "currency"}

    def __init__(self, ticker: Ticker):
        self._t = ticker
        self._values: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._values is None:
            h = self._t.history(period="5d", auto_adjust=False, actions=False, raise_errors=True)
            last, prev = h.iloc[-1], (h.iloc[-2] if len(h) > 1 else None)
            self._values = {"last_price": float(last["Close"]), "open": float(last["Open"]),
                            "day_high": float(last["High"]), "day_low": float(last["Low"]),
                            "last_volume": int(last["Volume"]),
                            "regular_market_previous_close": float(prev["Close"]) if prev is not None else None,
                            "currency": "USD"}
        return self._values

    def __getitem__(self, key: str) -> Any:
        snake = {v: k for k, v in self._KEYS.items()}.get(key, key)
        if snake in ("previous_close", "previousClose"):
            raise _not_implemented("fast_info['previous_close'] (yfinance's is the previous day's last "
                                   "extended-hours price)", "yfinance.Ticker(...).fast_info['previous_close']; "
                                   "the official close is fast_info['regular_market_previous_close'] here")
        if snake not in self._KEYS:
            raise _not_implemented(f"fast_info[{key!r}]", f"yfinance.Ticker(...).fast_info[{key!r}]")
        return self._load()[snake]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def keys(self) -> list[str]:
        return list(self._KEYS)


def _statement_attr(kind: str, frequency: str) -> property:
    return property(lambda self: self._statement(kind, frequency),
                    doc=f"{frequency} {kind} statement (line items as rows, period ends as columns, newest first)")


class Ticker:
    """``yfinance.Ticker`` over the chain. ``config``: a Config or dict of settings (else the
    usual configuration)."""

    def __init__(self, ticker: str, session: Any = None, config: Config | dict | None = None):
        if session is not None:
            raise _not_implemented("session=", "yfinance.Ticker(ticker, session=...)")
        if not isinstance(ticker, str) or not ticker.strip():
            raise InvalidQuery(f"ticker must be a symbol such as 'AAPL', not {ticker!r}")
        self.ticker = ticker.strip().upper()
        self._ours = _ticker_of(self.ticker)
        self._cfg = _config(config)
        self._info: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"finrpt_providers.yf.Ticker object <{self.ticker}>"

    # -- prices ------------------------------------------------------------------------
    def history(self, period: str | None = "1mo", interval: str = "1d", start: Any = None, end: Any = None,
                prepost: bool = False, actions: bool = True, auto_adjust: bool = True, back_adjust: bool = False,
                repair: bool = False, keepna: bool = False, proxy: Any = None, rounding: bool = False,
                timeout: float | None = 10, raise_errors: bool = False, as_of: Any = None) -> pd.DataFrame:
        """yfinance's ``Ticker.history``: prices from the chain, adjusted as yfinance's
        (``auto_adjust=True``: splits and dividends; ``False``: splits, plus ``Adj Close``).
        Intraday: the regular session (hourly bars at 09:30 ... 15:30) unless ``prepost=True``
        (04:00-20:00), as yfinance. ``as_of`` (ours, not yfinance's): prices as known on that
        date (only corporate actions up to it adjust; a ``period`` counts back from it)."""
        _no_repair(repair)
        extended = _prepost(prepost)
        known = _as_of(as_of)
        for flag, value, name in ((back_adjust, False, "back_adjust=True"), (proxy, None, "proxy=")):
            if flag != value:
                raise _not_implemented(name, f"yfinance.Ticker.history({name.rstrip('=')}...)")
        from .chain import get_prices

        ours = _interval(interval)
        try:
            first, last = _range(period, start, end, _until(self._cfg.today(), known))
            bars = get_prices(self._ours, first, last, interval=ours, adjustment=_adjustment(auto_adjust, ours),
                              config=self._cfg, extended_hours=extended, as_of=known)
            adj = None
            if not auto_adjust:
                adj = bars["close"] if ours in MINUTE_INTERVALS else get_prices(
                    self._ours, first, last, interval=ours, adjustment="total", config=self._cfg, as_of=known)["close"]
            if start is None and (period or "1mo").lower() in ("1d", "5d"):
                bars = _last_sessions(bars, int(period[0]))
                adj = _last_sessions(adj.to_frame(), int(period[0]))["close"] if adj is not None else None
            splits = dividends = None
            if actions and len(bars):
                splits, dividends = self._events(bars, known)
        except ProviderError as e:
            if raise_errors:
                raise
            log.error("%s: %s", self.ticker, e)  # yfinance's way: an empty frame and an error line
            out = _empty_history(interval, auto_adjust, actions)
            out.attrs["error"] = str(e)
            return out
        out = _yahoo_frame(bars, ours, adj, actions, splits, dividends)
        if rounding:
            out = _rounded(out)
        out.attrs.update(provider=bars.attrs.get("provider", ""), sources=bars.attrs.get("sources", []),
                         actions=bars.attrs.get("actions", ""))
        return out

    def _events(self, bars: pd.DataFrame, as_of: dt.date | None = None
                ) -> tuple[pd.Series | None, pd.Series | None]:
        """The events on the bars' sessions, and the splits that set the basis of the Dividends
        column: every split known today, or (``as_of``) those known then, as the prices are."""
        from .actions import available, closes_from, get_actions, happened
        from .timebase import session_days

        if not available(self._cfg)[0]:
            log.info("%s: no corporate-actions source: Dividends and Stock Splits are zero", self.ticker)
            return None, None
        acts = happened(get_actions(self._ours, self._cfg, closes_from(self._cfg),
                                    since=session_days(bars.index[:1])[0]), _until(self._cfg.today(), as_of))
        return acts.splits, acts.dividends

    def _all_events(self):
        from .actions import closes_from, get_actions, happened

        return happened(get_actions(self._ours, self._cfg, closes_from(self._cfg)), self._cfg.today())

    @property
    def dividends(self) -> pd.Series:
        """Cash dividends by ex-date in the one served basis (today's split basis, as Yahoo's:
        :func:`finrpt_providers.actions.served_dividends`), named ``Dividends``."""
        from .actions import served_dividends

        d = served_dividends(self._all_events())
        return self._event_series(d.index, list(d.to_numpy()), "Dividends")

    @property
    def splits(self) -> pd.Series:
        acts = self._all_events()
        return self._event_series(acts.splits.index, list(acts.splits.to_numpy()), "Stock Splits")

    @property
    def actions(self) -> pd.DataFrame:
        import pandas as pd

        d, s = self.dividends, self.splits
        idx = d.index.union(s.index)
        out = pd.DataFrame({"Dividends": d.reindex(idx, fill_value=0.0),
                            "Stock Splits": s.reindex(idx, fill_value=0.0)}, index=idx)
        out.index = out.index.normalize().as_unit(_unit(True)).rename("Date")  # on the session's row, as yfinance's
        return out

    @staticmethod
    def _event_series(index, values, name: str) -> pd.Series:
        import pandas as pd

        # yfinance 1.x keeps Yahoo's event time: the session's open, 09:30 New York
        idx = pd.DatetimeIndex(index).normalize() + pd.Timedelta(hours=9, minutes=30)
        return pd.Series([float(v) for v in values], index=idx.as_unit(_unit(False)).rename("Date"), name=name,
                         dtype="float64")

    @property
    def fast_info(self) -> FastInfo:
        return FastInfo(self)

    # -- what some sources have ------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        """The first provider in the chain serving company information (a log line names it);
        at least ``symbol`` and ``currency`` when none does."""
        if self._info is None:
            from .company import get_info

            info, source = get_info(self._ours, config=self._cfg)
            info.setdefault("symbol", self.ticker)
            info.setdefault("currency", "USD")
            log.info("%s: info from %s", self.ticker, source or "no source (symbol and currency only)")
            self._info = info
        return dict(self._info)

    def _statement(self, kind: str, frequency: str) -> pd.DataFrame:

        from .company import get_statements

        got, source = get_statements(self._ours, frequency=frequency, config=self._cfg)
        log.info("%s: %s %s statement from %s", self.ticker, frequency, kind, source or "no source (empty)")
        return got[kind].copy()

    # yfinance's statement attributes: (kind, frequency) each, with yfinance's row labels
    income_stmt = financials = _statement_attr("income", "yearly")
    quarterly_income_stmt = quarterly_financials = _statement_attr("income", "quarterly")
    balance_sheet = _statement_attr("balance_sheet", "yearly")
    quarterly_balance_sheet = _statement_attr("balance_sheet", "quarterly")
    cashflow = _statement_attr("cash_flow", "yearly")
    quarterly_cashflow = _statement_attr("cash_flow", "quarterly")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise _not_implemented(f"Ticker.{name}", f"yfinance.Ticker(...).{name}")


def download(tickers: str | Sequence[str], start: Any = None, end: Any = None, actions: bool = False,
             threads: bool | int = True, ignore_tz: bool | None = None, group_by: str = "column",
             auto_adjust: bool = True, back_adjust: bool = False, repair: bool = False, keepna: bool = False,
             progress: bool = True, period: str | None = None, interval: str = "1d", prepost: bool = False,
             proxy: Any = None, rounding: bool = False, timeout: float | None = 10, session: Any = None,
             multi_level_index: bool = True, config: Config | dict | None = None, as_of: Any = None) -> pd.DataFrame:
    """yfinance's ``download`` over the chain's basket queries: columns (``Price``,
    ``Ticker``) sorted alphabetically (``group_by="ticker"``: (``Ticker``, ``Price``), tickers
    sorted where yfinance orders them as its threads finish), a
    tz-naive index, one all-NaN column set for a ticker nobody could serve (its reason in
    ``attrs["failed"]`` and an error line). ``threads`` and ``progress`` are accepted and
    ignored: the chain decides how to fetch."""
    import numpy as np
    import pandas as pd

    from .chain import get_prices

    _no_repair(repair)
    extended = _prepost(prepost)
    known = _as_of(as_of)
    for flag, value, name in ((back_adjust, False, "back_adjust=True"),
                              (proxy, None, "proxy="), (session, None, "session="), (ignore_tz, None, "ignore_tz=")):
        if flag != value:
            raise _not_implemented(name, f"yfinance.download(..., {name.rstrip('=')}...)")
    if group_by not in ("column", "ticker"):
        raise InvalidQuery(f"group_by={group_by!r}: 'column' or 'ticker'")
    symbols = _symbols(tickers)
    cfg = _config(config)
    ours = _interval(interval)
    first, last = _range(period, start, end, _until(cfg.today(), known))
    by_symbol = {s: _ticker_of(s) for s in symbols}
    adjustment = _adjustment(auto_adjust, ours)
    long = get_prices(list(dict.fromkeys(by_symbol.values())), first, last, interval=ours, adjustment=adjustment,
                      config=cfg, errors="omit", extended_hours=extended, as_of=known)
    adj = None
    if not auto_adjust:
        adj = long["close"] if ours in MINUTE_INTERVALS else get_prices(
            list(dict.fromkeys(by_symbol.values())), first, last, interval=ours, adjustment="total", config=cfg,
            errors="omit", as_of=known)["close"]
    for t, why in long.attrs.get("failed", {}).items():
        log.error("%s: %s", t, why)
    fields = ["Open", "High", "Low", "Close"] + ([] if auto_adjust else ["Adj Close"]) + ["Volume"]
    src = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}
    stamps = long.index.get_level_values("timestamp")
    daily = ours not in MINUTE_INTERVALS
    naive = pd.DatetimeIndex(stamps).tz_localize(None).as_unit(_unit(daily))
    index = pd.DatetimeIndex(sorted(set(naive)), name="Date" if daily else "Datetime")
    if start is None and (period or "1mo").lower() in ("1d", "5d"):  # the n most recent sessions, as history
        days = index.normalize()
        index = index[days.isin(days.unique()[-int(period[0]):])]
    def columns_of(frame: pd.DataFrame, column: str) -> dict[str, pd.Series]:
        """ticker -> that column on the naive index."""
        t_level = frame.index.get_level_values("ticker")
        ts = pd.DatetimeIndex(frame.index.get_level_values("timestamp")).tz_localize(None).as_unit(naive.unit)
        out = {}
        for t in set(by_symbol.values()):
            mask = np.asarray(t_level == t)
            out[t] = pd.Series(frame[column].to_numpy()[mask], index=ts[mask], dtype="float64")
        return out

    series = {f: columns_of(long, src[f]) for f in fields if f != "Adj Close"}
    if adj is not None:
        series["Adj Close"] = columns_of(adj.to_frame("close"), "close")
    parts = {(f, sym): series[f][by_symbol[sym]].reindex(index) for sym in sorted(symbols) for f in fields}
    for key, col in parts.items():  # whole shares as yfinance gives them, where every row has a bar
        if key[0] == "Volume" and len(col) and col.notna().all():
            parts[key] = col.round().astype("int64")
    if actions:
        fields = [*fields, "Dividends", "Stock Splits"]
        for sym in sorted(symbols):
            for f, col in _actions_columns(long, by_symbol[sym], ours, cfg, index, known).items():
                parts[(f, sym)] = col
    out = pd.DataFrame(parts, index=index)
    out.columns = pd.MultiIndex.from_tuples(list(out.columns), names=["Price", "Ticker"])
    out = out.sort_index(axis=1, level=[0, 1])
    if group_by == "ticker":
        out.columns = out.columns.swaplevel(0, 1)
        out = out[[(s, f) for s in sorted(symbols) for f in fields]]
        out.columns = out.columns.set_names(["Ticker", "Price"])
    if not multi_level_index and len(symbols) == 1:
        out.columns = out.columns.get_level_values("Price" if group_by == "column" else 1)
    if rounding:
        out = _rounded(out)
    out.attrs.update(provider=long.attrs.get("provider", {}), sources=long.attrs.get("sources", {}),
                     failed=long.attrs.get("failed", {}))
    return out


def _actions_columns(long: pd.DataFrame, ticker: str, interval: str, cfg: Config, index: pd.DatetimeIndex,
                     as_of: dt.date | None = None) -> dict[str, pd.Series]:
    """``download(actions=True)``'s Dividends and Stock Splits of ``ticker`` on the naive
    ``index``: as ``history`` gives them (on the session's first row, dividends in today's
    split basis), NaN on rows where the ticker has no bar."""
    import pandas as pd

    have = ticker in set(long.index.get_level_values("ticker"))
    if not have:
        return {f: pd.Series(float("nan"), index=index) for f in ("Dividends", "Stock Splits")}
    bars = long.xs(ticker, level="ticker")
    t = Ticker(ticker, config=cfg)
    splits, dividends = t._events(bars, as_of)
    frame = _yahoo_frame(bars, interval, None, True, splits, dividends)
    frame.index = pd.DatetimeIndex(frame.index).tz_localize(None).as_unit(index.unit)
    return {f: frame[f].reindex(index) for f in ("Dividends", "Stock Splits")}


class Tickers:
    """yfinance's ``Tickers``: ``.symbols``, ``.tickers`` (symbol -> :class:`Ticker`), and
    ``.history(...)`` / ``.download(...)`` as :func:`download` of every symbol (one basket
    question to the chain; ``actions=True`` by default, as yfinance's)."""

    def __init__(self, tickers: str | Iterable[str], session: Any = None, config: Config | dict | None = None):
        self.symbols = _symbols(tickers)
        self._cfg = _config(config)
        self.tickers = {s: Ticker(s, config=self._cfg) for s in self.symbols}

    def __repr__(self) -> str:
        return f"finrpt_providers.yf.Tickers object <{','.join(self.symbols)}>"

    def history(self, period: str | None = "1mo", interval: str = "1d", start: Any = None, end: Any = None,
                prepost: bool = False, actions: bool = True, auto_adjust: bool = True, repair: bool = False,
                proxy: Any = None, threads: bool | int = True, group_by: str = "column", progress: bool = True,
                timeout: float | None = 10, **kwargs: Any) -> pd.DataFrame:
        return download(self.symbols, start=start, end=end, actions=actions, threads=threads, group_by=group_by,
                        auto_adjust=auto_adjust, repair=repair, progress=progress,
                        period=period if start is None else None, interval=interval, prepost=prepost, proxy=proxy,
                        timeout=timeout, config=self._cfg, **kwargs)

    download = history


def _as_of(value: Any) -> dt.date | None:
    from .query import normalize_as_of

    return normalize_as_of(value)


def _until(today: dt.date, as_of: dt.date | None) -> dt.date:
    """The day a ``period`` counts back from: today, or the as-of date when earlier."""
    return today if as_of is None else min(today, as_of)


def _adjustment(auto_adjust: bool, interval: str) -> str:
    """What yfinance's ``auto_adjust`` means at ``interval``: daily and longer bars with it are
    total-return adjusted (Yahoo's adjclose); intraday bars are split-adjusted either way (Yahoo
    sends no adjclose intraday, so yfinance's ``Adj Close`` is the close there)."""
    return "total" if auto_adjust and interval not in MINUTE_INTERVALS else "splits"


def _prepost(prepost: Any) -> bool:
    """yfinance's ``prepost`` as our ``extended_hours`` (True, False, 0 or 1)."""
    if isinstance(prepost, bool) or is_numpy_bool(prepost) or (
            isinstance(prepost, numbers.Integral) and prepost in (0, 1)):  # a NumPy int too
        return bool(prepost)
    raise InvalidQuery(f"prepost must be True or False, not {shown(prepost)}: False (the default) gives "
                       "the regular session 09:30-16:00 New York, True 04:00-20:00")


def _symbols(tickers: str | Iterable[str]) -> list[str]:
    if isinstance(tickers, str):
        items = tickers.replace(",", " ").split()
    else:
        try:
            items = [str(t) for t in tickers]
        except TypeError:
            raise InvalidQuery(f"tickers must be a string or a list of strings, not {type(tickers).__name__}") from None
    items = list(dict.fromkeys(s.strip().upper() for s in items if s and s.strip()))
    if not items:
        raise InvalidQuery("no tickers given: yf.download('AAPL MSFT') or yf.download(['AAPL', 'MSFT'])")
    return items


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(name)
    raise _not_implemented(f"yf.{name}", f"yfinance.{name}")


__all__ = ["Ticker", "Tickers", "download", "FastInfo"]
