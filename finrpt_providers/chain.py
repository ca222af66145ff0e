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
from .config import Config, resolve_config
from .errors import AllProvidersFailed, DataIntegrityError, InvalidQuery, NoData, ProviderError
from .intervals import is_period, resample_periods, widen
from .plugins import guard, registry
from .frames import empty_bars, is_long, long_frame
from .provider import DEFAULT_ADJUSTMENT, PriceProvider, PriceQuery, report_done

if TYPE_CHECKING:
    import pandas as pd

log = redact.logger(__name__)


def expected_sessions(query: PriceQuery, today: dt.date) -> list[dt.date]:
    """Sessions in the query's range that should have bars by ``today``."""
    return calendar.sessions(query.start, min(query.end, today))


class Chain:
    """The configured order of providers answering questions: one ticker (:meth:`fetch`) or
    a basket of tickers over one range (:meth:`fetch_many`), through the same loop."""

    def __init__(self, names: Sequence[str], config: Config):
        seen: dict[str, None] = {}
        for n in names:
            if not isinstance(n, str) or not n.strip():
                raise InvalidQuery(f"provider names must be non-empty strings, got {n!r}")
            seen.setdefault(n.strip(), None)
        self.names = list(seen)
        self.config = config

    # -- one ticker ---------------------------------------------------------------
    def fetch(self, query: PriceQuery) -> pd.DataFrame:
        today = self.config.today()
        query = bounded(query, today, self.config)
        if is_period(query.interval):
            return self._fetch_periods(query, today)
        attempts: dict[str, list[dict[str, Any]]] = {query.ticker: []}
        proxy: dict[str, str] = {}
        if not expected_sessions(query, today):
            # Holidays/weekends only (or entirely after today): nothing to ask anyone.
            df, sources, used = empty_bars(), [], {}
        else:
            done = self._run([query], self.names, attempts, today, note="", basket=False)
            joined_live = False
            if query.ticker not in done and query.intraday and len(expected_sessions(query, today)) == 1:
                joined, live = _with_live(query, empty_bars(), [])  # one session: a live stream may know it
                if live:
                    done[query.ticker] = (joined, live, {})
                    joined_live = True
            if query.ticker not in done:
                proxy = self._by_proxy([query], attempts, today, done)
            if query.ticker not in done:
                raise AllProvidersFailed.from_attempts(query.describe(), attempts[query.ticker])
            df, sources, used = done[query.ticker]
            if query.intraday and not joined_live:  # once: a second join would list the stream twice
                df, sources = _with_live(query, df, sources)
        df.attrs.clear()
        if expected_sessions(query, today) and proxy:
            df.attrs["proxy"] = proxy[query.ticker]
        df.attrs.update(
            ticker=query.ticker,
            interval=query.interval,
            adjustment=query.adjustment,
            **({"extended_hours": query.extended_hours} if query.intraday else {}),
            **({"as_of": query.as_of} if query.as_of is not None else {}),
            provider="+".join(dict.fromkeys(s["provider"] for s in sources)),
            sources=sources,
            attempts=attempts[query.ticker],
            actions="+".join(used),
        )
        return df

    def _fetch_periods(self, query: PriceQuery, today: dt.date) -> pd.DataFrame:
        start, end = _widened(query)
        return resample_periods(self.fetch(query.replace(interval="1d", start=start, end=end)), query.interval,
                                _known_day(query, today))

    # -- a basket ---------------------------------------------------------------------
    def fetch_many(self, queries: list[PriceQuery], errors: str = "raise") -> pd.DataFrame:
        """The long frame for ``queries`` (one per ticker, same interval, adjustment and
        range): indexed by (ticker, timestamp), sorted. Each ticker falls back along the
        chain on its own; a provider serves all the tickers still pending at once."""
        today = self.config.today()
        queries = [bounded(q, today, self.config) for q in queries]
        q0 = queries[0]
        if is_period(q0.interval):
            start, end = _widened(q0)
            daily = self.fetch_many([q.replace(interval="1d", start=start, end=end) for q in queries], errors)
            return _periods_of_basket(daily, q0.interval, _known_day(q0, today))
        attempts: dict[str, list[dict[str, Any]]] = {q.ticker: [] for q in queries}
        ask = [q for q in queries if expected_sessions(q, today)]
        parts: list[pd.DataFrame] = []
        done = self._run(ask, self.names, attempts, today, note="", basket=True, parts=parts) if ask else {}
        proxy = self._by_proxy([q for q in ask if q.ticker not in done], attempts, today, done)
        failed = {q.ticker: _why(attempts[q.ticker]) for q in ask if q.ticker not in done}
        if failed and errors == "raise":
            raise AllProvidersFailed(
                f"no provider could answer {len(failed)} of {len(queries)} tickers ({q0.interval} {q0.adjustment} "
                f"{q0.start}..{q0.end}): " + "; ".join(f"{t}: {why}" for t, why in failed.items())
                + " (errors='omit' answers the others)", attempts=attempts)
        frames = {t: df for t, (df, _s, _u) in done.items() if df is not None}
        frames.update({q.ticker: empty_bars() for q in queries if q.ticker not in failed and q.ticker not in done})
        answered = sorted(set(frames) | set(done))
        out = _assemble(parts, frames)
        if q0.intraday:
            out = _basket_with_live(out, queries, done)
        out.attrs.update(
            tickers=answered,
            interval=q0.interval,
            adjustment=q0.adjustment,
            **({"extended_hours": q0.extended_hours} if q0.intraday else {}),
            **({"as_of": q0.as_of} if q0.as_of is not None else {}),
            provider={t: "+".join(dict.fromkeys(s["provider"] for s in done[t][1])) if t in done else ""
                      for t in answered},
            sources={t: done[t][1] if t in done else [] for t in answered},
            actions={t: "+".join(done[t][2]) for t in sorted(done)},
            **({"proxy": proxy} if proxy else {}),
            failed=failed,
            attempts=attempts,
        )
        return out

    def _by_proxy(self, unanswered: list[PriceQuery], attempts: dict[str, list[dict[str, Any]]], today: dt.date,
                  done: dict) -> dict[str, str]:
        """Indices nobody could serve, answered by the fund FINRPT_INDEX_PROXIES names for them
        (opt-in): the fund's bars under the index's name, with a warning; index -> fund for
        ``attrs["proxy"]``. Without a proxy the index stays failed."""
        from .query import is_index

        proxies = self.config.value("FINRPT_INDEX_PROXIES") or {}
        used: dict[str, str] = {}
        for q in unanswered:
            fund = proxies.get(q.ticker) if is_index(q.ticker) else None
            if fund is None:
                continue
            sub_attempts: dict[str, list[dict[str, Any]]] = {fund: []}
            sub = self._run([q.replace(ticker=fund)], self.names, sub_attempts, today,
                            note=f"{fund} as the proxy of {q.ticker} (FINRPT_INDEX_PROXIES): ", basket=False)
            why = _why(attempts[q.ticker])
            attempts[q.ticker].extend(sub_attempts[fund])
            if fund in sub:
                done[q.ticker] = sub[fund]
                used[q.ticker] = fund
                log.warning("%s: no configured provider serves it (%s); answered with %s, its proxy "
                            "(FINRPT_INDEX_PROXIES): a fund's prices, not the index's level", q.ticker, why, fund)
        return used

    # -- the loop -----------------------------------------------------------------
    def _run(self, queries: list[PriceQuery], names: list[str], attempts: dict[str, list[dict[str, Any]]],
             today: dt.date, note: str, basket: bool, parts: list | None = None
             ) -> dict[str, tuple[pd.DataFrame | None, list[dict], dict]]:
        """Walk ``names`` in order until every query is answered: skip a provider before
        calling when it cannot serve, ask it for every ticker still pending at once, stitch
        the sessions its answer leaves uncovered from the providers after it. Returns
        ticker -> (frame, sources, corporate-actions sources used); ``attempts`` gets every
        provider considered, per ticker. An InvalidQuery from a provider stops a single
        ticker's chain (raised); in a basket it ends that ticker's search."""
        reg = registry()
        done: dict[str, tuple[pd.DataFrame, list[dict], dict]] = {}
        pending = list(queries)

        def record(ticker: str, name: str, outcome: str, detail: str) -> None:
            detail = redact.scrub(detail)  # quotes servers and plugins: never a secret
            attempts[ticker].append({"provider": name, "outcome": outcome, "detail": note + detail})
            log.info("%s %s %s: %s%s", ticker, name, outcome, note, detail)

        for i, name in enumerate(names):
            if not pending:
                break
            entry = reg.get(name)
            if entry is None:
                for q in pending:
                    record(q.ticker, name, "skipped", f"no provider named {name!r} is installed "
                           f"(installed: {', '.join(sorted(reg)) or 'none'})")
                continue
            still = []
            # a plan per kind of ticker (an index is not a stock: a provider may serve one and not
            # the other), each kind asked at once
            for group in _kinds(pending):
                self._ask(entry, name, names[i + 1:], group, still, attempts, today, done, parts, record, basket)
            pending = still
        return done

    def _ask(self, entry, name: str, later: list[str], group: list[PriceQuery], still: list[PriceQuery],
             attempts: dict[str, list[dict[str, Any]]], today: dt.date, done: dict, parts: list | None, record,
             basket: bool) -> None:
        """One provider asked for one kind of ticker (see :meth:`_run`): the answered go to
        ``done`` (stitched from the ``later`` providers), the others to ``still``."""
        try:  # the pre-call checks are the plugin's code too: a bug there is its failure
            provider = guard(entry.provider, "configured()", entry.provider.configured, self.config)
            native, reason = guard(provider, "its capability checks", pipeline.plan, provider, group[0], today)
        except ProviderError as e:
            for q in group:
                record(q.ticker, name, "failed", f"{type(e).__name__}: {e}")
            still.extend(group)  # the next provider is asked
            return
        if native is None:
            for q in group:
                record(q.ticker, name, "skipped", reason or "cannot serve")
            still.extend(group)
            return
        natives = [q.replace(interval=native.interval, adjustment=native.adjustment,
                             extended_hours=native.extended_hours) for q in group]
        answers = _call(provider, natives)
        if not isinstance(answers, dict):  # one long frame for the basket: checked and adjusted at once
            try:
                long, answers = pipeline.finish_basket(provider, group, natives, answers, today)
            except ProviderError as e:
                long, answers = None, {q.ticker: e for q in group}
            except (Exception, SystemExit) as e:  # a provider bug (or exit) must not take the chain down
                log.debug("provider %s raised", name, exc_info=e)
                long, answers = None, {q.ticker: ProviderError(f"unexpected {type(e).__name__}: {e}",
                                                               provider=name) for q in group}
            if long is not None and len(long):
                answers.update(self._take_long(long, group, name, later, attempts, today, done,
                                               parts, record))
        for q, nq in zip(group, natives):
            got = answers[q.ticker]
            if got is _TAKEN:
                continue
            try:
                if isinstance(got, BaseException):
                    raise got
                df = got.frame if isinstance(got, pipeline.Finished) else pipeline.finish(provider, q, nq, got)
            except InvalidQuery as e:
                if not basket:
                    raise
                record(q.ticker, name, "failed", f"{type(e).__name__}: {e}")
                continue  # the question itself is refused: no other provider is asked
            except ProviderError as e:
                record(q.ticker, name, "failed", f"{type(e).__name__}: {e}")
                still.append(q)
                continue
            except (Exception, SystemExit) as e:  # a provider bug (or exit) must not take the chain down
                log.debug("provider %s raised", name, exc_info=e)
                what = f"exit({e.code!r})" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
                record(q.ticker, name, "failed", f"unexpected {what}")
                still.append(q)
                continue
            if df.empty:
                record(q.ticker, name, "empty", f"no bars for {q.describe()}")
                still.append(q)
                continue
            used = df.attrs.get("actions", "")
            record(q.ticker, name, "ok", f"{len(df)} bars {df.index[0]} .. {df.index[-1]}"
                   + (f" (adjusted with corporate actions from {used})" if used else ""))
            done[q.ticker] = self._stitch(q, df, name, used, later, attempts, today, basket)

    def _take_long(self, long: pd.DataFrame, pending: list[PriceQuery], name: str, later: list[str],
                   attempts: dict[str, list[dict[str, Any]]], today: dt.date, done: dict, parts: list | None,
                   record) -> dict[str, object]:
        """The tickers of a basket's long answer: those covering every expected session are
        done at once (their rows stay in one frame, appended to ``parts``); the others go
        back to the per-ticker path (stitching) as finished frames."""
        import numpy as np

        from .timebase import DAY_NS, ordinal, wall_ns

        tickers = long.index.get_level_values("ticker")
        codes, uniques = tickers.factorize()  # sorted index: each ticker one run
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        ends = np.r_[starts[1:], len(codes)] - 1
        day = wall_ns(long.index.get_level_values("timestamp")) // DAY_NS
        expected = expected_sessions(pending[0], today)
        lo, hi = ordinal(expected[0]), ordinal(expected[-1])
        used = long.attrs.get("actions", {})
        out: dict[str, object] = {}
        whole = np.zeros(len(long), dtype=bool)
        stamps = long.index.get_level_values("timestamp")
        firsts, lasts = list(stamps[starts]), list(stamps[ends])  # boxed once, in bulk
        for k, t in enumerate(uniques):
            a, b = starts[k], ends[k]
            if parts is None or day[a] > lo or day[b] < hi:  # sessions to stitch: the per-ticker path
                df = long.iloc[a:b + 1].droplevel("ticker")
                df.attrs = {"actions": used.get(t, "")}
                out[t] = pipeline.Finished(df)
                continue
            src = used.get(t, "")
            record(t, name, "ok", f"{b - a + 1} bars {firsts[k]} .. {lasts[k]}"
                   + (f" (adjusted with corporate actions from {src})" if src else ""))
            done[t] = (None, [{"provider": name, "first": firsts[k], "last": lasts[k]}], {src: None} if src else {})
            whole[a:b + 1] = True
            out[t] = _TAKEN
        if whole.any():
            parts.append(long if whole.all() else long[whole])
        return out

    def _stitch(self, query: PriceQuery, df: pd.DataFrame, name: str, used: str, later: list[str],
                attempts: dict[str, list[dict[str, Any]]], today: dt.date, basket: bool
                ) -> tuple[pd.DataFrame, list[dict], dict]:
        """``df`` from ``name``, with the whole sessions it leaves uncovered at either end asked
        of the ``later`` providers and joined."""
        parts = [df]
        actions = {used: None} if used else {}
        sources = [{"provider": name, "first": df.index[0], "last": df.index[-1]}]
        for gap in self._gaps(query, df, today):
            sub = self._run([gap], later, attempts, today, note=f"gap {gap.start}..{gap.end} left by {name}: ",
                            basket=basket)
            if gap.ticker in sub:
                parts.append(sub[gap.ticker][0])
                sources.extend(sub[gap.ticker][1])
                actions.update(sub[gap.ticker][2])
        if len(parts) > 1:
            import pandas as pd

            df = pd.concat(parts).sort_index()
            if df.index.has_duplicates:  # gap spans are disjoint; this would be our bug
                raise DataIntegrityError(f"stitching produced duplicate bars for {query.describe()}")
            sources.sort(key=lambda s: s["first"])
        return df, sources, actions

    @staticmethod
    def _gaps(query: PriceQuery, df: pd.DataFrame, today: dt.date) -> list[PriceQuery]:
        expected = expected_sessions(query, today)
        first, last = df.index[0].date(), df.index[-1].date()  # stamps in New York: their session days
        lead = [s for s in expected if s < first]
        trail = [s for s in expected if s > last]
        return [query.replace(start=span[0], end=span[-1]) for span in (lead, trail) if span]


_TAKEN = object()  # a ticker of a long basket answer already done


def _kinds(queries: list[PriceQuery]) -> list[list[PriceQuery]]:
    """``queries`` as groups planned alike: the stocks and funds, then the indices."""
    from .query import is_index

    stocks = [q for q in queries if not is_index(q.ticker)]
    indices = [q for q in queries if is_index(q.ticker)]
    return [g for g in (stocks, indices) if g]


def _call(provider: PriceProvider, natives: list[PriceQuery]) -> dict[str, Any] | pd.DataFrame:
    """``provider``'s native answers, per ticker: a frame, or the exception that ticker met;
    or, from a provider serving baskets as one long frame, that frame. A provider that
    serves baskets is asked once; any other once per ticker."""
    if len(natives) > 1 and provider.serves("basket"):
        try:
            got = guard(provider, "fetch_basket()", provider.fetch_basket, natives)
        except ProviderError as e:
            return {q.ticker: e for q in natives}
        if is_long(got):
            return got
        if not isinstance(got, dict):
            e = DataIntegrityError(f"{provider.name}.fetch_basket() returned {type(got).__name__}, not a dict "
                                   "or a long frame indexed by (ticker, timestamp)", provider=provider.name)
            return {q.ticker: e for q in natives}
        return {q.ticker: got.get(q.ticker, NoData(f"no answer for {q.ticker} in the basket", provider=provider.name))
                for q in natives}
    out: dict[str, Any] = {}
    for q in natives:
        try:
            out[q.ticker] = provider.fetch(q)
        except (Exception, SystemExit) as e:  # recorded by the loop: ProviderError as is, others as bugs
            out[q.ticker] = e
        if len(natives) > 1:
            report_done(q.ticker)
    return out


def _why(attempts: list[dict[str, Any]]) -> str:
    return "; ".join(f"{a['provider']} {a['outcome']} ({a['detail']})" for a in attempts) or "no provider"


def _with_live(query: PriceQuery, df: pd.DataFrame, sources: list[dict]) -> tuple[pd.DataFrame, list[dict]]:
    """``df`` with the closed bars an open live stream of this process has for ``query``'s
    ticker in its session (when the query's range holds it) after ``df``'s last bar (derived to the query's interval; a bucket only when
    every minute of it has closed). Joined only when the stream's bars follow ``df`` without a
    hole: the first streamed minute at most one minute after the last minute ``df``'s last bar
    covers (or, when ``df`` has nothing today, at the session's first minute); else a warning
    says why not. ``df``'s own last bar stays as its provider gave it."""
    from .intervals import INTERVAL_MINUTES, resample_minutes
    from .live import live_bars

    got = live_bars(query.ticker, query.extended_hours)
    if got is None:
        return df, sources
    import pandas as pd

    live, name = got
    today = live.index[0].date()
    if not query.start <= today <= query.end:
        return df, sources
    seen_until = live.index[-1] + pd.Timedelta(minutes=1)  # the stream has seen the market up to here
    if query.regular_only:  # the stream sends every hour: the answer keeps the regular session
        from .intervals import in_regular_session

        live = live[in_regular_session(live.index)]
        if live.empty:
            return df, sources
    minute = pd.Timedelta(minutes=1)
    last = df.index[-1] if len(df) else None
    opens, closes = calendar.session_hours(today)
    session_first = opens if query.regular_only else pd.Timestamp(today, tz=live.index.tz) + pd.Timedelta(hours=4)
    session_end = closes if query.regular_only else pd.Timestamp(today, tz=live.index.tz) + pd.Timedelta(hours=20)
    width = pd.Timedelta(minutes=INTERVAL_MINUTES[query.interval])
    # the last minute the answer's last bar covers (a 5m..1h bar ends width after its start):
    # a bucket after it is joined only when the stream holds every one of its minutes
    edge = last + width - minute if last is not None and last >= session_first else session_first - minute
    if live.index[0] > edge + minute and (last is None or live.index[0] > last):
        log.warning("a live stream has %s bars of %s from %s, but the answer ends at %s: the minutes between are "
                    "not known, so the stream's bars are not joined", name, query.ticker, live.index[0], edge)
        return df, sources
    # the stream's bars pass the gate again here (as every frame entering an answer does): a
    # bar the gate refuses means the stream's bars are not joined, with a warning saying why
    from .frames import Expect, gate

    checked, bad = gate(live, Expect(query.start, query.end, "1m"), name, ticker=query.ticker)
    if bad:
        log.warning("a live stream's bars of %s are not joined: %s", query.ticker, bad[query.ticker])
        return df, sources
    live = checked.droplevel(0)
    bars = resample_minutes(live, query.interval, regular=query.regular_only)
    ends = (bars.index + width).where(bars.index + width <= session_end, session_end)
    bars = bars[ends <= seen_until]  # closed buckets only (the last one ends at the close)
    if last is not None:
        bars = bars[bars.index > last]
    if bars.empty:
        return df, sources
    bars = bars[list(df.columns)].astype(df.dtypes.to_dict()) if len(df.columns) else bars
    out = pd.concat([df, bars]) if len(df) else bars
    return out, [*sources, {"provider": name, "first": bars.index[0], "last": bars.index[-1]}]


def _basket_with_live(out: pd.DataFrame, queries: list[PriceQuery], done: dict) -> pd.DataFrame:
    """The basket's long frame with each ticker's live bars joined (see :func:`_with_live`)."""
    from .live import any_open

    if not any_open():
        return out
    import pandas as pd

    have = set(out.index.get_level_values(0)) if len(out) else set()
    extra = {}
    for q in queries:
        if q.ticker not in done:
            continue
        df = out.xs(q.ticker, level=0) if q.ticker in have else empty_bars()
        joined, sources = _with_live(q, df, done[q.ticker][1])
        if len(joined) > len(df):
            extra[q.ticker] = joined.iloc[len(df):]
            done[q.ticker] = (done[q.ticker][0], sources, done[q.ticker][2])
    if not extra:
        return out
    added = long_frame(extra)
    return pd.concat([out, added]).sort_index()


def _assemble(parts: list[pd.DataFrame], frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The basket's long frame from long parts (tickers answered whole, in one go) and
    per-ticker frames (stitched, or from providers answering one ticker at a time)."""
    import pandas as pd

    if frames or not parts:
        parts = [*parts, long_frame(frames)] if frames else parts
    if not parts:
        return long_frame({})
    if len(parts) == 1:
        out = parts[0]
    else:
        out = pd.concat([p for p in parts if len(p)] or parts[:1])
        if not out.index.is_monotonic_increasing:
            out = out.sort_index()
    out.attrs = {}
    return out


def _periods_of_basket(daily: pd.DataFrame, interval: str, today: dt.date) -> pd.DataFrame:
    """Period bars of every ticker of a long daily frame at once (attrs kept; partial_last per
    ticker, False for a ticker without bars)."""
    from .intervals import resample_periods_long

    attrs = dict(daily.attrs)
    out = resample_periods_long(daily, interval, today)
    partial = {t: out.attrs.get("partial_last", {}).get(t, False) for t in attrs.get("tickers", [])}
    out.attrs = {**attrs, "interval": interval, "partial_last": partial}
    return out


def _known_day(query: PriceQuery, today: dt.date) -> dt.date:
    """The day a period's ``partial_last`` is judged against: today, or the as-of date."""
    return today if query.as_of is None else min(today, query.as_of)


def _widened(query: PriceQuery) -> tuple[dt.date, dt.date]:
    """The range grown to whole periods, never past ``as_of`` (a period running on the as-of
    date ends at its last session then, as one running today does)."""
    start, end = widen(query.start, query.end, query.interval)
    return start, (min(end, query.as_of) if query.as_of is not None else end)


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


def get_prices(ticker: str | Sequence[str], start: Any, end: Any, *, interval: str = "1d",
               adjustment: str = DEFAULT_ADJUSTMENT, providers: Sequence[str] | str | None = None,
               config: Config | dict | None = None, errors: str = "raise",
               extended_hours: bool = False, as_of: Any = None) -> pd.DataFrame:
    """Bars for ``ticker`` from ``start`` to ``end`` (both inclusive, session dates in ET).

    Returns the bar frame (see :mod:`finrpt_providers.provider`); ``attrs`` say which
    provider answered (``provider``, ``sources``) and what was tried (``attempts``).
    Raises :class:`InvalidQuery` before any I/O for a bad question and
    :class:`AllProvidersFailed` when nobody could answer.

    A list (or tuple, or any iterable that is not a string) of tickers is a basket: one
    long frame indexed by (``ticker``, ``timestamp``), sorted by ticker then time, same
    columns and dtypes; ``attrs["provider"]``, ``["sources"]``, ``["actions"]`` and
    ``["attempts"]`` are dicts by ticker, ``attrs["failed"]`` says why for each ticker no
    provider could serve. ``errors="raise"`` (default) raises AllProvidersFailed naming
    every failed ticker; ``errors="omit"`` answers the others. A ticker listed twice is
    answered once.

    Intraday bars cover the regular session by default (09:30-16:00 New York, 13:00 on half
    days; hourly bars at 09:30, 10:30 ... 15:30, the last one half an hour), as yfinance's
    ``prepost=False`` and OpenBB's ``extended_hours=False`` do; ``extended_hours=True``
    gives 04:00-20:00 with clock-aligned buckets. ``attrs["extended_hours"]`` says which.

    ``as_of=DATE`` answers as the prices were known on that date (point in time, for reports
    and backtests dated in the past): only corporate actions with an ex-date on or before it
    adjust, so a price before a later split is the one quoted then. ``end`` must not be after
    it (InvalidQuery: those bars were not known). ``attrs["as_of"]`` repeats it. The default,
    None, adjusts with every event known today, as yfinance, OpenBB and Massive do.
    """
    cfg = resolve_config(config)
    if isinstance(providers, str):
        providers = [p for p in providers.split(",") if p.strip()]
    names = list(providers) if providers is not None else cfg.providers
    if isinstance(ticker, str):
        return Chain(names, cfg).fetch(PriceQuery(ticker, start, end, interval, adjustment, extended_hours, as_of))
    if errors not in ("raise", "omit"):
        raise InvalidQuery(f"errors={errors!r} is not valid: use 'raise' (fail naming every ticker no provider "
                           "could serve) or 'omit' (answer the others)")
    queries = basket_queries(ticker, start, end, interval, adjustment, extended_hours, as_of)
    return Chain(names, cfg).fetch_many(queries, errors)


def basket_queries(tickers: Any, start: Any, end: Any, interval: str, adjustment: str,
                   extended_hours: bool = False, as_of: Any = None) -> list[PriceQuery]:
    """One validated query per distinct ticker, in the given order (InvalidQuery before any I/O)."""
    try:
        items = list(tickers)
    except TypeError:
        raise InvalidQuery(f"tickers must be a string or a list of strings, not {type(tickers).__name__}") from None
    if not items:
        raise InvalidQuery("the list of tickers is empty: give at least one")
    first = PriceQuery(items[0], start, end, interval, adjustment, extended_hours, as_of)  # the range, interval, adjustment checked once
    out = {first.ticker: first}
    for t in items[1:]:
        q = first.replace(ticker=t)
        out.setdefault(q.ticker, q)
    return list(out.values())


def fetch_one(provider, ticker: str, start: Any, end: Any, *, interval: str = "1d", adjustment: str = DEFAULT_ADJUSTMENT,
              config: Config | None = None, extended_hours: bool = False, as_of: Any = None) -> pd.DataFrame:
    """One provider instance answering through the core's pipeline (derived intervals and
    adjustments included), without the chain's fallback: what the conformance kit
    checks. The provider need not be registered."""
    query = PriceQuery(ticker, start, end, interval, adjustment, extended_hours, as_of)
    return _fetch_one(provider, query, config)


def _fetch_one(provider, query: PriceQuery, config: Config | None = None) -> pd.DataFrame:
    cfg = config or provider.config or resolve_config(None)
    provider = provider.configured(cfg) if provider.config is not cfg else provider
    today = cfg.today()
    query = bounded(query, today, cfg)
    if is_period(query.interval):
        start, end = _widened(query)
        return resample_periods(_fetch_one(provider, query.replace(interval="1d", start=start, end=end), cfg),
                                query.interval, _known_day(query, today))
    return pipeline.fetch(provider, query, today)
