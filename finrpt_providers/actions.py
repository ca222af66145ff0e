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
from .timebase import ET

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


def remember(key: tuple, compute: Callable[[], Any], source: Any = None) -> Any:
    """``compute()``, kept in the one cache of corporate actions under ``key`` (and the
    identity of ``source``, a configured provider: its settings, secrets hashed). Failures
    are not kept."""
    full = ("remembered", _identity(source) if source is not None else None, *key)
    with _lock:
        hit = _cache.get(full)
    if hit is None:
        hit = compute()
        with _lock:
            _cache[full] = hit
    return hit


def clear_cache() -> None:
    """Forget every cached corporate action (the one cache of the process)."""
    with _lock:
        _cache.clear()


def source_order(config: Config, capability: str = "serves_actions") -> list[str]:
    """The sources of a capability to try, in order: the configured list, else the chain's
    providers that serve it (:func:`finrpt_providers.plugins.source_names`)."""
    from .plugins import registry, source_names

    capability = capability.removeprefix("serves_")
    names = source_names(config, capability)
    if getattr(config, "actions_providers" if capability == "actions" else "statements_providers") is not None:
        return names
    reg = registry()
    return [n for n in names if n in reg and reg[n].provider.serves(capability)]


def available(config: Config) -> tuple[list[str], list[str]]:
    """(ready sources in order, why each other one is not) without any I/O."""
    from .plugins import sources

    ready, why = sources(config, "actions")
    return [p.name for p in ready], why


def none_available_message(config: Config, what: str) -> str:
    from .plugins import registry

    _ready, why = available(config)
    if why:
        tried = "; ".join(why)
    elif config.actions_providers is not None:
        tried = "FINRPT_ACTIONS_PROVIDERS is empty"
    else:
        tried = f"no provider of the chain ({', '.join(config.providers) or 'none'}) serves them"
    serving = sorted(n for n, e in registry().items() if e.provider.serves("actions"))
    hint = f" (installed sources: {', '.join(serving)})" if serving else ""
    return (f"{what} needs splits and dividends and no corporate-actions source is usable among the configured "
            f"ones ({tried}): "
            f"list one in FINRPT_ACTIONS_PROVIDERS{hint}, or ask adjustment='raw'")


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
    """A provider's events normalised (see :func:`normalise_splits`, :func:`normalise_dividends`)."""
    if what == "splits":
        return normalise_splits(s, source, ticker)
    return normalise_dividends(s, source, ticker)


def _by_ex_date(s: Any, what: str, source: str, ticker: str):
    """(index of ET-midnight ex-dates, the frame or series) of a provider's events."""
    import pandas as pd

    if not isinstance(s, (pd.Series, pd.DataFrame)) or not isinstance(s.index, pd.DatetimeIndex):
        raise DataIntegrityError(f"{source} returned {what} of {ticker} that are not a Series by ex-date "
                                 f"({type(s).__name__})", provider=source)
    return ex_dates(s.index)


def ex_dates(index: Any) -> pd.DatetimeIndex:
    """Ex-dates at 00:00 New York. An ex-date is a DATE: stamps at midnight in whatever zone
    they carry (UTC midnight, as many feeds write dates) keep their calendar date; other
    stamps are read in New York (a naive one as New York time)."""
    import pandas as pd

    idx = pd.DatetimeIndex(index)
    if idx.tz is None:
        return idx.normalize().tz_localize(ET).as_unit("ns")
    own = idx.tz_localize(None)  # the wall clock in the stamps' own zone
    if len(own) and bool((own == own.normalize()).all()):
        return own.tz_localize(ET).as_unit("ns")
    return idx.tz_convert(ET).normalize().as_unit("ns")


def normalise_splits(s: Any, source: str, ticker: str) -> pd.Series:
    """Split ratios by ex-date, each event once: a listing repeated verbatim (same ex-date,
    same ratio) counts once; two different ratios on one ex-date are a DataIntegrityError
    (which one happened cannot be told). Ratios of 1 (and missing ones) are no event."""
    import numpy as np
    import pandas as pd

    idx = _by_ex_date(s, "splits", source, ticker)
    try:
        values = np.asarray(s, dtype="float64").reshape(-1)
    except (TypeError, ValueError):
        raise DataIntegrityError(f"{source} returned non-numeric splits of {ticker}", provider=source) from None
    out = pd.Series(values, index=idx, name="ratio")
    impossible = ~(np.isfinite(values) & (values > 0))
    if impossible.any():  # never dropped: adjusting without it would be silently wrong by its ratio
        at = idx[impossible][0]
        raise DataIntegrityError(f"{source} lists a split of {ticker} on {at.date()} with an impossible ratio "
                                 f"{float(values[impossible][0])!r}: check the listing, or put another source first in "
                                 "FINRPT_ACTIONS_PROVIDERS", provider=source)
    out = out[out.to_numpy() != 1] if len(out) else out
    if out.index.has_duplicates:
        frame = out.reset_index().drop_duplicates()
        frame.columns = ["ex", "ratio"]
        twice = frame["ex"][frame["ex"].duplicated()]
        if len(twice):
            day = twice.iloc[0]
            ratios = ", ".join(f"{r:g}" for r in frame["ratio"][frame["ex"] == day])
            raise DataIntegrityError(f"{source} lists splits of {ticker} with different ratios ({ratios}) on "
                                     f"{day.date()}: which one happened cannot be told; check the listing or put "
                                     "another source first in FINRPT_ACTIONS_PROVIDERS", provider=source)
        out = pd.Series(frame["ratio"].to_numpy(), index=pd.DatetimeIndex(frame["ex"]), name="ratio")
    return out.sort_index()


#: what a dividend record's currency column may be called, and its rate to USD
_CURRENCY_COLUMNS = ("currency",)
_RATE_COLUMNS = ("usd_rate", "rate_to_usd", "fx_rate")
_CASH_COLUMNS = ("cash", "cash_amount", "amount", "dividend")


def normalise_dividends(s: Any, source: str, ticker: str) -> pd.Series:
    """Cash per share in USD, as declared, by ex-date; each record once.

    ``s`` is a Series (amounts in USD) or a DataFrame of records with a cash column
    (``cash``/``cash_amount``/``amount``), and optionally ``currency`` and a rate to USD
    (``usd_rate``). A record repeated verbatim (same ex-date, amount and currency) counts
    once; different amounts on one ex-date (a regular and a special) add up. A non-USD
    amount is converted with the source's rate; without one it is refused: the series'
    ``attrs["refused"]`` names it (used by :func:`refused_between`), never used as USD."""
    import numpy as np
    import pandas as pd

    idx = _by_ex_date(s, "dividends", source, ticker)
    if isinstance(s, pd.DataFrame):
        col = next((c for c in _CASH_COLUMNS if c in s.columns), None)
        if col is None:
            raise DataIntegrityError(f"{source} returned dividend records of {ticker} without a cash column "
                                     f"(one of {', '.join(_CASH_COLUMNS)})", provider=source)
        cash = s[col]
        cur = s["currency"].astype("object").where(s["currency"].notna(), "USD") if "currency" in s.columns \
            else pd.Series("USD", index=s.index, dtype="object")
        rate_col = next((c for c in _RATE_COLUMNS if c in s.columns), None)
        rate = s[rate_col] if rate_col else pd.Series(np.nan, index=s.index)
    else:
        cash, cur, rate = s, pd.Series("USD", index=s.index, dtype="object"), pd.Series(np.nan, index=s.index)
    try:
        amount = np.asarray(cash, dtype="float64")
        rate = np.asarray(rate, dtype="float64")
    except (TypeError, ValueError):
        raise DataIntegrityError(f"{source} returned non-numeric dividends of {ticker}", provider=source) from None
    cur = np.array([str(c).strip().upper() or "USD" for c in cur], dtype=object)
    recs = pd.DataFrame({"ex": idx, "amount": amount, "currency": cur, "rate": rate})
    broken = ~(np.isfinite(recs["amount"]) & (recs["amount"] >= 0))  # NaN, inf, negative: refused below
    recs = recs[broken | (recs["amount"] > 0)]  # a zero is no dividend
    recs = recs.drop_duplicates(subset=["ex", "amount", "currency"])  # the same record listed twice
    broken = ~(np.isfinite(recs["amount"]) & (recs["amount"] > 0))
    usd = (recs["currency"] == "USD") & ~broken
    convertible = ~usd & ~broken & np.isfinite(recs["rate"]) & (recs["rate"] > 0)
    refused = recs[~usd & ~convertible]
    recs = recs[usd | convertible]
    value = np.where(recs["currency"] == "USD", recs["amount"], recs["amount"] * recs["rate"])
    out = pd.Series(value, index=pd.DatetimeIndex(recs["ex"]), name="cash", dtype="float64")
    if out.index.has_duplicates:  # a regular and a special on one day add up
        out = out.groupby(level=0).sum()
    out = out.sort_index()
    if len(refused):
        out.attrs["refused"] = {r.ex: f"{r.amount:g} {r.currency}" for r in refused.itertuples()}
        log.warning("%s lists dividend(s) of %s that cannot be used: %s; not used (a non-USD amount without a "
                    "rate is never taken as dollars; a missing or negative amount is no amount)", source, ticker,
                    ", ".join(f"{v} on {k.date()}" for k, v in out.attrs["refused"].items()))
    return out


def long_events(acts: dict[str, "Actions"]):
    """Many tickers' events as two :class:`finrpt_providers.adjust.Events` (splits, dividends):
    plain arrays, what :func:`finrpt_providers.adjust.factors` takes (one table for the whole
    basket, no index built)."""
    import numpy as np

    from .adjust import Events
    from .timebase import DAY_NS, wall_ns

    def one(get) -> Events:
        parts = [(t, s) for t, a in acts.items() for s in [get(a)] if len(s)]
        if not parts:
            return Events(np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64), np.zeros(0))
        return Events(np.concatenate([np.full(len(s), t, dtype=object) for t, s in parts]),
                      np.concatenate([wall_ns(s.index) // DAY_NS for _t, s in parts]),
                      np.concatenate([s.to_numpy(dtype="float64") for _t, s in parts]))

    return one(lambda a: a.splits), one(lambda a: a.dividends)


def normalise_market(splits: Any, dividends: Any, source: str) -> tuple[pd.Series, pd.Series, dict]:
    """A market-wide listing (Series, or frames of records, by (ticker, ex-date)) normalised
    by the rules of :func:`normalise_splits` and :func:`normalise_dividends`, vectorised:
    (splits, dividends in USD, {"splits": ticker -> why, "dividends": ticker -> why}): a ticker
    with two different split ratios on one day cannot be adjusted at all; one with a non-USD
    dividend and no rate cannot be given a total return."""
    import numpy as np
    import pandas as pd

    refused: dict[str, str] = {}
    bad_splits: dict[str, str] = {}

    def records(obj: Any, what: str) -> pd.DataFrame:
        if not isinstance(obj, (pd.Series, pd.DataFrame)) or not isinstance(obj.index, pd.MultiIndex):
            raise DataIntegrityError(f"{source} returned market-wide {what} that are not indexed by (ticker, "
                                     "ex-date)", provider=source)
        ex = ex_dates(obj.index.get_level_values(1))
        out = pd.DataFrame({"ticker": np.asarray(obj.index.get_level_values(0), dtype=object), "ex": ex})
        if isinstance(obj, pd.Series):
            out["value"] = obj.to_numpy(dtype="float64")
            out["currency"], out["rate"] = "USD", np.nan
        else:
            col = next((c for c in (*_CASH_COLUMNS, "ratio", "split") if c in obj.columns), None)
            if col is None:
                raise DataIntegrityError(f"{source} returned market-wide {what} without a value column",
                                         provider=source)
            out["value"] = obj[col].to_numpy(dtype="float64")
            cur = obj["currency"] if "currency" in obj.columns else pd.Series("USD", index=obj.index)
            out["currency"] = [str(c).strip().upper() if isinstance(c, str) and c.strip() else "USD" for c in cur]
            rate_col = next((c for c in _RATE_COLUMNS if c in obj.columns), None)
            out["rate"] = obj[rate_col].to_numpy(dtype="float64") if rate_col else np.nan
        return out  # impossible values are named below (a zero dividend is no dividend)

    def series(frame: pd.DataFrame, name: str) -> pd.Series:
        idx = pd.MultiIndex.from_arrays([pd.Index(frame["ticker"].to_numpy(), dtype="object"),
                                         pd.DatetimeIndex(frame["ex"])], names=["ticker", "ex_date"])
        return pd.Series(frame["value"].to_numpy(dtype="float64"), index=idx, name=name).sort_index()

    sp = records(splits, "splits")
    for r in sp[~(np.isfinite(sp["value"]) & (sp["value"] > 0))].itertuples(index=False):
        bad_splits.setdefault(r.ticker, f"{source} lists a split of {r.ticker} on {r.ex.date()} with an impossible "
                                        f"ratio {float(r.value)!r}")
    sp = sp[(sp["value"] != 1) & ~sp["ticker"].isin(list(bad_splits))].drop_duplicates(subset=["ticker", "ex", "value"])
    clash = sp.duplicated(subset=["ticker", "ex"], keep=False)
    for t, ex in sp.loc[clash, ["ticker", "ex"]].drop_duplicates().itertuples(index=False):
        bad_splits.setdefault(t, f"{source} lists splits of {t} with different ratios on {ex.date()}: which one "
                                 "happened cannot be told")
    sp = sp[~sp["ticker"].isin(list(bad_splits))]
    dv = records(dividends, "dividends")
    dv = dv[dv["value"] != 0].drop_duplicates(subset=["ticker", "ex", "value", "currency"])
    valid = np.isfinite(dv["value"]) & (dv["value"] > 0)
    usd = (dv["currency"] == "USD") & valid
    ok = usd | (valid & np.isfinite(dv["rate"]) & (dv["rate"] > 0))
    for r in dv[~ok].itertuples(index=False):
        refused.setdefault(r.ticker, f"{source} lists a dividend of {r.ticker} of {r.value:g} {r.currency} on "
                                     f"{r.ex.date()} that cannot be used (no rate to USD, or no valid amount)")
    dv = dv[ok].assign(value=lambda f: np.where(f["currency"] == "USD", f["value"], f["value"] * f["rate"]))
    dv = dv.groupby(["ticker", "ex"], as_index=False, sort=True)["value"].sum()  # regular + special add up
    if refused or bad_splits:
        log.warning("market-wide corporate actions from %s: %d ticker(s) with unusable records: %s", source,
                    len(refused) + len(bad_splits), "; ".join([*bad_splits.values(), *refused.values()][:5]))
    return series(sp, "split"), series(dv, "dividend"), {"splits": bad_splits, "dividends": refused}


def refused_between(acts: "Actions", first: Any, last: Any = None) -> str | None:
    """Why ``acts``' dividends cannot give a total return over bars from ``first`` (a refused
    non-USD record with an ex-date after it, up to ``last``), or None."""
    refused = acts.dividends.attrs.get("refused") or {}
    hits = [f"{v} on {k.date()}" for k, v in refused.items() if k > first and (last is None or k <= last)]
    if not hits:
        return None
    return (f"{acts.source} lists dividend(s) of {acts.ticker} that cannot be used ({', '.join(hits)}: not in USD "
            "without a rate, or no valid amount): a total return without them would be wrong; ask "
            "adjustment='splits', or put another source first in FINRPT_ACTIONS_PROVIDERS")


def served_dividends(acts: "Actions") -> pd.Series:
    """Dividends in the one basis every surface serves (``yf``, OpenBB, ``get_actions``):
    split-adjusted to today, as Yahoo and yfinance show them (cash as declared divided by
    every later split ratio); ex-dates as 00:00 New York."""
    import numpy as np
    import pandas as pd

    d = acts.dividends
    if not len(d):
        return pd.Series(dtype="float64", index=pd.DatetimeIndex([], tz=ET).as_unit("ns"), name="Dividends")
    later = np.array([float(np.prod(acts.splits[acts.splits.index > ex].to_numpy())) for ex in d.index])
    return pd.Series(d.to_numpy() / later, index=d.index, name="Dividends")


def get_actions(ticker: str, config: Config, closes: Closes | None = None, since: Any = None) -> Actions:
    """Validated splits and dividends of ``ticker`` from the first configured source that
    answers and passes validation. Splits after ``since`` (a Timestamp: those that adjust
    the bars at hand; None: all) are validated against ``closes``; verdicts are cached.
    UnsupportedQuery when no source is usable; the last source's error (with every
    source's reason) when all fail. An index (``I:SPX``) has none: every adjustment of it is
    the identity, asked of nobody."""
    if ticker.startswith("I:"):
        return no_actions(ticker)
    ready, _why = available(config)
    if not ready:
        raise UnsupportedQuery(none_available_message(config, "this adjustment"))
    return _first_valid(ticker, _configured(ready, config), closes, since)


def get_actions_many(tickers: list[str], config: Config, closes: Closes | None = None, since: Any = None
                     ) -> dict[str, Actions | ProviderError]:
    """:func:`get_actions` for a basket: the sources chosen once; per ticker its Actions, or
    the ProviderError that ticker met (one ticker's bad data never fails the others)."""
    out: dict[str, Actions | ProviderError] = {t: no_actions(t) for t in tickers if t.startswith("I:")}
    tickers = [t for t in tickers if t not in out]  # indices have no corporate actions
    if not tickers:
        return out
    ready, _why = available(config)
    if not ready:
        e = UnsupportedQuery(none_available_message(config, "this adjustment"))
        return {**out, **{t: e for t in tickers}}
    sources = _configured(ready, config)
    for t in tickers:
        try:
            out[t] = _first_valid(t, sources, closes, since)
        except ProviderError as e:
            out[t] = e
    return out


def no_actions(ticker: str) -> Actions:
    """No splits, no dividends (an index): adjusting it changes nothing."""
    import pandas as pd

    empty = pd.Series([], dtype="float64", index=pd.DatetimeIndex([], tz=ET))
    return Actions(ticker, empty.rename("ratio"), empty.rename("cash"), source="")


def _configured(ready: list[str], config: Config) -> list[tuple[str, Any]]:
    """The ready sources, configured once (a basket asks them for every ticker)."""
    from .plugins import sources

    found, _why = sources(config, "actions", ready)
    return [(p.name, p) for p in found]


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
    """Normalised dividends (see :func:`normalise_dividends`), their ``attrs`` kept."""
    out = dividends.copy()
    out.attrs = dict(dividends.attrs)
    return out


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


def happened(acts: Actions, today: dt.date) -> Actions:
    """Events announced for after today (a declared dividend's ex-date ahead) have not
    happened: they adjust nothing yet (and their "session before" has no close)."""
    import pandas as pd

    if not len(acts.splits) and not len(acts.dividends):
        return acts
    now = pd.Timestamp(today, tz=ET)
    if (acts.splits.index <= now).all() and (acts.dividends.index <= now).all():
        return acts
    div = acts.dividends[acts.dividends.index <= now]
    div.attrs = dict(acts.dividends.attrs)
    return dataclasses.replace(acts, splits=acts.splits[acts.splits.index <= now], dividends=div)


def closes_from(config: Config, first: Any = None) -> Closes:
    """A function giving as-traded daily closes on given sessions, for validating splits: from
    ``first`` (a configured provider: the one that served the bars) when it serves raw daily
    bars, else from the first ready provider of the configured chain that does (the one
    lookup, :func:`finrpt_providers.plugins.sources`); None from the function when none can."""
    from .plugins import guard, sources

    def raw_daily(p) -> bool:
        try:
            return bool("1d" in p.intervals and "raw" in guard(p, "native_adjustments()", p.native_adjustments, "1d"))
        except ProviderError as e:  # a broken plugin is not a source of closes
            log.info("%s left out as a source of as-traded closes (%s)", p.name, e)
            return False

    def closes(ticker: str, sessions: list) -> pd.Series | None:
        chain = [] if config is None else sources(config, None)[0]
        candidates = ([first] if first is not None else []) + \
            [p for p in chain if first is None or p.name != first.name]
        for p in candidates:
            if not raw_daily(p):
                continue
            try:
                return checked_sessions(p, ticker, sessions, "raw")["close"]
            except ProviderError as e:
                log.info("as-traded closes of %s from %s unavailable (%s)", ticker, p.name, e)
        return None

    return closes


def checked_sessions(provider: Any, ticker: str, sessions: list, adjustment: str) -> pd.DataFrame:
    """``provider.fetch_sessions(...)`` through the gate (the closes that weigh splits and
    dividends are bars entering the core like any other): a bad bar is a DataIntegrityError."""
    from . import calendar
    from .frames import Expect, check_bars
    from .plugins import guard

    got = guard(provider, "fetch_sessions()", provider.fetch_sessions, ticker, sessions, adjustment)
    days = tuple(sorted(set(sessions)))
    return check_bars(got, Expect(days[0], days[-1], "1d", sessions=tuple(
        d for d in calendar.sessions(days[0], days[-1]) if d in set(days))), ticker, provider.name)


def corporate_actions(ticker: str, *, config: Config | dict | None = None) -> pd.DataFrame:
    """``ticker``'s splits and cash dividends that have happened, from the configured sources
    (FINRPT_ACTIONS_PROVIDERS, else the chain's providers that serve them): yfinance's
    ``Ticker.actions`` layout, the basis every surface shares (``yf``, OpenBB): index ``Date``
    (ex-dates, 00:00 New York), ``Dividends`` split-adjusted to today (as Yahoo shows them)
    and ``Stock Splits`` (4.0 for 4-for-1). ``attrs``: ``source``, ``refused`` (records not
    served: a non-USD amount without a rate). Exported as ``finrpt_providers.get_actions``."""
    import pandas as pd

    from .config import resolve_config
    from .query import normalize_ticker

    cfg = resolve_config(config)
    acts = happened(get_actions(normalize_ticker(ticker), cfg, closes_from(cfg)), cfg.today())
    div, sp = served_dividends(acts), acts.splits
    idx = div.index.union(sp.index)
    out = pd.DataFrame({"Dividends": div.reindex(idx, fill_value=0.0),
                        "Stock Splits": sp.reindex(idx, fill_value=0.0)}, index=idx.rename("Date"))
    out.attrs = {"source": acts.source, "refused": {str(k.date()): v for k, v in
                                                   (acts.dividends.attrs.get("refused") or {}).items()}}
    return out
