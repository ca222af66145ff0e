"""Make a plugin out of provider instances, for tests (register it with plugins.pm)."""

from __future__ import annotations

from ..hookspecs import hookimpl
from ..provider import PriceProvider


def plugin_of(*providers: PriceProvider) -> type:
    """A pluggy plugin whose hook registers ``providers`` (instances, or anything, to test errors)."""

    class Plugin:
        @staticmethod
        @hookimpl
        def register_price_providers(register):
            for p in providers:
                register(p)

    return Plugin
