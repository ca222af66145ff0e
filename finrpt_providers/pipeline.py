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


def clip(df: pd.DataFrame, query: PriceQuery) -> pd.DataFrame:
    """Drop bars outside the asked sessions (providers may return whole pages)."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame) or not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None \
            or df.empty:
        return df
    day = wall_ns(df.index) // _DAY_NS
    keep = (day >= _ordinal(query.start)) & (day <= _ordinal(query.end))
    return df if keep.all() else df[keep]


def adjust(provider: PriceProvider, bars: pd.DataFrame, have: str, want: str, ticker: str) -> tuple[pd.DataFrame, str]:
    """Bars adjusted as ``have`` (raw or splits) -> ``want``; (bars, actions source)."""
    from .adjust import apply_factors, dividend_factor, split_factor

    import dataclasses

    import pandas as pd

    days = session_days(bars.index)
    acts = actions.get_actions(ticker, provider.config, as_traded_closes(provider), since=days.min())
    # Events announced for after today (a declared dividend's ex-date ahead) have not happened:
    # they adjust nothing yet (and their "session before" has no close).
    now = pd.Timestamp(provider.config.today(), tz=ET)
    acts = dataclasses.replace(acts, splits=acts.splits[acts.splits.index <= now],
                               dividends=acts.dividends[acts.dividends.index <= now])
    s = split_factor(days, acts.splits)
    to_raw = s if have == "splits" else 1.0  # native -> as traded
    if want == "raw":
        price, volume = to_raw, 1.0 / to_raw
    elif want == "splits":
        price, volume = to_raw / s, s / to_raw
    elif want == "total":
        prev = closes_before(provider, ticker, have, acts, days.min())
        price, volume = to_raw / s * dividend_factor(days, acts.dividends, prev), s / to_raw
    else:  # validated by PriceQuery: this would be our bug
        raise ValueError(f"unknown adjustment {want!r}")
    return apply_factors(bars, price, volume), acts.source


def closes_before(provider: PriceProvider, ticker: str, have: str, acts: actions.Actions,
                  first: pd.Timestamp) -> pd.Series:
    """As-traded close of the session immediately before each ex-dividend date after
    ``first``, from ``provider`` (the same source as the bars). A missing one is a
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
    if "1d" not in provider.intervals:
        raise UnsupportedQuery(f"total adjustment needs daily closes and {provider.name} serves no daily bars",
                               provider=provider.name)
    daily = provider.fetch_sessions(ticker, sorted(set(before.values())), have)
    closes = daily["close"]
    if have == "splits":  # back to as traded
        closes = closes * split_factor(closes.index.normalize(), acts.splits)
    by_day = {ts.date(): float(v) for ts, v in closes.items()}
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
