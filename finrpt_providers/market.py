"""The whole market: every ticker for one session or a range, in one long frame.

A provider declares ``serves_market`` and implements ``fetch_market(start, end,
interval, adjustment)`` (a long frame indexed by ticker and timestamp, tickers as the
SIP writes them: ``NA``, ``BRK.A`` and ``BRKA`` are three tickers). The chain here is
the same idea as for one ticker: the first provider, in the configured order, that
serves the market at that interval and can give the adjustment answers; whole sessions
its answer lacks (flat files lag a day) are asked of the providers after it.

Adjusting a market needs every split and dividend of every ticker in and after the
range: they come market-wide, in one listing, from the first ready provider that serves
``fetch_market_actions(since)``; a provider that cannot be adjusted so is skipped
before calling, saying why. Splits are checked against the as-traded closes in the
answer itself (the single-ticker rules of :mod:`finrpt_providers.actions`); a ticker
whose events cannot be applied is left out and named in ``attrs["failed"]``, never
adjusted wrongly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import calendar, redact
from .errors import AllProvidersFailed, DataIntegrityError, ProviderError
from .frames import Expect, closes_by_session, empty_long, gate, one_ticker, tickers_of
from .pipeline import known_until, regular_session
from .provider import DEFAULT_ADJUSTMENT, PriceProvider, PriceQuery
from .timebase import DAY_NS, ET, from_ordinal, session_days, wall_ns

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

log = redact.logger(__name__)


def get_market(start: Any, end: Any = None, *, interval: str = "1d", adjustment: str = DEFAULT_ADJUSTMENT,
               providers: Sequence[str] | str | None = None, config: Config | dict | None = None,
               extended_hours: bool = False, as_of: Any = None) -> pd.DataFrame:
    """Every ticker's bars for the session ``start`` (or ``start`` to ``end``, inclusive):
    one long frame indexed by (``ticker``, ``timestamp``), sorted, bar columns and dtypes as
    for one ticker. ``attrs``: ``provider`` and ``sources`` by ticker, ``failed`` (tickers
    left out and why), ``attempts`` (every provider considered), ``actions`` (the source
    of market-wide corporate actions, when used). Intraday bars: the regular session unless
    ``extended_hours=True``, and ``as_of`` (prices as known that day), as
    :func:`~finrpt_providers.get_prices`."""
    from .chain import bounded
    from .config import resolve_config

    cfg = resolve_config(config)
    if isinstance(providers, str):
        providers = [p for p in providers.split(",") if p.strip()]
    names = list(dict.fromkeys(providers if providers is not None else cfg.providers))
    query = PriceQuery("SPY", start, start if end is None else end, interval, adjustment,  # checks dates & names
                       extended_hours, as_of)
    today = cfg.today()
    query = bounded(query, today, cfg)
    days = calendar.sessions(query.start, min(query.end, today))
    attempts: list[dict[str, Any]] = []
    if not days:
        return _finish(_empty(), query, {}, attempts, "", {})
    found = _resolve(query, days, names, cfg, today, attempts, note="")
    if found is None:
        raise AllProvidersFailed.from_attempts(f"the whole market ({interval} {query.adjustment} "
                                               f"{query.start}..{query.end})", attempts)
    frame, by_day, actions_source, failed = found
    return _finish(frame, query, by_day, attempts, actions_source, failed)


def _resolve(query: PriceQuery, days: list[dt.date], names: list[str], cfg: Config, today: dt.date,
             attempts: list[dict[str, Any]], note: str):
    """(frame, provider by session, actions source, failed) from the first provider that can
    answer, its missing sessions asked of the ones after it; None when nobody can."""
    import numpy as np
    import pandas as pd

    from .plugins import guard, registry

    reg = registry()

    def record(name: str, outcome: str, detail: str) -> None:
        attempts.append({"provider": name, "outcome": outcome, "detail": note + redact.scrub(detail)})
        log.info("market %s %s: %s%s", name, outcome, note, detail)

    for i, name in enumerate(names):
        entry = reg.get(name)
        if entry is None:
            record(name, "skipped", f"no provider named {name!r} is installed")
            continue
        try:
            provider = guard(entry.provider, "configured()", entry.provider.configured, cfg)
            have, why = guard(provider, "its capability checks", _plan, provider, query, cfg)
        except ProviderError as e:
            record(name, "failed", f"{type(e).__name__}: {e}")
            continue
        if have is None:
            record(name, "skipped", why)
            continue
        try:
            raw = guard(provider, "fetch_market()", provider.fetch_market, query.start, min(query.end, today),
                        query.interval, have)
            frame = validate_long(raw, query, days, provider.name)
            failed: dict[str, str] = dict(frame.attrs.get("failed", {}))
            frame.attrs = {}
            if query.regular_only and len(frame):  # served every hour: the regular session kept
                frame = regular_session(frame)
            source = ""
            point = known_until(query, today)
            if (have != query.adjustment or point is not None) and len(frame):
                frame, more, source = adjust_market(frame, have, query.adjustment, provider, cfg, point or today,
                                                    query.interval)
                failed.update(more)
        except ProviderError as e:
            record(name, "failed", f"{type(e).__name__}: {e}")
            continue
        if frame.empty:
            record(name, "empty", f"no bars for {query.start}..{query.end}")
            continue
        got = {from_ordinal(d) for d in np.unique(wall_ns(frame.index.get_level_values("timestamp")) // DAY_NS)}
        record(name, "ok", f"{len(frame)} bars of {frame.index.get_level_values('ticker').nunique()} tickers, "
               f"{len(got)} session(s)" + (f" (adjusted with corporate actions from {source})" if source else ""))
        by_day = {d: name for d in got}
        missing = [d for d in days if d not in got]
        if missing:
            sub = _resolve(query.replace(start=missing[0], end=missing[-1]), missing, names[i + 1:], cfg, today,
                           attempts, note=f"sessions {missing[0]}..{missing[-1]} left by {name}: ")
            if sub is not None:
                frame = pd.concat([frame, sub[0]]).sort_index()
                by_day.update(sub[1])
                failed.update(sub[3])
                source = "+".join(x for x in dict.fromkeys([source, sub[2]]) if x)
        return frame, by_day, source, failed
    return None


def _plan(provider: PriceProvider, query: PriceQuery, cfg: Config) -> tuple[str | None, str]:
    """(the adjustment to ask ``provider`` for, "") or (None, why it cannot answer). No I/O."""
    if not provider.serves("market"):
        return None, "does not serve whole-market cross-sections"
    reason = provider.not_ready_reason(deep=True)
    if reason:
        return None, reason
    if query.interval not in provider.intervals:
        return None, f"interval {query.interval} not served for the market (serves {', '.join(sorted(provider.intervals))})"
    if query.regular_only and query.interval == "1h":  # fetch_market serves every hour, on the clock
        return None, ("regular-session hourly bars start at 09:30, and a market is served in clock hours: ask "
                      "interval='30m' or '1m' (or extended_hours=True for clock hours)")
    from .pipeline import known_until, native_adjustment

    point = known_until(query, cfg.today())
    have = native_adjustment(provider, query.interval, query.adjustment, point_in_time=point is not None)
    if have == query.adjustment and point is None:
        return have, ""
    if point is not None and have != "raw":
        return None, (f"an answer as of {point} needs the market's raw bars (serves "
                      f"{', '.join(sorted(provider.native_adjustments(query.interval)))})")
    if have is None:
        return None, (f"adjustment {query.adjustment} not derivable from "
                      f"{', '.join(sorted(provider.native_adjustments(query.interval)))}")
    if market_actions_source(cfg) is None:
        return None, (f"cannot adjust the market to {query.adjustment}: no ready provider serves market-wide "
                      "corporate actions (fetch_market_actions); ask for adjustment='raw', or configure one")
    return have, ""


def market_actions_source(cfg: Config) -> PriceProvider | None:
    """The first ready provider (actions order) serving market-wide corporate actions."""
    from .plugins import sources

    ready, _why = sources(cfg, "market_actions")
    return ready[0] if ready else None


def validate_long(df: Any, query: PriceQuery, days: list[dt.date], provider: str) -> pd.DataFrame:
    """A provider's market answer through the one gate (:func:`finrpt_providers.frames.gate`):
    the long frame of every ticker whose bars keep the contract; a ticker with a bad bar is
    left out and named in ``attrs["failed"]`` (never delivered, never dropped silently)."""
    out, failed = gate(df, Expect(query.start, query.end, query.interval, sessions=tuple(days)), provider)
    if failed:
        log.warning("market: %d ticker(s) from %s left out, their bars break the contract: %s", len(failed), provider,
                    "; ".join(str(e) for e in list(failed.values())[:5]))
    out.attrs = {"failed": {t: f"{type(e).__name__}: {e}" for t, e in failed.items()}}
    return out


def adjust_market(frame: pd.DataFrame, have: str, want: str, provider: PriceProvider, cfg: Config,
                  today: dt.date, interval: str = "1d") -> tuple[pd.DataFrame, dict[str, str], str]:
    """A market frame adjusted ``have`` -> ``want`` with market-wide corporate actions:
    (frame, tickers left out and why, actions source)."""
    stamps = frame.index.get_level_values("timestamp")
    first_day = session_days(stamps[[int(stamps.argmin())]])[0]
    actions = market_actions(cfg, first_day.date(), today)
    out, failed = apply_market_actions(frame, have, want, provider, actions, interval)
    return out, failed, actions[2]


def market_actions(cfg: Config, since: dt.date, today: dt.date) -> tuple[pd.Series, pd.Series, str, dict]:
    """(splits, dividends, source name, refused): every ticker's events with ex-dates after
    ``since`` and up to ``today``, from the first ready market-wide source, normalised by
    :func:`finrpt_providers.actions.normalise_market` (each record once, USD only; refused:
    ticker -> why its dividends cannot be used). Fetched once; applied by
    :func:`apply_market_actions` wherever the frames are (here, or on a cluster's workers)."""
    import pandas as pd

    from .actions import normalise_market, remember
    from .plugins import guard

    source = market_actions_source(cfg)
    if source is None:
        raise DataIntegrityError("no market-wide corporate-actions source is ready")
    lo, now = pd.Timestamp(since, tz=ET), pd.Timestamp(today, tz=ET)

    def listing():
        got = guard(source, "fetch_market_actions()", source.fetch_market_actions, since)
        if not isinstance(got, tuple) or len(got) != 2:
            raise DataIntegrityError(f"{source.name}.fetch_market_actions() returned {type(got).__name__}, not "
                                     "(splits, dividends)", provider=source.name)
        return normalise_market(got[0], got[1], source.name)

    # one listing per source, day and today in the process (the one corporate-actions cache)
    splits, dividends, refused = remember(("market", since, today), listing, source)
    splits = splits[(splits.index.get_level_values(1) > lo) & (splits.index.get_level_values(1) <= now)]
    dividends = dividends[(dividends.index.get_level_values(1) > lo) & (dividends.index.get_level_values(1) <= now)]
    return splits, dividends, source.name, refused


def market_session(provider: PriceProvider, day: dt.date, adjustment: str) -> pd.DataFrame:
    """One session of ``provider``'s daily market through the gate (closes that weigh events
    are bars entering the core like any other): tickers with a bad bar are left out, logged."""
    from .plugins import guard

    got, bad = gate(guard(provider, "fetch_market()", provider.fetch_market, day, day, "1d", adjustment),
                    Expect(day, day, "1d", sessions=(day,)), provider.name)
    if bad:
        log.warning("market: closes of %d ticker(s) on %s from %s refused: %s", len(bad), day, provider.name,
                    "; ".join(str(e) for e in list(bad.values())[:3]))
    return got


def checked_splits(splits: pd.Series, refused: dict, source_name: str, daily, have: str, first_day,
                   present: set[str]) -> tuple[pd.Series, dict[str, str]]:
    """Market-wide splits of the ``present`` tickers checked against daily closes
    (``daily(ticker, sessions)``: that ticker's daily bars as ``have`` on those sessions) by the
    single-ticker rules (:func:`finrpt_providers.actions.validate_splits`): (the splits to
    apply, ticker -> why it cannot be adjusted)."""
    import pandas as pd

    from .actions import validate_splits

    failed: dict[str, str] = {t: why for t, why in refused.get("splits", {}).items() if t in present}
    checked = []
    sp_tickers = splits.index.get_level_values(0) if len(splits) else pd.Index([])
    for t in sorted(set(sp_tickers) & present - set(failed)):  # splits are few: each checked against the closes around it
        sp = splits.xs(t, level=0)

        def as_traded(_t: str, sessions: list, _sp: pd.Series = sp, _t0: str = t) -> pd.Series:
            one = daily(_t0, sessions)
            days = session_days(one.index)
            closes = one["close"].to_numpy()
            if have == "splits":
                from .adjust import split_factor

                closes = closes * split_factor(days, _sp)
            s = pd.Series(closes, index=days)
            return s[s.index.isin(pd.DatetimeIndex([pd.Timestamp(d, tz=ET) for d in sessions]))]

        try:
            sp, _notes = validate_splits(t, sp, as_traded, source_name, since=first_day)
        except ProviderError as e:
            failed[t] = f"{type(e).__name__}: {e}"
            continue
        checked.append((t, sp))
    if len(splits):
        rest = splits[~sp_tickers.isin([t for t, _ in checked] + list(failed))]
        parts = [rest] + [pd.Series(sp.to_numpy(), index=pd.MultiIndex.from_arrays(
            [pd.Index([t] * len(sp), dtype="object"), sp.index], names=splits.index.names)) for t, sp in checked]
        splits = pd.concat(parts) if len(parts) > 1 else rest

    return splits, failed


def rescue(splits: pd.Series, dividends: pd.Series, failed: dict[str, str], cfg: Config, closes, since,
           today: dt.date) -> tuple[pd.Series, pd.Series, dict[str, str]]:
    """Tickers whose market-wide events could not be used (a split the prices contradict, two
    ratios on one day) asked of the configured sources one by one, as a single ticker's
    question asks them (:func:`finrpt_providers.actions.get_actions`: the next source is
    tried): their events replaced by the first valid answer; the others stay failed."""
    import pandas as pd

    from .actions import available, get_actions_many, happened
    from .adjust import as_single

    if not failed or len(available(cfg)[0]) < 2:
        return splits, dividends, failed
    got = get_actions_many(sorted(failed), cfg, closes, since=since)
    ok = {t: happened(a, today) for t, a in got.items() if not isinstance(a, ProviderError)}
    if not ok:
        return splits, dividends, failed
    log.info("market: corporate actions of %s taken from the next configured source", ", ".join(sorted(ok)))

    def swap(events: pd.Series, part) -> pd.Series:
        keep = events[~events.index.get_level_values(0).isin(list(ok))] if len(events) else events
        extra = [as_single(part(a), t) for t, a in ok.items() if len(part(a))]
        if not extra:
            return keep
        joined = pd.concat([keep, *[e.set_axis(e.index.set_names(keep.index.names)) for e in extra]])
        return joined.sort_index()

    return swap(splits, lambda a: a.splits), swap(dividends, lambda a: a.dividends), \
        {t: why for t, why in failed.items() if t not in ok}


def apply_market_actions(frame: pd.DataFrame, have: str, want: str, provider: PriceProvider,
                         actions: tuple, interval: str = "1d") -> tuple[pd.DataFrame, dict[str, str]]:
    """``frame`` (bars of ``interval`` as ``provider`` serves them, ``have``) adjusted to
    ``want`` with ``actions`` (from :func:`market_actions`) by the one adjustment
    (:func:`finrpt_providers.pipeline.adjust_long`): (frame, tickers left out and why).
    Splits in the range are checked against DAILY as-traded closes (the frame's own for
    daily bars; for intraday bars the provider's daily market of those sessions)."""
    import pandas as pd

    from .pipeline import adjust_long

    splits, dividends, source_name = actions[0], actions[1], actions[2]
    refused = actions[3] if len(actions) > 3 else {}
    if not len(frame):
        return frame, {}
    stamps = frame.index.get_level_values("timestamp")
    first_day = session_days(stamps[[int(stamps.argmin())]])[0]
    sessions_read: dict[dt.date, pd.DataFrame] = {}

    def daily(ticker: str, sessions: list) -> pd.DataFrame:
        """``ticker``'s daily bars on ``sessions``: the frame's own when it is daily and holds
        them, else the provider's market of each session (read once, shared by every ticker)."""
        held = one_ticker(frame, ticker) if interval == "1d" else None
        have_days = set(session_days(held.index).date) if held is not None else set()
        parts = [held] if held is not None and len(held) else []
        for d in sorted(set(sessions) - have_days):
            if d not in sessions_read:
                try:
                    sessions_read[d] = market_session(provider, d, have)
                except ProviderError as e:
                    log.info("market: daily closes of %s unavailable from %s (%s)", d, provider.name, e)
                    sessions_read[d] = empty_long()
            part = one_ticker(sessions_read[d], ticker)
            if len(part):
                parts.append(part)
        return pd.concat(parts).sort_index() if len(parts) > 1 else (parts[0] if parts else one_ticker(frame, ""))

    present = set(tickers_of(frame))
    splits, failed = checked_splits(splits, refused, source_name, daily, have, first_day, present)
    if failed and provider.config is not None:
        from .actions import closes_from

        splits, dividends, failed = rescue(splits, dividends, failed, provider.config,
                                           closes_from(provider.config, provider), first_day,
                                           provider.config.today())
    def more_closes(wanted: dict[str, list[dt.date]]) -> pd.Series | None:
        if "1d" not in provider.intervals:
            return None
        sessions = sorted({d for ds in wanted.values() for d in ds})
        got = []
        for d in sessions:
            try:
                got.append(market_session(provider, d, have))
            except ProviderError as e:  # its tickers' dividends then fail, named ("no close for ...")
                log.info("market: daily closes of %s unavailable from %s (%s)", d, provider.name, e)
        got = [g for g in got if len(g)]
        if not got:
            return None
        g = pd.concat(got)
        g = g[g.index.get_level_values(0).isin(list(wanted))]
        return closes_by_session(g)

    out, why = adjust_long(frame, have, want, splits, dividends, daily=interval == "1d", more_closes=more_closes,
                           refused={t: r for t, r in refused.get("dividends", {}).items() if t in present},
                           exclude=set(failed))
    failed.update(why)
    if failed:
        log.warning("market: %d ticker(s) left out, their corporate actions could not be applied: %s",
                    len(failed), ", ".join(sorted(failed)[:20]))
    return out, failed


def _empty() -> pd.DataFrame:
    return empty_long()


def _finish(frame: pd.DataFrame, query: PriceQuery, by_day: dict, attempts: list, source: str,
            failed: dict) -> pd.DataFrame:
    frame.attrs = {}
    tickers = tickers_of(frame)
    providers = "+".join(dict.fromkeys(by_day[d] for d in sorted(by_day)))
    sources = [{"provider": by_day[d], "session": d} for d in sorted(by_day)]  # one list, shared by every ticker
    frame.attrs.update(
        interval=query.interval, adjustment=query.adjustment, start=query.start, end=query.end,
        **({"extended_hours": query.extended_hours} if query.intraday else {}),
        **({"as_of": query.as_of} if query.as_of is not None else {}),
        provider=dict.fromkeys(tickers, providers),
        sources=dict.fromkeys(tickers, sources),
        failed=failed, attempts=attempts, actions=source,
    )
    return frame


__all__ = ["get_market", "validate_long", "adjust_market", "market_actions", "apply_market_actions",
           "market_actions_source"]
