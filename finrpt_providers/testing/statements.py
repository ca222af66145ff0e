"""The sandbox's financial statements: one made-up but internally consistent set, rendered by
the fake Massive and the fake Yahoo alike.

A quarter's value of an item is ``base * (1 + 0.02 * q)``, ``q`` the quarters since the one
ending 2025-06-30 (negative before it), rounded (2 decimals for per-share items). A fiscal
year (ending September) adds up its four quarters for flows (revenue, income, cash flows,
EPS: annual diluted EPS is the sum of the quarters', so a P/E from it is right) and takes
its last quarter's value for stocks (assets, equity, liabilities, debt).
"""

from __future__ import annotations

import datetime as dt

#: items that are stocks at a date (a year's value is its last quarter's); others are flows
STOCKS = frozenset({"assets", "equity_attributable_to_parent", "liabilities", "TotalAssets", "StockholdersEquity",
                    "TotalDebt"})
QUARTERS = ("2025-06-30", "2025-09-30", "2025-12-31", "2026-03-31")
YEARS = ("2022-09-30", "2023-09-30", "2024-09-30", "2025-09-30")
_ORIGIN = dt.date(2025, 6, 30)


def _per_share(item: str) -> bool:
    return item.endswith(("EPS", "per_share"))


def _quarters_since_origin(end: dt.date) -> int:
    return (end.year - _ORIGIN.year) * 4 + (end.month - _ORIGIN.month) // 3


def _quarter_end(end: dt.date, back: int) -> dt.date:
    """The end of the quarter ``back`` quarters before the one ending ``end``."""
    month = end.month - 3 * back
    year = end.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    nxt = dt.date(year + (month // 12), month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def quarter(item: str, base: float, end: str | dt.date) -> float:
    """The item's value for the quarter ending ``end``."""
    end = dt.date.fromisoformat(end) if isinstance(end, str) else end
    return round(base * (1 + 0.02 * _quarters_since_origin(end)), 2 if _per_share(item) else 0)


def year(item: str, base: float, end: str | dt.date) -> float:
    """The item's value for the fiscal year ending ``end``: the sum of its four quarters (a
    flow) or its last quarter's (a stock)."""
    end = dt.date.fromisoformat(end) if isinstance(end, str) else end
    if item in STOCKS:
        return quarter(item, base, end)
    return round(sum(quarter(item, base, _quarter_end(end, k)) for k in range(4)), 2 if _per_share(item) else 0)
