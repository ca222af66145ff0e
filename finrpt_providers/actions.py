"""Corporate actions (splits and cash dividends): a capability of the core.

Providers that serve them declare ``serves_actions`` and implement
``fetch_actions(ticker)``. This module chooses the source by configuration
(``FINRPT_ACTIONS_PROVIDERS``, an ordered list; by default the ready providers that
serve actions in the chain's order, then the other installed ones: with the built-in
order that is Massive REST when its key is set, else yfinance), keeps ONE cache for
the process, and hands back validated events:

* a split listed twice with the same ratio within a few weeks (Massive's legacy data
  lists SHOP 10-for-1 on 2022-06-22 and again on 2022-06-29) is one event, dated where
  the as-traded closes actually jump by that ratio;
* a split whose ratio the as-traded closes contradict is reported as a
  DataIntegrityError naming the date, the listed ratio and the move seen; the next
  source is then tried. It is never applied silently.

Validation needs as-traded daily closes around each split: the caller passes a
function that returns them (see :mod:`finrpt_providers.pipeline`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import calendar, redact
from .errors import DataIntegrityError, InvalidQuery, ProviderError, ProviderUnavailable, UnsupportedQuery
from .provider import ET

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

log = redact.logger(__name__)

#: the same split listed twice this close together is one event
DUPLICATE_WINDOW_DAYS = 45
# Ratios this close to 1 (small stock dividends) move less than a normal day: not checkable.
CHECKABLE = 1.25
# The close-to-close move across an ex-date must be within this (log) distance of the ratio.
TOLERANCE = 0.25

#: closes(ticker, sessions) -> as-traded closes by session (ET midnight), or None when no
#: as-traded source is available
Closes = Callable[[str, list], "pd.Series | None"]


@dataclasses.dataclass(frozen=True)
class Actions:
    """Validated corporate actions of one ticker, all history known to ``source``."""

    ticker: str
    splits: pd.Series  # ratio (4.0 = 4-for-1) by ex-date, ET midnight
    dividends: pd.Series  # cash per share as declared (as traded then) by ex-date, ET midnight
    source: str
    notes: tuple[str, ...] = ()


_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Any] = {}


def clear_cache() -> None:
    """Forget every cached corporate action (the one cache of the process)."""
    with _lock:
        _cache.clear()


def source_order(config: Config, capability: str = "serves_actions") -> list[str]:
    """The sources of a capability to try, in order (names of registered providers): the
    configured list (FINRPT_ACTIONS_PROVIDERS, or FINRPT_STATEMENTS_PROVIDERS for
    ``serves_statements``), else the providers serving it in chain order, then the others."""
    from .plugins import registry

    reg = registry()
    configured = config.statements_providers if capability == "serves_statements" else config.actions_providers
    if configured is not None:
        return configured
    chain = [n for n in config.providers if n in reg and getattr(reg[n].provider, capability, False)]
    rest = [n for n, e in reg.items() if getattr(e.provider, capability, False) and n not in chain]
    return chain + rest


def available(config: Config) -> tuple[list[str], list[str]]:
    """(ready sources in order, why each other one is not) without any I/O."""
    from .plugins import registry

    from .plugins import guard

    reg = registry()
    ready, why = [], []
    for name in source_order(config):
        entry = reg.get(name)
        if entry is None:
            why.append(f"{name}: not installed")
            continue
        try:
            p = guard(entry.provider, "configured()", entry.provider.configured, config)
            reason = guard(p, "not_ready_reason()", p.not_ready_reason)
        except ProviderError as e:
            why.append(f"{name}: {e}")
            continue
        if not p.serves_actions:
            why.append(f"{name}: serves no corporate actions")
            continue
        if reason:
            why.append(f"{name}: {reason}")
            continue
        ready.append(name)
    return ready, why


def none_available_message(config: Config, what: str) -> str:
    _ready, why = available(config)
    tried = "; ".join(why) if why else "FINRPT_ACTIONS_PROVIDERS is empty"
    return (f"{what} needs splits and dividends and no corporate-actions source is usable ({tried}): make one "
            "ready, or list one in FINRPT_ACTIONS_PROVIDERS")


def _identity(provider) -> tuple:
    """What makes two configured providers the same source (their non-secret settings and
    a hash of their secrets: a key is never kept in clear)."""
    import hashlib

    cfg = provider.config
    parts = []
    for s in provider.settings:
        v = cfg.get(s.name) if cfg is not None else None
        if v and s.secret:
            v = hashlib.sha256(v.encode()).hexdigest()[:12]
        parts.append((s.name, v))
    return (provider.name, tuple(parts))


def _raw_events(provider, ticker: str) -> tuple[pd.Series, pd.Series]:
    key = ("events", _identity(provider), ticker)
    with _lock:
        hit = _cache.get(key)
    if hit is None:
        from .plugins import guard

        try:
            got = guard(provider, "fetch_actions()", provider.fetch_actions, ticker)
        except InvalidQuery as e:
            # the question was checked before any source was asked: a source refusing its own
            # request is that source's failure, never "the user's question is wrong"
            raise ProviderUnavailable(f"the corporate-actions request for {ticker} was refused ({e})",
                                      provider=provider.name) from None
        if not isinstance(got, tuple) or len(got) != 2:
            raise DataIntegrityError(f"{provider.name}.fetch_actions() returned {type(got).__name__}, not "
                                     "(splits, dividends)", provider=provider.name)
        hit = tuple(_checked_series(s, what, provider.name, ticker)
                    for s, what in zip(got, ("splits", "dividends")))
        with _lock:
            _cache[key] = hit
    return hit[0].copy(), hit[1].copy()


def _checked_series(s: Any, what: str, source: str, ticker: str) -> pd.Series:
    """A provider's events as float64 by ET-midnight ex-date (naive dates are read as ET)."""
    import pandas as pd

    if not isinstance(s, pd.Series) or not isinstance(s.index, pd.DatetimeIndex):
        raise DataIntegrityError(f"{source} returned {what} of {ticker} that are not a Series by ex-date "
                                 f"({type(s).__name__})", provider=source)
    idx = s.index.tz_localize(ET) if s.index.tz is None else s.index.tz_convert(ET)
    try:
        values = s.to_numpy(dtype="float64")
    except (TypeError, ValueError):
        raise DataIntegrityError(f"{source} returned non-numeric {what} of {ticker}", provider=source) from None
    return pd.Series(values, index=idx.normalize().as_unit("ns"), name=s.name).sort_index()


def get_actions(ticker: str, config: Config, closes: Closes | None = None, since: Any = None) -> Actions:
    """Validated splits and dividends of ``ticker`` from the first configured source that
    answers and passes validation. Splits after ``since`` (a Timestamp: those that adjust
    the bars at hand; None: all) are validated against ``closes``; verdicts are cached.
    UnsupportedQuery when no source is usable; the last source's error (with every
    source's reason) when all fail."""
    ready, _why = available(config)
    if not ready:
        raise UnsupportedQuery(none_available_message(config, "this adjustment"))
    return _first_valid(ticker, _configured(ready, config), closes, since)


def get_actions_many(tickers: list[str], config: Config, closes: Closes | None = None, since: Any = None
                     ) -> dict[str, Actions | ProviderError]:
    """:func:`get_actions` for a basket: the sources chosen once; per ticker its Actions, or
    the ProviderError that ticker met (one ticker's bad data never fails the others)."""
    ready, _why = available(config)
    if not ready:
        e = UnsupportedQuery(none_available_message(config, "this adjustment"))
        return {t: e for t in tickers}
    sources = _configured(ready, config)
    out: dict[str, Actions | ProviderError] = {}
    for t in tickers:
        try:
            out[t] = _first_valid(t, sources, closes, since)
        except ProviderError as e:
            out[t] = e
    return out


def _configured(ready: list[str], config: Config) -> list[tuple[str, Any]]:
    """The ready sources, configured once (a basket asks them for every ticker)."""
    from .plugins import registry

    reg = registry()
    return [(n, reg[n].provider.configured(config)) for n in ready]


def _first_valid(ticker: str, sources: list[tuple[str, Any]], closes: Closes | None, since: Any) -> Actions:
    """The first source's validated events for ``ticker``; verdicts cached per sources,
    ticker and span (events are immutable here; failures are not cached)."""
    key = ("actions", tuple(_identity(p) for _n, p in sources), ticker, since)
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    failures: list[str] = []
    last: ProviderError | None = None
    for name, provider in sources:
        try:
            splits, dividends = _raw_events(provider, ticker)
            splits, notes = validate_splits(ticker, splits, closes, name, since, _identity(provider))
        except ProviderError as e:
            failures.append(f"{name}: {e}")
            last = e
            log.warning("corporate actions of %s from %s unusable (%s)%s", ticker, name, e,
                        "; trying the next source" if name != sources[-1][0] else "")
            continue
        got = Actions(ticker, splits, _clean_dividends(dividends), name, tuple(failures) + tuple(notes))
        with _lock:
            _cache[key] = got
        return got
    assert last is not None
    if len(failures) == 1:
        raise last
    raise type(last)("no corporate-actions source could answer: " + "; ".join(failures))


def _clean_dividends(dividends: pd.Series) -> pd.Series:
    import pandas as pd

    d = dividends[dividends > 0]
    if d.index.has_duplicates:  # a regular and a special on one day add up
        d = d.groupby(level=0).sum()
    return pd.Series(d.to_numpy(dtype="float64"), index=d.index, name="cash").sort_index()


def validate_splits(ticker: str, splits: pd.Series, closes: Closes | None, source: str, since: Any = None,
                    identity: Any = None) -> tuple[pd.Series, list[str]]:
    """Merge duplicate listings and check every checkable ratio after ``since`` against
    as-traded closes (earlier ones adjust nothing asked: left as listed).

    Returns (splits, notes). Raises DataIntegrityError when the closes contradict a
    ratio, or when a duplicate cannot be resolved because no as-traded closes exist.
    A verdict is cached per (source, ticker, listing) when ``identity`` is given.
    """
    import numpy as np
    import pandas as pd

    splits = splits[(splits > 0) & (splits != 1)].sort_index()
    if splits.empty:
        return splits, []
    notes: list[str] = []
    # Group listings of the same ratio within the window.
    groups: list[list[tuple[pd.Timestamp, float]]] = []
    for ex, ratio in splits.items():
        for g in groups:
            if np.isclose(g[0][1], ratio, rtol=1e-6) and (ex - g[-1][0]).days <= DUPLICATE_WINDOW_DAYS:
                g.append((ex, float(ratio)))
                break
        else:
            groups.append([(ex, float(ratio))])

    def jumps(dates: list[pd.Timestamp]) -> dict[pd.Timestamp, float] | None:
        """close(session before) / close(ex-date), as traded, for each date (None: no closes)."""
        if closes is None:
            return None
        wanted: dict[pd.Timestamp, tuple[dt.date, dt.date]] = {}
        for ex in dates:
            before = calendar.session_before(ex.date())
            if before:
                wanted[ex] = (before, ex.date())
        if not wanted:
            return {}
        days = sorted({d for pair in wanted.values() for d in pair})
        got = closes(ticker, days)
        if got is None:
            return None
        by_day = {ts.date(): float(v) for ts, v in got.items()}
        return {ex: by_day[a] / by_day[b] for ex, (a, b) in wanted.items() if a in by_day and b in by_day}

    kept: list[tuple[pd.Timestamp, float]] = []
    for g in groups:
        if since is not None and g[-1][0] <= since:
            kept.extend(g)  # adjusts no bar asked about: not worth a download to check
            continue
        vkey = ("verdict", identity, ticker, tuple(g), closes is not None) if identity is not None else None
        with _lock:
            verdict = _cache.get(vkey) if vkey else None
        if verdict is not None:
            if isinstance(verdict, DataIntegrityError):
                raise verdict
            kept.append(verdict[0])
            if verdict[1]:
                notes.append(verdict[1])
            continue
        try:
            event, note = _check_group(ticker, g, jumps, source)
        except DataIntegrityError as e:
            if vkey:
                with _lock:
                    _cache[vkey] = e
            raise
        if vkey:
            with _lock:
                _cache[vkey] = (event, note)
        kept.append(event)
        if note:
            notes.append(note)
    kept.sort()
    out = pd.Series([r for _, r in kept], dtype="float64", name="ratio",
                    index=pd.DatetimeIndex([ex for ex, _ in kept], dtype="datetime64[ns, America/New_York]"))
    return out, notes


def _check_group(ticker: str, g: list, jumps, source: str) -> tuple[tuple, str]:
    """One listed split (or its duplicates) -> (the event, a note), or DataIntegrityError."""
    import numpy as np

    note = ""
    ratio = g[0][1]
    checkable = ratio >= CHECKABLE or ratio <= 1 / CHECKABLE
    seen = jumps([ex for ex, _ in g]) if checkable else None
    if len(g) > 1:
        listed = ", ".join(str(ex.date()) for ex, _ in g)
        if not seen:
            why = ("no as-traded prices are available to tell which date is real: put a provider that serves "
                   "raw bars in the chain" if checkable else
                   "the ratio is too close to 1 for the prices to tell which date is real: check the listing")
            raise DataIntegrityError(
                f"{source} lists the {_ratio_text(ratio)} split of {ticker} {len(g)} times ({listed}) and {why}, "
                "or put another actions source first in FINRPT_ACTIONS_PROVIDERS", provider=source)
        best = min(seen, key=lambda ex: abs(np.log(seen[ex] / ratio)))
        note = (f"{source} listed the {_ratio_text(ratio)} split of {ticker} on {listed}: one event, "
                f"dated {best.date()} where the as-traded price moves by {seen[best]:.3g}")
        log.info(note)
        g = [(best, ratio)]
    ex = g[0][0]
    if checkable:
        if not seen or ex not in seen:
            seen = jumps([ex])
        if seen and ex in seen and abs(np.log(seen[ex] / ratio)) > TOLERANCE:
            raise DataIntegrityError(
                f"{source} lists a {_ratio_text(ratio)} split of {ticker} on {ex.date()}, but the as-traded "
                f"price moves by {seen[ex]:.3g}x there: not applied; check the ticker's corporate actions or "
                "put another source first in FINRPT_ACTIONS_PROVIDERS", provider=source)
    return g[0], note


def _ratio_text(ratio: float) -> str:
    if ratio >= 1:
        return f"{ratio:g}-for-1"
    return f"1-for-{1 / ratio:g}"
