"""Provider ``yfinance``: Yahoo Finance through the yfinance library (free, no key).

* ``Ticker.history`` per symbol; our inclusive ``end`` becomes Yahoo's exclusive one.
* Native adjustments: ``total`` = ``auto_adjust=True`` (splits and dividends), daily
  only (intraday charts carry no adjclose); ``splits`` = ``auto_adjust=False`` and its
  ``Close``. Yahoo never serves as-traded
  prices: the core derives ``raw`` by undoing the configured splits.
* Corporate actions (``serves_actions``): ``Stock Splits`` and ``Dividends`` of the whole
  history, dividends converted back to the cash declared then; quarterly statements
  (``serves_statements``) for the finrpt surface.
* Yahoo volumes are whole shares (yfinance casts them to int64); ``vwap`` and
  ``transactions`` are not served, so they are missing.
* Intraday bars include pre- and post-market (04:00-20:00 ET), like Massive; Yahoo
  keeps 1m bars for about 30 days, 5m-30m for 60 and 1h for 730: older intraday
  questions are declared unservable so the chain skips us before calling.
* yfinance keeps a process-wide session and config. We swap in our own for the call
  and put back whatever was there, under a lock, so user code that also uses
  yfinance is not affected.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import redact
from ..errors import (
    DataIntegrityError,
    NoData,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    UnsupportedQuery,
)
from ..config import Setting
from ..hookspecs import hookimpl
from ..provider import ET, PriceProvider, PriceQuery

if TYPE_CHECKING:  # imported where used: listing providers must not load pandas/pyarrow
    import pandas as pd

NAME = "yfinance"
# How far back Yahoo keeps intraday bars (days), and the span one request may cover.
LOOKBACK_DAYS = {"1m": 29, "5m": 59, "15m": 59, "30m": 59, "1h": 729}
REQUEST_SPAN_DAYS = {"1m": 7, "5m": 59, "15m": 59, "30m": 59, "1h": 365, "1d": 36500}
YAHOO_INTERVAL = {"1m": "1m", "5m": "5m", "15m": "15m", "30m": "30m", "1h": "60m", "1d": "1d"}

log = redact.logger(__name__)
_lock = threading.RLock()
_session_by_base: dict = {}  # our HTTP session per (base URL, timeout): yfinance's download is given it
# yfinance logs URLs and answers at DEBUG: what a server echoes there is scrubbed like our own records
redact.protect("yfinance", "yfinance.data", "yfinance.base", "yfinance.scrapers.history", *redact.HTTP_LOGGERS)
_yfdata_by_base: dict[tuple[str | None, float], object] = {}


SETTINGS = (
    Setting("FINRPT_YFINANCE_BASE_URL", NAME, "base_url", "url",
            help="send every *.yahoo.com request here instead (the sandbox's fake Yahoo)"),
    Setting("FINRPT_YFINANCE_TIMEOUT", NAME, "timeout", "float", 15.0, gt=0, le=600,
            help="seconds any one Yahoo request may take"),
)


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    import logging

    lg = logging.getLogger(name)
    prev = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        lg.setLevel(prev)


def _timeout(config) -> float:
    return config.value("FINRPT_YFINANCE_TIMEOUT") if config else 15.0


def to_yahoo_symbol(ticker: str) -> str:
    """SIP spelling -> Yahoo's (``BRK.B`` -> ``BRK-B``); an index ``I:SPX`` -> ``^GSPC``."""
    if ticker.startswith("I:"):
        from ..query import CARET_INDICES

        return next((y for y, ours in CARET_INDICES.items() if ours == ticker), "^" + ticker[2:])
    return ticker.replace(".", "-")


def _make_session(base_url: str | None, timeout: float):
    """A curl_cffi session (Chrome impersonation, as yfinance uses) whose every request is
    bounded by ``timeout``: yfinance's own cookie and crumb calls wait up to 30 s otherwise.
    With ``base_url``, every ``https://*.yahoo.com`` request goes there (the sandbox)."""
    from urllib.parse import urlsplit

    from curl_cffi import requests as curl_requests

    base = base_url.rstrip("/") if base_url else None

    class BoundedSession(curl_requests.Session):
        def request(self, method, url, *args, **kwargs):
            given = kwargs.get("timeout")
            kwargs["timeout"] = timeout if given is None else min(float(given), timeout)
            if base:
                parts = urlsplit(url)
                if parts.hostname and (parts.hostname == "yahoo.com" or parts.hostname.endswith(".yahoo.com")):
                    url = base + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            return super().request(method, url, *args, **kwargs)

    return BoundedSession(impersonate="chrome")


@contextlib.contextmanager
def _yfinance_scope(base_url: str | None, timeout: float = 15.0) -> Iterator[object]:
    """Use our own YfData (session, cookie, crumb) and raise errors, then restore."""
    import yfinance as yf
    from yfinance.data import SingletonMeta, YfData

    with _lock, warnings.catch_warnings():
        # yfinance 1.x emits many pandas deprecation warnings per call: not the user's business.
        warnings.filterwarnings("ignore", module=r"yfinance(\.|$)")
        prev_hide = yf.config.debug.hide_exceptions
        prev_instance = SingletonMeta._instances.get(YfData)
        ours = _yfdata_by_base.get((base_url, timeout))
        if ours is None:
            SingletonMeta._instances.pop(YfData, None)
            session = _make_session(base_url, timeout)
            ours = YfData(session=session)
            _yfdata_by_base[(base_url, timeout)] = ours
            _session_by_base[(base_url, timeout)] = session
        SingletonMeta._instances[YfData] = ours
        yf.config.debug.hide_exceptions = False
        try:
            yield yf
        finally:
            yf.config.debug.hide_exceptions = prev_hide
            if prev_instance is None:
                SingletonMeta._instances.pop(YfData, None)
            else:
                SingletonMeta._instances[YfData] = prev_instance


def _map_error(e: BaseException, symbol: str, query: PriceQuery) -> ProviderError:
    from yfinance import exceptions as yfe

    if isinstance(e, ProviderError):
        return e
    if isinstance(e, yfe.YFRateLimitError):
        return RateLimited("Yahoo is rate limiting this machine (HTTP 429): wait a few minutes, or put "
                           "another provider first in FINRPT_PRICE_PROVIDERS", provider=NAME)
    if isinstance(e, (yfe.YFTzMissingError, yfe.YFPricesMissingError, yfe.YFTickerMissingError)):
        return NoData(f"Yahoo has no {query.interval} bars for {symbol} from {query.start} to {query.end}: "
                      "check the ticker (Yahoo may also not know it)", provider=NAME)
    if isinstance(e, yfe.YFInvalidPeriodError):
        return UnsupportedQuery(f"Yahoo refused the range: {e}", provider=NAME)
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status == 404:
        return NoData(f"Yahoo does not know {symbol} (HTTP 404): check the ticker", provider=NAME)
    if status == 429:
        return RateLimited("Yahoo is rate limiting this machine (HTTP 429): wait a few minutes", provider=NAME)
    if isinstance(e, (OSError, yfe.YFException)) or (status is not None and status >= 500):
        return ProviderUnavailable(f"cannot reach Yahoo ({type(e).__name__}: {e}): check the network, "
                                   "or try again later", provider=NAME)
    if isinstance(e, ValueError):  # JSON decode of an outage page
        return ProviderUnavailable(f"Yahoo answered with something that is not price data ({type(e).__name__}); "
                                   "try again later", provider=NAME)
    return DataIntegrityError(f"could not read Yahoo's answer for {symbol} ({type(e).__name__}: {e})",
                              provider=NAME)


class YFinanceProvider(PriceProvider):
    name = NAME
    intervals = frozenset({"1m", "5m", "15m", "30m", "1h", "1d"})
    #: Yahoo serves the regular session itself (includePrePost=false; hourly bars from 09:30),
    #: so a regular-session hour is one request of 1h bars, not of 30m ones (kept 60 days only)
    regular_intervals = frozenset({"1m", "5m", "15m", "30m", "1h"})
    adjustments = frozenset({"splits", "total"})
    serves_actions = True
    serves_statements = True
    statement_frequencies = frozenset({"quarterly", "yearly"})
    settings = SETTINGS
    requires = ("yfinance",)
    description = "Yahoo Finance via yfinance (free, no key; rate limited; whole-share volumes)"

    def earliest(self, query: PriceQuery, today: dt.date) -> dt.date | None:
        days = LOOKBACK_DAYS.get(query.interval)
        return None if days is None else today - dt.timedelta(days=days)

    def _history(self, ticker, start: dt.date, end_inclusive: dt.date, interval: str, auto_adjust: bool,
                 prepost: bool = False) -> pd.DataFrame:
        import pandas as pd

        span = REQUEST_SPAN_DAYS[interval]
        frames = []
        lo = start
        timeout = _timeout(self.config)
        while lo <= end_inclusive:
            hi = min(end_inclusive, lo + dt.timedelta(days=span - 1))
            df = ticker.history(start=lo.isoformat(), end=(hi + dt.timedelta(days=1)).isoformat(),
                                interval=YAHOO_INTERVAL[interval], auto_adjust=auto_adjust, actions=True,
                                prepost=prepost, repair=False, timeout=timeout)
            if not df.empty:
                frames.append(df)
            lo = hi + dt.timedelta(days=1)
        if not frames:
            return pd.DataFrame()
        out = pd.concat(frames)
        return out[~out.index.duplicated(keep="first")].sort_index()

    def native_adjustments(self, interval: str) -> frozenset[str]:
        # Yahoo's intraday charts carry no adjclose: yfinance's intraday auto_adjust is not the
        # total-return series the daily bars are, so the core derives intraday `total`.
        return self.adjustments if interval == "1d" else frozenset({"splits"})

    def fetch(self, query: PriceQuery) -> pd.DataFrame:
        symbol = to_yahoo_symbol(query.ticker)
        base_url = self.config.get("FINRPT_YFINANCE_BASE_URL") if self.config else None
        try:
            with _yfinance_scope(base_url, _timeout(self.config)) as yf:
                hist = self._history(yf.Ticker(symbol), query.start, query.end, query.interval,
                                     auto_adjust=query.adjustment == "total",
                                     prepost=query.intraday and query.extended_hours)
        except Exception as e:
            raise _map_error(e, symbol, query) from None
        if hist.empty:
            raise NoData(f"Yahoo returned no {query.interval} bars for {symbol} from {query.start} to {query.end}",
                         provider=NAME)
        try:
            return self._to_bars(hist, query)
        except (KeyError, TypeError, ValueError) as e:
            raise DataIntegrityError(f"unexpected yfinance frame for {symbol}: {type(e).__name__}: {e}",
                                     provider=NAME) from None

    #: tickers per yfinance download call (its own batching: threads over one session)
    BATCH = 50

    def fetch_basket(self, queries: list[PriceQuery]) -> dict[str, pd.DataFrame | ProviderError]:
        """Daily baskets as yfinance's multi-ticker ``download`` fetches them: chunks of
        BATCH tickers, its threads sharing our session, under our yfinance lock. A ticker
        the batch leaves empty is asked again on its own, so its error is mapped as for a
        single ticker (a rate limit is not a missing ticker). Intraday: one ticker at a time
        (Yahoo's span limits are per request)."""
        from ..provider import report_done

        out: dict[str, pd.DataFrame | ProviderError] = {}
        q0 = queries[0]
        batched: dict[str, pd.DataFrame] = {}
        if q0.interval == "1d":
            base_url = self.config.get("FINRPT_YFINANCE_BASE_URL") if self.config else None
            for i in range(0, len(queries), self.BATCH):
                chunk = queries[i:i + self.BATCH]
                symbols = {to_yahoo_symbol(q.ticker): q for q in chunk}
                try:
                    with _yfinance_scope(base_url, _timeout(self.config)) as yf, _quiet("yfinance"):
                        # its own error lines are not ours to print: each empty ticker is asked again below
                        got = yf.download(list(symbols), start=q0.start.isoformat(),
                                          end=(q0.end + dt.timedelta(days=1)).isoformat(), interval="1d",
                                          auto_adjust=q0.adjustment == "total", actions=False, progress=False,
                                          threads=min(4, len(symbols)), group_by="ticker", repair=False,
                                          timeout=_timeout(self.config), multi_level_index=True,
                                          session=_session_by_base[(base_url, _timeout(self.config))])
                except Exception as e:  # the whole chunk: each ticker is asked on its own below
                    log.info("yfinance batch of %d failed (%s): asking one at a time", len(symbols), e)
                    continue
                for sym, q in symbols.items():
                    try:
                        hist = got[sym].dropna(how="all") if got is not None and sym in got.columns.get_level_values(0) \
                            else None
                        if hist is not None and not hist.empty:
                            batched[q.ticker] = self._to_bars(hist, q)
                            report_done(q.ticker)
                    except (KeyError, TypeError, ValueError):
                        pass  # asked on its own below
        for q in queries:
            if q.ticker in batched:
                out[q.ticker] = batched[q.ticker]
                continue
            try:
                out[q.ticker] = self.fetch(q)
            except ProviderError as e:
                out[q.ticker] = e
            report_done(q.ticker)
        return out

    def fetch_actions(self, ticker: str):
        return corporate_actions(self.config, ticker)

    serves_info = True

    def fetch_statements(self, ticker: str, frequency: str = "quarterly") -> dict:
        prefix = {"quarterly": "quarterly_", "yearly": ""}.get(frequency)
        if prefix is None:
            raise UnsupportedQuery(f"statements frequency {frequency!r}: 'quarterly' or 'yearly'", provider=NAME)
        frames = quarterly_statements(self.config, ticker, prefix)
        return {"income": frames[f"{prefix}income_stmt"], "balance_sheet": frames[f"{prefix}balance_sheet"],
                "cash_flow": frames[f"{prefix}cashflow"]}

    def fetch_info(self, ticker: str) -> dict:
        """Yahoo's ``info`` for ``ticker`` (a plain dict)."""
        symbol = to_yahoo_symbol(ticker)
        base_url = self.config.get("FINRPT_YFINANCE_BASE_URL") if self.config else None
        query = PriceQuery(ticker, "1900-01-01", self.config.today(), "1d", "raw")
        try:
            with _yfinance_scope(base_url, _timeout(self.config)) as yf:
                info = yf.Ticker(symbol).info
        except Exception as e:
            raise _map_error(e, symbol, query) from None
        if not isinstance(info, dict) or not info:
            raise NoData(f"Yahoo has no information for {symbol}", provider=NAME)
        return dict(info)

    @staticmethod
    def _to_bars(hist: pd.DataFrame, query: PriceQuery) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        idx = pd.DatetimeIndex(hist.index)
        idx = (idx.tz_localize(ET) if idx.tz is None else idx.tz_convert(ET)).as_unit("ns").rename("timestamp")
        if query.interval == "1d":
            idx = idx.normalize()
        bars = pd.DataFrame({
            "open": hist["Open"].to_numpy(dtype="float64"),
            "high": hist["High"].to_numpy(dtype="float64"),
            "low": hist["Low"].to_numpy(dtype="float64"),
            "close": hist["Close"].to_numpy(dtype="float64"),
            # an index has no volume: Yahoo's 0 (or its composite count) is not the index's
            "volume": np.nan if query.ticker.startswith("I:") else hist["Volume"].to_numpy(dtype="float64"),
            "vwap": np.nan,
        }, index=idx)
        bars["transactions"] = pd.array([pd.NA] * len(bars), dtype="Int64")
        days = bars.index.normalize()
        keep = (days >= pd.Timestamp(query.start, tz=ET)) & (days <= pd.Timestamp(query.end, tz=ET))
        return bars[keep]


def corporate_actions(config, ticker: str):
    """(split ratios, cash dividends as declared) by ex-date (ET) from Yahoo, all history.

    Yahoo reports dividends split-adjusted; they are converted back to the cash paid
    then (multiplied by every later split ratio), which the adjustment rule needs.
    (The core caches them: :mod:`finrpt_providers.actions`.)
    """
    import numpy as np
    import pandas as pd

    base_url = config.get("FINRPT_YFINANCE_BASE_URL") if config else None
    symbol = to_yahoo_symbol(ticker)
    timeout = _timeout(config)
    query = PriceQuery(ticker, "1900-01-01", config.today(), "1d", "raw")
    try:
        with _yfinance_scope(base_url, timeout) as yf:
            hist = yf.Ticker(symbol).history(period="max", interval="1d", auto_adjust=False, actions=True,
                                             repair=False, timeout=timeout)
    except Exception as e:
        raise _map_error(e, symbol, query) from None
    if hist.empty:
        raise NoData(f"Yahoo has no history for {symbol}, so no corporate actions", provider=NAME)
    days = pd.DatetimeIndex(hist.index).tz_convert(ET).normalize().as_unit("ns")
    split_col = hist["Stock Splits"].to_numpy(dtype="float64") if "Stock Splits" in hist else None
    div_col = hist["Dividends"].to_numpy(dtype="float64") if "Dividends" in hist else None
    splits = pd.Series(dtype="float64", index=pd.DatetimeIndex([], tz=ET).as_unit("ns"), name="ratio")
    if split_col is not None:
        mask = (split_col > 0) & (split_col != 1)
        splits = pd.Series(split_col[mask], index=days[mask], name="ratio")
    dividends = pd.Series(dtype="float64", index=pd.DatetimeIndex([], tz=ET).as_unit("ns"), name="cash")
    if div_col is not None:
        mask = div_col > 0
        later = [float(np.prod(splits[splits.index > ex].to_numpy())) for ex in days[mask]] if mask.any() else []
        dividends = pd.Series(div_col[mask] * np.array(later), index=days[mask], name="cash")
    return splits, dividends


def quarterly_statements(config, ticker: str, prefix: str = "quarterly_") -> dict:
    """yfinance's quarterly (``prefix="quarterly_"``) or yearly (``""``) income statement,
    balance sheet and cash flow (line items as rows, period ends as columns); a statement
    Yahoo has nothing for is an empty frame."""
    import pandas as pd
    from yfinance import exceptions as yfe

    symbol = to_yahoo_symbol(ticker)
    base_url = config.get("FINRPT_YFINANCE_BASE_URL") if config else None
    query = PriceQuery(ticker, "1900-01-01", config.today(), "1d", "raw")
    out = {}
    with _yfinance_scope(base_url, _timeout(config)) as yf:
        t = yf.Ticker(symbol)
        for attr in (f"{prefix}income_stmt", f"{prefix}balance_sheet", f"{prefix}cashflow"):
            try:
                out[attr] = getattr(t, attr)
            except yfe.YFException as e:
                if "Empty fundamentals" not in str(e):
                    raise _map_error(e, symbol, query) from None
                out[attr] = pd.DataFrame()
            except Exception as e:
                raise _map_error(e, symbol, query) from None
        # The currency the statements are reported in (an ADR's may not be its quote's):
        # said on each frame for the core's statements gate; best effort (unnamed if Yahoo
        # does not say, and the gate then says it took them as USD).
        currency = None
        if any(isinstance(f, pd.DataFrame) and not f.empty for f in out.values()):
            try:
                info = t.info
                currency = info.get("financialCurrency") if isinstance(info, dict) else None
            except Exception as e:  # noqa: BLE001 - the statements stand without it
                log.info("Yahoo's financialCurrency of %s unavailable (%s)", symbol, type(e).__name__)
    for frame in out.values():
        if isinstance(frame, pd.DataFrame) and isinstance(currency, str) and currency.strip():
            frame.attrs["currency"] = currency.strip().upper()
    return out


@hookimpl
def register_price_providers(register):
    register(YFinanceProvider())
