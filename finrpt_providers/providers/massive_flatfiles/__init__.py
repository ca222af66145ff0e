"""Provider ``massive_flatfiles``: Massive's S3 flat files through a local Parquet store.

* Native: ``1d`` from ``day_aggs_v1`` and ``1m`` from ``minute_aggs_v1``, as traded
  (``raw``). The core derives ``5m``..``1h`` from the minutes and ``splits``/``total``
  with the configured corporate actions; flat files carry no VWAP (``vwap`` missing).
* Which files to ask for comes from the NYSE calendar; a cold query downloads only
  the sessions the store lacks, a few at a time; a warm query never builds an S3
  client. A session with no file upstream (not published yet, or absent) is
  recorded, logged as a warning, and left out, so the chain can stitch it from
  another provider.
* :meth:`MassiveFlatFilesProvider.fetch_sessions` reads just the asked sessions (the
  closes the core needs before ex-dates cost two small files, not years of them).
* :func:`iter_trades` / :func:`iter_quotes` stream one ticker out of a day's
  multi-GB trades/quotes file in bounded memory.
* Commands (``sync``, ``verify``, ``trades``, ``quotes``) are this plugin's own
  (:mod:`.commands`), added to the CLI through ``register_commands``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ... import calendar, redact, text
from ...config import Setting
from ...errors import DataIntegrityError, InvalidQuery, NoData, ProviderError
from ...hookspecs import hookimpl
from ...provider import ET, PriceProvider, PriceQuery, empty_bars, normalize_ticker, to_date
from ...store import SessionGone, Store, open_store
from .files import AGG_DATASETS, NAME, PREFIX, key_for, scan_ticker, store_dataset
from .mirror import ensure
from .s3 import FlatFilesS3

if TYPE_CHECKING:
    import pandas as pd

    from ...config import Config

log = redact.logger(__name__)

SETTINGS = (
    Setting("MASSIVE_S3_ACCESS_KEY", NAME, "access_key", secret=True,
            help="S3 access key id of the flat files (from your Massive dashboard; not the REST key)"),
    Setting("MASSIVE_S3_SECRET_KEY", NAME, "secret_key", secret=True, help="S3 secret of the flat files"),
    Setting("MASSIVE_S3_ENDPOINT", NAME, "endpoint", "url", "https://files.massive.com", help="S3 endpoint"),
    Setting("MASSIVE_S3_BUCKET", NAME, "bucket", "str", "flatfiles", help="S3 bucket"),
    Setting("MASSIVE_S3_CONNECT_TIMEOUT", NAME, "connect_timeout", "float", 5.0, gt=0, le=300,
            help="seconds to connect"),
    Setting("MASSIVE_S3_READ_TIMEOUT", NAME, "read_timeout", "float", 60.0, gt=0, le=3600,
            help="seconds to wait for data"),
    Setting("MASSIVE_S3_MAX_RETRIES", NAME, "max_retries", "int", 4, ge=0, le=20,
            help="retries of a failed S3 request"),
    Setting("MASSIVE_FLATFILES_WORKERS", NAME, "workers", "int", 4, ge=1, le=64, help="downloads at once"),
    Setting("MASSIVE_S3_REQUEST_DEADLINE", NAME, "request_deadline", "float", 60.0, gt=0, le=3600,
            help="seconds one S3 request may take in all (plus a second per 256 KiB of the file)"),
    Setting("MASSIVE_FLATFILES_MAX_QUERY_MB", NAME, "max_query_mb", "float", 2048.0, gt=0,
            help="most a query may download into the store (estimated); beyond it, sync first"),
)


def store_for(config: Config) -> Store:
    """This provider's store: ``FINRPT_PROVIDERS_CACHE_DIR``/massive/us_stocks_sip (a local
    directory, or object storage when the setting is a URL), with the datasets it declares."""
    where = config.store_location
    checks = {d: functools.partial(_check_rows, interval="1d" if d == "day_aggs_v1" else "1m") for d in AGG_DATASETS}
    return open_store(f"{where}/massive" if isinstance(where, str) else where / "massive", PREFIX,
                      [store_dataset(d, check=checks[d]) for d in AGG_DATASETS], config)


def _check_rows(table, interval: str) -> list[tuple[dt.date | None, str]]:
    """Stored rows a query would refuse, through the core's one gate: (session of the first bad
    bar, why) per ticker (the store's ``verify`` reports them)."""
    from ...frames import Expect, gate
    from ...timebase import DAY_NS, from_ordinal, wall_ns

    long = table_to_long(table)
    if not len(long):
        return []
    stamps = long.index.get_level_values(1)
    days = wall_ns(stamps) // DAY_NS
    first, last = from_ordinal(int(days.min())), from_ordinal(int(days.max()))
    _ok, failed = gate(long, Expect(first, last, interval), NAME)
    out = []
    for t, e in sorted(failed.items()):
        at = getattr(e, "at", None)
        out.append((at.date() if at is not None else None, str(e)))
    return out


def _frame(table, index_of) -> pd.DataFrame:
    """Stored rows -> the bar columns (flat files have no VWAP) on ``index_of(stamps)``."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    ws = table.column("window_start").cast(pa.int64()).to_numpy().view("M8[ns]")
    stamps = pd.DatetimeIndex(ws).tz_localize("UTC").tz_convert(ET)
    cols = {c: table.column(c).to_numpy() for c in ("open", "high", "low", "close", "volume")}
    cols["vwap"] = np.full(table.num_rows, np.nan)
    cols["transactions"] = pd.array(table.column("transactions").to_numpy(zero_copy_only=False), dtype="Int64")
    return pd.DataFrame(cols, index=index_of(stamps), copy=False)


def table_to_bars(table) -> pd.DataFrame:
    """Stored rows of one ticker -> the bar frame."""
    if table.num_rows == 0:
        return empty_bars()
    df = _frame(table, lambda stamps: stamps.rename("timestamp"))
    return df if df.index.is_monotonic_increasing else df.sort_index()


def table_to_long(table) -> pd.DataFrame:
    """Stored rows of many tickers -> the long frame indexed by (ticker, timestamp), sorted.
    The tickers are dictionary-encoded by Arrow and the index built from the codes (a
    year of a market is 3 million rows: a Python string per row would cost half a second);
    rows already in (ticker, time) order, as the store writes them, are not sorted again."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from ...frames import long_frame, long_index

    if table is None or table.num_rows == 0:
        return long_frame({})
    enc = pc.dictionary_encode(table.column("ticker").combine_chunks())
    names = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    by_name = np.argsort(names.astype(str), kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[by_name] = np.arange(len(names))
    codes = rank[enc.indices.to_numpy(zero_copy_only=False)]
    ws = table.column("window_start").cast(pa.int64()).to_numpy()
    same = codes[1:] == codes[:-1]
    if not (bool((codes[1:] >= codes[:-1]).all()) and bool((~same | (ws[1:] >= ws[:-1])).all())):
        order = np.lexsort((ws, codes))
        table, codes = table.take(pa.array(order)), codes[order]
    return _frame(table, lambda stamps: long_index(codes, names[by_name], stamps))


class MassiveFlatFilesProvider(PriceProvider):
    name = NAME
    intervals = frozenset({"1m", "1d"})
    adjustments = frozenset({"raw"})
    keeps_store = True
    settings = SETTINGS
    credentials = ("MASSIVE_S3_ACCESS_KEY", "MASSIVE_S3_SECRET_KEY")
    requires = ("boto3", "pyarrow")
    description = "Massive S3 flat files via a local Parquet store (S3 key pair; as traded)"

    def cannot_serve(self, query: PriceQuery, today: dt.date) -> str | None:
        if query.ticker.startswith("I:"):  # the stocks files hold no index
            return ("indices are in Massive's us_indices flat files, which are not mirrored here (not every plan "
                    "includes them): massive_rest or yfinance serve them")
        return super().cannot_serve(query, today)

    @property
    def workers(self) -> int:
        return self.config.value("MASSIVE_FLATFILES_WORKERS")

    def store(self):
        """The store this provider keeps (finrpt_providers.dask.read_bars reads it)."""
        return store_for(self.config)

    def table_to_long(self, table) -> pd.DataFrame:
        """Stored rows of many tickers -> the long bar frame."""
        return table_to_long(table)

    def _read(self, dataset: str, days: list[dt.date], ticker: str) -> pd.DataFrame:
        return table_to_bars(self._stored(dataset, days, lambda store: store.read_ticker(dataset, days, ticker)))

    def _stored(self, dataset: str, days: list[dt.date], read):
        """``read(store)`` once ``days`` are in the store; a session whose object turns out to be
        gone (two writers of two versions at one instant) is fetched again, once."""
        store = self._ensure(dataset, days)
        try:
            return read(store)
        except SessionGone as gone:
            log.warning("%s: the stored %s of %s is gone (%s): fetching it again", NAME, dataset, gone.day, gone)
            store.forget(dataset, [gone.day])
            return read(self._ensure(dataset, days))

    def _ensure(self, dataset: str, days: list[dt.date]) -> Store:
        s3 = FlatFilesS3(self.config)  # missing keys fail here; the boto3 client is built on first use
        store = store_for(self.config)
        outcome = ensure(s3, store, dataset, days, self.workers, self.config.today(),
                         max_mb=self.config.value("MASSIVE_FLATFILES_MAX_QUERY_MB"))
        if outcome.missing:
            log.warning("%s: no %s file upstream for %s (not published yet, or absent): the answer lacks "
                        "%s", NAME, dataset, text.days(outcome.missing),
                        "that session" if len(outcome.missing) == 1 else "those sessions")
        return store

    def fetch_basket(self, queries: list[PriceQuery]) -> pd.DataFrame:
        """Every ticker of the basket from one pass over the store (each file downloaded when
        lacking, and read once for all of them), as one long frame."""
        q0 = queries[0]
        days = calendar.sessions(q0.start, min(q0.end, self.config.today()))
        dataset = "day_aggs_v1" if q0.interval == "1d" else "minute_aggs_v1"
        tickers = [q.ticker for q in queries]
        return table_to_long(self._stored(dataset, days, lambda store: store.read_tickers(dataset, days, tickers)))

    serves_market = True

    def fetch_market(self, start: dt.date, end: dt.date, interval: str, adjustment: str) -> pd.DataFrame:
        """Every ticker of the sessions' day (or minute) files, from the store (downloading
        what it lacks, within MASSIVE_FLATFILES_MAX_QUERY_MB)."""
        days = calendar.sessions(start, min(end, self.config.today()))
        dataset = "day_aggs_v1" if interval == "1d" else "minute_aggs_v1"
        if not days:
            return table_to_long(None)
        return table_to_long(self._stored(dataset, days, lambda store: store.read_days(dataset, days)))

    def _none(self, query: PriceQuery) -> NoData:
        return NoData(f"the flat files have no {query.interval} bars for {query.ticker} from {query.start} to "
                      f"{query.end}: check the ticker (flat files write share classes with a dot, e.g. BRK.B)",
                      provider=NAME)

    def fetch(self, query: PriceQuery) -> pd.DataFrame:
        days = calendar.sessions(query.start, min(query.end, self.config.today()))
        bars = self._read("day_aggs_v1" if query.interval == "1d" else "minute_aggs_v1", days, query.ticker)
        if bars.empty:
            raise self._none(query)
        return bars

    def fetch_sessions(self, ticker: str, sessions: list[dt.date], adjustment: str) -> pd.DataFrame:
        """Just these sessions' day files (a cold store downloads only them)."""
        return self._read("day_aggs_v1", sorted(set(sessions)), ticker)


def _stream_ticker(dataset: str, ticker: str, date: Any, config: Config | dict | None) -> Iterator[pd.DataFrame]:
    import pandas as pd

    from ...config import resolve_config

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
            _check_session(table, day, key)
            df = table.to_pandas()
            for col in ("participant_timestamp", "sip_timestamp", "trf_timestamp"):
                if col in df:
                    df[col] = pd.to_datetime(df[col], unit="ns", utc=True).dt.tz_convert(ET)
            yield df
    except Exception as e:
        if isinstance(e, ProviderError):
            raise
        raise s3.error(e, key, dataset, stream.budget) from None
    finally:
        stream.close()


def _check_session(table, day: dt.date, key: str) -> None:
    """Every trade or quote of a day's file is stamped (SIP time, New York) on that day."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ts = pc.cast(table.column("sip_timestamp"), pa.timestamp("ns", tz="UTC"))
    local = pc.cast(pc.cast(ts, pa.timestamp("ns", tz="America/New_York")), pa.date32())
    other = pc.not_equal(local, pa.scalar(day, pa.date32()))
    if pc.any(other).as_py():
        i = pc.index(other, True).as_py()
        raise DataIntegrityError(f"{key} holds a row stamped {ts[i]} (i.e. {local[i]}), not of {day}: refused "
                                 "(sip_timestamp must be nanoseconds within the file's session)", provider=NAME)


def iter_trades(ticker: str, date: Any, config: Config | dict | None = None) -> Iterator[pd.DataFrame]:
    """One ticker's trades on one session, as DataFrame chunks (timestamps in ET).

    Streams the day's trades file from S3, skips to the ticker's block (the file is
    sorted by ticker) and stops after it: memory stays bounded whatever the file size.
    """
    return _stream_ticker("trades_v1", ticker, date, config)


def iter_quotes(ticker: str, date: Any, config: Config | dict | None = None) -> Iterator[pd.DataFrame]:
    """One ticker's NBBO quotes on one session, as DataFrame chunks (see :func:`iter_trades`)."""
    return _stream_ticker("quotes_v1", ticker, date, config)


def sync(start: Any, end: Any = None, *, datasets: Any = ("day_aggs_v1",), config: Config | dict | None = None,
         client=None, workers: int | None = None, progress=None, report=None) -> dict:
    """Mirror the sessions ``start``..``end`` of ``datasets`` into the store (what
    ``finrpt-providers sync`` does). ``client``: a ``distributed.Client``; its workers then
    fetch one file per task (:mod:`.cluster`). Returns an Outcome per dataset (``fetched``,
    ``missing``, ``bytes``, ``csv_bytes``)."""
    from ... import calendar
    from ...config import resolve_config
    from .files import AGG_DATASETS
    from .mirror import sync as mirror_sync

    cfg = resolve_config(config)
    first = to_date(start, "start")
    last = to_date(end, "end") if end is not None else cfg.today()
    if first > last:
        raise InvalidQuery(f"start {first} is after end {last}: swap them (both are inclusive)")
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    bad = [d for d in datasets if d not in AGG_DATASETS]
    if bad:
        raise InvalidQuery(f"cannot sync {', '.join(bad)}: choose from {', '.join(AGG_DATASETS)}")
    days = calendar.sessions(first, min(last, cfg.today()))
    return mirror_sync(FlatFilesS3(cfg), store_for(cfg), datasets, days,
                       workers or cfg.value("MASSIVE_FLATFILES_WORKERS"), progress=progress, report=report,
                       client=client)


@hookimpl
def register_price_providers(register):
    register(MassiveFlatFilesProvider())


@hookimpl
def register_commands(cli):
    from .commands import register

    register(cli)


__all__ = ["MassiveFlatFilesProvider", "iter_trades", "iter_quotes", "store_for", "sync"]
