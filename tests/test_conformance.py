"""The built-in providers run the conformance kit, each against its fake service."""

from __future__ import annotations

import pytest

from finrpt_providers.config import Config
from finrpt_providers.plugins import registry
from finrpt_providers.testing import FakeFlatFiles
from finrpt_providers.testing.conformance import ProviderConformance
from tests.conftest import REST_KEY

TODAY = "2026-07-01"


class TestYFinanceConformance(ProviderConformance):
    volume_atol = 1.5  # Yahoo volumes are whole (split-adjusted) shares
    compares_vwap = compares_transactions = False  # Yahoo gives neither
    tickers = ("AAPL", "NVDA", "RSPL", "BRK.B")

    @pytest.fixture
    def provider(self, fake_yahoo):
        return registry()["yfinance"].provider.configured(Config.load(
            {"FINRPT_YFINANCE_BASE_URL": fake_yahoo.url, "FINRPT_PROVIDERS_TODAY": TODAY}, environ={}))


class TestMassiveRESTConformance(ProviderConformance):
    @pytest.fixture
    def provider(self, rest):
        return registry()["massive_rest"].provider.configured(Config.load(
            {"MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url, "FINRPT_PROVIDERS_TODAY": TODAY},
            environ={}))


@pytest.fixture(scope="module")
def conformance_flatfiles(market):
    import datetime as dt

    minute = [d for d in market.sessions if dt.date(2026, 6, 22) <= d <= dt.date(2026, 6, 26)]
    with FakeFlatFiles(market, minute_days=minute) as ff:
        yield ff


class TestMassiveFlatFilesConformance(ProviderConformance):
    compares_vwap = False  # flat files carry no VWAP

    @pytest.fixture
    def provider(self, conformance_flatfiles, rest, tmp_path_factory):
        return registry()["massive_flatfiles"].provider.configured(Config.load(
            {**conformance_flatfiles.config(), "MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
             "FINRPT_PROVIDERS_TODAY": TODAY,
             "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "conformance-store")},
            environ={}))
