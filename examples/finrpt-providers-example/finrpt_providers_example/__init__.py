"""An example third-party provider, written the way a plugin author would.

It serves the synthetic market of ``finrpt_providers.testing`` in-process, so it
needs no network and no key, and it uses everything a built-in does:

* it serves as-traded (``raw``) daily and minute bars natively; the core derives
  ``splits``/``total``, ``5m``..``1h`` and ``1wk``/``1mo``/``3mo`` for it;
* it serves corporate actions (``serves_actions``), so it can also be the source the
  core adjusts other providers with (``FINRPT_ACTIONS_PROVIDERS=example_synthetic``);
* it declares a setting (``EXAMPLE_SYNTHETIC_LATENCY``, ``[example_synthetic] latency``):
  validated, shown by ``finrpt-providers config``;
* it adds a command (``finrpt-providers example-tickers``).

The whole plugin is the class and the hooks below plus one entry point in
pyproject.toml::

    [project.entry-points.finrpt_providers]
    example = "finrpt_providers_example"
"""

from __future__ import annotations

import time
from functools import lru_cache

from finrpt_providers import NoData, PriceProvider, PriceQuery, hookimpl
from finrpt_providers.config import Setting


@lru_cache(maxsize=1)
def _market():
    from finrpt_providers.testing import SyntheticMarket

    return SyntheticMarket()


class SyntheticProvider(PriceProvider):
    name = "example_synthetic"
    intervals = frozenset({"1m", "1d"})
    adjustments = frozenset({"raw"})
    serves_actions = True
    settings = (Setting("EXAMPLE_SYNTHETIC_LATENCY", "example_synthetic", "latency", "float", 0.0, ge=0, le=5,
                        help="seconds each answer waits (to play with timeouts)"),)
    description = "example plugin: the synthetic market, served in-process"

    def _known(self, ticker: str):
        market = _market()
        if ticker not in market.specs:
            raise NoData(f"the synthetic market has no ticker {ticker} "
                         f"(it has {', '.join(market.tickers)})", provider=self.name)
        return market

    def fetch(self, query: PriceQuery):
        market = self._known(query.ticker)
        time.sleep(self.config.value("EXAMPLE_SYNTHETIC_LATENCY") if self.config else 0.0)
        return market.truth(query.ticker, query.start, query.end, query.interval, "raw")

    def fetch_actions(self, ticker: str):
        market = self._known(ticker)
        return market.splits(ticker), market.dividends(ticker)


@hookimpl
def register_price_providers(register):
    register(SyntheticProvider())


@hookimpl
def register_commands(cli):
    def tickers(args, ctx):
        for t in _market().tickers:
            ctx.out.write(f"{t}\n")
        return 0

    cli.command("example-tickers", "list the example plugin's synthetic tickers", tickers)
