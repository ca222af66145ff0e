"""All three providers over the sandbox: each equals the truth, and they equal each other.

Prices agree to 1e-9 relative. Volumes agree to 1e-9 relative between the Massive
providers; Yahoo's are whole split-adjusted shares, so against it (and from
2026-02-23, when volumes became fractional) the agreement is within 1.5 shares.
The `live` tests run the same comparison against the real services when their
credentials are in the environment, and are skipped otherwise.
"""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pytest

import finrpt_providers as fp
from finrpt_providers.compare import Tolerances, compare
from finrpt_providers.config import Config
from finrpt_providers.testing import FakeFlatFiles
from tests.conftest import REST_KEY

PROVIDERS = ["massive_flatfiles", "massive_rest", "yfinance"]
TODAY = "2026-07-01"
DAILY = ("2025-10-01", "2026-03-31")
INTRADAY = ("2026-06-23", "2026-06-26")


@pytest.fixture(scope="module")
def flatfiles(market):
    minute = [d for d in market.sessions if dt.date(2026, 6, 23) <= d <= dt.date(2026, 6, 26)]
    days = [d for d in market.sessions if d <= dt.date(2026, 6, 26)]
    with FakeFlatFiles(market, days=days, minute_days=minute) as ff:
        yield ff


@pytest.fixture
def cfg(flatfiles, rest, fake_yahoo, tmp_path_factory):
    return Config.load({**flatfiles.config(), "MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                        "FINRPT_YFINANCE_BASE_URL": fake_yahoo.url, "FINRPT_PROVIDERS_TODAY": TODAY,
                        "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "comparison-store"),
                        "FINRPT_PRICE_PROVIDERS": ",".join(PROVIDERS)}, environ={})


CASES = [(t, "1d", a) for t in ("AAPL", "NVDA", "RSPL", "BRK.B", "SPY") for a in ("raw", "splits", "total")]
CASES += [(t, i, a) for t in ("NVDA", "BRK.B") for i in ("1m", "15m", "1h") for a in ("raw", "splits", "total")]


@pytest.mark.parametrize("ticker,interval,adjustment", CASES)
def test_every_provider_equals_the_truth_and_the_others(cfg, market, ticker, interval, adjustment):
    start, end = DAILY if interval == "1d" else INTRADAY
    truth = market.truth(ticker, start, end, interval, adjustment)
    result = compare(ticker, start, end, providers=PROVIDERS, interval=interval, adjustment=adjustment, config=cfg,
                     tolerances=Tolerances(price_rtol=1e-9, volume_rtol=1e-9))
    assert not result.errors and set(result.frames) == set(PROVIDERS)
    for name, df in result.frames.items():
        assert list(df.index) == list(truth.index), f"{name}: bars at other times than the truth"
        for col in ("open", "high", "low", "close"):
            np.testing.assert_allclose(df[col], truth[col], rtol=1e-9, err_msg=f"{name} {col}")
        whole_shares = name == "yfinance"
        np.testing.assert_allclose(df["volume"], truth["volume"], rtol=0 if whole_shares else 1e-9,
                                   atol=1.5 if whole_shares else 0, err_msg=f"{name} volume")
    price_diffs = [d for d in result.diffs if d.column in ("open", "high", "low", "close")]
    assert price_diffs and all(d.ok for d in price_diffs)
    rest_volume = next(d for d in result.diffs if d.provider == "massive_rest" and d.column == "volume")
    assert rest_volume.ok and rest_volume.max_rel <= 1e-9
    # vwap and transactions are compared only where both sides have them
    assert not any(d.column == "vwap" for d in result.diffs)  # flat files (the reference) have no vwap
    assert {d.provider for d in result.diffs if d.column == "transactions"} == {"massive_rest"}


def test_disagreement_is_reported_with_where_and_by_how_much(cfg, flatfiles, market):
    day = dt.date(2025, 12, 3)
    flatfiles.replace("day_aggs_v1", day, scale=1.002)
    try:
        result = compare("AAPL", "2025-12-01", "2025-12-05", providers=PROVIDERS, config=cfg.merged(
            {"FINRPT_PROVIDERS_CACHE_DIR": str(cfg.cache_dir) + "-fresh"}))
        assert not result.agree
        assert any("massive_rest close differs from massive_flatfiles" in r and "2025-12-03" in r
                   for r in result.reasons)
        close = next(d for d in result.diffs if d.provider == "massive_rest" and d.column == "close")
        assert close.max_rel == pytest.approx(0.002 / 1.002, rel=1e-3)
    finally:
        flatfiles.publish([day], ["day_aggs_v1"])


def test_missing_sessions_are_counted_against_the_calendar(cfg, market):
    # the flat files here stop at 2026-06-26: the two sessions after it are missing
    result = compare("AAPL", "2026-06-24", "2026-06-30", providers=["massive_flatfiles", "massive_rest"], config=cfg)
    assert [str(d) for d in result.missing["massive_flatfiles"]] == ["2026-06-29", "2026-06-30"]
    assert result.missing["massive_rest"] == []
    assert not result.agree and "massive_flatfiles lacks 2 session(s)" in result.reasons[0]
    lenient = compare("AAPL", "2026-06-24", "2026-06-30", providers=["massive_flatfiles", "massive_rest"],
                      config=cfg, tolerances=Tolerances(missing_sessions=2))
    assert lenient.agree


def test_compare_cli_json_plot_and_exit_codes(cfg, tmp_path, monkeypatch):
    from tests.test_cli import run

    for name in ("MASSIVE_S3_ENDPOINT", "MASSIVE_S3_BUCKET", "MASSIVE_S3_ACCESS_KEY", "MASSIVE_S3_SECRET_KEY",
                 "MASSIVE_API_KEY", "MASSIVE_REST_BASE_URL", "FINRPT_YFINANCE_BASE_URL", "FINRPT_PROVIDERS_TODAY",
                 "FINRPT_PROVIDERS_CACHE_DIR"):
        monkeypatch.setenv(name, cfg.get(name))
    png = tmp_path / "cmp.png"
    code, out, err = run("compare", "NVDA", "--start", "2025-11-10", "--end", "2025-11-21", "--providers",
                         *PROVIDERS, "--plot", str(png), "--json")
    assert code == 0, err
    import json

    data = json.loads(out)
    assert data["agree"] is True and data["reference"] == "massive_flatfiles"
    assert set(data["providers"]) == set(PROVIDERS)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    code, out, err = run("compare", "AAPL", "--start", "2026-06-24", "--end", "2026-06-30", "--providers",
                         "massive_flatfiles", "massive_rest")
    assert code == 1 and "verdict: DISAGREE" in out and "lacks 2 session(s)" in out


# -- live: the real services, when credentials are present ----------------------------------
live_rest = pytest.mark.skipif(not os.environ.get("MASSIVE_API_KEY"), reason="MASSIVE_API_KEY not set")
live_s3 = pytest.mark.skipif(not (os.environ.get("MASSIVE_S3_ACCESS_KEY") and os.environ.get("MASSIVE_S3_SECRET_KEY")),
                             reason="MASSIVE_S3_ACCESS_KEY / MASSIVE_S3_SECRET_KEY not set")


def _live_config(tmp_path):
    keep = ("MASSIVE_API_KEY", "MASSIVE_S3_ACCESS_KEY", "MASSIVE_S3_SECRET_KEY", "MASSIVE_S3_ENDPOINT",
            "MASSIVE_S3_BUCKET", "MASSIVE_REST_BASE_URL", "POLYGON_API_KEY")
    return Config.load({k: os.environ[k] for k in keep if os.environ.get(k)} |
                       {"FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path)}, environ={})


def _last_month(cfg) -> tuple[str, str]:
    end = cfg.today() - dt.timedelta(days=3)
    return (end - dt.timedelta(days=30)).isoformat(), end.isoformat()


@pytest.mark.live
@live_rest
def test_live_rest_and_yfinance_agree(tmp_path):
    cfg = _live_config(tmp_path)
    result = compare("AAPL", *_last_month(cfg), providers=["massive_rest", "yfinance"], config=cfg,
                     tolerances=Tolerances(price_rtol=1e-3, volume_rtol=0.1, missing_sessions=1))
    assert result.agree, result.report()


@pytest.mark.live
@live_rest
@live_s3
def test_live_all_three_agree(tmp_path):
    cfg = _live_config(tmp_path)
    result = compare("AAPL", *_last_month(cfg), providers=PROVIDERS, config=cfg,
                     tolerances=Tolerances(price_rtol=1e-3, volume_rtol=0.1, missing_sessions=1))
    assert result.agree, result.report()
    assert fp.get_prices("AAPL", *_last_month(cfg), config=cfg).attrs["provider"].startswith("massive")
