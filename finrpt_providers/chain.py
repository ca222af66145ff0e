"""The fallback chain: the first provider that can answer, in the configured order.

Plain Python over the configured order (pluggy's ``firstresult`` cannot say who
answered, nor move on after an error). For each provider, in order:

* skip it before calling when it is not installed, lacks credentials, or can neither
  serve nor derive the interval, adjustment or range (:func:`pipeline.plan`);
* call it; after any :class:`ProviderError` but :class:`InvalidQuery` move on
  (an invalid question stops the chain: no provider could answer it);
* when its answer leaves whole NYSE sessions uncovered at either end of the range
  (flat files lag a day, a plan's history is limited), ask the providers after it
  for just that span and stitch the answers.

Every provider considered lands in ``attrs["attempts"]``. Period intervals (``1wk``
``1mo`` ``3mo``) are answered from the stitched daily bars of the range widened to
whole periods (:mod:`finrpt_providers.intervals`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import calendar, pipeline, redact
from .config import Config
from .errors import AllProvidersFailed, DataIntegrityError, InvalidQuery, ProviderError
from .intervals import is_period, resample_periods, widen
from .plugins import guard, registry
from .provider import PriceQuery, empty_bars

if TYPE_CHECKING:
    import pandas as pd

log = redact.logger(__name__)


def expected_sessions(query: PriceQuery, today: dt.date) -> list[dt.date]:
    """Sessions in the query's range that should have bars by ``today``."""
    return calendar.sessions(query.start, min(query.end, today))


class Chain:
    def __init__(self, names: Sequence[str], config: Config):
        seen: dict[str, None] = {}
        for n in names:
            if not isinstance(n, str) or not n.strip():
                raise InvalidQuery(f"provider names must be non-empty strings, got {n!r}")
            seen.setdefault(n.strip(), None)
        self.names = list(seen)
        self.config = config

    def fetch(self, query: PriceQuery) -> pd.DataFrame:
        today = self.config.today()
        query = bounded(query, today, self.config)
        if is_period(query.interval):
            return self._fetch_periods(query, today)
        attempts: list[dict[str, Any]] = []
        self._actions_used: dict[str, None] = {}
        if not expected_sessions(query, today):
            # Holidays/weekends only (or entirely after today): nothing to ask anyone.
            df = empty_bars()
            sources: list[dict[str, Any]] = []
        else:
            found = self._resolve(query, self.names, attempts, today, note="")
            if found is None:
                raise AllProvidersFailed.from_attempts(query.describe(), attempts)
            df, sources = found
        df.attrs.clear()
        df.attrs.update(
            ticker=query.ticker,
            interval=query.interval,
            adjustment=query.adjustment,
            provider="+".join(dict.fromkeys(s["provider"] for s in sources)),
            sources=sources,
            attempts=attempts,
            actions="+".join(self._actions_used),
        )
        return df

    def _fetch_periods(self, query: PriceQuery, today: dt.date) -> pd.DataFrame:
        start, end = widen(query.start, query.end, query.interval)
        return resample_periods(self.fetch(query.replace(interval="1d", start=start, end=end)), query.interval, today)

    def _resolve(self, query: PriceQuery, names: list[str], attempts: list[dict[str, Any]],
                 today: dt.date, note: str) -> tuple[pd.DataFrame, list[dict[str, Any]]] | None:
        reg = registry()

        def record(name: str, outcome: str, detail: str) -> None:
            detail = redact.scrub(detail)  # quotes servers and plugins: never a secret
            attempts.append({"provider": name, "outcome": outcome, "detail": note + detail})
            log.info("%s %s: %s%s", name, outcome, note, detail)

        for i, name in enumerate(names):
            entry = reg.get(name)
            if entry is None:
                record(name, "skipped", f"no provider named {name!r} is installed "
                       f"(installed: {', '.join(sorted(reg)) or 'none'})")
                continue
            try:  # the pre-call checks are the plugin's code too: a bug there is its failure
                provider = guard(entry.provider, "configured()", entry.provider.configured, self.config)
                native, reason = guard(provider, "its capability checks", pipeline.plan, provider, query, today)
            except ProviderError as e:
                record(name, "failed", f"{type(e).__name__}: {e}")
                continue
            if native is None:
                record(name, "skipped", reason or "cannot serve")
                continue
            try:
                df = pipeline.fetch(provider, query, today, native)
            except InvalidQuery:
                raise
            except ProviderError as e:
                record(name, "failed", f"{type(e).__name__}: {e}")
                continue
            except (Exception, SystemExit) as e:  # a provider bug (or exit) must not take the chain down
                log.debug("provider %s raised", name, exc_info=True)
                what = f"exit({e.code!r})" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
                record(name, "failed", f"unexpected {what}")
                continue
            if df.empty:
                record(name, "empty", f"no bars for {query.describe()}")
                continue
            used = df.attrs.get("actions", "")
            record(name, "ok", f"{len(df)} bars {df.index[0]} .. {df.index[-1]}"
                   + (f" (adjusted with corporate actions from {used})" if used else ""))
            parts = [df]
            if used:
                self._actions_used[used] = None
            sources = [{"provider": name, "first": df.index[0], "last": df.index[-1]}]
            for gap in self._gaps(query, df, today):
                sub = self._resolve(gap, names[i + 1:], attempts, today,
                                    note=f"gap {gap.start}..{gap.end} left by {name}: ")
                if sub is not None:
                    parts.append(sub[0])
                    sources.extend(sub[1])
            if len(parts) > 1:
                import pandas as pd

                df = pd.concat(parts).sort_index()
                if df.index.has_duplicates:  # gap spans are disjoint; this would be our bug
                    raise DataIntegrityError(f"stitching produced duplicate bars for {query.describe()}")
                sources.sort(key=lambda s: s["first"])
            return df, sources
        return None

    @staticmethod
    def _gaps(query: PriceQuery, df: pd.DataFrame, today: dt.date) -> list[PriceQuery]:
        expected = expected_sessions(query, today)
        days = df.index.normalize()
        first, last = days[0].date(), days[-1].date()
        lead = [s for s in expected if s < first]
        trail = [s for s in expected if s > last]
        return [query.replace(start=span[0], end=span[-1]) for span in (lead, trail) if span]


def bounded(query: PriceQuery, today: dt.date, config: Config) -> PriceQuery:
    """The question as any provider will see it: not starting in the future, ``end`` clipped
    to ``today`` (no request is ever made for days that have not happened), and an intraday
    span no larger than FINRPT_MAX_INTRADAY_SESSIONS (InvalidQuery naming the limit)."""
    query.check_not_future(today)
    if query.end > today:
        query = query.replace(end=max(query.start, today))
    if query.intraday:
        limit = config.value("FINRPT_MAX_INTRADAY_SESSIONS")
        n = len(calendar.sessions(query.start, min(query.end, today)))
        if n > limit:
            raise InvalidQuery(f"{query.describe()} spans {n} sessions of {query.interval} bars, more than one call "
                               f"fetches (FINRPT_MAX_INTRADAY_SESSIONS={limit}): ask for a shorter range (loop over "
                               "years), or raise the limit")
    return query


def resolve_config(config: Config | dict | None) -> Config:
    if isinstance(config, Config):
        return config
    if config is None or isinstance(config, dict):
        return Config.load(config)
    raise InvalidQuery(f"config must be a finrpt_providers.Config or a dict of settings, not {type(config).__name__}")


def get_prices(ticker: str, start: Any, end: Any, *, interval: str = "1d", adjustment: str = "splits",
               providers: Sequence[str] | str | None = None, config: Config | dict | None = None) -> pd.DataFrame:
    """Bars for ``ticker`` from ``start`` to ``end`` (both inclusive, session dates in ET).

    Returns the bar frame (see :mod:`finrpt_providers.provider`); ``attrs`` say which
    provider answered (``provider``, ``sources``) and what was tried (``attempts``).
    Raises :class:`InvalidQuery` before any I/O for a bad question and
    :class:`AllProvidersFailed` when nobody could answer.
    """
    query = PriceQuery(ticker, start, end, interval, adjustment)
    cfg = resolve_config(config)
    if isinstance(providers, str):
        providers = [p for p in providers.split(",") if p.strip()]
    names = list(providers) if providers is not None else cfg.providers
    return Chain(names, cfg).fetch(query)


def fetch_one(provider, ticker: str, start: Any, end: Any, *, interval: str = "1d", adjustment: str = "splits",
              config: Config | None = None) -> pd.DataFrame:
    """One provider instance answering through the core's pipeline (derived intervals and
    adjustments included), without the chain's fallback: what the conformance kit
    checks. The provider need not be registered."""
    query = PriceQuery(ticker, start, end, interval, adjustment)
    return _fetch_one(provider, query, config)


def _fetch_one(provider, query: PriceQuery, config: Config | None = None) -> pd.DataFrame:
    cfg = config or provider.config or resolve_config(None)
    provider = provider.configured(cfg) if provider.config is not cfg else provider
    today = cfg.today()
    query = bounded(query, today, cfg)
    if is_period(query.interval):
        start, end = widen(query.start, query.end, query.interval)
        return resample_periods(_fetch_one(provider, query.replace(interval="1d", start=start, end=end), cfg),
                                query.interval, today)
    return pipeline.fetch(provider, query, today)
