"""The finrpt surface: what finrpt's ``Dataer`` calls for prices, backed by the chain.

finrpt is never imported. Patch finrpt's ``Dataer`` class with :func:`install` (works
even when the class defines the methods itself), mix :class:`DataerMixin` into a class
that does not define them, or use the standalone :class:`Dataer`. Signatures and date semantics are finrpt's own:
``'YYYY-MM-DD'`` strings, ``end_date`` EXCLUSIVE (as yfinance), and a default
window of 3 months before ``end_date``.

The returned dict (everything picklable)::

    {"stock_info": {"symbol", "currency", "provider", ...},
     "stock_data": yfinance-shaped frame: tz-aware index "Date",
                   Open High Low Close Volume Dividends "Stock Splits", plus "date"
                   (values whose str() is 'YYYY-MM-DD'),
     "stock_income" / "stock_balance_sheet" / "stock_cash_flow": yfinance quarterly
                   statements up to end_date (empty frames when yfinance is not usable),
     "sp500_stock_data" and "csi300_stock_data": the SPY benchmark over the same window,
                   with lowercase "date" and "close"}

``get_finacncials_yf`` returns prices adjusted as yfinance's default
(``auto_adjust=True``: splits and dividends); ``get_finacncials_massive`` as
Massive's default (``adjusted=true``: splits only). Both go through the configured
chain (``FINRPT_PRICE_PROVIDERS``), so either can be served by any provider.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from . import redact
from .errors import InvalidQuery, ProviderError, UnsupportedQuery

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

log = redact.logger(__name__)
#: the S&P 500 (finrpt's fork puts SPY in this slot): the index where a provider serves it, else
#: SPY as its proxy (FINRPT_INDEX_PROXIES, here on by default), named in stock_info["benchmark"]
BENCHMARK = "I:SPX"
BENCHMARK_PROXY = "SPY"
_A_SHARE = re.compile(r"^(\d{6})(\.(SS|SZ|SH|BJ))?$", re.IGNORECASE)
_STATEMENTS = {"stock_income": "income", "stock_balance_sheet": "balance_sheet", "stock_cash_flow": "cash_flow"}


def is_us_stock(code: str) -> bool:
    """finrpt's routing rule: US unless it ends in .SS/.SZ or starts with six digits."""
    code = code.strip().upper()
    return not (code.endswith((".SS", ".SZ")) or re.match(r"^\d{6}", code))


def _window(end_date: str, start_date: str | None) -> tuple[dt.date, dt.date]:
    """finrpt's dates -> our inclusive session range (end_date is exclusive there)."""
    from .provider import to_date

    end_excl = to_date(end_date, "end_date")
    if start_date is None:
        import pandas as pd

        start = (pd.Timestamp(end_excl) - pd.DateOffset(months=3)).date()
    else:
        start = to_date(start_date, "start_date")
    last = end_excl - dt.timedelta(days=1)
    if start > last:
        raise InvalidQuery(f"start_date {start} is not before end_date {end_excl} (end_date is exclusive)")
    return start, last


class DataerMixin:
    """Price methods for finrpt's ``Dataer``; needs no attribute from the host class.

    ``finrpt_config`` (optional attribute or constructor argument of :class:`Dataer`):
    a Config or a dict of settings; otherwise the usual configuration is read.
    """

    finrpt_config: Config | dict | None = None
    #: True: prices as known on the report's date (``end_date``): only corporate actions with an
    #: ex-date on or before it adjust (a past report quotes what was quoted then)
    finrpt_point_in_time: bool = False

    # -- the two finrpt entry points ------------------------------------------------
    def get_finacncials_yf(self, stock_code: str, end_date: str, start_date: str | None = None) -> dict[str, Any]:
        return self._financials(stock_code, end_date, start_date, adjustment="total")

    def get_finacncials_massive(self, stock_code: str, end_date: str, start_date: str | None = None) -> dict[str, Any]:
        return self._financials(stock_code, end_date, start_date, adjustment="splits")

    # -- the work ---------------------------------------------------------------------
    def _config(self) -> Config:
        from .config import resolve_config

        return resolve_config(self.finrpt_config)

    def _financials(self, stock_code: str, end_date: str, start_date: str | None, adjustment: str) -> dict:
        if not isinstance(stock_code, str) or not stock_code.strip():
            raise InvalidQuery(f"stock_code must be a ticker such as 'AAPL', not {stock_code!r}")
        if not is_us_stock(stock_code) or _A_SHARE.match(stock_code.strip()):
            raise UnsupportedQuery(f"{stock_code!r} is an A-share code (Shanghai/Shenzhen): finrpt_providers serves "
                                   "US equities; use finrpt's own akshare path (get_finacncials_ak) for it")
        start, last = _window(end_date, start_date)
        cfg = self._config()
        from .chain import get_prices

        from .provider import to_date

        as_of = to_date(end_date, "end_date") if getattr(self, "finrpt_point_in_time", False) else None
        bars = get_prices(stock_code, start, last, adjustment=adjustment, config=cfg, as_of=as_of)
        ticker = bars.attrs["ticker"]
        stock_data = to_yfinance_shape(bars, *self._actions(cfg, ticker, bars, as_of))
        bench = get_prices(BENCHMARK, start, last, adjustment=adjustment, config=_with_benchmark_proxy(cfg),
                           as_of=as_of)
        bench_frame = benchmark_frame(bench)
        info = {"symbol": ticker, "currency": "USD", "provider": bars.attrs["provider"],
                "adjustment": adjustment, "exchangeTimezoneName": "America/New_York",
                **({"as_of": as_of.isoformat()} if as_of is not None else {}),
                "benchmark": {"ticker": BENCHMARK, "proxy": bench.attrs.get("proxy"),
                              "provider": bench.attrs.get("provider")},
                "sources": [{k: str(v) for k, v in s.items()} for s in bars.attrs["sources"]]}
        out: dict[str, Any] = {"stock_info": info, "stock_data": stock_data}
        out.update(statements(cfg, ticker, last + dt.timedelta(days=1)))
        out["sp500_stock_data"] = bench_frame
        out["csi300_stock_data"] = bench_frame.copy()
        return out

    @staticmethod
    def _actions(cfg: Config, ticker: str, bars: pd.DataFrame, as_of: dt.date | None = None
                 ) -> tuple[pd.Series | None, pd.Series | None]:
        """The validated corporate actions of the chain, checked against the as-traded prices of
        the provider that served the bars (as the pipeline checks them)."""
        from .actions import available, closes_from, get_actions
        from .plugins import registry

        if not available(cfg)[0]:
            log.info("no corporate-actions source configured: Dividends and Stock Splits are zero")
            return None, None
        served = bars.attrs["sources"][0]["provider"] if bars.attrs.get("sources") else None
        entry = registry().get(served) if served else None
        closes = closes_from(cfg, entry.provider.configured(cfg) if entry is not None else None)
        try:
            acts = get_actions(ticker, cfg, closes, since=bars.index[0].normalize() if len(bars) else None)
            if as_of is not None:
                from .actions import happened

                acts = happened(acts, as_of)
            return acts.splits, acts.dividends
        except ProviderError as e:
            log.warning("corporate actions for %s unavailable (%s): Dividends and Stock Splits are zero", ticker, e)
            return None, None


#: what :func:`install` patches, by default all of them
INSTALLABLE = ("get_finacncials_yf", "get_finacncials_massive", "get_finacncials_ak")
_INSTALLED = "__finrpt_providers_installed__"
#: finrpt's akshare path defaults to one month before end_date (its yfinance path to three)
AK_DEFAULT_MONTHS = 1


def install(cls: type | None = None, *, methods: list[str] | tuple[str, ...] | None = None,
            point_in_time: bool | None = None):
    """Patch finrpt's ``Dataer`` class in place so its US prices come from the chain, even
    where the class defines the methods itself (a method on the class hides a mixin's,
    whatever the base order). Returns the class; usable as a decorator (``@install`` or
    ``@install(methods=[...])``). Idempotent.

    * ``get_finacncials_yf`` / ``get_finacncials_massive``: ours (total / splits adjusted);
    * ``get_finacncials_ak``: US codes go to the chain (total adjusted, akshare's one-month
      default window); A-share codes (``600519.SS``, ``300750.SZ``, six digits) go to the
      class's own method, unchanged.

    The sources are the chain's settings (``FINRPT_PRICE_PROVIDERS`` and keys in the
    ``.env`` finrpt already loads), or ``finrpt_config`` set on the instance or class.

    ``point_in_time=True`` sets ``finrpt_point_in_time`` on the class: each method answers as
    the prices were known on its ``end_date`` (the report's date; ``as_of`` of
    :func:`~finrpt_providers.get_prices`), so a report dated before a split quotes the price
    of that day, consistent with the per-share figures of its statements.
    """
    if cls is None:
        return lambda c: install(c, methods=methods, point_in_time=point_in_time)
    if point_in_time is not None:
        if not isinstance(point_in_time, bool):
            raise TypeError(f"point_in_time must be True or False, not {point_in_time!r}")
        cls.finrpt_point_in_time = point_in_time
    if not isinstance(cls, type):
        raise TypeError(f"install() patches a class (finrpt's Dataer), not {type(cls).__name__}: "
                        "call install(Dataer), or use @install on the class")
    chosen = INSTALLABLE if methods is None else tuple(methods)
    unknown = [m for m in chosen if m not in INSTALLABLE]
    if unknown:
        raise ValueError(f"install() cannot patch {', '.join(map(repr, unknown))}: choose among "
                         f"{', '.join(INSTALLABLE)}")
    done = dict(cls.__dict__.get(_INSTALLED, {}))
    for name in chosen:
        if name in done:
            continue  # installed already: patching twice would wrap our own method
        original = cls.__dict__.get(name, getattr(cls, name, None))
        done[name] = original
        setattr(cls, name, _patched(name, original))
    setattr(cls, _INSTALLED, done)
    return cls


def _patched(name: str, original: Any):
    if name == "get_finacncials_yf":
        def method(self, stock_code, end_date, start_date=None):
            return _financials(self, stock_code, end_date, start_date, "total")
    elif name == "get_finacncials_massive":
        def method(self, stock_code, end_date, start_date=None):
            return _financials(self, stock_code, end_date, start_date, "splits")
    else:
        def method(self, stock_code, end_date, start_date=None, *args, **kwargs):
            if isinstance(stock_code, str) and is_us_stock(stock_code) and not _A_SHARE.match(stock_code.strip()):
                if start_date is None:
                    import pandas as pd

                    from .provider import to_date

                    start_date = (pd.Timestamp(to_date(end_date, "end_date"))
                                  - pd.DateOffset(months=AK_DEFAULT_MONTHS)).date().isoformat()
                return _financials(self, stock_code, end_date, start_date, "total")
            if original is None:
                raise UnsupportedQuery(f"{stock_code!r} is an A-share code and this class has no "
                                       "get_finacncials_ak of its own to send it to")
            return original(self, stock_code, end_date, start_date, *args, **kwargs)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"{name} from finrpt_providers' chain (installed by finrpt_providers.dataer.install)."
    if original is not None:
        method.__wrapped_original__ = original  # type: ignore[attr-defined]
    return method


def _financials(host: Any, stock_code: str, end_date: str, start_date: str | None, adjustment: str) -> dict:
    """The chain's dict for any host object (its ``finrpt_config`` and ``finrpt_point_in_time``
    if it has them)."""
    return DataerMixin._financials(_Host(getattr(host, "finrpt_config", None),
                                         bool(getattr(host, "finrpt_point_in_time", False))),
                                   stock_code, end_date, start_date, adjustment)


class _Host(DataerMixin):
    def __init__(self, config: Any, point_in_time: bool = False):
        self.finrpt_config = config
        self.finrpt_point_in_time = point_in_time


class Dataer(DataerMixin):
    """A standalone Dataer with finrpt's price methods (no finrpt, no OpenAI key needed)."""

    def __init__(self, config: Config | dict | None = None):
        self.finrpt_config = config


def to_yfinance_shape(bars: pd.DataFrame, splits: pd.Series | None, dividends: pd.Series | None) -> pd.DataFrame:
    """Our bar frame (daily) -> yfinance's ``history()`` shape, plus finrpt's ``date`` column.

    ``Dividends`` holds the cash per share on ex-dates in today's split basis (as Yahoo
    reports it); ``Stock Splits`` the ratio on ex-dates (4.0 for 4-for-1), 0 elsewhere.
    """
    import numpy as np
    import pandas as pd

    idx = pd.DatetimeIndex(bars.index, name="Date")
    df = pd.DataFrame({"Open": bars["open"].to_numpy(), "High": bars["high"].to_numpy(),
                       "Low": bars["low"].to_numpy(), "Close": bars["close"].to_numpy(),
                       "Volume": bars["volume"].to_numpy()}, index=idx)
    div = np.zeros(len(df))
    spl = np.zeros(len(df))
    days = idx.normalize()
    if splits is not None and len(splits):
        for ex, ratio in splits.items():
            spl[days == ex] = ratio
    if dividends is not None and len(dividends):
        later = splits if splits is not None else pd.Series(dtype="float64")
        for ex, cash in dividends.items():
            factor = float(np.prod(later[later.index > ex].to_numpy())) if len(later) else 1.0
            div[days == ex] = cash / factor
    df["Dividends"] = div
    df["Stock Splits"] = spl
    df["date"] = [d.date() for d in idx]  # str(datetime.date) == 'YYYY-MM-DD'
    df.attrs = {}
    return df


def _with_benchmark_proxy(cfg: Config) -> Config:
    """``cfg`` with SPY answering for the S&P 500 when no provider serves the index and the
    user named no proxy of their own (finrpt's slot was SPY before indices were served)."""
    proxies = dict(cfg.value("FINRPT_INDEX_PROXIES") or {})
    if BENCHMARK in proxies:
        return cfg
    proxies[BENCHMARK] = BENCHMARK_PROXY
    return cfg.merged({"FINRPT_INDEX_PROXIES": ",".join(f"{k}={v}" for k, v in proxies.items())})


def benchmark_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """The benchmark in finrpt's akshare-like shape: lowercase columns, a ``date`` column."""
    import pandas as pd

    df = pd.DataFrame({"date": [d.date() for d in bars.index], "open": bars["open"].to_numpy(),
                       "high": bars["high"].to_numpy(), "low": bars["low"].to_numpy(),
                       "close": bars["close"].to_numpy(), "volume": bars["volume"].to_numpy()})
    return df


def statements(cfg: Config, ticker: str, end_exclusive: dt.date) -> dict[str, pd.DataFrame]:
    """Quarterly statements up to ``end_exclusive`` from the first provider of the chain
    that serves them and is ready (empty frames, with a logged reason, when none does)."""
    import pandas as pd

    from .company import get_statements

    frames, source = get_statements(ticker, config=cfg)
    if not source:
        log.info("statements: no source serves them (FINRPT_STATEMENTS_PROVIDERS); empty frames")
        return {k: pd.DataFrame() for k in _STATEMENTS}
    out = {}
    cutoff = pd.Timestamp(end_exclusive)
    for key, kind in _STATEMENTS.items():
        frame = frames.get(kind, pd.DataFrame())
        if len(frame.columns):
            frame = frame[[c for c in frame.columns if pd.Timestamp(c) <= cutoff]]  # finrpt: periods <= end_date
        out[key] = frame
    return out
