"""US stock prices from several sources behind one interface, with a fallback chain.

    >>> import finrpt_providers as fp
    >>> df = fp.get_prices("AAPL", "2024-01-02", "2024-01-31")   # both ends inclusive
    >>> df.attrs["provider"], df.attrs["attempts"]
"""

from __future__ import annotations

from .chain import get_prices
from .config import Config
from .errors import (
    AllProvidersFailed,
    AuthenticationFailed,
    DataIntegrityError,
    InvalidQuery,
    MissingCredentials,
    NoData,
    NotEntitled,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    UnsupportedQuery,
)
from .hookspecs import hookimpl
from .provider import BAR_COLUMNS, INTERVALS, PriceProvider, PriceQuery, empty_bars, validate_bars

__version__ = "0.1.0"


def list_providers(config: Config | dict | None = None) -> list[dict]:
    """Every registered provider: name, plugin, what it serves, and ready or why not."""
    from .chain import resolve_config
    from .plugins import registry

    cfg = resolve_config(config)
    out = []
    for name, entry in registry().items():
        p = entry.provider.configured(cfg)
        reason = p.not_ready_reason()
        out.append({
            "name": name,
            "plugin": entry.plugin,
            "intervals": [i for i in INTERVALS if i in p.intervals],
            "adjustments": sorted(p.adjustments),
            "ready": reason is None,
            "reason": reason or "",
            "description": p.description,
        })
    return out


_LAZY = {
    "Dataer": ("finrpt_providers.dataer", "Dataer"),
    "DataerMixin": ("finrpt_providers.dataer", "DataerMixin"),
    "iter_trades": ("finrpt_providers.providers.massive_flatfiles", "iter_trades"),
    "iter_quotes": ("finrpt_providers.providers.massive_flatfiles", "iter_quotes"),
}


def __getattr__(name: str):
    """The heavier parts load on first use, so `import finrpt_providers` stays light.
    (The comparison is `finrpt_providers.compare.compare`: its module has the name.)"""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'finrpt_providers' has no attribute {name!r}")


__all__ = [
    "get_prices", "list_providers", "Config", "hookimpl", "PriceProvider", "PriceQuery",
    "BAR_COLUMNS", "empty_bars", "validate_bars",
    "ProviderError", "InvalidQuery", "UnsupportedQuery", "MissingCredentials", "AuthenticationFailed",
    "NotEntitled", "RateLimited", "ProviderUnavailable", "NoData", "DataIntegrityError", "AllProvidersFailed",
    "Dataer", "DataerMixin", "iter_trades", "iter_quotes",
]
