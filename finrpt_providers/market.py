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
from .provider import _DAY_NS, BAR_COLUMNS, ET, FLOAT_COLUMNS, PriceProvider, PriceQuery, _ordinal, wall_ns

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

log = redact.logger(__name__)


def get_market(start: Any, end: Any = None, *, interval: str = "1d", adjustment: str = "splits",
               providers: Sequence[str] | str | None = None, config: Config | dict | None = None) -> pd.DataFrame:
    """Every ticker's bars for the session ``start`` (or ``start`` to ``end``, inclusive):
    one long frame indexed by (``ticker``, ``timestamp``), sorted, bar columns and dtypes as
    for one ticker. ``attrs``: ``provider`` and ``sources`` by ticker, ``failed`` (tickers
    left out and why), ``attempts`` (every provider considered), ``actions`` (the source
    of market-wide corporate actions, when used)."""
    from .chain import bounded, resolve_config

    cfg = resolve_config(config)
    if isinstance(providers, str):
        providers = [p for p in providers.split(",") if p.strip()]
    names = list(dict.fromkeys(providers if providers is not None else cfg.providers))
    query = PriceQuery("SPY", start, start if end is None else end, interval, adjustment)  # checks dates & names
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
            failed: dict[str, str] = {}
            source = ""
            if have != query.adjustment and len(frame):
                frame, failed, source = adjust_market(frame, have, query.adjustment, provider, cfg, today,
                                                      query.interval)
        except ProviderError as e:
            record(name, "failed", f"{type(e).__name__}: {e}")
            continue
        if frame.empty:
            record(name, "empty", f"no bars for {query.start}..{query.end}")
            continue
        got = set(frame.index.get_level_values("timestamp").normalize().date)
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
    if not provider.serves_market:
        return None, "does not serve whole-market cross-sections"
    reason = provider.not_ready_reason(deep=True)
    if reason:
        return None, reason
    if query.interval not in provider.intervals:
        return None, f"interval {query.interval} not served for the market (serves {', '.join(sorted(provider.intervals))})"
    native = provider.native_adjustments(query.interval)
    if query.adjustment in native:
        return query.adjustment, ""
    have = next((a for a in ("raw", "splits") if a in native), None)
    if have is None:
        return None, f"adjustment {query.adjustment} not derivable from {', '.join(sorted(native))}"
    if market_actions_source(cfg) is None:
        return None, (f"cannot adjust the market to {query.adjustment}: no ready provider serves market-wide "
                      "corporate actions (fetch_market_actions); ask for adjustment='raw', or configure one")
    return have, ""


def market_actions_source(cfg: Config) -> PriceProvider | None:
    """The first ready provider (actions order) serving market-wide corporate actions."""
    from .actions import source_order
    from .plugins import registry

    reg = registry()
    for name in source_order(cfg):
        entry = reg.get(name)
        if entry is None or type(entry.provider).fetch_market_actions is PriceProvider.fetch_market_actions:
            continue
        try:
            p = entry.provider.configured(cfg)
            if p.not_ready_reason() is None:
                return p
        except (Exception, SystemExit):  # a broken plugin is not a source
            continue
    return None


def validate_long(df: Any, query: PriceQuery, days: list[dt.date], provider: str) -> pd.DataFrame:
    """A provider's market answer against the long-frame contract, vectorised (12,000 tickers
    must not cost 12,000 validations): index (ticker, timestamp in New York), bar columns as
    float64 (transactions Int64), no bar twice, finite positive prices that high and low
    bound, finite non-negative volumes, every bar on an asked session (daily ones at
    00:00). Lossless fixes (column order, sort) are made; anything else is a
    DataIntegrityError naming the first bad bar."""
    import numpy as np
    import pandas as pd

    def bad(msg: str) -> DataIntegrityError:
        return DataIntegrityError(f"market frame breaks the contract: {msg}", provider=provider)

    if not isinstance(df, pd.DataFrame) or not isinstance(df.index, pd.MultiIndex) \
            or list(df.index.names) != ["ticker", "timestamp"]:
        raise bad("expected a DataFrame indexed by (ticker, timestamp)")
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise bad(f"missing column(s) {', '.join(missing)}")
    ts = df.index.get_level_values("timestamp")
    if not isinstance(ts, pd.DatetimeIndex) or ts.tz is None:
        raise bad("timestamps must be tz-aware")
    out = df.loc[:, list(BAR_COLUMNS)] if list(df.columns) != list(BAR_COLUMNS) else df.copy(deep=False)
    if str(ts.dtype) != f"datetime64[ns, {ET}]":
        out.index = pd.MultiIndex.from_arrays([df.index.get_level_values("ticker").astype(str),
                                               ts.tz_convert(ET).as_unit("ns")], names=["ticker", "timestamp"])
    for c in FLOAT_COLUMNS:
        if out[c].dtype != "float64":
            out[c] = out[c].astype("float64")
    if str(out["transactions"].dtype) != "Int64":
        out["transactions"] = out["transactions"].astype("Int64")
    if not out.index.is_monotonic_increasing:
        out = out.sort_index()
    if out.index.has_duplicates:
        raise bad(f"the same bar twice: {out.index[out.index.duplicated()][0]}")
    if not len(out):
        return out

    def first(mask: np.ndarray, what: str) -> None:
        if mask.any():
            raise bad(f"{what} at {out.index[int(np.argmax(mask))]}")

    prices = out[["open", "high", "low", "close"]].to_numpy()
    first(~(np.isfinite(prices) & (prices > 0)).all(axis=1), "missing, infinite or non-positive price")
    o, h, lo, c = prices.T
    tol = 1e-6 * h
    first((h + tol < np.maximum.reduce([o, c, lo])) | (lo - tol > np.minimum(o, c)), "high/low not bounding open/close")
    vol = out["volume"].to_numpy()
    first(~(np.isfinite(vol) & (vol >= 0)), "missing, infinite or negative volume")
    wall = wall_ns(out.index.get_level_values("timestamp"))
    asked = np.array([_ordinal(d) for d in days], dtype=np.int64)
    first(~np.isin(wall // _DAY_NS, asked), "a bar outside the asked sessions")
    if query.interval == "1d":
        first(wall % _DAY_NS != 0, "a daily bar not stamped 00:00 New York")
    return out


def adjust_market(frame: pd.DataFrame, have: str, want: str, provider: PriceProvider, cfg: Config,
                  today: dt.date, interval: str = "1d") -> tuple[pd.DataFrame, dict[str, str], str]:
    """A market frame adjusted ``have`` -> ``want`` with market-wide corporate actions, ticker
    by ticker only where events exist (every other ticker's factors are 1): (frame, tickers
    left out and why, actions source)."""
    first_day = frame.index.get_level_values("timestamp").min().normalize()
    actions = market_actions(cfg, first_day.date(), today)
    out, failed = apply_market_actions(frame, have, want, provider, actions, interval)
    return out, failed, actions[2]


def market_actions(cfg: Config, since: dt.date, today: dt.date) -> tuple[pd.Series, pd.Series, str]:
    """(splits, dividends, source name): every ticker's events with ex-dates after ``since``
    and up to ``today``, from the first ready market-wide source. Fetched once; applied by
    :func:`apply_market_actions` wherever the frames are (here, or on a cluster's workers)."""
    import pandas as pd

    from .plugins import guard

    source = market_actions_source(cfg)
    if source is None:
        raise DataIntegrityError("no market-wide corporate-actions source is ready")
    lo, now = pd.Timestamp(since, tz=ET), pd.Timestamp(today, tz=ET)
    splits, dividends = guard(source, "fetch_market_actions()", source.fetch_market_actions, since)
    splits = splits[(splits.index.get_level_values(1) > lo) & (splits.index.get_level_values(1) <= now)]
    dividends = dividends[(dividends.index.get_level_values(1) > lo) & (dividends.index.get_level_values(1) <= now)]
    return splits, dividends, source.name


def apply_market_actions(frame: pd.DataFrame, have: str, want: str, provider: PriceProvider,
                         actions: tuple[pd.Series, pd.Series, str],
                         interval: str = "1d") -> tuple[pd.DataFrame, dict[str, str]]:
    """``frame`` (bars of ``interval`` as ``provider`` serves them, ``have``) adjusted to
    ``want`` with ``actions`` (from :func:`market_actions`): (frame, tickers left out and
    why). Splits are checked, and dividends weighed, against DAILY as-traded closes: the
    frame's own for daily bars; for intraday bars, the provider's daily bars of the
    frame's sessions (a minute's close is not the session's close)."""
    import numpy as np
    import pandas as pd

    from .actions import validate_splits
    from .adjust import apply_factors, dividend_factor, split_factor
    from .plugins import guard

    splits, dividends, source_name = actions
    stamps = frame.index.get_level_values("timestamp")
    first_day = stamps.min().normalize()
    if interval == "1d":
        daily = frame
    else:
        daily = guard(provider, "fetch_market()", provider.fetch_market, first_day.date(),
                      stamps.max().normalize().date(), "1d", have)
    daily_close = daily["close"]
    daily_names = daily.index.get_level_values("ticker")
    tickers = frame.index.get_level_values("ticker")
    price = np.ones(len(frame))
    volume = np.ones(len(frame))
    failed: dict[str, str] = {}
    affected = sorted(set(splits.index.get_level_values(0)) | (set(dividends.index.get_level_values(0))
                                                               if want == "total" else set()))
    present = set(tickers)
    extra = _closes_after(provider, daily, dividends, present, have) if want == "total" else {}
    for t in affected:
        if t not in present:
            continue
        where = tickers.get_loc(t)  # a slice: the index is sorted
        days = stamps[where].normalize()
        try:
            sp = splits.xs(t, level=0) if t in splits.index.get_level_values(0) else pd.Series(dtype="float64")
            if t in daily_names:
                dc = daily_close.xs(t, level=0)
                ddays = dc.index.normalize()
                closes = pd.Series(dc.to_numpy() * (split_factor(ddays, sp) if have == "splits" else 1.0),
                                   index=ddays)
            else:
                closes = pd.Series(dtype="float64", index=pd.DatetimeIndex([], tz=ET))

            def as_traded(_t: str, sessions: list, _c: pd.Series = closes) -> pd.Series:
                wanted = pd.DatetimeIndex([pd.Timestamp(d, tz=ET) for d in sessions])
                return _c[_c.index.isin(wanted)]

            sp, _notes = validate_splits(t, sp, as_traded, source_name, since=first_day)
            s = split_factor(days, sp)
            to_raw = s if have == "splits" else 1.0
            if want == "raw":
                p, v = to_raw, 1.0 / to_raw
            else:
                p, v = to_raw / s, s / to_raw
                if want == "total" and t in dividends.index.get_level_values(0):
                    dv = dividends.xs(t, level=0)
                    prev = {}
                    for ex in dv.index:
                        before = calendar.session_before(ex.date())
                        key = pd.Timestamp(before, tz=ET) if before else None
                        if key is not None and key in closes.index:
                            prev[ex] = float(closes[key])
                        elif key is not None and (t, key) in extra:
                            adj = split_factor(pd.DatetimeIndex([key]), sp)[0] if have == "splits" else 1.0
                            prev[ex] = extra[(t, key)] * adj
                    p = p * dividend_factor(days, dv, pd.Series(prev, dtype="float64"))
        except ProviderError as e:
            failed[t] = f"{type(e).__name__}: {e}"
            continue
        price[where] = p
        volume[where] = v
    out = apply_factors(frame, price, volume)
    if failed:
        log.warning("market: %d ticker(s) left out, their corporate actions could not be applied: %s",
                    len(failed), ", ".join(sorted(failed)[:20]))
        out = out[~out.index.get_level_values("ticker").isin(list(failed))]
    return out, failed


def _closes_after(provider: PriceProvider, frame: pd.DataFrame, dividends: pd.Series, present: set,
                  have: str) -> dict:
    """(ticker, session) -> close as ``provider`` serves it (``have``), for the sessions before
    ex-dates that the frame does not hold: one market call per such session (a day file, or
    a grouped request), not one per ticker."""
    import pandas as pd

    from .plugins import guard

    held = set(frame.index.get_level_values("timestamp").normalize())
    wanted: set[dt.date] = set()
    for t, ex in dividends.index:
        if t in present:
            before = calendar.session_before(ex.date())
            if before and pd.Timestamp(before, tz=ET) not in held:
                wanted.add(before)
    if not wanted or "1d" not in provider.intervals:
        return {}
    out = {}
    for day in sorted(wanted):
        got = guard(provider, "fetch_market()", provider.fetch_market, day, day, "1d", have)
        for (t, ts), close in got["close"].items():
            out[(t, ts.normalize())] = float(close)
    return out


def _empty() -> pd.DataFrame:
    from .chain import long_frame

    return long_frame({})


def _finish(frame: pd.DataFrame, query: PriceQuery, by_day: dict, attempts: list, source: str,
            failed: dict) -> pd.DataFrame:
    frame.attrs = {}
    tickers = frame.index.get_level_values("ticker")
    providers = "+".join(dict.fromkeys(by_day[d] for d in sorted(by_day)))
    sources = [{"provider": by_day[d], "session": d} for d in sorted(by_day)]  # one list, shared by every ticker
    frame.attrs.update(
        interval=query.interval, adjustment=query.adjustment, start=query.start, end=query.end,
        provider={t: providers for t in tickers.unique()},
        sources={t: sources for t in tickers.unique()},
        failed=failed, attempts=attempts, actions=source,
    )
    return frame


__all__ = ["get_market", "validate_long", "adjust_market", "market_actions", "apply_market_actions",
           "market_actions_source"]
