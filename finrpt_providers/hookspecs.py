"""The hook a plugin implements. Hooks register things; the registered provider does the work."""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("finrpt_providers")
hookimpl = pluggy.HookimplMarker("finrpt_providers")


@hookspec
def register_price_providers(register: Callable[[object], None]) -> None:
    """Call ``register(provider)`` once for each PriceProvider instance this plugin offers."""
