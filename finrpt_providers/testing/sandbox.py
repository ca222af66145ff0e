"""The sandbox: fake services over the synthetic market, and a config pointing at them.

    >>> from finrpt_providers.testing.sandbox import sandbox
    >>> with sandbox() as (config, market):
    ...     df = finrpt_providers.get_prices("AAPL", "2026-03-02", "2026-03-13", config=config)

Everything listens on 127.0.0.1; nothing reaches the internet. Today the sandbox
runs the fake Yahoo (the Massive fakes join it as their providers land).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator

from ..config import Config
from .fake_yahoo import FakeYahoo
from .market import SyntheticMarket


@contextlib.contextmanager
def sandbox(market: SyntheticMarket | None = None, **overrides: str) -> Iterator[tuple[Config, SyntheticMarket]]:
    """Start the fake services; yield (config, market). ``overrides`` go on top of the config."""
    market = market or SyntheticMarket()
    with tempfile.TemporaryDirectory(prefix="finrpt-sandbox-") as cache, FakeYahoo(market) as yahoo:
        values = {
            "FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest,yfinance",
            "FINRPT_YFINANCE_BASE_URL": yahoo.url,
            "FINRPT_PROVIDERS_TODAY": market.today().isoformat(),
            "FINRPT_PROVIDERS_CACHE_DIR": cache,
            # never let real credentials from the environment reach a fake (or the reverse)
            "MASSIVE_API_KEY": "", "MASSIVE_S3_ACCESS_KEY": "", "MASSIVE_S3_SECRET_KEY": "",
        }
        values.update(overrides)
        # Defaults + these values only: no environment, TOML or .env of the machine.
        yield Config.load(values, environ={}, cwd=cache), market
