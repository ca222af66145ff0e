"""One pipeline from a question to a provider's answer: the only place (with query
validation) that interprets ``adjustment``, and where intervals are derived.

For one provider and one query:

1. **plan** (no I/O): the native question to ask. An interval the provider does not
   serve is derived from ``1m`` (``5m``..``1h``); intraday bars are asked for every hour
   unless the provider serves the regular session itself (:attr:`PriceProvider.regular_intervals`),
   and a regular-session hour (from 09:30) is built from 30m, 15m, 5m or 1m bars; an adjustment it does not serve is
   derived from ``raw`` (preferred) or ``splits`` with the configured corporate actions
   (:mod:`finrpt_providers.actions`). When neither works, the reason says why, and
   the chain skips the provider before calling it.
2. **fetch** the native bars, check them against the bar-frame contract.
3. **adjust** (before resampling, so a split inside a bucket is handled), with the
   pure functions of :mod:`finrpt_providers.adjust`. ``total`` needs the as-traded
   close of the session immediately before each ex-date, from the same provider;
   when that close is unavailable the answer is an error naming the date.
4. **keep the regular session** (``extended_hours=False``, the default) and **resample**
   minutes (:mod:`finrpt_providers.intervals`).

Period intervals (``1wk 1mo 3mo``) are derived by the chain from stitched daily bars.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from . import actions, calendar, redact
from .errors import DataIntegrityError, ProviderError, UnsupportedQuery
from .frames import Expect, check_bars, closes_by_session, empty_bars, gate, long_frame, tickers_of
from .intervals import INTERVALS, derive_base, in_regular_session, is_period, resample_long
from .provider import PriceProvider, PriceQuery
from .query import is_index
from .timebase import DAY_NS, from_ordinal, midnight, ordinal, wall_ns

if TYPE_CHECKING:
    import pandas as pd

log = redact.logger(__name__)


def plan(provider: PriceProvider, query: PriceQuery, today: dt.date) -> tuple[PriceQuery | None, str | None]:
    """(the native query to ask ``provider``, None) or (None, why it cannot answer). No I/O.
    The native question is checked by the provider's own :meth:`PriceProvider.cannot_serve`
    (a plugin may override it to refuse what its declarations cannot say)."""
    reason = provider.not_ready_reason(deep=True)
    if reason:
        return None, reason
    interval = query.interval
    served = ", ".join(sorted(provider.intervals, key=INTERVALS.index))
    regular_native = query.regular_only and interval in provider.regular_intervals
    if not regular_native:
        interval = None if is_period(interval) else derive_base(interval, provider.intervals, query.regular_only)
        if interval is None:
            if query.interval == "1h" and query.regular_only and "1h" in provider.intervals:
                return None, (f"regular-session hourly bars start at 09:30, and {provider.name} serves clock hours "
                              f"with no 30m, 15m, 5m or 1m bars to build them from (serves {served}; "
                              "extended_hours=True answers clock hours)")
            return None, f"interval {query.interval} not served (serves {served})"
    point = known_until(query, today)
    adjustment = native_adjustment(provider, interval, query.adjustment, point_in_time=point is not None)
    if adjustment is None:
        return None, (f"adjustment {query.adjustment}{f' as of {point}' if point else ''} not served at {interval}, "
                      f"and not derivable from {', '.join(sorted(provider.native_adjustments(interval))) or 'nothing'}")
    if (adjustment != query.adjustment or point is not None) and not is_index(query.ticker):
        ready, _why = actions.available(provider.config)  # an index has no events: nothing to ask
        if not ready:
            return None, actions.none_available_message(provider.config,
                                                        f"{query.adjustment} from {provider.name}'s {adjustment} bars")
    # intraday bars are asked for every hour (and the core keeps the regular session), unless
    # the provider serves the regular session itself at that interval
    native = query.replace(interval=interval, adjustment=adjustment,
                           extended_hours=query.intraday and not regular_native)
    reason = provider.cannot_serve(native, today)
    if reason:
        return None, reason
    return native, None


def known_until(query: PriceQuery, today: dt.date) -> dt.date | None:
    """The as-of date that changes the answer: ``query.as_of`` when it is before today and the
    answer is adjusted (raw bars are the same whatever is known); else None (every event known
    today, the default)."""
    if query.as_of is None or query.as_of >= today or query.adjustment == "raw":
        return None
    return query.as_of


def native_adjustment(provider: PriceProvider, interval: str, want: str, point_in_time: bool = False) -> str | None:
    """What to ask ``provider`` for at ``interval`` to answer ``want``: ``want`` itself when served
    natively, else what it derives from (raw, else splits); None when nothing it serves does.
    ``point_in_time``: never an adjusted series the source built with today's events, but raw
    (or splits, whose later splits the core undoes). The one place this choice is made (one
    ticker, baskets and markets)."""
    native = provider.native_adjustments(interval)
    if want in native and not (point_in_time and want != "raw"):
        return want
    return next((a for a in ("raw", "splits") if a in native), None)


def fetch(provider: PriceProvider, query: PriceQuery, today: dt.date, native: PriceQuery | None = None
          ) -> pd.DataFrame:
    """``provider``'s bars for ``query`` (any base interval, any adjustment), derived from
    what it serves natively (``native``: the plan, when the caller has made it).
    ``attrs["actions"]`` names the corporate-actions source used ("" when none was needed)."""
    if native is None:
        native, reason = plan(provider, query, today)
        if native is None:
            raise UnsupportedQuery(reason or "cannot serve", provider=provider.name)
    return finish(provider, query, native, provider.fetch(native))


def expect(native: PriceQuery, tickers=None) -> Expect:
    """What the gate admits for an answer to ``native`` (its NYSE sessions, interval, tickers):
    a bar outside them fails its ticker, named (never clipped away in silence)."""
    return Expect(native.start, native.end, native.interval, tickers,
                  sessions=tuple(calendar.sessions(native.start, native.end)), regular=native.regular_only)


def finish(provider: PriceProvider, query: PriceQuery, native: PriceQuery, frame: pd.DataFrame) -> pd.DataFrame:
    """One ticker's native answer -> the answer to ``query``: a basket of one through
    :func:`finish_long` (the same gate, adjustment and resampling as every other path)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise DataIntegrityError(f"bar frame breaks the contract: expected a pandas DataFrame, got "
                                 f"{type(frame).__name__}", provider=provider.name)
    bars = check_bars(frame, expect(native, [query.ticker]), query.ticker, provider.name)
    if native.adjustment == query.adjustment and native.interval == query.interval \
            and native.extended_hours == query.extended_hours \
            and known_until(query, provider.config.today()) is None:
        bars.attrs = {"actions": ""}
        return bars  # nothing to derive: the checked frame as it is (the warm path)
    long, failed, used = finish_long(provider, query, native, long_frame({query.ticker: bars}))
    if query.ticker in failed:
        raise failed[query.ticker]
    out = long.droplevel(0) if len(long) else empty_bars()
    out.attrs = {"actions": used.get(query.ticker, "")}
    return out


class Finished:
    """A ticker's answer already through :func:`finish` (the basket path hands these back)."""

    __slots__ = ("frame",)

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame


def finish_basket(provider: PriceProvider, queries: list[PriceQuery], natives: list[PriceQuery],
                  frame: pd.DataFrame, today: dt.date) -> tuple[pd.DataFrame | None, dict[str, object]]:
    """A provider's long answer to a basket -> (the long frame of every ticker answered,
    checked, adjusted and resampled; ticker -> the ProviderError each other ticker met).
    The same functions as one ticker, over the whole frame at once."""
    q0, n0 = queries[0], natives[0]
    asked = [q.ticker for q in queries]
    try:
        long, failed = gate(frame, expect(n0, asked), provider.name)
    except ProviderError as e:
        return None, {t: e for t in asked}
    long, more, used = finish_long(provider, q0, n0, long)
    failed.update(more)
    present = set(tickers_of(long))
    rest: dict[str, object] = {t: failed.get(t) or _no_data(provider, q) for q in queries
                               for t in [q.ticker] if t not in present}
    long.attrs = {"actions": used}
    return long, rest


def finish_long(provider: PriceProvider, query: PriceQuery, native: PriceQuery, long: pd.DataFrame
                ) -> tuple[pd.DataFrame, dict[str, ProviderError], dict[str, str]]:
    """Checked native bars of many tickers (a long frame) -> (the answer to ``query`` for
    every ticker that could be answered, ticker -> the error of each that could not,
    ticker -> the corporate-actions source used). Adjusted before resampling (a split inside
    a bucket is handled); the tickers' corporate actions come from the configured sources."""
    failed: dict[str, ProviderError] = {}
    used: dict[str, str] = {}
    if query.regular_only and native.extended_hours and len(long):
        long = regular_session(long)
    point = known_until(query, provider.config.today())
    if (native.adjustment != query.adjustment or point is not None) and len(long):
        long, failed, used = _adjust_basket(provider, long, native, query.adjustment, point)
    if native.interval != query.interval and len(long):
        long = resample_long(long, query.interval, regular=query.regular_only)
    return long, failed, used


def regular_session(long: pd.DataFrame) -> pd.DataFrame:
    """The bars of a long frame (every hour, as served) that start in their day's regular
    session: what ``extended_hours=False`` answers (the one place, every path)."""
    keep = in_regular_session(long.index.get_level_values(-1))
    if keep.all():
        return long
    out = long[keep]
    out.attrs = dict(long.attrs)
    return out


def _adjust_basket(provider: PriceProvider, long: pd.DataFrame, native: PriceQuery, want: str,
                   as_of: dt.date | None = None) -> tuple[pd.DataFrame, dict[str, ProviderError], dict[str, str]]:
    """``long`` (as ``native.adjustment``) -> ``want``, with each ticker's corporate actions from
    the configured sources (validated against as-traded closes: :mod:`actions`). ``as_of``:
    only the events with an ex-date on or before it adjust (prices as known that day); bars
    served split-adjusted with today's splits first get the later splits undone (one factor
    per ticker: every bar precedes them)."""
    import numpy as np

    cfg = provider.config
    today = cfg.today()
    tickers = tickers_of(long)
    first = midnight(from_ordinal(int((wall_ns(long.index.get_level_values(1)) // DAY_NS).min())))
    acts = actions.get_actions_many(tickers, cfg, as_traded_closes(provider), since=first)
    failed: dict[str, ProviderError] = {}
    good: dict[str, actions.Actions] = {}
    used: dict[str, str] = {}
    undo: dict[str, float] = {}  # ticker -> product of the split ratios after as_of
    for t, a in acts.items():
        if isinstance(a, ProviderError):
            failed[t] = a
        else:
            good[t] = happened(a, as_of or today)
            used[t] = a.source
            if as_of is not None and native.adjustment == "splits":
                later = happened(a, today).splits
                later = later[later.index > midnight(as_of)]
                if len(later):
                    undo[t] = float(np.prod(later.to_numpy(dtype="float64")))
    more_closes = _closes_by_ticker(provider, native.adjustment)
    if undo:
        long = _scaled(long, undo)
        more_closes = _scaled_closes(more_closes, undo)
    splits, dividends = actions.long_events(good)
    refused: dict[str, str] = {}  # dividends not in USD, without a rate: a total return cannot use them
    if want == "total":
        for t, a in good.items():
            why = actions.refused_between(a, first)
            if why:
                refused[t] = why
    out, why = adjust_long(long, native.adjustment, want, splits, dividends,
                           daily=native.interval == "1d", more_closes=more_closes,
                           refused=refused, exclude=set(failed))
    for t, text in why.items():
        failed[t] = DataIntegrityError(f"cannot adjust {t} to {want}: {text}; ask adjustment='raw' or 'splits', "
                                       "or put another provider first", provider=provider.name)
    return out, failed, {t: s for t, s in used.items() if t not in failed}


def _per_row(names, by: dict[str, float]):
    """Each row's factor from ``by`` (ticker -> factor, 1 for the others): one lookup per
    ticker, not per row (a market is millions of rows)."""
    import numpy as np

    codes, uniques = names.factorize()
    return np.array([by.get(t, 1.0) for t in uniques], dtype="float64")[codes]


def _scaled(long: pd.DataFrame, by: dict[str, float]) -> pd.DataFrame:
    """Split-adjusted bars with the splits after an as-of date undone: prices times the
    ticker's product of their ratios, volume divided by it."""
    from .adjust import PRICE_COLUMNS

    factor = _per_row(long.index.get_level_values(0), by)
    cols = {c: long[c].to_numpy() * factor for c in PRICE_COLUMNS}
    cols["volume"] = long["volume"].to_numpy() / factor
    out = long.assign(**cols)
    out.attrs = dict(long.attrs)
    return out


def _scaled_closes(more_closes, by: dict[str, float]):
    """``more_closes`` whose split-adjusted closes get the splits after as_of undone."""
    def more(wanted):
        got = more_closes(wanted)
        if got is None or not len(got):
            return got
        return got * _per_row(got.index.get_level_values(0), by)
    return more


def adjust_long(long: pd.DataFrame, have: str, want: str, splits, dividends, *,
                daily: bool, more_closes, refused: dict[str, str] | None = None,
                exclude: set[str] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """THE adjustment of bars (every path: one ticker, a basket, a market, a Dask partition):
    ``long`` (a sorted long frame served as ``have``) -> ``want`` with events ``splits`` and
    ``dividends`` (long Series by (ticker, ex-date), or :class:`~finrpt_providers.adjust.Events`;
    validated, happened). Returns the frame
    without the tickers that cannot be adjusted, and ticker -> why for those.

    ``total`` weighs each dividend against the as-traded close of the session before its
    ex-date: from ``long`` itself when it holds that session (``daily`` bars; a minute's
    close is not the session's), else from ``more_closes({ticker: [sessions]})`` -> Series by
    (ticker, session) of closes as served (``have``). ``refused``: tickers whose dividends
    cannot be used (non-USD without a rate), failed only when a total return needs them."""
    import numpy as np

    from .adjust import PRICE_COLUMNS, Events, after_product, event_table, factors, find

    failed: dict[str, str] = {}
    names = long.index.get_level_values(0)
    codes, uniques = names.factorize()
    codes = codes.astype(np.int64)
    rows_day = wall_ns(long.index.get_level_values(1)) // DAY_NS
    prev = None
    if want == "total":
        first = np.full(len(uniques), np.iinfo(np.int64).max)
        np.minimum.at(first, codes, rows_day)
        for t, why in (refused or {}).items():
            failed[t] = why
        dc, dd, _dv = event_table(dividends, uniques)
        matters = dd > first[dc] if len(dc) else np.zeros(0, dtype=bool)
        dc, dd = dc[matters], dd[matters]
        before = np.array([ordinal(calendar.session_before(from_ordinal(x)) or from_ordinal(0)) for x in dd],
                          dtype=np.int64)
        sc, sd, sv = event_table(splits, uniques)
        close_at = np.full(len(dc), np.nan)
        if daily and len(dc):
            at = find(codes, rows_day, dc, before)
            close_at[at >= 0] = long["close"].to_numpy()[at[at >= 0]]
        need = np.flatnonzero(np.isnan(close_at))
        if len(need):
            wanted: dict[str, list[dt.date]] = {}
            for i in need:
                wanted.setdefault(uniques[dc[i]], []).append(from_ordinal(before[i]))
            got = more_closes(wanted)
            if got is not None and len(got):
                gc, gd, gv = event_table(got, uniques)
                at = find(gc, gd, dc[need], before[need])
                close_at[need[at >= 0]] = gv[at[at >= 0]]
        if have == "splits" and len(dc):  # back to as traded on that session
            close_at = close_at * after_product(dc, before, sc, sd, sv)
        known = np.isfinite(close_at)
        prev = Events(np.asarray(uniques, dtype=object)[dc][known], dd[known], close_at[known])
    price, volume, why = factors(codes, rows_day, uniques, have, want, splits, dividends, prev)
    for t, text in why.items():
        failed.setdefault(t, text)
    for t in exclude or ():
        failed.pop(t, None)
    drop = set(failed) | set(exclude or ())
    cols = {c: long[c].to_numpy() * price for c in PRICE_COLUMNS}
    cols["volume"] = long["volume"].to_numpy() * volume
    out = long.assign(**cols)
    if drop:
        out = out[~names.isin(list(drop))]
    return out, failed


def _closes_by_ticker(provider: PriceProvider, have: str):
    """more_closes for :func:`adjust_long`: each ticker's sessions asked of ``provider``."""
    def more(wanted: dict[str, list[dt.date]]):

        if "1d" not in provider.intervals:
            return None
        frames = {}
        for t, days in wanted.items():
            try:
                frames[t] = actions.checked_sessions(provider, t, sorted(set(days)), have)
            except ProviderError as e:
                log.info("closes before ex-dates of %s from %s unavailable (%s)", t, provider.name, e)
        if not frames:
            return None
        long = long_frame({t: f for t, f in frames.items() if len(f)})
        if not len(long):
            return None
        return closes_by_session(long)
    return more


def _no_data(provider: PriceProvider, q: PriceQuery):
    from .errors import NoData

    return NoData(f"no {q.interval} bars for {q.ticker} from {q.start} to {q.end} in {provider.name}'s answer "
                  "(check the ticker: share classes are written with a dot, e.g. BRK.B)", provider=provider.name)


happened = actions.happened


def as_traded_closes(provider: PriceProvider) -> actions.Closes:
    """As-traded daily closes for validating splits: from ``provider`` when it serves raw bars,
    else from the configured chain (:func:`finrpt_providers.actions.closes_from`)."""
    return actions.closes_from(provider.config, provider)
