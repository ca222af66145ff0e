"""Test helpers: the synthetic market and the fake services that render it.

Nothing here reaches the internet; every fake listens on 127.0.0.1.
"""

from .fake_flatfiles import FakeFlatFiles
from .fake_massive import FakeMassiveREST
from .fake_yahoo import FakeYahoo
from ..intervals import resample_minutes as resample_bars
from .market import DEFAULT_TICKERS, SyntheticMarket, TickerSpec
from .plugins import plugin_of

__all__ = ["SyntheticMarket", "TickerSpec", "DEFAULT_TICKERS", "FakeYahoo", "FakeMassiveREST", "FakeFlatFiles", "resample_bars", "plugin_of"]
