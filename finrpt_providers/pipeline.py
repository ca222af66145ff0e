"""One pipeline from a question to a provider's answer: the only place (with query
validation) that interprets ``adjustment``, and where intervals are derived.

For one provider and one query:

1. **plan** (no I/O): the native question to ask. An interval the provider does not
   serve is derived from ``1m`` (``5m``..``1h``); an adjustment it does not serve is
   derived from ``raw`` (preferred) or ``splits`` with the configured corporate actions
   (:mod:`finrpt_providers.actions`). When neither works, the reason says why, and
   the chain skips the provider before calling it.
2. **fetch** the native bars, check them against the bar-frame contract.
3. **adjust** (before resampling, so a split inside a bucket is handled), with the
   pure functions of :mod:`finrpt_providers.adjust`. ``total`` needs the as-traded
   close of the session immediately before each ex-date, from the same provider;
   when that close is unavailable the answer is an error naming the date.
4. **resample** minutes (:mod:`finrpt_providers.intervals`).

Period intervals (``1wk 1mo 3mo``) are derived by the chain from stitched daily bars.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from . import actions, calendar, redact
from .errors import DataIntegrityError, ProviderError, UnsupportedQuery
from .intervals import INTERVALS, base_interval, is_period, resample_minutes
from .provider import _DAY_NS, ET, PriceProvider, PriceQuery, _ordinal, session_days, validate_bars, wall_ns

if TYPE_CHECKING:
    import pandas as pd

log = redact.logger(__name__)


def plan(provider: PriceProvider, query: PriceQuery, today: dt.date) -> tuple[PriceQuery | None, str | None]:
    """(the native query to ask ``provider``, None) or (None, why it cannot answer). No I/O."""
    reason = provider.not_ready_reason(deep=True)
    if reason:
        return None, reason
    interval = query.interval
    if interval not in provider.intervals:
        base = base_interval(interval)
        if is_period(interval) or base is None or base not in provider.intervals:
            served = ", ".join(sorted(provider.intervals, key=INTERVALS.index))
            return None, f"interval {interval} not served (serves {served})"
        interval = base
    adjustment = query.adjustment
    native = provider.native_adjustments(interval)
    if adjustment not in native:
        adjustment = next((a for a in ("raw", "splits") if a in native), None)
        if adjustment is None:
            return None, (f"adjustment {query.adjustment} not served at {interval}, and not derivable from "
                          f"{', '.join(sorted(native)) or 'nothing'}")
        ready, _why = actions.available(provider.config)
        if not ready:
            return None, actions.none_available_message(provider.config,
                                                        f"{query.adjustment} from {provider.name}'s {adjustment} bars")
    native = query.replace(interval=interval, adjustment=adjustment)
    earliest = provider.earliest(native, today)
    if earliest is not None and native.start < earliest:
        return None, f"{native.interval} bars only from {earliest} (asked from {native.start})"
    return native, None


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


def finish(provider: PriceProvider, query: PriceQuery, native: PriceQuery, frame: pd.DataFrame) -> pd.DataFrame:
    """``provider``'s native answer ``frame`` to ``native`` -> the answer to ``query``: checked
    against the contract, adjusted, resampled (the part of :func:`fetch` after the call, for
    answers that came in a basket)."""
    bars = validate_bars(clip(frame, native), native, provider=provider.name)
    source = ""
    if not bars.empty and native.adjustment != query.adjustment:
        bars, source = adjust(provider, bars, native.adjustment, query.adjustment, query.ticker)
    if native.interval != query.interval:
        bars = resample_minutes(bars, query.interval)
    bars.attrs["actions"] = source
    return bars


class Finished:
    """A ticker's answer already through :func:`finish` (the basket path hands these back)."""

    __slots__ = ("frame",)

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame


def finish_basket(provider: PriceProvider, queries: list[PriceQuery], natives: list[PriceQuery],
                  frame: pd.DataFrame, today: dt.date) -> tuple[pd.DataFrame | None, dict[str, object]]:
    """A provider's long answer (indexed by ticker and timestamp) to a basket -> (the long
    frame of every ticker answered, checked and adjusted; ticker -> what is left for the
    per-ticker path: a :class:`Finished` frame, a raw frame to :func:`finish`, or the
    ProviderError it met). Checked and adjusted as one frame: 500 tickers must not cost 500
    validations; only tickers with corporate actions in the range are adjusted one by one.
    A frame breaking the contract is split and checked per ticker, so one bad ticker fails
    alone."""
    import numpy as np

    from .market import validate_long

    q0, n0 = queries[0], natives[0]
    days = calendar.sessions(n0.start, min(n0.end, today))
    try:
        long = validate_long(clip_long(frame, n0), n0, days, provider.name)
    except ProviderError as e:
        log.info("%s: basket answer refused as a whole (%s); checking it ticker by ticker", provider.name, e)
        per = split_long(frame) if _is_long(frame) else {}
        return None, {q.ticker: per.get(q.ticker, e if not per else _no_data(provider, q)) for q in queries}
    tickers = long.index.get_level_values("ticker")
    present = set(tickers.unique()) if len(long) else set()
    rest: dict[str, object] = {q.ticker: _no_data(provider, q) for q in queries if q.ticker not in present}
    asked = {q.ticker for q in queries}
    if present - asked:
        long = long[tickers.isin(list(asked))]
        tickers = long.index.get_level_values("ticker")
    long.attrs = {}
    used: dict[str, str] = {}
    if n0.adjustment != q0.adjustment and len(long):
        stamps = long.index.get_level_values("timestamp")
        acts = actions.get_actions_many(sorted(set(tickers.unique())), provider.config,
                                        as_traded_closes(provider), since=session_days(stamps).min())
        keep = np.ones(len(long), dtype=bool)
        parts = {}
        for t, a in acts.items():
            where = tickers.get_loc(t)  # a slice: the index is sorted
            if isinstance(a, ProviderError):
                rest[t] = a
                keep[where] = False
                continue
            used[t] = a.source
            one = long.iloc[where]
            if not moves(a, session_days(one.index.get_level_values("timestamp")[:1])[0], q0.adjustment, today):
                continue  # no event in the range: every factor is 1
            quick = _daily_factors(happened(a, today), wall_ns(one.index.get_level_values("timestamp")),
                                   one["close"].to_numpy(), n0.adjustment, q0.adjustment) \
                if n0.interval == "1d" else None
            if quick is not None:
                parts[t] = (where, quick)
                continue
            try:  # the general path (minutes, a close before an ex-date outside the bars, bad data)
                adjusted, _src = adjust(provider, one.droplevel("ticker"), n0.adjustment, q0.adjustment, t, acts=a)
            except ProviderError as e:
                rest[t] = e
                keep[where] = False
                continue
            parts[t] = (where, adjusted)
        if parts:
            cols = {c: long[c].to_numpy(copy=True) for c in ("open", "high", "low", "close", "vwap", "volume")}
            for where, got in parts.values():
                if isinstance(got, tuple):  # (price, volume) factors
                    for c, arr in cols.items():
                        arr[where] = arr[where] * (got[1] if c == "volume" else got[0])
                else:
                    for c, arr in cols.items():
                        arr[where] = got[c].to_numpy()
            long = long.assign(**cols)
        if not keep.all():
            long = long[keep]
    if n0.interval != q0.interval and len(long):  # minutes resampled, ticker by ticker
        for t, bars in split_long(long).items():
            rest[t] = Finished(_finished_attrs(resample_minutes(bars, q0.interval), used.get(t, "")))
        return None, rest
    long.attrs["actions"] = used  # ticker -> corporate-actions source (adjusted tickers)
    return long, rest


def _daily_factors(acts: actions.Actions, wall, close, have: str, want: str):
    """(price, volume) factors of one ticker's daily bars (``wall``: their New York wall
    clock in ns, ``close``: as served, ``have``), by :mod:`finrpt_providers.adjust`'s
    functions as :func:`adjust` uses them, with the closes before ex-dates taken from these
    bars; None when the general path must decide (a close the bars do not hold, or data
    :mod:`adjust` refuses: its error is worth its own message there)."""
    import pandas as pd

    from .adjust import dividend_factor, split_factor

    days = pd.DatetimeIndex((wall - wall % _DAY_NS).view("M8[ns]")).tz_localize(ET)
    try:
        s = split_factor(days, acts.splits)
        to_raw = s if have == "splits" else 1.0
        if want == "raw":
            return to_raw, 1.0 / to_raw
        if want == "splits":
            return to_raw / s, s / to_raw
        prev = {}
        for ex in acts.dividends.index:
            if ex <= days[0]:
                continue
            before = calendar.session_before(ex.date())
            at = days.get_indexer([pd.Timestamp(before, tz=ET)])[0] if before else -1
            if at < 0:
                return None
            prev[ex] = float(close[at] * (s[at] if have == "splits" else 1.0))
        return to_raw / s * dividend_factor(days, acts.dividends, pd.Series(prev, dtype="float64")), s / to_raw
    except DataIntegrityError:
        return None


def _finished_attrs(df: pd.DataFrame, used: str) -> pd.DataFrame:
    df.attrs["actions"] = used
    return df


def _no_data(provider: PriceProvider, q: PriceQuery):
    from .errors import NoData

    return NoData(f"no {q.interval} bars for {q.ticker} from {q.start} to {q.end} in {provider.name}'s answer "
                  "(check the ticker: share classes are written with a dot, e.g. BRK.B)", provider=provider.name)


def _is_long(frame) -> bool:
    import pandas as pd

    return isinstance(frame, pd.DataFrame) and isinstance(frame.index, pd.MultiIndex) \
        and list(frame.index.names) == ["ticker", "timestamp"]


def split_long(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A long frame -> ticker -> its bars (index: timestamp)."""
    if not len(frame):
        return {}
    out = {}
    for t, part in frame.groupby(level="ticker", sort=False):
        out[t] = part.droplevel("ticker")
    return out


def clip_long(df: pd.DataFrame, query: PriceQuery) -> pd.DataFrame:
    """:func:`clip` for a long frame."""
    if not _is_long(df) or not len(df):
        return df
    ts = df.index.get_level_values("timestamp")
    if not hasattr(ts, "tz") or ts.tz is None:
        return df
    keep = _in_range(ts, query)
    return df if keep.all() else df[keep]


def _in_range(stamps, query: PriceQuery):
    """True for each stamp whose New York session day is within the query's range."""
    day = wall_ns(stamps) // _DAY_NS
    return (day >= _ordinal(query.start)) & (day <= _ordinal(query.end))


def clip(df: pd.DataFrame, query: PriceQuery) -> pd.DataFrame:
    """Drop bars outside the asked sessions (providers may return whole pages)."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame) or not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None \
            or df.empty:
        return df
    keep = _in_range(df.index, query)
    return df if keep.all() else df[keep]


def adjust(provider: PriceProvider, bars: pd.DataFrame, have: str, want: str, ticker: str,
           acts: actions.Actions | None = None) -> tuple[pd.DataFrame, str]:
    """Bars adjusted as ``have`` (raw or splits) -> ``want``; (bars, actions source).
    ``acts``: the ticker's corporate actions when the caller has them (a basket)."""
    from .adjust import apply_factors, dividend_factor, split_factor

    days = session_days(bars.index)
    if acts is None:
        acts = actions.get_actions(ticker, provider.config, as_traded_closes(provider), since=days.min())
    acts = happened(acts, provider.config.today())
    s = split_factor(days, acts.splits)
    to_raw = s if have == "splits" else 1.0  # native -> as traded
    if want == "raw":
        price, volume = to_raw, 1.0 / to_raw
    elif want == "splits":
        price, volume = to_raw / s, s / to_raw
    elif want == "total":
        prev = closes_before(provider, ticker, have, acts, days.min(), bars)
        price, volume = to_raw / s * dividend_factor(days, acts.dividends, prev), s / to_raw
    else:  # validated by PriceQuery: this would be our bug
        raise ValueError(f"unknown adjustment {want!r}")
    return apply_factors(bars, price, volume), acts.source


def happened(acts: actions.Actions, today: dt.date) -> actions.Actions:
    """Events announced for after today (a declared dividend's ex-date ahead) have not
    happened: they adjust nothing yet (and their "session before" has no close)."""
    import dataclasses

    import pandas as pd

    now = pd.Timestamp(today, tz=ET)
    if (acts.splits.index <= now).all() and (acts.dividends.index <= now).all():
        return acts
    return dataclasses.replace(acts, splits=acts.splits[acts.splits.index <= now],
                               dividends=acts.dividends[acts.dividends.index <= now])


def moves(acts: actions.Actions, first: pd.Timestamp, want: str, today: dt.date) -> bool:
    """True when ``acts`` change bars from ``first`` on for ``want`` (a split, or for total a
    dividend, with an ex-date after ``first`` that has happened)."""
    import pandas as pd

    now = pd.Timestamp(today, tz=ET)

    def any_in(idx) -> bool:
        return bool(((idx > first) & (idx <= now)).any())

    return any_in(acts.splits.index) or (want == "total" and any_in(acts.dividends.index))


def closes_before(provider: PriceProvider, ticker: str, have: str, acts: actions.Actions,
                  first: pd.Timestamp, bars: pd.DataFrame | None = None) -> pd.Series:
    """As-traded close of the session immediately before each ex-dividend date after
    ``first``, from ``provider`` (the same source as the bars): from ``bars`` themselves
    when they hold that session, else asked of the provider. A missing one is a
    DataIntegrityError naming the date: never a factor from an older close."""
    import pandas as pd

    from .adjust import split_factor

    exs = [ex for ex in acts.dividends.index if ex > first]
    if not exs:
        return pd.Series(dtype="float64")
    before = {}
    for ex in exs:
        prev = calendar.session_before(ex.date())
        if prev is None:
            raise DataIntegrityError(f"no session before the {ex.date()} ex-dividend date of {ticker}",
                                     provider=provider.name)
        before[ex] = prev
    by_day: dict[dt.date, float] = {}
    if bars is not None and len(bars) and not (wall_ns(bars.index) % _DAY_NS).any():
        # daily bars (a minute bar's close is not the session's official close): the sessions
        # they hold need no second read
        wanted = pd.DatetimeIndex([pd.Timestamp(d, tz=ET) for d in set(before.values())])
        closes = bars["close"][bars.index.isin(wanted)]
        if have == "splits":
            closes = closes * split_factor(closes.index, acts.splits)
        by_day = {ts.date(): float(v) for ts, v in closes.items()}
    need = sorted(set(before.values()) - set(by_day))
    if need:
        if "1d" not in provider.intervals:
            raise UnsupportedQuery(f"total adjustment needs daily closes and {provider.name} serves no daily bars",
                                   provider=provider.name)
        daily = provider.fetch_sessions(ticker, need, have)
        closes = daily["close"]
        if have == "splits":  # back to as traded
            closes = closes * split_factor(session_days(closes.index), acts.splits)
        by_day.update({ts.date(): float(v) for ts, v in closes.items()})
    out = {}
    for ex, day in before.items():
        if day not in by_day:
            raise DataIntegrityError(
                f"cannot apply the {ex.date()} dividend of {ticker}: {provider.name} has no close for {day}, the "
                "session before the ex-date (a factor from an older close would be wrong); ask for "
                "adjustment='raw' or 'splits', or put another provider first", provider=provider.name)
        out[ex] = by_day[day]
    return pd.Series(out, dtype="float64")


def as_traded_closes(provider: PriceProvider) -> actions.Closes:
    """A function giving as-traded daily closes on given sessions, for validating splits:
    from ``provider`` when it serves raw bars, else from the first ready provider of the
    configured chain that does; None from the function when there is none."""
    from .plugins import guard, registry

    def closes(ticker: str, sessions: list[dt.date]) -> pd.Series | None:
        candidates = [provider] if "raw" in provider.native_adjustments("1d") and "1d" in provider.intervals else []
        reg = registry()
        for name in provider.config.providers if provider.config is not None else []:
            entry = reg.get(name)
            if entry is None or name == provider.name:
                continue
            try:
                p = guard(entry.provider, "configured()", entry.provider.configured, provider.config)
                if "raw" in p.native_adjustments("1d") and "1d" in p.intervals and p.not_ready_reason() is None:
                    candidates.append(p)
            except (Exception, SystemExit) as e:  # a broken plugin is not a source of closes
                log.info("%s left out as a source of as-traded closes (%s)", name, e)
        for p in candidates:
            try:
                return guard(p, "fetch_sessions()", p.fetch_sessions, ticker, sessions, "raw")["close"]
            except ProviderError as e:
                log.info("as-traded closes of %s from %s unavailable (%s)", ticker, p.name, e)
        return None

    return closes
