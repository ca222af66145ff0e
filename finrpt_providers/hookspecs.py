"""The hooks a plugin implements. Hooks register things; the registered object does the work."""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("finrpt_providers")
hookimpl = pluggy.HookimplMarker("finrpt_providers")


@hookspec
def register_price_providers(register: Callable[[object], None]) -> None:
    """Call ``register(provider)`` once for each PriceProvider instance this plugin offers."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to ``finrpt-providers``: ``cli.command(name, help, handler)`` returns an argparse parser."""
