"""Massive flat files against moto's S3 server over loopback, with the Parquet store on disk."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import finrpt_providers as fp
from finrpt_providers import (
    AuthenticationFailed,
    DataIntegrityError,
    NoData,
    NotEntitled,
    PriceQuery,
)
from finrpt_providers.config import Config
from finrpt_providers.plugins import registry
from finrpt_providers.providers.massive_flatfiles import (
    iter_quotes,
    iter_trades,
    store_for,
)
from finrpt_providers.providers.massive_flatfiles.s3 import FlatFilesS3
from finrpt_providers.testing import FakeFlatFiles
from finrpt_providers.testing.market import quotes, trades
from tests.conftest import REST_KEY

ET = "America/New_York"
TICK_DAY = dt.date(2026, 1, 20)


def published(market):
    """Day files: every session but the last (not published yet)."""
    return market.sessions[:-1]


def minute_published(market):
    """Minute files (the slow ones to render): Nov 2025 - Feb 2026 and the last fortnight."""
    return [d for d in published(market) if d <= dt.date(2026, 2, 27) and d >= dt.date(2025, 11, 3)
            or d >= dt.date(2026, 6, 15)]


@pytest.fixture(scope="module")
def _ff(market):
    with FakeFlatFiles(market, days=published(market), minute_days=minute_published(market),
                       tick_days=[TICK_DAY], ticks_per_day=3000) as ff:
        yield ff


@pytest.fixture
def ff(_ff, market):
    _ff.deny_prefixes.clear()
    _ff.slow_down = 0
    _ff.check_keys = True
    _ff.reset_counts()
    yield _ff
    _ff.deny_prefixes.clear()


@pytest.fixture
def cfg(ff, rest, market, tmp_path):
    return Config.load({**ff.config(), "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path / "cache"),
                        "FINRPT_PROVIDERS_TODAY": market.today().isoformat(), "MASSIVE_API_KEY": REST_KEY,
                        "MASSIVE_REST_BASE_URL": rest.url, "MASSIVE_REST_BACKOFF": "0.01",
                        "FINRPT_PRICE_PROVIDERS": "massive_flatfiles",
                        # sources come from configuration only: the chain here has none of its own
                        "FINRPT_ACTIONS_PROVIDERS": "massive_rest,yfinance"}, environ={})


def flat(cfg, ticker, start, end, interval="1d", adjustment="raw"):
    return fp.get_prices(ticker, start, end, interval=interval, adjustment=adjustment,
                         providers=["massive_flatfiles"], config=cfg)


def truth_without_vwap(market, *args):
    t = market.truth(*args)
    t["vwap"] = np.nan  # flat files carry no VWAP
    return t


def provider(cfg):
    return registry()["massive_flatfiles"].provider.configured(cfg)


@pytest.mark.parametrize("adjustment", ["raw", "splits", "total"])
@pytest.mark.parametrize("interval", ["1d", "1m", "5m", "15m", "30m", "1h"])
def test_every_interval_and_adjustment_equals_the_truth(cfg, market, interval, adjustment):
    # NVDA: 4-for-1 split on 2025-11-17, a dividend on 2025-12-10 (and more later, adjusting all of these)
    start, end = ("2025-11-03", "2026-02-27") if interval == "1d" else ("2025-11-13", "2025-12-11")
    df = flat(cfg, "NVDA", start, end, interval, adjustment)
    pdt.assert_frame_equal(df, truth_without_vwap(market, "NVDA", start, end, interval, adjustment),
                           rtol=1e-12, check_freq=False)
    assert df.attrs["provider"] == "massive_flatfiles"


@pytest.mark.parametrize("ticker", ["RSPL", "BRK.B", "AAPL", "SPY"])
@pytest.mark.parametrize("adjustment", ["splits", "total"])
def test_actions_from_yfinance_when_no_rest_key(cfg, market, fake_yahoo, ticker, adjustment):
    yahoo_cfg = cfg.merged({"MASSIVE_API_KEY": "", "FINRPT_YFINANCE_BASE_URL": fake_yahoo.url})
    df = flat(yahoo_cfg, ticker, "2025-12-01", "2026-02-27", "1d", adjustment)
    pdt.assert_frame_equal(df, truth_without_vwap(market, ticker, "2025-12-01", "2026-02-27", "1d", adjustment),
                           rtol=1e-12, check_freq=False)


def test_fractional_volumes_and_listing_mid_range(cfg, market):
    df = flat(cfg, "AAPL", "2026-02-19", "2026-02-25")
    assert (df.loc[:"2026-02-20", "volume"] % 1 == 0).all() and (df.loc["2026-02-23":, "volume"] % 1 != 0).all()
    with pytest.raises(NoData, match="NEWC"):
        provider(cfg).fetch(PriceQuery("NEWC", "2026-01-05", "2026-01-09"))


def test_cold_fetches_only_missing_days_and_warm_makes_no_s3_call(cfg, ff, market):
    flat(cfg, "AAPL", "2025-11-03", "2025-11-07")
    assert ff.count("GET") == 5
    ff.reset_counts()
    flat(cfg, "BRK.B", "2025-11-03", "2025-11-14")  # another ticker, 5 more sessions
    assert ff.count("GET") == 5
    ff.reset_counts()
    for ticker in ("AAPL", "BRK.B", "NVDA"):
        df = flat(cfg, ticker, "2025-11-03", "2025-11-14", "1d", "raw")
        assert len(df) == 10
    assert ff.count() == 0  # warm: not one request


def test_warm_query_works_offline(cfg, ff, market):
    flat(cfg, "SPY", "2026-01-05", "2026-01-09", "1m")
    offline = cfg.merged({"MASSIVE_S3_ENDPOINT": "http://127.0.0.1:9"})  # nothing listens there
    df = flat(offline, "SPY", "2026-01-05", "2026-01-09", "1m")
    pdt.assert_frame_equal(df, truth_without_vwap(market, "SPY", "2026-01-05", "2026-01-09", "1m", "raw"),
                           check_freq=False)


def test_missing_day_is_reported_recorded_and_not_asked_again_at_once(cfg, ff, market, caplog):
    day = dt.date(2025, 12, 15)
    ff.remove("day_aggs_v1", day)
    try:
        with caplog.at_level(logging.WARNING):
            df = flat(cfg, "AAPL", "2025-12-11", "2025-12-17")
        assert pd.Timestamp(day, tz=ET) not in df.index and len(df) == 4
        assert any("2025-12-15" in r.getMessage() and "not published yet, or absent" in r.getMessage()
                   for r in caplog.records)
        mark = Path(store_for(cfg).root) / "_state/day_aggs_v1/missing/2025-12-15.json"
        assert json.loads(mark.read_text())["checked_at"].endswith("+00:00")
        ff.reset_counts()
        flat(cfg, "AAPL", "2025-12-11", "2025-12-17")
        assert ff.count() == 0  # an old session found missing is not asked for again
    finally:
        ff.publish([day], ["day_aggs_v1"])


def test_chain_stitches_the_newest_session_from_rest(cfg, market):
    last = market.sessions[-1]
    chain = cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest"})
    df = fp.get_prices("AAPL", "2026-06-22", last, adjustment="splits", config=chain)
    assert df.attrs["provider"] == "massive_flatfiles+massive_rest"
    assert df.attrs["sources"][-1]["provider"] == "massive_rest" and df.attrs["sources"][-1]["first"].date() == last
    truth = market.truth("AAPL", "2026-06-22", last, "1d", "splits")
    np.testing.assert_allclose(df["close"], truth["close"], rtol=1e-12)


def test_403_prefix_is_not_entitled_and_the_chain_moves_on(cfg, ff):
    ff.deny_prefixes.add("us_stocks_sip/minute_aggs_v1/")
    with pytest.raises(NotEntitled, match="your plan does not include minute aggregates"):
        provider(cfg).fetch(PriceQuery("AAPL", "2026-02-02", "2026-02-03", "1m"))
    chain = cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest"})
    df = fp.get_prices("AAPL", "2026-02-02", "2026-02-03", interval="1m", config=chain)
    assert df.attrs["provider"] == "massive_rest" and "NotEntitled" in df.attrs["attempts"][0]["detail"]
    assert list(Path(store_for(cfg).root).rglob("*.tmp")) == []


def test_wrong_key_pair_says_it_is_not_the_rest_key(cfg):
    bad = cfg.merged({"MASSIVE_S3_ACCESS_KEY": REST_KEY})
    with pytest.raises(AuthenticationFailed, match="S3 key pair is not the REST API key"):
        provider(bad).fetch(PriceQuery("AAPL", "2026-02-02", "2026-02-03"))


def test_slow_down_is_retried(cfg, ff, market):
    ff.slow_down = 2
    df = flat(cfg, "AAPL", "2026-02-02", "2026-02-02")
    assert len(df) == 1 and ff.count("GET") == 3


@pytest.mark.parametrize("damage,words", [("truncate", "truncated"), ("header", "not the day_aggs_v1 schema"),
                                          ("garbage", "not a valid gzip")])
def test_damaged_file_stores_nothing(cfg, ff, market, damage, words):
    import gzip

    day = dt.date(2026, 2, 17)
    key = ff.key("day_aggs_v1", day)
    if damage == "truncate":
        ff.truncate("day_aggs_v1", day)
    elif damage == "header":
        ff.put_raw(key, gzip.compress(b"ticker,vol,open,close,high,low,window_start,transactions\nA,1,1,1,1,1,1,1\n"))
    else:
        ff.put_raw(key, b"\x1f\x8b\x08\x00" + b"not really gzip" * 100)
    try:
        with pytest.raises(DataIntegrityError, match=words) as info:
            provider(cfg).fetch(PriceQuery("AAPL", "2026-02-13", "2026-02-18"))
        assert key in str(info.value)
        store = store_for(cfg)
        assert day not in store.stored("day_aggs_v1", [day])
        assert list(Path(store.root).rglob("*.tmp")) == []
    finally:
        ff.publish([day], ["day_aggs_v1"])


def test_store_is_plain_hive_parquet(cfg, market):
    import pyarrow.dataset as ds

    flat(cfg, "AAPL", "2025-12-29", "2026-01-06")
    flat(cfg, "AAPL", "2026-01-05", "2026-01-06", "1m")
    root = Path(store_for(cfg).root)
    day = ds.dataset(root / "day_aggs_v1", format="parquet", partitioning="hive").to_table()
    assert set(day.column("year").to_pylist()) == {2025, 2026}
    assert day.schema.field("window_start").type.tz == "UTC" and day.schema.field("volume").type == "double"
    minute = ds.dataset(root / "minute_aggs_v1", format="parquet", partitioning="hive").to_table()
    assert {str(x) for x in minute.column("date").to_pylist()} == {"2026-01-05", "2026-01-06"}
    import pyarrow.parquet as pq

    f = pq.ParquetFile(next((root / "minute_aggs_v1").rglob("part-*.parquet")))
    assert f.metadata.row_group(0).column(0).compression == "LZ4"
    tickers = f.read(columns=["ticker"]).column("ticker").to_pylist()
    assert tickers == sorted(tickers)


def _sync(cfg_values: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINRPT_", "MASSIVE_"))}
    env.update(cfg_values)
    return subprocess.run([sys.executable, "-m", "finrpt_providers.cli", "sync", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def _env(cfg) -> dict:
    names = ["MASSIVE_S3_ENDPOINT", "MASSIVE_S3_BUCKET", "MASSIVE_S3_ACCESS_KEY", "MASSIVE_S3_SECRET_KEY",
             "FINRPT_PROVIDERS_CACHE_DIR", "FINRPT_PROVIDERS_TODAY"]
    return {n: cfg.get(n) for n in names}


def test_sync_dry_run_then_sync_with_progress(cfg, ff):
    env = _env(cfg)
    out = _sync(env, "--start", "2026-01-26", "--end", "2026-02-06", "--datasets", "day_aggs_v1", "minute_aggs_v1",
                "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "minute_aggs_v1: 10 sessions, 0 already stored, 10 to fetch" in out.stderr
    assert "would fetch us_stocks_sip/minute_aggs_v1/2026/02/2026-02-06.csv.gz" in out.stderr
    assert not (Path(env["FINRPT_PROVIDERS_CACHE_DIR"]) / "massive").exists()
    out = _sync(env, "--start", "2026-01-26", "--end", "2026-02-06", "--datasets", "day_aggs_v1", "minute_aggs_v1")
    assert out.returncode == 0, out.stderr
    assert "10/10 files" in out.stderr and "MB/s" in out.stderr and "ETA" in out.stderr
    assert "minute_aggs_v1: fetched 10 files" in out.stderr
    again = _sync(env, "--start", "2026-01-26", "--end", "2026-02-06", "--datasets", "minute_aggs_v1")
    assert "10 already stored, 0 to fetch" in again.stderr  # resumable: nothing twice


def test_sync_refetches_a_file_replaced_upstream(cfg, ff, market):
    day = dt.date(2026, 2, 11)
    env = _env(cfg)
    assert _sync(env, "--start", "2026-02-09", "--end", "2026-02-13").returncode == 0
    before = flat(cfg, "AAPL", "2026-02-11", "2026-02-11")["close"].iloc[0]
    ff.replace("day_aggs_v1", day, scale=1.01)
    try:
        out = _sync(env, "--start", "2026-02-09", "--end", "2026-02-13", "--dry-run")
        assert "1 to fetch" in out.stderr and "replaced upstream" in out.stderr
        assert _sync(env, "--start", "2026-02-09", "--end", "2026-02-13").returncode == 0
        after = flat(cfg, "AAPL", "2026-02-11", "2026-02-11")["close"].iloc[0]
        assert after == pytest.approx(before * 1.01, rel=1e-6)
        assert flat(cfg, "AAPL", "2026-02-10", "2026-02-10")["close"].iloc[0] == market.daily("AAPL").loc[
            "2026-02-10", "close"]  # neighbours untouched
    finally:
        ff.publish([day], ["day_aggs_v1"])


def test_two_concurrent_syncs_leave_a_correct_store(cfg, ff, market):
    env = _env(cfg)
    cmd = [sys.executable, "-m", "finrpt_providers.cli", "sync", "--datasets", "day_aggs_v1", "minute_aggs_v1",
           "--workers", "3"]
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("FINRPT_", "MASSIVE_"))}, **env}
    a = subprocess.Popen(cmd + ["--start", "2025-11-03", "--end", "2025-12-31"], env=full_env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    b = subprocess.Popen(cmd + ["--start", "2025-12-01", "--end", "2026-01-30"], env=full_env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for p in (a, b):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    ff.reset_counts()
    for ticker in ("AAPL", "BRK.B"):
        df = flat(cfg, ticker, "2025-11-03", "2026-01-30")
        pdt.assert_frame_equal(df, truth_without_vwap(market, ticker, "2025-11-03", "2026-01-30", "1d", "raw"),
                               check_freq=False)
        m = flat(cfg, ticker, "2025-12-29", "2026-01-02", "1m")
        pdt.assert_frame_equal(m, truth_without_vwap(market, ticker, "2025-12-29", "2026-01-02", "1m", "raw"),
                               check_freq=False)
    assert ff.count() == 0
    assert list(Path(store_for(cfg).root).rglob("*.tmp")) == []


def test_iter_trades_pulls_one_ticker(cfg, market):
    chunks = list(iter_trades("RSPL", TICK_DAY, cfg))
    got = pd.concat(chunks, ignore_index=True)
    want = trades(market, "RSPL", TICK_DAY, 3000)
    assert len(got) == len(want) == 3000 and set(got["ticker"]) == {"RSPL"}
    np.testing.assert_allclose(got["price"], want["price"])
    np.testing.assert_allclose(got["size"], want["size"])
    assert (got["sip_timestamp"].astype("int64").to_numpy() == want["sip_timestamp"].to_numpy()).all()
    assert str(got["sip_timestamp"].dt.tz) == ET
    assert got["conditions"].tolist() == want["conditions"].tolist()
    dot = pd.concat(list(iter_trades("BRK.B", TICK_DAY, cfg)))
    assert set(dot["ticker"]) == {"BRK.B"} and len(dot) == 3000
    assert list(iter_trades("ZZZZ", TICK_DAY, cfg)) == []


def test_iter_quotes_and_missing_file(cfg, market):
    got = pd.concat(list(iter_quotes("AAPL", TICK_DAY, cfg)), ignore_index=True)
    want = quotes(market, "AAPL", TICK_DAY, 3000)
    np.testing.assert_allclose(got["bid_price"], want["bid_price"])
    with pytest.raises(NoData, match="trades_v1"):
        list(iter_trades("AAPL", "2026-01-21", cfg))


def test_cli_fetch_trades(cfg):
    from tests.test_cli import run

    env = _env(cfg)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code, out, err = run("trades", "RSPL", "--date", TICK_DAY.isoformat(), "--format", "csv")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert code == 0, err
    assert out.splitlines()[0].startswith("ticker,conditions,correction") and len(out.splitlines()) == 3001
    assert "3000 trades for RSPL" in err


def test_no_actions_source_means_raw_only(cfg, fake_yahoo, monkeypatch):
    from finrpt_providers import pipeline

    none = cfg.merged({"FINRPT_ACTIONS_PROVIDERS": ""})
    p = provider(none)
    _, why = pipeline.plan(p, PriceQuery("AAPL", "2026-02-02", "2026-02-03"), dt.date(2026, 7, 1))
    assert "splits from massive_flatfiles's raw bars needs splits and dividends" in why
    assert pipeline.plan(p, PriceQuery("AAPL", "2026-02-02", "2026-02-03", adjustment="raw"),
                         dt.date(2026, 7, 1)) == (PriceQuery("AAPL", "2026-02-02", "2026-02-03", adjustment="raw"), None)
    with pytest.raises(fp.UnsupportedQuery, match="no corporate-actions source"):
        fp.chain.fetch_one(p, "AAPL", "2026-02-02", "2026-02-03")
    with pytest.raises(fp.AllProvidersFailed, match="massive_flatfiles skipped"):
        fp.get_prices("AAPL", "2026-02-02", "2026-02-03", providers=["massive_flatfiles"], config=none)


def test_total_never_uses_a_wrong_close_when_a_day_file_is_missing(cfg, ff, market):
    prev = dt.date(2026, 3, 9)  # the session before NVDA's 2026-03-10 ex-dividend date
    ff.remove("day_aggs_v1", prev)
    try:
        with pytest.raises(DataIntegrityError, match="cannot adjust NVDA to total: no close for 2026-03-09, the "
                                                     "session before the ex-date of its 2026-03-10 dividend"):
            fp.chain.fetch_one(provider(cfg), "NVDA", "2026-02-02", "2026-02-06", adjustment="total")
        chain = cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest"})
        df = fp.get_prices("NVDA", "2026-02-02", "2026-02-06", adjustment="total", config=chain)
        assert df.attrs["provider"] == "massive_rest"
        np.testing.assert_allclose(df["close"], market.truth("NVDA", "2026-02-02", "2026-02-06", "1d", "total")["close"],
                                   rtol=1e-12)
    finally:
        ff.publish([prev], ["day_aggs_v1"])


def test_s3_key_pair_never_leaks(cfg, ff, caplog, capsys):
    """botocore logs signed headers at DEBUG: the key pair must not reach any record."""
    caplog.set_level(logging.DEBUG)
    p = provider(cfg)
    texts = [repr(p), repr(cfg), repr(FlatFilesS3(cfg))]
    flat(cfg, "AAPL", "2026-02-02", "2026-02-04")
    ff.deny_prefixes.add("us_stocks_sip/minute_aggs_v1/")
    for c in (cfg, cfg.merged({"MASSIVE_S3_SECRET_KEY": "wrong-secret"})):
        try:
            flat(c, "AAPL", "2026-02-09", "2026-02-10", "1m")
        except fp.ProviderError as e:
            texts += [str(e), repr(e)]
    texts += [r.getMessage() for r in caplog.records]
    out = capsys.readouterr()
    texts += [out.out, out.err]
    assert any("botocore" in r.name for r in caplog.records)
    for secret in (ff.access_key, ff.secret_key):
        assert not [t for t in texts if secret in t]
    for path in Path(store_for(cfg).root).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert ff.access_key.encode() not in data and ff.secret_key.encode() not in data


@pytest.mark.parametrize("interval", ["1d", "1m"])
def test_a_session_whose_object_is_gone_is_fetched_again_not_answered_without(cfg, ff, market, interval):
    """Two writers of two upstream versions at one instant can leave a record naming an object
    that is gone: the query fetches that session again (a warning says so), never answers
    without it, and the store is clean afterwards."""
    from finrpt_providers.store import layout

    start, end = ("2026-02-02", "2026-02-06") if interval == "1d" else ("2026-02-05", "2026-02-05")
    flat(cfg, "AAPL", start, end, interval)
    store = store_for(cfg)
    dataset = "day_aggs_v1" if interval == "1d" else "minute_aggs_v1"
    day = dt.date(2026, 2, 5)
    store.files.delete(store.records(dataset, 2026)[day].data)
    store.files.delete(layout.merged_path(dataset, 2026))  # no copy to answer instead
    ff.reset_counts()
    df = flat(cfg, "AAPL", start, end, interval)
    pdt.assert_frame_equal(df, truth_without_vwap(market, "AAPL", start, end, interval, "raw"), check_freq=False)
    assert ff.count() == 1  # that session's file, once
    assert store.verify(dataset) == []


def test_a_long_history_mostly_absent_upstream_lists_months_instead_of_asking_each_day(cfg, ff, market, caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="finrpt_providers")
    last = published(market)[-1]
    got = flat(cfg, "AAPL", "2016-01-04", last)
    pdt.assert_frame_equal(got, truth_without_vwap(market, "AAPL", market.sessions[0], last, "1d", "raw"),
                           check_freq=False, rtol=1e-9)
    gets = [p for m, p in ff.requests if m == "GET" and "/day_aggs_v1/" in p]
    lists = [p for m, p in ff.requests if m == "GET" and "/day_aggs_v1/" not in p]
    assert len(gets) == len(published(market)), "one GET per file that exists, none per absent day"
    assert 0 < len(lists) <= 12 * 11  # one listing per month of the range
    said = [r.getMessage() for r in caplog.records if "no day_aggs_v1 file upstream" in r.getMessage()]
    assert said and len(said[0]) < 300 and "sessions from 2016-01-04" in said[0]
    ff.reset_counts()
    assert flat(cfg, "AAPL", "2016-01-04", last).equals(got) and ff.count() == 0  # the marks hold: no request
