"""Compare providers on one question: do they return the same bars?

Each provider is asked alone (no fallback, no stitching). Frames are aligned by bar
timestamp. Per provider: the sessions it lacks against the NYSE calendar; per
column, the largest absolute and relative difference from the reference (the first
provider that answered) over the bars both have; the median volume ratio; and a
verdict against tolerances. ``finrpt-providers compare`` exits 1 when providers
disagree beyond them, so it can run in a user's own CI against the real services.

Columns a source does not give (``vwap``/``transactions`` from Yahoo or the flat
files) are left out of the comparison rather than counted as differences.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .chain import expected_sessions, get_prices
from .config import resolve_config
from .errors import InvalidQuery, ProviderError
from .intervals import is_period, period_start, widen
from .query import DEFAULT_ADJUSTMENT, PriceQuery

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

PRICE_COLUMNS = ("open", "high", "low", "close", "vwap")


@dataclasses.dataclass
class Tolerances:
    """Largest relative differences still called agreement (real services round differently:
    Yahoo to 2-4 decimals, whole-share volumes; consolidated volumes differ a little)."""

    price_rtol: float = 5e-4
    volume_rtol: float = 0.05
    missing_sessions: int = 0


@dataclasses.dataclass
class ColumnDiff:
    provider: str
    reference: str
    column: str
    bars: int
    max_abs: float
    max_rel: float
    ok: bool


@dataclasses.dataclass
class Comparison:
    query: PriceQuery
    frames: dict[str, Any]
    errors: dict[str, str]
    missing: dict[str, list[dt.date]]
    diffs: list[ColumnDiff]
    volume_ratio: dict[str, float]
    tolerances: Tolerances
    reasons: list[str]

    @property
    def agree(self) -> bool:
        return not self.reasons

    @property
    def reference(self) -> str | None:
        return next(iter(self.frames), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": {"ticker": self.query.ticker, "start": str(self.query.start), "end": str(self.query.end),
                      "interval": self.query.interval, "adjustment": self.query.adjustment,
                      **({"extended_hours": self.query.extended_hours} if self.query.intraday else {})},
            "reference": self.reference,
            "providers": {name: {"bars": int(len(df)), "missing_sessions": [str(d) for d in self.missing.get(name, [])],
                                 "volume_ratio": self.volume_ratio.get(name)} for name, df in self.frames.items()},
            "errors": self.errors,
            "diffs": [dataclasses.asdict(d) for d in self.diffs],
            "tolerances": dataclasses.asdict(self.tolerances),
            "agree": self.agree,
            "reasons": self.reasons,
        }

    def report(self) -> str:
        q = self.query
        lines = [f"{q.ticker} {q.interval} {q.adjustment} {q.start}..{q.end}; reference: {self.reference or 'none'}"]
        lines.append(f"{'provider':<20} {'bars':>6} {'missing sessions':>17} {'volume ratio':>13}  error")
        for name in [*self.frames, *self.errors]:
            if name in self.frames:
                vr = self.volume_ratio.get(name)
                lines.append(f"{name:<20} {len(self.frames[name]):>6} {len(self.missing.get(name, [])):>17} "
                             f"{(f'{vr:.6f}' if vr is not None else '-'):>13}")
            else:
                lines.append(f"{name:<20} {'-':>6} {'-':>17} {'-':>13}  {self.errors[name]}")
        if self.diffs:
            lines.append(f"\n{'provider':<20} {'column':<13} {'bars':>6} {'max abs diff':>14} {'max rel diff':>13}  ok")
            for d in self.diffs:
                lines.append(f"{d.provider:<20} {d.column:<13} {d.bars:>6} {d.max_abs:>14.6g} {d.max_rel:>13.3g}  "
                             f"{'yes' if d.ok else 'NO'}")
        lines.append("")
        lines.append("verdict: agree" if self.agree else "verdict: DISAGREE: " + "; ".join(self.reasons))
        return "\n".join(lines)

    def plot(self, path: str) -> None:
        """Close by provider (top) and each provider's close minus the reference's (bottom)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True,
                                          gridspec_kw={"height_ratios": [2, 1]})
        ref = self.reference
        for name, df in self.frames.items():
            top.plot(df.index.tz_localize(None), df["close"], label=name, linewidth=1.2, alpha=0.85)
            if ref and name != ref:
                joined = df["close"].to_frame("p").join(self.frames[ref]["close"].to_frame("r"), how="inner")
                bottom.plot(joined.index.tz_localize(None), joined["p"] - joined["r"], label=f"{name} - {ref}",
                            linewidth=1)
        q = self.query
        top.set_title(f"{q.ticker} {q.interval} close ({q.adjustment}), {q.start}..{q.end}: "
                      f"{'providers agree' if self.agree else 'providers DISAGREE'}")
        top.set_ylabel("close")
        top.legend(loc="best", fontsize=8)
        bottom.set_ylabel(f"minus {ref}")
        bottom.axhline(0, color="grey", linewidth=0.6)
        if len(bottom.get_lines()) > 1:
            bottom.legend(loc="best", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def compare(ticker: str, start: Any, end: Any, *, providers: Sequence[str] | None = None, interval: str = "1d",
            adjustment: str = DEFAULT_ADJUSTMENT, config: Config | dict | None = None,
            tolerances: Tolerances | None = None, extended_hours: bool = False) -> Comparison:
    """Ask each provider alone and compare what they return (see the module doc)."""
    import numpy as np

    query = PriceQuery(ticker, start, end, interval, adjustment, extended_hours)
    cfg = resolve_config(config)
    names = list(providers) if providers else cfg.providers
    if not names:
        raise InvalidQuery("no providers to compare: pass --providers or set FINRPT_PRICE_PROVIDERS")
    tol = tolerances or Tolerances()
    frames: dict[str, pd.DataFrame] = {}
    errors: dict[str, str] = {}
    for name in dict.fromkeys(names):
        try:
            frames[name] = get_prices(query.ticker, query.start, query.end, interval=query.interval,
                                      adjustment=query.adjustment, providers=[name], config=cfg,
                                      extended_hours=query.extended_hours)
        except InvalidQuery:
            raise
        except ProviderError as e:
            errors[name] = str(e)
    if is_period(query.interval):  # bars are labelled by period start: expect one per period with a session
        start, end = widen(query.start, query.end, query.interval)
        days = expected_sessions(query.replace(start=start, end=end), cfg.today())
        expected = sorted({period_start(d, query.interval) for d in days})
    else:
        expected = expected_sessions(query, cfg.today())
    missing = {}
    for name, df in frames.items():
        have = {ts.date() for ts in df.index.normalize()} if len(df) else set()
        missing[name] = [d for d in expected if d not in have]
    reasons = [f"{n} failed: {e}" for n, e in errors.items()]
    for name, gone in missing.items():
        if len(gone) > tol.missing_sessions:
            reasons.append(f"{name} lacks {len(gone)} session(s), first {gone[0]}")
    diffs: list[ColumnDiff] = []
    ratios: dict[str, float] = {}
    ref = next(iter(frames), None)
    if ref is not None:
        base = frames[ref]
        ratios[ref] = 1.0
        for name, df in frames.items():
            if name == ref:
                continue
            common = df.index.intersection(base.index)
            if len(common) == 0:
                reasons.append(f"{name} and {ref} have no bar in common")
                continue
            a, b = df.loc[common], base.loc[common]
            va, vb = a["volume"].to_numpy(), b["volume"].to_numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                r = va / vb
            r = r[np.isfinite(r)]
            ratios[name] = float(np.median(r)) if len(r) else float("nan")
            for col in (*PRICE_COLUMNS, "volume", "transactions"):
                x = a[col].to_numpy(dtype="float64", na_value=np.nan)
                y = b[col].to_numpy(dtype="float64", na_value=np.nan)
                both = ~np.isnan(x) & ~np.isnan(y)
                if not both.any():
                    continue  # a column one of them does not give
                dx = np.abs(x[both] - y[both])
                with np.errstate(divide="ignore", invalid="ignore"):
                    rel = np.where(np.abs(y[both]) > 0, dx / np.abs(y[both]), np.where(dx > 0, np.inf, 0.0))
                limit = tol.price_rtol if col in PRICE_COLUMNS else tol.volume_rtol
                ok = bool(rel.max() <= limit)
                diffs.append(ColumnDiff(name, ref, col, int(both.sum()), float(dx.max()), float(rel.max()), ok))
                if not ok:
                    worst = common[both][int(np.argmax(rel))]
                    reasons.append(f"{name} {col} differs from {ref} by {rel.max():.3g} (relative) at {worst}")
    return Comparison(query, frames, errors, missing, diffs, ratios, tol, reasons)


__all__ = ["compare", "Comparison", "Tolerances", "ColumnDiff"]
