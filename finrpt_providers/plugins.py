"""Plugin manager: the built-in providers are ordinary plugins; others come from the
entry-point group ``finrpt_providers``. ``FINRPT_PROVIDERS_LOAD_PLUGINS`` (comma list of
entry-point or distribution names; empty = none) limits which entry points load.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from dataclasses import dataclass
from importlib import metadata

import pluggy

from . import hookspecs
from .errors import PluginError, ProviderError
from .provider import PriceProvider

ENTRY_POINT_GROUP = "finrpt_providers"
# The built-in plugins, in the order of the default chain (FINRPT_PRICE_PROVIDERS). The only
# place the core names a provider: they are loaded by name, like any other plugin.
DEFAULT_PLUGINS = (
    "finrpt_providers.providers.massive_flatfiles",
    "finrpt_providers.providers.massive_rest",
    "finrpt_providers.providers.yfinance",
)

pm = pluggy.PluginManager("finrpt_providers")
pm.add_hookspecs(hookspecs)

_lock = threading.RLock()
_loaded = False
_registry: dict[str, "Registered"] | None = None


class PluginWarning(UserWarning):
    """A plugin was skipped because it failed to import or register."""


@dataclass(frozen=True)
class Registered:
    provider: PriceProvider
    plugin: str


def _load_entry_points() -> None:
    allowed = os.environ.get("FINRPT_PROVIDERS_LOAD_PLUGINS")
    allow = None if allowed is None else {p.strip() for p in allowed.split(",") if p.strip()}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        if allow is not None and ep.name not in allow and dist_name not in allow:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        label = f"entry point {ep.name!r} ({ep.value}" + (f", from {dist_name})" if dist_name else ")")
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except (Exception, SystemExit) as e:  # a broken plugin must never break the others (nor exit)
            warnings.warn(f"skipped plugin {label}: {type(e).__name__}: {e}", PluginWarning, stacklevel=2)


def load_plugins() -> None:
    """Register the built-ins and the installed entry points (once per process)."""
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        for name in DEFAULT_PLUGINS:
            if pm.get_plugin(name) is None:
                pm.register(importlib.import_module(name), name=name)
        _load_entry_points()


def registry() -> dict[str, Registered]:
    """Provider name -> (provider, plugin that registered it), built once."""
    global _registry
    with _lock:
        if _registry is not None:
            return _registry
        load_plugins()
        found: dict[str, Registered] = {}
        hook = pm.hook.register_price_providers
        # get_hookimpls() is in registration order: built-ins first, then entry points.
        for impl in hook.get_hookimpls():
            plugin = impl.plugin_name
            batch: list[PriceProvider] = []

            def register(provider: object, _batch=batch, _plugin=plugin) -> None:
                if not isinstance(provider, PriceProvider):
                    raise TypeError(f"register() wants a PriceProvider instance, got {provider!r}")
                if not provider.name or not provider.name.replace("_", "").isalnum():
                    raise TypeError(f"{type(provider).__name__} needs a name of letters, digits and '_'")
                _batch.append(provider)

            try:
                impl.function(register=register)
            except (Exception, SystemExit) as e:
                warnings.warn(f"skipped plugin {plugin!r}: register_price_providers failed: "
                              f"{type(e).__name__}: {e}", PluginWarning, stacklevel=2)
                continue
            for provider in batch:
                if provider.name in found:
                    other = found[provider.name].plugin
                    raise ProviderError(
                        f"two providers are named {provider.name!r}: one from plugin {other!r}, one from "
                        f"plugin {plugin!r}; uninstall one, or limit what loads with "
                        "FINRPT_PROVIDERS_LOAD_PLUGINS"
                    )
                found[provider.name] = Registered(provider, plugin)
        _registry = found
        return found


def guard(provider: PriceProvider, what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, a call into ``provider``'s plugin: a ProviderError passes
    through; anything else it raises (a bug, ``sys.exit``, any other BaseException) becomes
    a PluginError naming the plugin and ``what`` was called, so one broken plugin never
    takes the chain, the CLI or the process down. KeyboardInterrupt is the user's and passes."""
    try:
        return fn(*args, **kwargs)
    except (ProviderError, KeyboardInterrupt):
        raise
    except BaseException as e:  # noqa: B036 - SystemExit from a plugin must not end the process
        raise plugin_failure(provider, what, e) from None


def plugin_failure(provider: PriceProvider, what: str, e: BaseException) -> PluginError:
    """The PluginError for ``e`` raised by ``provider``'s plugin in ``what``."""
    entry = (_registry or {}).get(provider.name)
    plugin = entry.plugin if entry is not None else type(provider).__module__
    detail = f"exit({e.code!r})" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
    return PluginError(f"plugin {plugin!r} raised in {what} ({detail[:300]}): a bug in that plugin; report it to "
                       f"its authors, or take {provider.name} out of FINRPT_PRICE_PROVIDERS", provider=provider.name)


#: where each capability's sources are configured (else: the chain's providers, in its order)
_SOURCE_SETTING = {"actions": "actions_providers", "market_actions": "actions_providers",
                   "statements": "statements_providers"}


def source_names(config, capability: str | None) -> list[str]:
    """The providers to ask for ``capability``, in order: the configured list
    (FINRPT_ACTIONS_PROVIDERS for actions, FINRPT_STATEMENTS_PROVIDERS for statements), else
    the configured chain (FINRPT_PRICE_PROVIDERS). Never a provider nobody configured."""
    attr = _SOURCE_SETTING.get(capability or "")
    listed = getattr(config, attr) if attr else None
    return list(listed) if listed is not None else list(config.providers)


def sources(config, capability: str | None, names: list[str] | None = None
            ) -> tuple[list[PriceProvider], list[str]]:
    """THE lookup of "the providers that can serve ``capability`` now": (the ready ones,
    configured, in order; why each other one is not). ``names`` overrides the configured
    order. A plugin whose checks raise (or exit) is reported, never a crash. No I/O."""
    reg = registry()
    ready: list[PriceProvider] = []
    why: list[str] = []
    for name in (names if names is not None else source_names(config, capability)):
        entry = reg.get(name)
        if entry is None:
            why.append(f"{name}: not installed")
            continue
        if capability is not None and not entry.provider.serves(capability):
            why.append(f"{name}: serves no {capability.replace('_', '-')}")
            continue
        try:
            p = guard(entry.provider, "configured()", entry.provider.configured, config)
            reason = guard(p, "not_ready_reason()", p.not_ready_reason)
        except ProviderError as e:
            why.append(f"{name}: {e}")
            continue
        if reason:
            why.append(f"{name}: {reason}")
            continue
        ready.append(p)
    return ready, why


def default_providers() -> list[str]:
    """The default chain: the built-in plugins' providers, in DEFAULT_PLUGINS order (defined
    once, here)."""
    reg = registry()
    return [name for plugin in DEFAULT_PLUGINS for name, e in reg.items() if e.plugin == plugin]


def reset() -> None:
    """Forget the built registry (after registering or unregistering a plugin, e.g. in tests)."""
    global _registry
    with _lock:
        _registry = None
