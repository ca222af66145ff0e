"""What a report says about a company besides its prices: financial statements and
descriptive information, from the configured sources (Core layer).

Both are capabilities a provider declares (``serves_statements`` with the frequencies in
``statement_frequencies``; ``serves_info``); the sources are the providers of
FINRPT_STATEMENTS_PROVIDERS (statements) or of the chain (info), in order, found by the
one lookup :func:`finrpt_providers.plugins.sources`. The face modules (``yf``, ``dataer``,
``report``, OpenBB) call these functions, never a provider.

Every statements answer, whatever the provider, passes through ONE gate,
:func:`normalise_statements` (what ``frames.check_bars`` is to bars): never a silent wrong
answer; a value it refuses is left out (missing, never printed) and named in each frame's
``attrs``. A provider answers with either

* frames (the documented contract): ``{"income", "balance_sheet", "cash_flow"}`` in
  yfinance's layout, each optionally saying in ``attrs`` its ``currency`` (ISO code; the
  statement's), ``fx_to_usd`` (``{code: USD per unit}``, when the source gives rates) and
  ``periods`` (one dict per column, in order, with the keys of a filing below); or
* filings: ``{"filings": [...], "rows": {statement: [labels in display order]}}``, each
  filing a dict ``period_end`` (date), ``timeframe`` ("quarterly"/"annual"/...; None: the
  one asked for), ``filing_date`` (date or None), ``accepted`` (a finer sortable stamp or
  None), ``id`` (how to name it), ``currency``, ``fx_to_usd`` and ``values``
  (``{statement: {label: value or {"value": v, "unit": "USD" | "EUR / shares" | "shares"}}}``).

The rules, in order:

1. **Timeframe**: a filing (column) of another timeframe than the one asked for (an annual
   row among quarters, a TTM row) is dropped, named in ``attrs["dropped"]``.
2. **One filing per period**: of several filings for one period end, the one filed last
   wins (``filing_date``, then ``accepted``: an amendment is filed after what it amends);
   ``attrs["filings"]`` names the chosen one and the dropped ones. Filings that cannot be
   ordered (no or equal dates) and disagree: the period is refused whole, named; when they
   agree, the first is kept.
3. **Numbers only**: a value that is not a real number (bool, str, None, ...) or is not
   finite (NaN, inf) is refused: left missing, named in ``attrs["refused"]``. (A NaN cell
   of a float frame is the layout's own "missing" and is not named.)
4. **US dollars only**: a value's currency is its unit's (``"EUR / shares"`` -> EUR), else
   its filing's, else its statement's. USD is kept; another currency is converted when the
   source gives the rate (``attrs["fx_to_usd"]`` names it), else refused (left missing,
   named). Share counts and ratios carry no currency and are kept. No currency named at
   all: taken as USD, said in ``attrs["currency_note"]``.

Refusing a value (rather than the whole answer) keeps the rest of a filing that is sound;
but an answer of which nothing is left (every value refused, or every filing dropped) is
refused whole (a DataIntegrityError) and the next source is asked. A malformed answer (a period end or filing date that is not a
date, a frame that is not a frame) is a DataIntegrityError naming the provider and field:
the source's bad data, never reported as a bug in its plugin.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import redact, text
from .errors import DataIntegrityError, ProviderError, UnsupportedQuery

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

log = redact.logger(__name__)
STATEMENTS = ("income", "balance_sheet", "cash_flow")
_TIMEFRAMES = {"quarterly": "quarterly", "quarter": "quarterly", "q": "quarterly", "3m": "quarterly",
               "yearly": "yearly", "annual": "yearly", "year": "yearly", "fy": "yearly", "12m": "yearly"}


def get_statements(ticker: str, *, frequency: str = "quarterly", config: "Config | dict | None" = None
                   ) -> tuple[dict[str, "pd.DataFrame"], str]:
    """({"income", "balance_sheet", "cash_flow"} frames in yfinance's layout, the source's
    name) from the first configured source serving ``frequency`` ("quarterly" or "yearly")
    that answers; (empty frames, "") when none does, each refusal logged. Every answer
    passes through :func:`normalise_statements` (see the module's rules)."""
    import pandas as pd

    from .config import resolve_config
    from .plugins import guard, sources

    if frequency not in ("quarterly", "yearly"):
        raise UnsupportedQuery(f"statements frequency {frequency!r}: 'quarterly' or 'yearly'")
    cfg = resolve_config(config)
    ready, why = sources(cfg, "statements")
    for reason in why:
        log.info("statements: %s", reason)
    for p in ready:
        if frequency not in p.statement_frequencies:
            log.info("statements: %s serves no %s statements", p.name, frequency)
            continue
        kwargs = {} if frequency == "quarterly" else {"frequency": frequency}
        try:
            got = guard(p, "fetch_statements()", p.fetch_statements, ticker, **kwargs)
            return normalise_statements(got, p.name, frequency, ticker=ticker), p.name
        except ProviderError as e:
            log.warning("%s statements of %s from %s unavailable (%s)", frequency, ticker, p.name, e)
    return {k: pd.DataFrame() for k in STATEMENTS}, ""


# -- the statements gate ----------------------------------------------------------------

@dataclass
class _Filing:
    period: Any                       # pd.Timestamp
    timeframe: str | None             # "quarterly", "yearly", another word, or None (the one asked)
    filed: Any                        # pd.Timestamp or None
    accepted: str | None
    id: str
    currency: str | None
    fx: dict
    group: str | None                 # None: a whole filing; else the statement of one frame column
    values: dict = field(default_factory=dict)   # {statement: {label: (raw, unit)}}
    position: int | None = None       # the column, for a frame's column


def _when(value: Any, provider: str, what: str, *, optional: bool = False):
    """``value`` as a day (pd.Timestamp); a DataIntegrityError naming the field if it is none."""
    import pandas as pd

    if value is None and optional:
        return None
    try:
        # a number is no date (pandas would read 20240331 as nanoseconds after 1970)
        if value is None or isinstance(value, numbers.Number):
            raise ValueError
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            raise ValueError
        if ts.tz is not None:
            ts = ts.tz_localize(None)
        return ts.normalize()
    except (ValueError, TypeError, OverflowError):
        raise DataIntegrityError(f"the source's statements have {what} {str(value)[:60]!r}, not a date: "
                                 "refused (the source's bad data)", provider=provider) from None


def _currency(unit: Any) -> str | None:
    """The ISO currency a unit names (``"USD"``, ``"EUR / shares"`` -> EUR); None for a count
    or ratio (``"shares"``, ``"pure"``) or no unit."""
    if not isinstance(unit, str):
        return None
    head = unit.split("/")[0].strip()
    return head.upper() if len(head) == 3 and head.isascii() and head.isalpha() else None


def _fx(raw: Any, provider: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DataIntegrityError(f"the source's statements have fx_to_usd {str(raw)[:60]!r}, not a mapping "
                                 "of currency to rate: refused", provider=provider)
    return {str(k).upper(): v for k, v in raw.items()}


def _shown(v: Any) -> str:
    return text.short(repr(v))


def _from_filings(got: dict, provider: str) -> list[_Filing]:
    raw = got.get("filings")
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        raise DataIntegrityError(f"the statements' filings are {type(raw).__name__}, not a list of objects",
                                 provider=provider)
    out = []
    for i, f in enumerate(raw):
        fid = str(f.get("id") or f"filing {i + 1}")[:120]
        values = f.get("values") or {}
        if not isinstance(values, dict):
            raise DataIntegrityError(f"filing {fid} has values {type(values).__name__}, not a mapping",
                                     provider=provider)
        cells: dict = {}
        for kind in STATEMENTS:
            block = values.get(kind) or {}
            if not isinstance(block, dict):
                raise DataIntegrityError(f"filing {fid} has {kind} {type(block).__name__}, not a mapping",
                                         provider=provider)
            cells[kind] = {str(label): (item.get("value"), item.get("unit")) if isinstance(item, dict) else (item, None)
                           for label, item in block.items()}
        out.append(_Filing(
            period=_when(f.get("period_end"), provider, f"period_end of {fid}"),
            timeframe=f.get("timeframe"), filed=_when(f.get("filing_date"), provider, f"filing_date of {fid}",
                                                       optional=True),
            accepted=None if f.get("accepted") is None else str(f.get("accepted")), id=fid,
            currency=f.get("currency") if isinstance(f.get("currency"), str) else None,
            fx=_fx(f.get("fx_to_usd"), provider), group=None, values=cells))
    return out


def _from_frames(got: dict, provider: str) -> tuple[list[_Filing], dict]:
    import pandas as pd

    filings, frames = [], {}
    for kind in STATEMENTS:
        frame = got.get(kind)
        if frame is None:
            continue
        if not isinstance(frame, pd.DataFrame):
            raise DataIntegrityError(f"its {kind} statement is {type(frame).__name__}, not a DataFrame",
                                     provider=provider)
        frames[kind] = frame
        attrs = frame.attrs or {}
        periods = attrs.get("periods")
        if periods is not None and (not isinstance(periods, list) or len(periods) != frame.shape[1]
                                    or not all(isinstance(m, dict) for m in periods)):
            raise DataIntegrityError(f"its {kind} statement's attrs['periods'] is not one object per column",
                                     provider=provider)
        cur = attrs.get("currency") if isinstance(attrs.get("currency"), str) else None
        fx = _fx(attrs.get("fx_to_usd"), provider)
        rows = [str(r) for r in frame.index]
        for j, col in enumerate(frame.columns):
            meta = periods[j] if periods else {}
            period = _when(col, provider, f"{kind} column label")
            fid = str(meta.get("id") or f"{kind} column {j + 1} ({str(col)[:30]})")[:120]
            column = frame.iloc[:, j]
            floaty = column.dtype.kind == "f"
            cells = {rows[i]: (v, None) for i, v in enumerate(column.tolist())
                     if not (floaty and math.isnan(v))}  # a float NaN: the layout's "missing"
            filings.append(_Filing(
                period=period, timeframe=meta.get("timeframe"),
                filed=_when(meta.get("filing_date"), provider, f"filing_date of {fid}", optional=True),
                accepted=None if meta.get("accepted") is None else str(meta.get("accepted")), id=fid,
                currency=meta.get("currency") if isinstance(meta.get("currency"), str) else cur,
                fx={**fx, **_fx(meta.get("fx_to_usd"), provider)}, group=kind, values={kind: cells},
                position=j))
    return filings, frames


def _one_per_period(filings: list[_Filing], report: dict) -> list[_Filing]:
    """Of the filings sharing a period (and statement, for frame columns), the one filed last."""
    groups: dict = {}
    for f in filings:
        groups.setdefault((f.group, f.period), []).append(f)
    kept = []
    for (group, period), same in groups.items():
        if len(same) == 1:
            kept.append(same[0])
            continue
        day = str(period.date())
        keys = [(f.filed, f.accepted or "") for f in same]
        best = max(keys) if all(k[0] is not None for k in keys) else None
        if best is not None and keys.count(best) == 1:
            chosen = same[keys.index(best)]
            rule = "filed last (filing date, then acceptance time)"
        elif all(f.values == same[0].values for f in same):
            chosen, rule = same[0], "identical values"
        else:
            report["filings"].append({"period": day, "statement": group, "chosen": None,
                                      "dropped": [f.id for f in same],
                                      "rule": "refused: filings disagree and cannot be ordered by filing date"})
            continue
        kept.append(chosen)
        report["filings"].append({"period": day, "statement": group, "chosen": chosen.id,
                                  "dropped": [f.id for f in same if f is not chosen], "rule": rule})
    return kept


def _value(raw: Any, unit: Any, f: _Filing, frame_currency: str | None) -> tuple[float | None, str, str | None]:
    """(the value in USD or None, why it is refused or "", its currency: "USD", the one it
    was converted from, "" for a count or ratio, None when nobody named one)."""
    import numpy as np

    if isinstance(raw, (bool, np.bool_)) or not isinstance(raw, numbers.Real):
        return None, f"not a number ({type(raw).__name__})", None
    x = _finite(raw)
    if x is None:
        return None, "not a finite number", None
    named = _currency(unit)
    if isinstance(unit, str) and unit.strip() and named is None:  # "shares", "pure": no currency
        return x, "", ""
    cur = named or f.currency or frame_currency
    if cur is None:
        return x, "", None
    cur = cur.strip().upper()
    if cur == "USD":
        return x, "", "USD"
    rate = f.fx.get(cur)
    if rate is None:
        return None, f"in {cur}, not USD, and the source gives no rate", None
    fx = None if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real) else _finite(rate)
    if fx is None or fx <= 0:
        return None, f"in {cur}, and the source's rate {_shown(rate)} is not a positive number", None
    return x * fx, "", cur


def _finite(v: Any) -> float | None:
    """``v`` as a finite float, or None (inf, NaN, or an int too large for a float: 10**400)."""
    try:
        x = float(v)
    except (OverflowError, ValueError):
        return None
    return x if math.isfinite(x) else None


def normalise_statements(got: Any, provider: str, frequency: str, *, ticker: str = "") -> dict[str, "pd.DataFrame"]:
    """THE gate of every statements answer (see the module's rules): ``got`` (frames or
    filings, from ``provider``) -> the three frames in yfinance's layout, USD, one column per
    period of ``frequency``, numbers only, each frame's ``attrs`` naming what was refused:
    ``source``, ``currency`` ("USD"), ``refused`` ([{item, period, value, why}]),
    ``filings`` ([{period, chosen, dropped, rule}]), ``dropped`` ([{period, filing, why}]),
    ``fx_to_usd`` (the rates used) and ``currency_note`` (when no currency was named)."""
    if not isinstance(got, dict):
        raise DataIntegrityError(f"{provider}.fetch_statements() returned {type(got).__name__}, not a dict",
                                 provider=provider)
    long_form = "filings" in got
    if long_form:
        filings, frames = _from_filings(got, provider), {}
    else:
        filings, frames = _from_frames(got, provider)
    sent = sum(len(cells) for f in filings for cells in f.values.values())
    report: dict = {"dropped": [], "filings": []}
    wanted = []
    for f in filings:
        tf = _TIMEFRAMES.get(str(f.timeframe).strip().lower()) if f.timeframe is not None else frequency
        if tf != frequency:
            report["dropped"].append({"period": str(f.period.date()), "filing": f.id, "statement": f.group,
                                      "why": f"timeframe {str(f.timeframe)[:20]!r}, not {frequency}"})
        else:
            wanted.append(f)
    chosen = _one_per_period(wanted, report)

    out: dict = {}
    kept_any = 0
    unnamed = False
    for kind in STATEMENTS:
        frame_in = frames.get(kind)
        frame_cur = None
        if frame_in is not None and isinstance(frame_in.attrs.get("currency"), str):
            frame_cur = frame_in.attrs["currency"]
        refused, rates, cols = [], {}, []
        for f in chosen:
            if kind not in f.values:
                continue
            kept_cells = {}
            for label, (raw, unit) in f.values[kind].items():
                x, why, cur = _value(raw, unit, f, frame_cur)
                if why:
                    refused.append({"item": label, "period": str(f.period.date()), "value": _shown(raw),
                                    "why": why, "filing": f.id})
                    continue
                kept_any += 1
                kept_cells[label] = x
                if cur and cur != "USD":
                    rates[cur] = float(f.fx[cur])
                unnamed = unnamed or cur is None
            cols.append((f, kept_cells))
        order = got.get("rows") if long_form and isinstance(got.get("rows"), dict) else None
        out[kind] = _frame(kind, cols, frame_in, order)
        out[kind].attrs.update({
            "source": provider, "currency": "USD", "refused": refused,
            "filings": [r for r in report["filings"] if r["statement"] in (None, kind)],
            "dropped": [r for r in report["dropped"] if r["statement"] in (None, kind)],
            "fx_to_usd": rates})
    note = f"{provider} names no currency for its statements: taken as USD" if unnamed else ""
    for kind in STATEMENTS:
        out[kind].attrs["currency_note"] = note
    problems = [f"{kind} {r['item']} {r['period']} = {r['value']}: {r['why']}"
                for kind in STATEMENTS for r in out[kind].attrs["refused"]]
    problems += [f"filing {r['filing']} ({r['period']}): {r['why']}" for r in report["dropped"]]
    problems += [f"period {r['period']}: {r['rule']} (chose {r['chosen']}, dropped {', '.join(r['dropped'])})"
                 for r in report["filings"]]
    if problems:
        log.warning("statements of %s from %s: %d value(s)/filing(s) left out or chosen: %s", ticker or "?",
                    provider, len(problems), "; ".join(problems[:12]) + (" ..." if len(problems) > 12 else ""))
    if sent and not kept_any:
        raise DataIntegrityError(f"nothing usable is left of the statements it sent for {ticker or 'this ticker'} ("
                                 + "; ".join(problems[:5]) + ")", provider=provider)
    return out


def _frame(kind: str, cols: list, frame_in, order: dict | None):
    """The output frame of ``kind`` from the chosen columns [(filing, {label: usd value})]:
    a provider's frame keeps its rows and its column order (only refused cells emptied,
    dropped columns removed); filings make rows of the items reported, newest period first."""
    import numpy as np
    import pandas as pd

    if frame_in is not None:
        positions = sorted(f.position for f, _ in cols)
        if positions == list(range(frame_in.shape[1])) and all(
                len(cells) == len(f.values[kind]) and all(cells[k] == f.values[kind][k][0] for k in cells)
                for f, cells in cols):
            out = frame_in.copy()  # nothing refused nor converted: the source's frame as it is
        else:
            by_pos = {f.position: cells for f, cells in cols}
            rows = [str(r) for r in frame_in.index]
            data = np.full((len(rows), len(positions)), np.nan)
            for j, p in enumerate(positions):
                for i, r in enumerate(rows):
                    if r in by_pos[p]:
                        data[i, j] = by_pos[p][r]
            out = pd.DataFrame(data, index=frame_in.index.copy(), columns=frame_in.columns[positions])
        out.attrs = {k: v for k, v in frame_in.attrs.items() if k not in ("periods",)}
        return out
    data: dict = {}
    for f, cells in cols:
        for label, x in cells.items():
            data.setdefault(label, {})[f.period] = x
    if not data:
        return pd.DataFrame()
    frame = pd.DataFrame(data, dtype="float64").T
    frame = frame[sorted(frame.columns, reverse=True)]
    first = list((order or {}).get(kind) or [])
    labels = [lbl for lbl in first if lbl in frame.index] + [lbl for lbl in frame.index if lbl not in first]
    return frame.loc[labels]


def get_info(ticker: str, *, config: "Config | dict | None" = None) -> tuple[dict[str, Any], str]:
    """(yfinance-style ``info`` fields, the source's name) from the first provider of the chain
    serving company information that answers; ({}, "") when none does."""
    from .config import resolve_config
    from .plugins import guard, sources

    cfg = resolve_config(config)
    ready, why = sources(cfg, "info")
    for reason in why:
        log.info("info: %s", reason)
    for p in ready:
        try:
            got = guard(p, "fetch_info()", p.fetch_info, ticker)
            if not isinstance(got, dict):
                raise DataIntegrityError(f"{p.name}.fetch_info() returned {type(got).__name__}, not a dict",
                                         provider=p.name)
            return dict(got), p.name
        except ProviderError as e:
            log.warning("info of %s from %s unavailable (%s)", ticker, p.name, e)
    return {}, ""
