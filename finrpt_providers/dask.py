"""Work on a Dask cluster (``pip install 'finrpt-providers[dask]'``): the store read as a
dask DataFrame (:func:`read_bars`), and what a cluster's workers need to reach the
sources and the store (:func:`connect`, :func:`share_config`).

Credentials never travel in a task: the configuration (secrets included) goes to each
worker ONCE, as a worker plugin registered under a name derived from a hash of the
values; tasks carry only that name. Task keys are our own readable names
(``finrpt-sync-day_aggs_v1-2026-03-02``), the plugin's repr redacts, and nothing is
written to disk. A worker that dies and is replaced gets the plugin again from the
scheduler before it runs a task.

    >>> from finrpt_providers.dask import read_bars
    >>> bars = read_bars("day_aggs_v1", "2024-01-01", "2025-12-31", adjustment="splits")
    >>> bars.assign(dv=bars.close * bars.volume).groupby("ticker").dv.mean().nlargest(20).compute()
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, InvalidQuery
from .query import DEFAULT_ADJUSTMENT

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

EXTRA = "pip install 'finrpt-providers[dask]'"
_LOCAL: dict[str, dict[str, str]] = {}  # plugin name -> values, for in-process schedulers
_LOCK = threading.Lock()
_CACHE: dict[str, "Config"] = {}


def require() -> None:
    """One clear line when dask or distributed is missing."""
    import importlib.util

    missing = [m for m in ("dask", "distributed") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigurationError(f"this needs {' and '.join(missing)}: {EXTRA}")


def connect(address: str):
    """A ``distributed.Client`` for ``--cluster``: ``tcp://HOST:PORT`` (a running scheduler)
    or ``local:N`` (a LocalCluster of N worker processes on this machine)."""
    require()
    from distributed import Client, LocalCluster

    text = str(address).strip()
    if text.startswith("local:"):
        n = text[6:]
        if not n.isdigit() or not 1 <= int(n) <= 256:
            raise InvalidQuery(f"--cluster {text!r}: use local:N with N workers, 1 to 256 (e.g. local:4)")
        cluster = LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True, dashboard_address=":0")
        return Client(cluster)
    if "://" not in text or text.split("://", 1)[0] not in ("tcp", "tls", "ws", "wss", "inproc", "ucx"):
        raise InvalidQuery(f"--cluster {text!r} is not a scheduler address: use tcp://HOST:8786 (a running "
                           "`dask scheduler`) or local:N")
    try:
        return Client(text, timeout=30)
    except (OSError, TimeoutError) as e:
        from .errors import ProviderUnavailable

        raise ProviderUnavailable(f"no Dask scheduler answers at {text} ({type(e).__name__}): start one with "
                                  "`dask scheduler` and workers with `dask worker ADDRESS`, or use local:N") from None


class ConfigPlugin:
    """The configuration for tasks on a worker: installed once per worker (a
    ``distributed.WorkerPlugin``); its repr never shows a value."""

    name = "finrpt-config"

    def __init__(self, name: str, values: dict[str, str]):
        self.name = name
        self._values = values

    def __repr__(self) -> str:
        return f"<finrpt ConfigPlugin {self.name} ({len(self._values)} settings, secrets not shown)>"

    def setup(self, worker=None) -> None:
        with _LOCK:
            _keep(self.name, self._values)

    def teardown(self, worker=None) -> None:
        pass


def _values(config: "Config") -> dict[str, str]:
    """What a worker gets: the driver's resolved values, the store's location made absolute
    here (never the worker's own cache directory or working directory)."""
    values = {k: str(v) for k, v in config._values.items() if v is not None}
    where = config.store_location
    values["FINRPT_PROVIDERS_CACHE_DIR"] = where if isinstance(where, str) else str(where.expanduser().resolve())
    return values


#: configurations kept per process (a worker keeps the latest few, not every one it was given)
KEEP = 16


def _keep(name: str, values: dict[str, str]) -> None:
    _LOCAL.pop(name, None)
    _LOCAL[name] = values
    while len(_LOCAL) > KEEP:
        old = next(iter(_LOCAL))
        _LOCAL.pop(old)
        _CACHE.pop(old, None)


def share_config(config: "Config", client=None) -> str:
    """Give ``config`` to every worker of ``client`` (and of this process); returns the name
    tasks pass to :func:`worker_config`. Idempotent for equal values."""
    values = _values(config)
    digest = hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()[:16]
    name = f"finrpt-config-{digest}"
    with _LOCK:
        _keep(name, values)
    if client is not None:
        from distributed.diagnostics.plugin import WorkerPlugin

        plugin = type("FinrptConfigPlugin", (ConfigPlugin, WorkerPlugin), {})(name, values)
        client.register_plugin(plugin, name=name)
    return name


def worker_config(name: str | None = None) -> "Config":
    """The configuration shared under ``name`` (the only one when None), on a worker or here."""
    from .config import Config

    with _LOCK:
        if name is None:
            if len(_LOCAL) != 1:
                raise ConfigurationError("no (or more than one) finrpt configuration was shared with this worker: "
                                         "call finrpt_providers.dask.share_config(config, client) first")
            name = next(iter(_LOCAL))
        values = _LOCAL.get(name)
        cached = _CACHE.get(name)
    if cached is not None:
        return cached
    if values is None:
        raise ConfigurationError(f"this worker has no finrpt configuration {name}: it joined without the plugin "
                                 "(share_config registers it with the client); dask's local 'processes' scheduler "
                                 "gets none: use the threads scheduler or a distributed Client")
    cfg = Config.exact(values)  # nothing of this machine's files or environment: see Config.exact
    with _LOCK:
        _CACHE[name] = cfg
    return cfg


# -- the store as a dask DataFrame ---------------------------------------------------------
def _meta() -> "pd.DataFrame":
    import pandas as pd

    from .timebase import ET

    return pd.DataFrame({
        "ticker": pd.Series(dtype="object"), "timestamp": pd.Series(dtype=f"datetime64[ns, {ET}]"),
        "open": pd.Series(dtype="float64"), "high": pd.Series(dtype="float64"), "low": pd.Series(dtype="float64"),
        "close": pd.Series(dtype="float64"), "volume": pd.Series(dtype="float64"),
        "vwap": pd.Series(dtype="float64"), "transactions": pd.Series(dtype="Int64"),
    })


def _partition(part: tuple) -> "pd.DataFrame":
    """One partition: the store's rows of ``days`` (of ``tickers``) through the core's gate,
    then adjusted on the worker by the one adjustment (:func:`finrpt_providers.pipeline.adjust_long`)
    with the events and closes prepared once on the client: no worker asks a source."""
    from .frames import Expect, gate
    from .pipeline import adjust_long
    from .plugins import registry

    name, provider, dataset, days, tickers, interval, adjustment, prepared, extended = part
    p = registry()[provider].provider.configured(worker_config(name))
    store = p.store()
    table = store.read_tickers(dataset, days, tickers) if tickers is not None else store.read_days(dataset, days)
    long, bad = gate(p.table_to_long(table), Expect(days[0], days[-1], interval, tickers, sessions=tuple(days)),
                     provider)
    if bad:  # the client named them (a store that changed since would be caught here, loudly)
        import logging

        logging.getLogger(__name__).warning("read_bars: %d ticker(s) of %s..%s left out, their stored bars break "
                                            "the contract: %s", len(bad), days[0], days[-1], ", ".join(sorted(bad)[:20]))
    if interval != "1d" and not extended and len(long):  # the regular session, as every intraday answer
        from .pipeline import regular_session

        long = regular_session(long)
    if adjustment != "raw" and len(long):
        splits, dividends, closes, failed = prepared
        long, why = adjust_long(long, "raw", adjustment, splits, dividends, daily=False,
                                more_closes=lambda _wanted: closes, exclude=set(failed))
        if why:  # the client's preparation should have named them: never a silent loss
            import logging

            logging.getLogger(__name__).warning("read_bars: %d ticker(s) of %s..%s left out on the worker, their "
                                                "corporate actions could not be applied: %s", len(why), days[0],
                                                days[-1], "; ".join(f"{t}: {w}" for t, w in sorted(why.items())[:5]))
    out = long.reset_index()
    return out[list(_meta().columns)]


def _prepare(cfg: "Config", source, dataset: str, days: list, tickers: list[str] | None, adjustment: str,
             known: "dt.date | None" = None):
    """What every partition needs to adjust (computed once, here, shipped as data): the
    market-wide events, splits checked against as-traded closes, the as-traded close of the
    session before each ex-dividend date, and the tickers that cannot be adjusted (why).
    Only the tickers with events are read, on the sessions their checks need: from the store
    when ``dataset`` holds daily bars, else (and for sessions it lacks) the source's daily
    market of each session. ``known``: the as-of date (events after it do not adjust)."""
    import numpy as np
    import pandas as pd

    from . import calendar
    from .adjust import factors
    from .frames import Expect, closes_by_session, gate, one_ticker, tickers_of
    import logging

    from .errors import ProviderError
    from .market import checked_splits, market_actions, market_session
    from .timebase import DAY_NS, ET, ordinal, wall_ns

    splits, dividends, src, refused = market_actions(cfg, days[0], min(known or cfg.today(), cfg.today()))
    if tickers is not None:
        splits = splits[splits.index.get_level_values(0).isin(tickers)]
        dividends = dividends[dividends.index.get_level_values(0).isin(tickers)]
    if adjustment != "total":
        dividends = dividends.iloc[:0]
    split_tickers = set(splits.index.get_level_values(0))
    event_tickers = sorted(split_tickers | set(dividends.index.get_level_values(0)))
    befores = {calendar.session_before(ex.date()) for ex in dividends.index.get_level_values(1)}
    around = {d for ex in splits.index.get_level_values(1) for d in (calendar.session_before(ex.date()), ex.date())}
    needed = sorted(d for d in befores | around if d is not None and d <= cfg.today())
    parts = []
    if event_tickers and needed:
        store = source.store()
        if store.per_year(dataset):
            parts.append(source.table_to_long(store.read_tickers(dataset, needed, event_tickers)))
        held = set()
        for part in parts:
            held |= {d for d in np.unique(wall_ns(part.index.get_level_values(1)) // DAY_NS)} if len(part) else set()
        for d in needed:
            if ordinal(d) not in held:  # a minute dataset, or a session the store lacks
                try:
                    got = market_session(source, d, "raw")
                except ProviderError as e:  # its tickers' events then fail, named
                    logging.getLogger(__name__).info("read_bars: closes of %s unavailable (%s)", d, e)
                    continue
                parts.append(got[got.index.get_level_values(0).isin(event_tickers)])
    raw = pd.concat([p for p in parts if len(p)]).sort_index() if any(len(p) for p in parts) else None
    if raw is None:
        from .frames import empty_long

        raw = empty_long()
    daily, bad = gate(raw, Expect(needed[0] if needed else days[0], needed[-1] if needed else days[-1], "1d",
                                  event_tickers), source.name)
    failed = {t: str(e) for t, e in bad.items()}
    present = set(tickers_of(daily))
    splits, why = checked_splits(splits, refused, src, lambda t, _sessions: one_ticker(daily, t), "raw",
                                 pd.Timestamp(days[0], tz=ET), split_tickers)
    failed.update(why)
    if adjustment == "total":
        failed.update({t: r for t, r in refused.get("dividends", {}).items() if t in present})
    closes = closes_by_session(daily)
    if adjustment == "total" and len(dividends):
        # a dividend that adjusts the range (ex-date after its first session) without its close
        # fails its ticker, named: one row per dividend-paying ticker at the range's first day
        payers = sorted(set(dividends.index.get_level_values(0)) - set(failed))
        codes = np.arange(len(payers), dtype=np.int64)
        # no session before (the calendar's edge): NaT, so no close, so the ticker fails, as in adjust_long
        before = [pd.Timestamp(b, tz=ET) if (b := calendar.session_before(ex.date())) else pd.NaT
                  for ex in dividends.index.get_level_values(1)]
        keyed = pd.MultiIndex.from_arrays([dividends.index.get_level_values(0), pd.DatetimeIndex(before)])
        prev = pd.Series(closes.reindex(keyed).to_numpy(), index=dividends.index)  # by ex-date, as factors takes
        _p, _v, why = factors(codes, np.full(len(payers), ordinal(days[0]), dtype=np.int64), payers, "raw",
                              "total", splits, dividends, prev[np.isfinite(prev.to_numpy())])
        failed.update(why)
    return (splits, dividends, closes, failed), src


def read_bars(dataset: str, start: Any, end: Any, tickers: list[str] | None = None,
              adjustment: str = DEFAULT_ADJUSTMENT, *,
              config: "Config | dict | None" = None, client=None, provider: str | None = None,
              extended_hours: bool = False, as_of: Any = None):
    """The store's bars as a ``dask.dataframe.DataFrame``: columns ``ticker``, ``timestamp``
    (bar start, New York) and the bar columns; one partition per session (minute bars) or
    per year (day bars), in time order. Sessions not in the store are not fetched (sync
    them first); ``tickers`` reads only the row groups that can hold them.

    ``adjustment`` "splits" or "total" applies the same factors as ``get_prices``
    (``finrpt_providers.adjust``: splits by ex-date, dividends against the close of the
    session before each ex-date), from the market-wide corporate-actions source,
    computed once here and shipped with the partitions as data; a ticker whose events
    cannot be applied is left out, named with the reason in the result's ``attrs["failed"]``
    (as ``get_market`` does). The default is ``get_prices``'s: "splits". Minute bars are
    the regular session's (09:30-16:00 New York, half days from the calendar) unless
    ``extended_hours=True`` (every stored minute, 04:00-20:00). ``as_of``: adjusted only for
    the events with an ex-date on or before it (prices as known then; ``end`` must not be
    after it), as ``get_prices``. Runs on ``client`` (or
    the current default client; without one, dask's local scheduler)."""
    require()
    import dask
    import dask.dataframe as dd

    from . import calendar
    from .config import resolve_config
    from .market import market_actions_source
    from .query import normalize_adjustment, normalize_as_of, normalize_extended_hours, normalize_ticker, to_date

    cfg = resolve_config(config)
    first, last = to_date(start, "start"), to_date(end, "end")
    if last < first:
        raise InvalidQuery(f"end {last} is before start {first}")
    adjustment = normalize_adjustment(adjustment)
    extended = normalize_extended_hours(extended_hours)
    known = normalize_as_of(as_of)
    if known is not None and last > known:
        raise InvalidQuery(f"end {last} is after as_of {known}: bars after the as-of date were not known then; ask "
                           f"end <= {known}")
    tickers = None if tickers is None else sorted({normalize_ticker(t) for t in tickers})
    source = _store_provider(cfg, dataset, provider)
    days = calendar.sessions(first, min(last, cfg.today()))
    if not days:
        raise InvalidQuery(f"no NYSE session between {first} and {last}")
    if client is None:
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):
            client = None
    name = share_config(cfg, client)
    prepared, failed, src = None, {}, ""
    if adjustment != "raw":
        if market_actions_source(cfg) is None:
            raise ConfigurationError("adjusting needs a market-wide corporate-actions source (a provider with "
                                     "fetch_market_actions, ready): none is; configure one, or ask adjustment='raw'")
        prepared, src = _prepare(cfg, source, dataset, days, tickers, adjustment, known)
        failed = prepared[3]
        if failed:
            import logging

            logging.getLogger(__name__).warning(
                "read_bars: %d ticker(s) left out, their corporate actions could not be applied (see "
                "bars.attrs['failed']): %s", len(failed), ", ".join(sorted(failed)[:20]))
    per_year = source.store().per_year(dataset)
    groups: dict[Any, list[dt.date]] = {}
    for d in days:
        groups.setdefault(d.year if per_year else d, []).append(d)
    interval = "1d" if per_year else "1m"
    parts = [(name, source.name, dataset, ds, tickers, interval, adjustment, prepared, extended)
             for ds in groups.values()]
    # the partitions keep the core's own column types, as get_market's frame has them: dask would
    # otherwise turn the object tickers of pandas 2 into string[pyarrow] (pandas 3's are str already)
    with dask.config.set({"dataframe.convert-string": False}):
        out = dd.from_map(_partition, parts, meta=_meta(), label=f"finrpt-read-{dataset}", enforce_metadata=False)
    # a dask DataFrame has no attrs of its own: these sit on the returned object (not on frames
    # derived from it), as get_market's do on its frame
    object.__setattr__(out, "attrs", {"adjustment": adjustment, "failed": failed, "actions": src,
                                      **({} if per_year else {"extended_hours": extended}),
                                      **({"as_of": known} if known is not None else {})})
    return out


def _store_provider(cfg: "Config", dataset: str, name: str | None):
    """The provider whose store holds ``dataset`` (one that ``keeps_store``)."""
    from .plugins import registry

    for n, entry in registry().items():
        if name is not None and n != name:
            continue
        p = entry.provider
        if p.keeps_store:
            p = p.configured(cfg)
            try:
                p.store().per_year(dataset)
            except ValueError:
                continue
            return p
    raise InvalidQuery(f"no installed provider keeps a store with the dataset {dataset!r}")


__all__ = ["read_bars", "connect", "share_config", "worker_config", "require", "EXTRA"]
