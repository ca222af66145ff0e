"""US stock prices from several sources behind one interface, with a fallback chain.

    >>> import finrpt_providers as fp
    >>> df = fp.get_prices("AAPL", "2024-01-02", "2024-01-31")   # both ends inclusive
    >>> df.attrs["provider"], df.attrs["attempts"]
"""

from __future__ import annotations

from . import compat as _compat

_compat.check()  # a broken numpy/pyarrow pair fails here, naming both and the fix (not deep in a fetch)

from .actions import corporate_actions as get_actions
from .company import get_info, get_statements
from .chain import get_prices
from .market import get_market
from .config import Config
from .errors import (
    AllProvidersFailed,
    PluginError,
    AuthenticationFailed,
    ConfigurationError,
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
from .live import ConnectionLost, LiveFeed, Stream, stream
from .intervals import INTERVALS
from .provider import BAR_COLUMNS, PriceProvider, PriceQuery, empty_bars, validate_bars

__version__ = "0.2.0.dev0"


def list_providers(config: Config | dict | None = None, *, check_imports: bool = False) -> list[dict]:
    """Every registered provider: name, plugin, what it serves natively, and ready or why not.

    ``check_imports`` also tries importing each provider's required modules, in a child
    process (so this one stays light), and reports a broken install as not ready."""
    from .config import resolve_config
    from .plugins import guard, registry

    cfg = resolve_config(config)
    broken = _import_failures({m for e in registry().values() for m in e.provider.requires}) if check_imports else {}
    out = []
    for name, entry in registry().items():
        try:  # a plugin whose checks raise is listed as not ready, naming it: never a crash
            p = guard(entry.provider, "configured()", entry.provider.configured, cfg)
            reason = guard(p, "not_ready_reason()", p.not_ready_reason)
        except ProviderError as e:
            p, reason = entry.provider, str(e)
        bad = {m: broken[m] for m in p.requires if m in broken}
        if reason is None and bad:
            reason = (f"broken install: {'; '.join(f'{m} fails to import: {w}' for m, w in bad.items())} "
                      f"(pip install --upgrade {' '.join(bad)})")
        out.append({
            "name": name,
            "plugin": entry.plugin,
            "intervals": [i for i in INTERVALS if i in p.intervals],
            "adjustments": sorted(p.adjustments),
            "serves": [w for w, on in (("actions", p.serves_actions), ("statements", p.serves_statements)) if on],
            "ready": reason is None,
            "reason": reason or "",
            "description": p.description,
        })
    return out


def _import_failures(modules: set[str]) -> dict[str, str]:
    """module -> why it fails to import, tried in a child process."""
    import json
    import subprocess
    import sys

    probe = ("import importlib, json, sys\nout = {}\nfor m in sys.argv[1:]:\n    try:\n"
             "        importlib.import_module(m)\n    except Exception as e:\n"
             "        out[m] = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else \"\"}'[:200]\n"
             "print(json.dumps(out))\n")
    if not modules:
        return {}
    try:
        done = subprocess.run([sys.executable, "-c", probe, *sorted(modules)], capture_output=True, text=True,
                              timeout=120)
        return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return {}


_LAZY = {
    "Dataer": ("finrpt_providers.dataer", "Dataer"),
    "DataerMixin": ("finrpt_providers.dataer", "DataerMixin"),
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
    "get_prices", "get_market", "get_actions", "get_statements", "get_info", "list_providers", "stream", "Stream",
    "LiveFeed", "ConnectionLost", "Config", "hookimpl", "PriceProvider", "PriceQuery",
    "BAR_COLUMNS", "empty_bars", "validate_bars",
    "ProviderError", "InvalidQuery", "UnsupportedQuery", "MissingCredentials", "AuthenticationFailed",
    "NotEntitled", "RateLimited", "ProviderUnavailable", "NoData", "DataIntegrityError", "PluginError", "AllProvidersFailed",
    "Dataer", "DataerMixin", "ConfigurationError", "INTERVALS",
]
