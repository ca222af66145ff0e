from __future__ import annotations

import datetime as dt

import pytest

from finrpt_providers.config import Config
from finrpt_providers.testing import FakeFlatFiles
from tests.conftest import REST_KEY

TODAY = "2026-07-01"
MINUTE_DAYS = (dt.date(2026, 6, 22), dt.date(2026, 6, 26))


@pytest.fixture(scope="package")
def flatfiles(market):
    minute = [d for d in market.sessions if MINUTE_DAYS[0] <= d <= MINUTE_DAYS[1]]
    with FakeFlatFiles(market, days=market.sessions[:-1], minute_days=minute) as ff:
        yield ff


@pytest.fixture
def ff(flatfiles):
    flatfiles.deny_prefixes.clear()
    flatfiles.slow_down = flatfiles.fail_next = flatfiles.cut_next = flatfiles.hang_next = 0
    flatfiles.trickle_next = flatfiles.echo_next = 0
    flatfiles.delay = 0.0
    flatfiles.check_keys = True
    flatfiles.reset_counts()
    yield flatfiles
    flatfiles.deny_prefixes.clear()
    flatfiles.slow_down = flatfiles.fail_next = flatfiles.cut_next = flatfiles.hang_next = 0
    flatfiles.trickle_next = flatfiles.echo_next = 0
    flatfiles.delay = 0.0


@pytest.fixture
def all_cfg(ff, rest, fake_yahoo, tmp_path):
    """Every provider pointed at its fake, quick retries, a fresh store."""
    return Config.load({
        **ff.config(), "MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
        "FINRPT_YFINANCE_BASE_URL": fake_yahoo.url, "FINRPT_YFINANCE_TIMEOUT": "3",
        "FINRPT_PROVIDERS_TODAY": TODAY, "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path / "cache"),
        "MASSIVE_REST_BACKOFF": "0.01", "MASSIVE_REST_MAX_RETRIES": "2", "MASSIVE_REST_READ_TIMEOUT": "1",
        "MASSIVE_S3_READ_TIMEOUT": "1", "MASSIVE_S3_MAX_RETRIES": "1",
        "FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest,yfinance",
    }, environ={})
