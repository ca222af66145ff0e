"""Provider ``massive_flatfiles``: Massive's S3 flat files through a local Parquet store.

* ``1d`` from ``day_aggs_v1``; ``1m`` from ``minute_aggs_v1``; ``5m 15m 30m 1h``
  resampled from the minutes in ET with bar-start labels. Flat files carry no VWAP:
  ``vwap`` is missing.
* Which files to ask for comes from the NYSE calendar; a cold query downloads only
  the sessions the store lacks, a few at a time; a warm query never builds an S3
  client. A session with no file upstream (not published yet, or absent) is
  recorded, logged as a warning, and left out, so the chain can stitch it from
  another provider.
* Flat files are as traded: ``raw`` is native; ``splits``/``total`` apply corporate
  actions from Massive's REST API when ``MASSIVE_API_KEY`` is set, else from
  yfinance (``MASSIVE_FLATFILES_ACTIONS``: auto, massive_rest, yfinance, none);
  without a source the provider declares it cannot serve them.
* :func:`iter_trades` / :func:`iter_quotes` stream one ticker out of a day's
  multi-GB trades/quotes file in bounded memory.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ... import calendar
from ...errors import InvalidQuery, NoData, ProviderError, UnsupportedQuery
from ...hookspecs import hookimpl
from ...provider import ET, INTERVALS, PriceProvider, PriceQuery, empty_bars, normalize_ticker, resample_bars, to_date
from ...store import Store
from .files import NAME, key_for, scan_ticker
from .mirror import ensure
from .s3 import FlatFilesS3

if TYPE_CHECKING:
    import pandas as pd

    from ...config import Config

log = logging.getLogger(__name__)
ACTION_SOURCES = ("auto", "massive_rest", "yfinance", "none")


def store_for(config: Config) -> Store:
    return Store(config.cache_dir / "massive")


def actions_source(config: Config) -> str | None:
    """Which corporate-actions source adjusts flat files under this config (None: none usable)."""
    choice = (config.get("MASSIVE_FLATFILES_ACTIONS") or "auto").strip().lower()
    if choice not in ACTION_SOURCES:
        raise InvalidQuery(f"MASSIVE_FLATFILES_ACTIONS={choice!r} is not one of {', '.join(ACTION_SOURCES)}")
    from ..massive_rest import api_key

    if choice == "none":
        return None
    if choice in ("auto", "massive_rest") and api_key(config):
        return "massive_rest"
    if choice in ("auto", "yfinance"):
        import importlib.util

        if importlib.util.find_spec("yfinance") is not None:
            return "yfinance"
    return None


def corporate_actions(config: Config, ticker: str) -> tuple[pd.Series, pd.Series]:
    """(split ratios, cash dividends as declared), by ex-date, from the configured source.

    With ``auto``, a failing Massive REST source (rate limit, outage) falls back to yfinance.
    """
    source = actions_source(config)
    if source == "massive_rest":
        from ..massive_rest import MassiveClient

        try:
            client = MassiveClient(config)
            return client.splits(ticker), client.dividends(ticker)
        except ProviderError as e:
            import importlib.util

            auto = (config.get("MASSIVE_FLATFILES_ACTIONS") or "auto").strip().lower() == "auto"
            if not auto or importlib.util.find_spec("yfinance") is None:
                raise
            log.warning("corporate actions from Massive REST failed (%s); using yfinance's", e)
            source = "yfinance"
    if source == "yfinance":
        from ..yfinance import corporate_actions as yahoo_actions

        return yahoo_actions(config, ticker)
    raise UnsupportedQuery("flat files are as traded and no corporate-actions source is configured: set "
                           "MASSIVE_API_KEY, install yfinance, or ask for adjustment='raw'", provider=NAME)


def table_to_bars(table) -> pd.DataFrame:
    """Stored rows of one ticker -> the bar frame (flat files have no VWAP)."""
    import numpy as np
    import pandas as pd

    if table.num_rows == 0:
        return empty_bars()
    idx = pd.DatetimeIndex(table.column("window_start").to_pandas()).tz_convert(ET).as_unit("ns")
    df = pd.DataFrame({c: table.column(c).to_numpy() for c in ("open", "high", "low", "close", "volume")},
                      index=idx.rename("timestamp"))
    df["vwap"] = np.nan
    df["transactions"] = pd.array(table.column("transactions").to_numpy(zero_copy_only=False), dtype="Int64")
    return df.sort_index()


class MassiveFlatFilesProvider(PriceProvider):
    name = NAME
    intervals = frozenset(INTERVALS)
    adjustments = frozenset({"raw", "splits", "total"})
    credentials = ("MASSIVE_S3_ACCESS_KEY", "MASSIVE_S3_SECRET_KEY")
    requires = ("boto3", "pyarrow")
    description = "Massive S3 flat files via a local Parquet store (S3 key pair; as traded + corporate actions)"

    def cannot_serve(self, query: PriceQuery, today: dt.date) -> str | None:
        reason = super().cannot_serve(query, today)
        if reason is None and query.adjustment != "raw" and actions_source(self.config) is None:
            return (f"{query.adjustment} adjustment needs corporate actions: set MASSIVE_API_KEY or install "
                    "yfinance (flat files are as traded)")
        return reason

    @property
    def workers(self) -> int:
        return max(1, int(self.config.get_float("MASSIVE_FLATFILES_WORKERS", 4)))

    def fetch(self, query: PriceQuery) -> pd.DataFrame:
        from ...adjust import adjust_bars

        s3 = FlatFilesS3(self.config)  # missing keys fail here; the boto3 client is built on first use
        store = store_for(self.config)
        today = self.config.today()
        days = calendar.sessions(query.start, min(query.end, today))
        dataset = "day_aggs_v1" if query.interval == "1d" else "minute_aggs_v1"
        outcome = ensure(s3, store, dataset, days, self.workers)
        if outcome.missing:
            log.warning("%s: no %s file upstream for %s (not published yet, or absent): the answer lacks "
                        "%s", NAME, dataset, ", ".join(d.isoformat() for d in outcome.missing),
                        "that session" if len(outcome.missing) == 1 else "those sessions")
        bars = table_to_bars(store.read_ticker(dataset, days, query.ticker))
        if bars.empty:
            raise NoData(f"the flat files have no {query.interval} bars for {query.ticker} from {query.start} to "
                         f"{query.end}: check the ticker (flat files write share classes with a dot, e.g. BRK.B)",
                         provider=NAME)
        if query.interval != "1d":
            bars = resample_bars(bars, query.interval)
        if query.adjustment == "raw":
            return bars
        splits, dividends = corporate_actions(self.config, query.ticker)
        closes = None
        if query.adjustment == "total":
            closes = self._closes_before(s3, store, query.ticker, bars, dividends)
        return adjust_bars(bars, query.adjustment, splits, dividends, closes)

    def _closes_before(self, s3: FlatFilesS3, store: Store, ticker: str, bars, dividends):
        """As-traded close before each ex-date that adjusts these bars, from the day files.

        The file of the session just before an ex-date must be there: without it the
        factor would silently use an older close.
        """
        from ...adjust import prev_closes
        from ...errors import DataIntegrityError

        first = bars.index[0].normalize()
        exs = [ex for ex in dividends.index if ex > first]
        if not exs:
            return bars["close"].iloc[:0]
        windows = {ex: calendar.sessions(ex.date() - dt.timedelta(days=14), ex.date() - dt.timedelta(days=1))[-5:]
                   for ex in exs}
        wanted = sorted({d for w in windows.values() for d in w})
        outcome = ensure(s3, store, "day_aggs_v1", wanted, self.workers)
        lacking = [(ex, w[-1]) for ex, w in windows.items() if w and w[-1] in outcome.missing]
        if lacking:
            ex, prev = lacking[0]
            raise DataIntegrityError(f"cannot apply the {ex.date()} dividend of {ticker}: the day file for {prev} "
                                     "is missing upstream; ask for adjustment='raw' or another provider",
                                     provider=NAME)
        daily = table_to_bars(store.read_ticker("day_aggs_v1", wanted, ticker))
        return prev_closes(daily["close"], exs)


def _stream_ticker(dataset: str, ticker: str, date: Any, config: Config | dict | None) -> Iterator[pd.DataFrame]:
    import pandas as pd

    from ...chain import resolve_config

    cfg = resolve_config(config)
    ticker = normalize_ticker(ticker)
    day = to_date(date, "date")
    s3 = FlatFilesS3(cfg)
    key = key_for(dataset, day)
    stream = s3.open(key, dataset)
    if stream is None:
        raise NoData(f"no {dataset} file for {day} upstream ({key}): not a session, or not published yet",
                     provider=NAME)
    try:
        for table in scan_ticker(stream, ticker, dataset, key):
            df = table.to_pandas()
            for col in ("participant_timestamp", "sip_timestamp", "trf_timestamp"):
                if col in df:
                    df[col] = pd.to_datetime(df[col], unit="ns", utc=True).dt.tz_convert(ET)
            yield df
    except Exception as e:
        if isinstance(e, ProviderError):
            raise
        raise s3.error(e, key, dataset) from None
    finally:
        stream.close()


def iter_trades(ticker: str, date: Any, config: Config | dict | None = None) -> Iterator[pd.DataFrame]:
    """One ticker's trades on one session, as DataFrame chunks (timestamps in ET).

    Streams the day's trades file from S3, skips to the ticker's block (the file is
    sorted by ticker) and stops after it: memory stays bounded whatever the file size.
    """
    return _stream_ticker("trades_v1", ticker, date, config)


def iter_quotes(ticker: str, date: Any, config: Config | dict | None = None) -> Iterator[pd.DataFrame]:
    """One ticker's NBBO quotes on one session, as DataFrame chunks (see :func:`iter_trades`)."""
    return _stream_ticker("quotes_v1", ticker, date, config)


@hookimpl
def register_price_providers(register):
    register(MassiveFlatFilesProvider())


__all__ = ["MassiveFlatFilesProvider", "iter_trades", "iter_quotes", "store_for", "corporate_actions"]
