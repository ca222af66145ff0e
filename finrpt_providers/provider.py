"""The provider base class: what a price source declares and implements.

The question it answers is a :class:`~finrpt_providers.query.PriceQuery`; the frame it
returns is the bar frame of :mod:`finrpt_providers.frames` (re-exported here with the
names providers have always imported from this module).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import ProviderError, UnsupportedQuery
from .frames import BAR_COLUMNS, FLOAT_COLUMNS, empty_bars  # noqa: F401 (re-exported)
from .intervals import INTERVALS
from .query import (  # noqa: F401 (re-exported: the question is part of a provider's interface)
    ADJUSTMENTS,
    DEFAULT_ADJUSTMENT,
    EARLIEST_DATE,
    PriceQuery,
    normalize_adjustment,
    normalize_ticker,
    to_date,
)
from .timebase import ET, session_days, wall_ns  # noqa: F401 (re-exported)

if TYPE_CHECKING:  # pandas imports pyarrow: keep `import finrpt_providers` light
    import pandas as pd

    from .config import Config, Setting
    from .live import LiveFeed


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
    #: intraday intervals at which :meth:`fetch` serves the regular session alone when asked
    #: ``extended_hours=False`` (hourly bars from 09:30, as yfinance gives them). At the
    #: others the core asks for every hour (``extended_hours=True``: 04:00-20:00, on the
    #: clock) and keeps the regular session itself.
    regular_intervals: ClassVar[frozenset[str]] = frozenset()
    #: adjustments served natively ("raw", "splits", "total")
    adjustments: ClassVar[frozenset[str]] = frozenset(ADJUSTMENTS)
    #: True when :meth:`fetch_actions` serves splits and cash dividends
    serves_actions: ClassVar[bool] = False
    #: True when :meth:`fetch_statements` serves financial statements
    serves_statements: ClassVar[bool] = False
    #: the statement frequencies :meth:`fetch_statements` serves ("quarterly", "yearly")
    statement_frequencies: ClassVar[frozenset[str]] = frozenset({"quarterly"})
    #: True when :meth:`fetch_info` serves a company's descriptive fields (name, exchange...)
    serves_info: ClassVar[bool] = False
    #: True when :meth:`fetch_market` serves every ticker of a session at once
    serves_market: ClassVar[bool] = False
    #: True when :meth:`fetch_market_actions` lists every ticker's events at once (set for you
    #: when a subclass implements the method)
    serves_market_actions: ClassVar[bool] = False
    #: True when :meth:`fetch_basket` answers many tickers in one go (set for you when a
    #: subclass implements the method)
    serves_basket: ClassVar[bool] = False
    #: True when :meth:`open_stream` serves live bars (see :mod:`finrpt_providers.live`)
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Capabilities are read from the serves_* flags only; a plugin that implements one of
        # these optional methods without its flag declares it by doing so.
        super().__init_subclass__(**kwargs)
        for flag, method in (("serves_basket", "fetch_basket"), ("serves_market_actions", "fetch_market_actions")):
            if flag not in cls.__dict__ and method in cls.__dict__:
                setattr(cls, flag, True)

    def serves(self, capability: str) -> bool:
        """True when this provider declares ``capability`` (``actions``, ``statements``, ``info``,
        ``market``, ``market_actions``, ``basket``, ``stream``, ``store``)."""
        return bool(getattr(self, "keeps_store" if capability == "store" else f"serves_{capability}", False))

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
        if query.regular_only and query.interval not in self.regular_intervals:
            return (f"the regular session alone is not served at {query.interval} (every hour is: ask "
                    "extended_hours=True and keep the session's hours)")
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
        Intraday: every hour (04:00-20:00), buckets on the clock; the core keeps the regular
        session when asked. Declare :attr:`serves_market` when implemented (see
        :mod:`finrpt_providers.market`)."""
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
        yearly statements declares ``"yearly"`` in :attr:`statement_frequencies` and accepts
        ``frequency="yearly"`` (a keyword; the core asks for it only by keyword).

        Every answer passes the core's one statements normaliser
        (:func:`finrpt_providers.company.normalise_statements`): a frame may name its
        ``attrs["currency"]`` (and ``attrs["fx_to_usd"]``, USD per unit, when the source gives a
        rate) and ``attrs["periods"]`` (per column: ``timeframe``, ``filing_date``, ``id``); or
        the provider answers ``{"filings": [...], "rows": {...}}`` with each value's own unit
        (see that module). Non-USD values without a rate, non-numbers, NaN and inf are left
        out and named; one filing per period (the latest filed); the other timeframe dropped.
        Bad source data (a malformed date or field) is a DataIntegrityError naming the field."""
        raise UnsupportedQuery(f"{self.name} does not serve financial statements", provider=self.name)

    def fetch_info(self, ticker: str) -> dict[str, Any]:
        """Descriptive fields of ``ticker`` with yfinance's ``info`` keys where they exist
        (``symbol``, ``currency``, ``shortName``, ``longName``, ``exchange``, ``quoteType``,
        ``sharesOutstanding``, ``marketCap``...). Only when ``serves_info``."""
        raise UnsupportedQuery(f"{self.name} does not serve company information", provider=self.name)

    def open_stream(self, interval: str) -> "LiveFeed":
        """A :class:`~finrpt_providers.live.LiveFeed` for ``interval`` ("1m" or "1s"), not yet
        connected. Only when ``serves_stream``; the core keeps it up (reconnects, fills,
        ordering: :mod:`finrpt_providers.live`)."""
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
        expect = Expect(query.start, query.end, query.interval, regular=query.regular_only)
        ticker = query.ticker
    return check_bars(df, expect, ticker, provider)
