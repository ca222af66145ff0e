"""The provider base class, the validated query, and the bar frame with its check.

The bar frame (what every provider, the chain and the CLI return):

* index: ``DatetimeIndex`` named ``timestamp``, ``datetime64[ns, America/New_York]``,
  the START of each bar; daily bars sit at 00:00 of the session date; sorted, unique;
* columns ``open high low close volume vwap`` as float64 and ``transactions`` as
  nullable ``Int64``; ``vwap``/``transactions`` are missing where a source lacks them.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import datetime as dt
import re
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from .errors import DataIntegrityError, InvalidQuery, ProviderError, UnsupportedQuery
from .frames import BAR_COLUMNS, FLOAT_COLUMNS, empty_bars
from .timebase import ET, session_days, wall_ns
from .intervals import BASE_INTERVALS, INTERVAL_MINUTES, INTERVALS, MINUTE_INTERVALS, normalize_interval

if TYPE_CHECKING:  # pandas imports pyarrow: keep `import finrpt_providers` light
    import pandas as pd

    from .config import Config, Setting
    from .stream import LiveFeed

ADJUSTMENTS = ("raw", "splits", "total")
#: the adjustment every surface uses when none is asked (Massive's adjusted=true, yfinance's Close)
DEFAULT_ADJUSTMENT = "splits"
EARLIEST_DATE = dt.date(1900, 1, 1)

# US tickers as the SIP feeds and Massive write them: a root of letters/digits and an
# optional share class after a dot (BRK.B); Massive also uses lower-case letters
# inside some symbols (preferreds such as "JPMpC"), so case is kept when mixed.
_TICKER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,9}(\.[A-Za-z0-9]{1,5})?$")


def normalize_ticker(ticker: Any) -> str:
    """Check a US ticker and return it in SIP spelling (``brk-b`` -> ``BRK.B``)."""
    if not isinstance(ticker, str):
        raise InvalidQuery(f"ticker must be a string such as 'AAPL', not {type(ticker).__name__}")
    if ticker == "":
        raise InvalidQuery("ticker is empty: pass a symbol such as 'AAPL' or 'BRK.B'")
    if any(ord(c) < 32 or ord(c) == 127 for c in ticker):
        raise InvalidQuery(f"ticker {ticker!r} contains control characters: pass a plain symbol such as 'AAPL'")
    if any(c.isspace() for c in ticker):
        raise InvalidQuery(f"ticker {ticker!r} contains whitespace: remove it (e.g. 'AAPL', not ' AAPL')")
    if "/" in ticker or "\\" in ticker or ".." in ticker:
        raise InvalidQuery(f"ticker {ticker!r} contains a path separator: pass a plain symbol such as 'BRK.B'")
    # Yahoo writes share classes with a dash; accept it and use the SIP dot.
    candidate = ticker.replace("-", ".") if ticker.count("-") == 1 else ticker
    if not _TICKER_RE.match(candidate):
        hint = ""
        if re.match(r"^\d{6}(\.(SS|SZ))?$", ticker, re.IGNORECASE):
            hint = " (it looks like an A-share code; this package serves US equities only)"
        raise InvalidQuery(
            f"ticker {ticker!r} is not a US ticker{hint}: use letters and digits, with an optional "
            "share class after one dot, e.g. 'AAPL' or 'BRK.B'"
        )
    return candidate.upper() if candidate == candidate.lower() else candidate


def to_date(value: Any, what: str) -> dt.date:
    """A 'YYYY-MM-DD' string, date, datetime or pandas Timestamp as a session date (ET)."""
    if value is None or (not isinstance(value, str) and _is_missing(value)):  # NaT, NaN, pd.NA
        raise InvalidQuery(f"{what} is missing ({value!r}): give a date such as '2024-01-02'")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidQuery(f"{what} {value!r} is not a date: write it as 'YYYY-MM-DD'") from None
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp, without importing pandas
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(ZoneInfo(ET)).replace(tzinfo=None)
        if value.time() != dt.time(0):
            raise InvalidQuery(
                f"{what} {value.isoformat()} has a time of day: ranges are whole sessions, so pass a "
                "date and slice the returned frame by time (df.loc['2024-01-02 09:30':])"
            )
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise InvalidQuery(f"{what} must be 'YYYY-MM-DD', a date or a datetime, not {type(value).__name__}")


def _is_missing(value: Any) -> bool:
    try:
        return bool(value != value)  # NaT and NaN are not equal to themselves
    except (TypeError, ValueError):  # pd.NA refuses to be a bool
        return True


def normalize_adjustment(adjustment: Any) -> str:
    if isinstance(adjustment, str) and adjustment.strip().lower() in ADJUSTMENTS:
        return adjustment.strip().lower()
    raise InvalidQuery(
        f"adjustment {adjustment!r} is not supported: use 'raw' (as traded), 'splits' "
        "(split-adjusted) or 'total' (splits and dividends)"
    )


@dataclasses.dataclass(frozen=True)
class PriceQuery:
    """A validated question: one ticker, an inclusive range of session dates (ET).

    Construct it with any accepted spelling; the fields hold the normalised values.
    Everything that does not depend on the date today is checked here, so a bad
    question fails before any I/O (the chain checks "not in the future" against the
    configured clock).
    """

    ticker: str
    start: dt.date
    end: dt.date
    interval: str = "1d"
    adjustment: str = DEFAULT_ADJUSTMENT

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("ticker", normalize_ticker(self.ticker))
        set_("start", to_date(self.start, "start"))
        set_("end", to_date(self.end, "end"))
        set_("interval", normalize_interval(self.interval))
        set_("adjustment", normalize_adjustment(self.adjustment))
        if self.start > self.end:
            raise InvalidQuery(f"start {self.start} is after end {self.end}: swap them (both are inclusive)")
        if self.start < EARLIEST_DATE:
            raise InvalidQuery(f"start {self.start} is before {EARLIEST_DATE}: no US price data exists that far back")

    def check_not_future(self, today: dt.date) -> None:
        """InvalidQuery when the range starts after ``today`` (the configured clock's date)."""
        if self.start > today + dt.timedelta(days=1):
            raise InvalidQuery(f"start {self.start} is in the future (today is {today}): no bars exist yet")

    @property
    def intraday(self) -> bool:
        return self.interval in MINUTE_INTERVALS

    def replace(self, **changes: Any) -> "PriceQuery":
        """A copy with ``changes``, each checked as the constructor checks it (only the changed
        fields are normalised again: a basket makes one per ticker per provider)."""
        if any(k not in _NORMALISE for k in changes):
            return dataclasses.replace(self, **changes)
        out = copy.copy(self)
        for k, v in changes.items():
            object.__setattr__(out, k, _NORMALISE[k](v))
        if ("start" in changes or "end" in changes) and (out.start > out.end or out.start < EARLIEST_DATE):
            return dataclasses.replace(self, **changes)  # the constructor's error, word for word
        return out

    def describe(self) -> str:
        return f"{self.ticker} {self.interval} {self.adjustment} {self.start}..{self.end}"


_NORMALISE = {"ticker": normalize_ticker, "start": lambda v: to_date(v, "start"), "end": lambda v: to_date(v, "end"),
              "interval": normalize_interval, "adjustment": normalize_adjustment}


class PriceProvider:
    """Base class of every price source. Subclass it and register an instance.

    Declare what you serve NATIVELY (class attributes) and implement :meth:`fetch` for
    exactly that; the core derives the rest (see :mod:`finrpt_providers.pipeline`):
    other adjustments from the configured corporate actions, ``5m``..``1h`` from ``1m``,
    ``1wk``/``1mo``/``3mo`` from ``1d``. ``self.config`` is the active
    :class:`~finrpt_providers.config.Config` (set by :meth:`configured`).
    """

    #: unique name users put in FINRPT_PRICE_PROVIDERS
    name: ClassVar[str] = ""
    #: intervals served natively (a subset of BASE_INTERVALS: 1m 5m 15m 30m 1h 1d)
    intervals: ClassVar[frozenset[str]] = frozenset({"1d"})
    #: adjustments served natively ("raw", "splits", "total")
    adjustments: ClassVar[frozenset[str]] = frozenset(ADJUSTMENTS)
    #: True when :meth:`fetch_actions` serves splits and cash dividends
    serves_actions: ClassVar[bool] = False
    #: True when :meth:`fetch_statements` serves quarterly financial statements
    serves_statements: ClassVar[bool] = False
    #: True when :meth:`fetch_info` serves a company's descriptive fields (name, exchange...)
    serves_info: ClassVar[bool] = False
    #: True when :meth:`fetch_market` serves every ticker of a session at once
    serves_market: ClassVar[bool] = False
    #: True when :meth:`open_stream` serves live bars (see :mod:`finrpt_providers.stream`)
    serves_stream: ClassVar[bool] = False
    #: True when it keeps a Parquet store of every ticker (:meth:`store`, :meth:`table_to_long`),
    #: which :func:`finrpt_providers.dask.read_bars` reads as a dask DataFrame
    keeps_store: ClassVar[bool] = False
    #: the settings this provider reads (see :class:`~finrpt_providers.config.Setting`)
    settings: ClassVar[tuple["Setting", ...]] = ()
    #: setting names (e.g. "MASSIVE_API_KEY") that must be set for the provider to work
    credentials: ClassVar[tuple[str, ...]] = ()
    #: modules that must import (optional dependencies)
    requires: ClassVar[tuple[str, ...]] = ()
    #: one-line description for `finrpt-providers providers`
    description: ClassVar[str] = ""

    config: "Config | None" = None

    def configured(self, config: "Config") -> "PriceProvider":
        """A shallow copy bound to ``config`` (the registered instance stays untouched)."""
        clone = copy.copy(self)
        clone.config = config
        return clone

    def native_adjustments(self, interval: str) -> frozenset[str]:
        """The adjustments served natively at ``interval`` (default: :attr:`adjustments` at
        every interval). Override when a source adjusts differently by interval."""
        return self.adjustments

    def earliest(self, query: PriceQuery, today: dt.date) -> dt.date | None:
        """Earliest date this provider can serve for the query's interval (None: no limit)."""
        return None

    def missing_credentials(self) -> list[str]:
        cfg = self.config
        return [name for name in self.credentials if not (cfg and cfg.get(name))]

    def missing_modules(self, deep: bool = False) -> dict[str, str]:
        """Required modules that are absent (or, with ``deep``, fail to import: a broken
        install, such as a numpy/pyarrow mismatch), each with why."""
        out = {}
        for m in self.requires:
            problem = _import_problem(m, deep)
            if problem:
                out[m] = problem
        return out

    def not_ready_reason(self, deep: bool = False) -> str | None:
        """Why this provider cannot answer anything now (None when it is ready). ``deep``
        imports the required modules (the chain does, right before calling)."""
        mods = self.missing_modules(deep)
        absent = [m for m, why in mods.items() if why == "not installed"]
        if absent:
            return f"not installed: missing module(s) {', '.join(absent)} (pip install {' '.join(absent)})"
        if mods:
            detail = "; ".join(f"{m} {why}" for m, why in mods.items())
            return f"broken install: {detail} (pip install --upgrade {' '.join(mods)})"
        creds = self.missing_credentials()
        if creds:
            return f"missing credentials: set {', '.join(creds)}"
        return None

    def cannot_serve(self, query: PriceQuery, today: dt.date) -> str | None:
        """Why this provider cannot answer ``query`` natively (None when it can). No I/O."""
        reason = self.not_ready_reason(deep=True)
        if reason:
            return reason
        if query.interval not in self.intervals:
            return f"interval {query.interval} not served (serves {', '.join(sorted(self.intervals, key=INTERVALS.index))})"
        native = self.native_adjustments(query.interval)
        if query.adjustment not in native:
            return f"adjustment {query.adjustment} not served at {query.interval} (serves {', '.join(sorted(native))})"
        earliest = self.earliest(query, today)
        if earliest is not None and query.start < earliest:
            return f"{query.interval} bars only from {earliest} (asked from {query.start})"
        return None

    def fetch(self, query: PriceQuery) -> pd.DataFrame:
        """The bar frame for ``query`` (a native interval and adjustment), or raise a ProviderError."""
        raise NotImplementedError

    def fetch_basket(self, queries: list[PriceQuery]) -> dict[str, "pd.DataFrame | ProviderError"]:
        """Many tickers at once: ``queries`` differ only in ``ticker`` (same native interval,
        adjustment and range). Returns, per ticker, its bar frame (as :meth:`fetch` would) or
        the ProviderError that ticker met. Optional: the core calls :meth:`fetch` once per
        ticker when a provider does not override this; override it when a basket is cheaper
        in one go (one read of a shared file, one rate limit, one batched request)."""
        raise NotImplementedError

    def fetch_market(self, start: dt.date, end: dt.date, interval: str, adjustment: str) -> pd.DataFrame:
        """Every ticker's bars on the sessions ``start``..``end`` (a native interval and
        adjustment): a long frame indexed by (``ticker``, ``timestamp``) with the bar columns.
        Declare :attr:`serves_market` when implemented (see :mod:`finrpt_providers.market`)."""
        raise NotImplementedError

    def fetch_market_actions(self, since: dt.date) -> tuple[pd.Series, pd.Series]:
        """Every ticker's splits (ratio) and cash dividends (as declared) with ex-dates after
        ``since``, each a Series indexed by (ticker, ex-date at 00:00 New York): what adjusting
        a whole market needs, in one listing. Optional."""
        raise NotImplementedError

    def fetch_sessions(self, ticker: str, sessions: list[dt.date], adjustment: str) -> pd.DataFrame:
        """Daily bars of ``ticker`` on ``sessions`` (native ``adjustment``); the core uses it for
        the closes before ex-dates and around splits. Default: one daily fetch over the
        span; override when asking for a few sessions is cheaper (flat files)."""
        if not sessions:
            return empty_bars()
        df = self.fetch(PriceQuery(ticker, min(sessions), max(sessions), "1d", adjustment))
        keep = df.index.normalize().isin([_et_midnight(d) for d in sessions])
        return df[keep]

    def fetch_actions(self, ticker: str) -> tuple[pd.Series, pd.Series]:
        """(split ratios, cash dividends AS DECLARED) by ex-date (ET midnight), all history.
        A ratio is ``to / from`` (4.0 for 4-for-1). Only when ``serves_actions``."""
        raise UnsupportedQuery(f"{self.name} does not serve corporate actions", provider=self.name)

    def fetch_statements(self, ticker: str) -> dict[str, pd.DataFrame]:
        """Quarterly ``income``, ``balance_sheet`` and ``cash_flow`` frames (line items as rows,
        period ends as columns). Only when ``serves_statements``. A provider that also has
        yearly statements accepts ``frequency="yearly"`` (a keyword; the core asks for it
        only by keyword and treats a TypeError as "not served")."""
        raise UnsupportedQuery(f"{self.name} does not serve financial statements", provider=self.name)

    def fetch_info(self, ticker: str) -> dict[str, Any]:
        """Descriptive fields of ``ticker`` with yfinance's ``info`` keys where they exist
        (``symbol``, ``currency``, ``shortName``, ``longName``, ``exchange``, ``quoteType``,
        ``sharesOutstanding``, ``marketCap``...). Only when ``serves_info``."""
        raise UnsupportedQuery(f"{self.name} does not serve company information", provider=self.name)

    def open_stream(self, interval: str) -> "LiveFeed":
        """A :class:`~finrpt_providers.stream.LiveFeed` for ``interval`` ("1m" or "1s"), not yet
        connected. Only when ``serves_stream``; the core keeps it up (reconnects, fills,
        ordering: :mod:`finrpt_providers.stream`)."""
        raise UnsupportedQuery(f"{self.name} does not serve live bars", provider=self.name)

    def store(self) -> Any:
        """The store this provider keeps (a :class:`~finrpt_providers.store.Store` or, when
        FINRPT_PROVIDERS_CACHE_DIR is a URL, an :class:`~finrpt_providers.objectstore.ObjectStore`).
        Only when ``keeps_store``."""
        raise UnsupportedQuery(f"{self.name} keeps no store", provider=self.name)

    def table_to_long(self, table: Any) -> "pd.DataFrame":
        """The store's rows (an Arrow table of many tickers) as the long bar frame indexed by
        (``ticker``, ``timestamp``). Only when ``keeps_store``."""
        raise UnsupportedQuery(f"{self.name} keeps no store", provider=self.name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


_import_problems: dict[str, str | None] = {}  # deep answers: does it import?
_installed: dict[str, bool] = {}  # shallow answers: is it there?


def _import_problem(module: str, deep: bool) -> str | None:
    """None when ``module`` is installed (``deep``: and imports); else why not. A deep
    answer is cached: importing twice changes nothing."""
    import importlib.util

    if module in _import_problems:
        return _import_problems[module]
    if module not in _installed:
        try:
            _installed[module] = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            _installed[module] = False
    if not _installed[module]:
        return "not installed"
    if not deep:
        return None
    import importlib

    try:
        importlib.import_module(module)
        _import_problems[module] = None
    except Exception as e:  # ImportError, or a binary mismatch raising anything at import
        first = str(e).splitlines()[0] if str(e) else ""
        _import_problems[module] = f"fails to import: {type(e).__name__}: {first}"[:240]
    return _import_problems[module]


_progress: contextvars.ContextVar = contextvars.ContextVar("finrpt_providers_progress", default=None)


def report_done(ticker: str) -> None:
    """Say one ticker of a basket is answered: a provider fetching a basket over the network
    calls this as each ticker completes, from the thread that called ``fetch_basket``
    (the CLI draws its progress bar from it). Does nothing when nobody listens."""
    cb = _progress.get()
    if cb is not None:
        with contextlib.suppress(Exception):  # a display must never fail a fetch
            cb(ticker)


@contextlib.contextmanager
def progress_to(callback):
    """Within the block, :func:`report_done` calls ``callback(ticker)``."""
    token = _progress.set(callback)
    try:
        yield
    finally:
        _progress.reset(token)


def _et_midnight(day: dt.date):
    import pandas as pd

    return pd.Timestamp(day, tz=ET)


def validate_bars(df: pd.DataFrame, query: PriceQuery | None = None, provider: str | None = None) -> pd.DataFrame:
    """Check one ticker's ``df`` against the bar-frame contract (and ``query``'s sessions,
    interval and hours) and return it normalised: :func:`finrpt_providers.frames.gate` for
    a basket of one. Lossless fixes are made (column order, int -> float, index unit and
    tz conversion, sort); anything else raises :class:`DataIntegrityError` naming the bar."""
    from .frames import Expect, check_bars

    if query is None:
        expect = Expect(EARLIEST_DATE, dt.date(9999, 12, 31), None)
        ticker = str(df.attrs.get("ticker") or "bars") if hasattr(df, "attrs") else "bars"
    else:
        expect = Expect(query.start, query.end, query.interval)
        ticker = query.ticker
    return check_bars(df, expect, ticker, provider)
