from __future__ import annotations

import contextlib
import os

import pytest

from finrpt_providers import plugins
from finrpt_providers.config import Config
from finrpt_providers.providers import massive_rest
from finrpt_providers.testing import FakeFlatFiles, FakeMassiveREST, FakeYahoo, SyntheticMarket

REST_KEY = "test-rest-key-4242"

_OUR_PREFIXES = ("MASSIVE_", "FINRPT_", "POLYGON_")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's credentials, config file or .env."""
    for k in list(os.environ):
        if k.startswith(_OUR_PREFIXES):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def market() -> SyntheticMarket:
    return SyntheticMarket()


@pytest.fixture(scope="session")
def _yahoo_server(market, tmp_path_factory):
    import yfinance as yf

    yf.set_tz_cache_location(str(tmp_path_factory.mktemp("yf-cache")))
    with FakeYahoo(market) as srv:
        yield srv


@pytest.fixture
def fake_yahoo(_yahoo_server) -> FakeYahoo:
    """The fake Yahoo, with switches reset and yfinance's response cache emptied."""
    from yfinance.data import YfData

    srv = _yahoo_server
    srv.rate_limited, srv.fail_status, srv.delay, srv.malformed = False, None, 0.0, False
    srv.reset_next = srv.hang_next = 0
    srv.chart_body = None
    YfData.cache_get.cache_clear()
    with srv._lock:
        srv.requests.clear()
    yield srv
    YfData.cache_get.cache_clear()


@pytest.fixture
def yf_config(fake_yahoo, market) -> Config:
    return Config.load({"FINRPT_YFINANCE_BASE_URL": fake_yahoo.url,
                        "FINRPT_PROVIDERS_TODAY": market.today().isoformat(),
                        "FINRPT_YFINANCE_TIMEOUT": "5"}, environ={})


@pytest.fixture
def register_plugin():
    """Register test plugins for one test; the registry is rebuilt before and after."""
    added = []

    def register(plugin, name=None):
        plugins.load_plugins()
        plugins.pm.register(plugin, name=name)
        added.append(plugin)
        plugins.reset()
        return plugin

    yield register
    for p in added:
        plugins.pm.unregister(p)
    plugins.reset()


@pytest.fixture(scope="session")
def _rest_server(market):
    with FakeMassiveREST(market, api_key=REST_KEY) as srv:
        yield srv


@pytest.fixture
def rest(_rest_server):
    """The fake Massive REST server (key ``REST_KEY``), switches reset, caches emptied."""
    _rest_server.reset()
    massive_rest.clear_caches()
    yield _rest_server
    _rest_server.reset()


def report_days(market, first, last):
    """The sessions a total-adjusted question over [first, last] reads from the day files:
    the range, and the session before every later ex-dividend date of every ticker."""
    from finrpt_providers import calendar

    days = {d for d in market.sessions if first <= d <= last}
    for t in market.tickers:
        for ex in market.dividends(t).index:
            before = calendar.session_before(ex.date())
            if before is not None and before > last:
                days.add(before)
    return sorted(days)


@contextlib.contextmanager
def report_flatfiles(market, first, last):
    """Fake flat files holding :func:`report_days` only (publishing every session takes long)."""
    with FakeFlatFiles(market, days=report_days(market, first, last), minute_days=[]) as ff:
        yield ff


def chain_config(flatfiles, rest, fake_yahoo, tmp_path, **extra):
    """Every built-in provider over the fakes (today pinned to 2026-07-01)."""
    return Config.load({**flatfiles.config(), "MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                        "FINRPT_YFINANCE_BASE_URL": fake_yahoo.url, "FINRPT_PROVIDERS_TODAY": "2026-07-01",
                        "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path), **extra}, environ={})
