"""The sandbox: fake services over the synthetic market, and a config pointing at them.

    >>> from finrpt_providers.testing.sandbox import sandbox
    >>> with sandbox() as (config, market):
    ...     df = finrpt_providers.get_prices("AAPL", "2026-03-02", "2026-03-13", config=config)

The object yielded unpacks as ``(config, market)`` and also carries the running
fakes (``.yahoo``, ``.rest``, ``.flatfiles``, ``.ws``: Massive's WebSocket replaying
the last session from 09:30 at 60 market minutes a second, to be read with
``.stream_config``, whose today is that session) so a demo or a test can flip their
switches. Everything listens on 127.0.0.1; nothing reaches the internet. The flat
files lack the market's last session (as upstream lags a day), so the chain's
stitching shows. Starting it takes a few seconds (the flat files are rendered).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator

from ..config import Config
from .fake_flatfiles import FakeFlatFiles
from .fake_massive import FakeMassiveREST
from .fake_massive_ws import FakeMassiveWS
from .fake_yahoo import FakeYahoo
from .market import SyntheticMarket

SANDBOX_API_KEY = "sandbox-rest-key"


@dataclasses.dataclass
class Sandbox:
    config: Config
    market: SyntheticMarket
    yahoo: FakeYahoo
    rest: FakeMassiveREST
    flatfiles: FakeFlatFiles
    ws: FakeMassiveWS

    @property
    def stream_config(self) -> Config:
        """The config for live bars: the WebSocket replays the market's last session, so today
        is pinned to it (a stream refuses bars of any session but today's)."""
        return self.config.merged({"FINRPT_PROVIDERS_TODAY": self.market.sessions[-1].isoformat()})

    def __iter__(self):
        return iter((self.config, self.market))


def require_sandbox_extra() -> None:
    """One clear line when the sandbox's optional dependency (moto's S3 server) is missing."""
    import importlib.util

    missing = [m for m in ("moto", "flask", "werkzeug") if importlib.util.find_spec(m) is None]
    if missing:
        from ..errors import ProviderError

        raise ProviderError(f"the sandbox needs {', '.join(missing)} (its fake flat files run on moto's S3 "
                                 "server): pip install 'finrpt-providers[sandbox]'")


@contextlib.contextmanager
def sandbox(market: SyntheticMarket | None = None, *, tick_days=(), minute_days=None,
            **overrides: str) -> Iterator[Sandbox]:
    """Start the fake services; yield a :class:`Sandbox`. ``overrides`` go on top of the config;
    ``tick_days``: sessions whose trades and quotes files are published too; ``minute_days``:
    sessions with minute files (default: every session; fewer start faster)."""
    require_sandbox_extra()
    market = market or SyntheticMarket()
    with tempfile.TemporaryDirectory(prefix="finrpt-sandbox-") as cache, FakeYahoo(market) as yahoo, \
            FakeMassiveREST(market, api_key=SANDBOX_API_KEY) as rest, \
            FakeFlatFiles(market, days=market.sessions[:-1], tick_days=tick_days,
                          minute_days=minute_days) as flatfiles, \
            FakeMassiveWS(market, api_key=SANDBOX_API_KEY, speed=60.0, tickers=["AAPL", "SPY", "NVDA"]) as ws:
        values = {
            "FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest,yfinance",
            "FINRPT_YFINANCE_BASE_URL": yahoo.url,
            "FINRPT_PROVIDERS_TODAY": market.today().isoformat(),
            "FINRPT_PROVIDERS_CACHE_DIR": cache,
            "MASSIVE_API_KEY": SANDBOX_API_KEY, "MASSIVE_REST_BASE_URL": rest.url,
            # fakes answer at once: retry quickly so a demo of failures stays short
            "MASSIVE_REST_BACKOFF": "0.05", "MASSIVE_REST_MAX_RETRIES": "2",
            **flatfiles.config(), **ws.config(),
        }
        values.update(overrides)
        # Defaults + these values only: no environment, TOML or .env of the machine.
        yield Sandbox(Config.load(values, environ={}, cwd=cache), market, yahoo, rest, flatfiles, ws)
