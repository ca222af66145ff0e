"""The fault matrix: every fault, every provider it applies to, through the public API.

Each fault must end, within a bounded time, in the documented error type when the
provider is asked alone, and in the exact truth from the next provider when the
chain is asked; the flat-file store must hold nothing partial afterwards. The
README's reliability table is this file.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pytest

import finrpt_providers as fp
from finrpt_providers import (
    AuthenticationFailed,
    DataIntegrityError,
    NoData,
    NotEntitled,
    PriceQuery,
    ProviderUnavailable,
    RateLimited,
)
from finrpt_providers.plugins import registry
from finrpt_providers.providers.massive_flatfiles import store_for
from tests.conftest import REST_KEY

BOUND = 25.0  # seconds any fault may take to surface (timeouts are 1-3 s, retries 1-2)
DAY = ("AAPL", "2026-03-02", "2026-03-06")
LAST_DAY = dt.date(2026, 3, 6)


FAULTS = {
    # name: (provider, setup(fakes), expected error types)
    "rest 429 storm with Retry-After": ("massive_rest", lambda f: (setattr(f.rest, "rate_limit_all", True),
                                                                    setattr(f.rest, "retry_after", "0")), RateLimited),
    "rest 429 storm without Retry-After": ("massive_rest", lambda f: (setattr(f.rest, "rate_limit_all", True),
                                                                       setattr(f.rest, "retry_after", None)), RateLimited),
    "rest 500 burst (HTML)": ("massive_rest", lambda f: (setattr(f.rest, "fail_next", 50),
                                                          setattr(f.rest, "fail_status", 500)), ProviderUnavailable),
    "rest 502 burst (HTML)": ("massive_rest", lambda f: setattr(f.rest, "fail_next", 50), ProviderUnavailable),
    "rest 504 burst (HTML)": ("massive_rest", lambda f: (setattr(f.rest, "fail_next", 50),
                                                          setattr(f.rest, "fail_status", 504)), ProviderUnavailable),
    "rest connection reset mid-body": ("massive_rest", lambda f: setattr(f.rest, "reset_next", 50),
                                       ProviderUnavailable),
    "rest accepts and never answers": ("massive_rest", lambda f: setattr(f.rest, "hang_next", 50),
                                       ProviderUnavailable),
    "rest malformed JSON": ("massive_rest", lambda f: setattr(f.rest, "malformed_next", 50), DataIntegrityError),
    "rest results: null": ("massive_rest", lambda f: setattr(f.rest, "always_null", True), NoData),
    "rest next_url loop": ("massive_rest", lambda f: (setattr(f.rest, "page_size", 2),
                                                       setattr(f.rest, "repeat_cursor", True)), DataIntegrityError),
    "rest wrong API key": ("massive_rest", lambda f: setattr(f.rest, "api_key", "someone-else"),
                           AuthenticationFailed),
    "yahoo 429 storm": ("yfinance", lambda f: setattr(f.yahoo, "rate_limited", True), RateLimited),
    "yahoo 502 burst (HTML)": ("yfinance", lambda f: setattr(f.yahoo, "fail_status", 502), ProviderUnavailable),
    "yahoo connection reset mid-body": ("yfinance", lambda f: setattr(f.yahoo, "reset_next", 50),
                                        ProviderUnavailable),
    "yahoo accepts and never answers": ("yfinance", lambda f: setattr(f.yahoo, "hang_next", 50),
                                        ProviderUnavailable),
    "yahoo malformed JSON": ("yfinance", lambda f: setattr(f.yahoo, "malformed", True),
                             (ProviderUnavailable, DataIntegrityError)),
    "s3 403 on the prefix": ("massive_flatfiles",
                             lambda f: f.ff.deny_prefixes.add("us_stocks_sip/day_aggs_v1/"), NotEntitled),
    "s3 500 burst": ("massive_flatfiles", lambda f: setattr(f.ff, "fail_next", 50), ProviderUnavailable),
    "s3 slow-down storm": ("massive_flatfiles", lambda f: setattr(f.ff, "slow_down", 50), ProviderUnavailable),
    "s3 connection reset mid-body": ("massive_flatfiles", lambda f: setattr(f.ff, "cut_next", 50),
                                     (DataIntegrityError, ProviderUnavailable)),
    "s3 accepts and never answers": ("massive_flatfiles", lambda f: setattr(f.ff, "hang_next", 50),
                                     ProviderUnavailable),
    "s3 truncated gzip": ("massive_flatfiles", lambda f: f.ff.truncate("day_aggs_v1", LAST_DAY), DataIntegrityError),
    "s3 corrupt gzip": ("massive_flatfiles", lambda f: f.ff.put_raw(
        f.ff.key("day_aggs_v1", LAST_DAY), b"\x1f\x8b\x08\x00" + bytes(range(256)) * 20), DataIntegrityError),
    "s3 wrong key pair": ("massive_flatfiles", lambda f: f.cfg_overrides.update({"MASSIVE_S3_ACCESS_KEY": "wrong"}),
                          AuthenticationFailed),
}


class Fakes:
    def __init__(self, ff, rest, yahoo):
        self.ff, self.rest, self.yahoo = ff, rest, yahoo
        self.cfg_overrides: dict[str, str] = {}


@pytest.fixture
def fakes(ff, rest, fake_yahoo, market):
    f = Fakes(ff, rest, fake_yahoo)
    yield f
    rest.reset()
    rest.api_key = REST_KEY
    fake_yahoo.reset_next = fake_yahoo.hang_next = 0
    ff.deny_prefixes.clear()
    ff.slow_down = ff.fail_next = ff.cut_next = ff.hang_next = 0
    ff.publish([LAST_DAY], ["day_aggs_v1"])


def _warm_yahoo(cfg):
    # cookie and crumb are fetched once per session: do it before the fault
    registry()["yfinance"].provider.configured(cfg).fetch(PriceQuery("SPY", "2026-01-05", "2026-01-05"))


def _store_is_clean(cfg) -> None:
    store = store_for(cfg)
    assert list(Path(store.root).rglob("*.tmp")) == [] if Path(store.root).exists() else True
    for dataset in ("day_aggs_v1", "minute_aggs_v1"):
        assert store.verify(dataset) == []
    assert LAST_DAY not in store.stored("day_aggs_v1", [LAST_DAY])


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_alone_ends_in_the_documented_error(fault, fakes, all_cfg):
    name, setup, expected = FAULTS[fault]
    if name == "yfinance":
        _warm_yahoo(all_cfg)
    setup(fakes)
    cfg = all_cfg.merged(fakes.cfg_overrides)
    t0 = time.monotonic()
    with pytest.raises(expected) as info:
        registry()[name].provider.configured(cfg).fetch(PriceQuery(*DAY))
    assert time.monotonic() - t0 < BOUND
    assert str(info.value) and "Traceback" not in str(info.value)
    if name == "massive_flatfiles":
        _store_is_clean(cfg)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_in_the_chain_gets_the_truth_from_the_next_provider(fault, fakes, all_cfg, market):
    name, setup, expected = FAULTS[fault]
    if name == "yfinance":
        _warm_yahoo(all_cfg)
    setup(fakes)
    fallback = "yfinance" if name != "yfinance" else "massive_rest"
    cfg = all_cfg.merged({**fakes.cfg_overrides, "FINRPT_PRICE_PROVIDERS": f"{name},{fallback}"})
    t0 = time.monotonic()
    df = fp.get_prices(*DAY, config=cfg)
    assert time.monotonic() - t0 < BOUND
    truth = market.truth(*DAY, "1d", "splits")
    np.testing.assert_allclose(df["close"], truth["close"], rtol=1e-12)
    assert df.attrs["attempts"][0]["provider"] == name
    if df.attrs["provider"] == fallback:
        failed = df.attrs["attempts"][0]
        expected_names = {e.__name__ for e in (expected if isinstance(expected, tuple) else (expected,))}
        assert failed["outcome"] in ("failed", "empty") and (
            any(n in failed["detail"] for n in expected_names) or failed["outcome"] == "empty")
    else:  # the fault left the first provider answering only part: the rest was stitched
        assert df.attrs["provider"].startswith(name)
    if name == "massive_flatfiles":
        _store_is_clean(cfg)


def test_s3_404_for_a_session_is_recorded_and_stitched(fakes, all_cfg, market):
    fakes.ff.remove("day_aggs_v1", LAST_DAY)
    cfg = all_cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest"})
    df = fp.get_prices(*DAY, config=cfg)
    assert df.attrs["provider"] == "massive_flatfiles+massive_rest"
    np.testing.assert_allclose(df["close"], market.truth(*DAY, "1d", "splits")["close"], rtol=1e-12)
    with pytest.raises(NoData):  # alone, a range whose only session is missing has no bars
        registry()["massive_flatfiles"].provider.configured(cfg).fetch(PriceQuery("AAPL", LAST_DAY, LAST_DAY))
