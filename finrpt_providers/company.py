"""What a report says about a company besides its prices: financial statements and
descriptive information, from the configured sources (Core layer).

Both are capabilities a provider declares (``serves_statements`` with the frequencies in
``statement_frequencies``; ``serves_info``); the sources are the providers of
FINRPT_STATEMENTS_PROVIDERS (statements) or of the chain (info), in order, found by the
one lookup :func:`finrpt_providers.plugins.sources`. The face modules (``yf``, ``dataer``,
``report``, OpenBB) call these functions, never a provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import redact
from .errors import DataIntegrityError, ProviderError, UnsupportedQuery

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

log = redact.logger(__name__)
STATEMENTS = ("income", "balance_sheet", "cash_flow")


def get_statements(ticker: str, *, frequency: str = "quarterly", config: "Config | dict | None" = None
                   ) -> tuple[dict[str, "pd.DataFrame"], str]:
    """({"income", "balance_sheet", "cash_flow"} frames in yfinance's layout, the source's
    name) from the first configured source serving ``frequency`` ("quarterly" or "yearly")
    that answers; (empty frames, "") when none does, each refusal logged."""
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
            if not isinstance(got, dict):
                raise DataIntegrityError(f"{p.name}.fetch_statements() returned {type(got).__name__}, not a dict",
                                         provider=p.name)
            return {k: got[k] if isinstance(got.get(k), pd.DataFrame) else pd.DataFrame() for k in STATEMENTS}, p.name
        except ProviderError as e:
            log.warning("%s statements of %s from %s unavailable (%s)", frequency, ticker, p.name, e)
    return {k: pd.DataFrame() for k in STATEMENTS}, ""


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
