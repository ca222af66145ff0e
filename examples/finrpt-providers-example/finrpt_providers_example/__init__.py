"""An example third-party provider, written the way a plugin author would.

It serves the synthetic market of ``finrpt_providers.testing`` in-process, so it
needs no network and no key. The whole plugin is the class and the hook below plus
one entry point in pyproject.toml::

    [project.entry-points.finrpt_providers]
    example = "finrpt_providers_example"
"""

from __future__ import annotations

from functools import lru_cache

from finrpt_providers import NoData, PriceProvider, PriceQuery, hookimpl


@lru_cache(maxsize=1)
def _market():
    from finrpt_providers.testing import SyntheticMarket

    return SyntheticMarket()


class SyntheticProvider(PriceProvider):
    name = "example_synthetic"
    intervals = frozenset({"1m", "5m", "15m", "30m", "1h", "1d"})
    adjustments = frozenset({"raw", "splits", "total"})
    description = "example plugin: the synthetic market, served in-process"

    def fetch(self, query: PriceQuery):
        market = _market()
        if query.ticker not in market.specs:
            raise NoData(f"the synthetic market has no ticker {query.ticker} "
                         f"(it has {', '.join(market.tickers)})", provider=self.name)
        return market.truth(query.ticker, query.start, query.end, query.interval, query.adjustment)


@hookimpl
def register_price_providers(register):
    register(SyntheticProvider())
