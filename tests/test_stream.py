"""Live bars: the stream over a real WebSocket server on 127.0.0.1 (the fake Massive cluster)
and the fake REST for fills. Every fault ends in its documented outcome in bounded time."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import finrpt_providers as fp
from finrpt_providers import AuthenticationFailed, ConfigurationError, InvalidQuery, NotEntitled, ProviderUnavailable
from finrpt_providers.config import Config
from finrpt_providers.live import stream
from finrpt_providers.testing import FakeMassiveREST, SyntheticMarket
from finrpt_providers.testing.fake_massive_ws import FakeMassiveWS
from finrpt_providers.testing.market import second_bars

KEY = "ws-sentinel-key-8c1f0d"
COLS = ["open", "high", "low", "close", "volume", "vwap"]


@pytest.fixture(scope="module")
def short_market() -> SyntheticMarket:
    return SyntheticMarket(start="2026-06-22", end="2026-06-30")


@pytest.fixture(scope="module")
def rest(short_market):
    with FakeMassiveREST(short_market, api_key=KEY) as srv:
        yield srv


@pytest.fixture
def ws(short_market, rest):
    rest.reset()
    with FakeMassiveWS(short_market, api_key=KEY, speed=40.0, tickers=["AAPL", "SPY", "NVDA"]) as srv:
        yield srv


def cfg(short_market, rest, ws, **extra) -> Config:
    values = {"MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": rest.url, "FINRPT_PRICE_PROVIDERS": "massive_rest",
              "FINRPT_PROVIDERS_TODAY": short_market.sessions[-1].isoformat(), "MASSIVE_REST_BACKOFF": "0.01",
              "MASSIVE_REST_MAX_RETRIES": "1", "FINRPT_STREAM_BACKOFF": "0.02", "MASSIVE_WS_PING_INTERVAL": "1",
              "MASSIVE_WS_PING_TIMEOUT": "2", "MASSIVE_WS_OPEN_TIMEOUT": "3", **ws.config()}
    values.update({k: str(v) for k, v in extra.items()})
    return Config.load(values, environ={})


def take(s, n: int, timeout: float = 30.0) -> pd.DataFrame:
    """Read frames until ``n`` bars arrived (bounded in time)."""
    frames, got, t0 = [], 0, time.monotonic()
    for frame in s:
        frames.append(frame)
        got += len(frame)
        if got >= n:
            break
        assert time.monotonic() - t0 < timeout, "the stream stopped delivering"
    return frames


def assert_exactly_the_truth(bars: pd.DataFrame, ws: FakeMassiveWS, tickers, interval="1m") -> None:
    assert bars.index.is_unique
    for t in tickers:
        mine = bars.xs(t, level=0)
        assert mine.index.is_monotonic_increasing
        truth = ws.truth(t, interval)
        assert mine.index[0] == truth.index[0]
        truth = truth[truth.index <= mine.index[-1]]
        assert len(mine) == len(truth), f"{t}: {len(mine)} bars, the truth has {len(truth)} up to the last one"
        np.testing.assert_allclose(mine[COLS].to_numpy(), truth[COLS].to_numpy(), rtol=1e-12)


# -- values, shape, provenance ---------------------------------------------------------------
def test_minute_bars_equal_the_truth_in_the_bar_frame_contract(short_market, rest, ws):
    with stream(["AAPL", "SPY"], config=cfg(short_market, rest, ws)) as s:
        frames = take(s, 30)
    first = frames[0]
    assert first.attrs == {"provider": "massive_rest", "feed": "real-time", "source": "stream", "interval": "1m"}
    assert first.index.names == ["ticker", "timestamp"]
    assert str(first.index.get_level_values(1).tz) == "America/New_York"
    assert list(first.columns) == list(fp.BAR_COLUMNS)
    assert first["volume"].dtype == "float64" and str(first["transactions"].dtype) == "Int64"
    assert first.index.get_level_values(1)[0] == pd.Timestamp(f"{short_market.sessions[-1]} 09:30",
                                                              tz="America/New_York")  # start of the bar
    assert_exactly_the_truth(pd.concat(frames), ws, ["AAPL", "SPY"])
    assert ws.connections == 1 and ws.received[1] == {"action": "subscribe", "params": "AM.AAPL,AM.SPY",
                                                     "feed": "real-time"}


def test_a_string_ticker_gives_single_ticker_frames_and_the_delayed_feed_is_named(short_market, rest, ws):
    with stream("AAPL", config=cfg(short_market, rest, ws, MASSIVE_WS_FEED="delayed")) as s:
        frame = next(s)
    assert frame.index.name == "timestamp" and frame.attrs["feed"] == "delayed"
    assert ws.received[0]["feed"] == "delayed"


def test_second_bars_equal_the_truth_and_add_up_to_the_minute(short_market, rest, ws):
    with stream(["NVDA"], interval="1s", config=cfg(short_market, rest, ws)) as s:
        bars = pd.concat(take(s, 30))
    assert ws.received[1]["params"] == "A.NVDA"
    assert_exactly_the_truth(bars, ws, ["NVDA"], "1s")
    minutes = bars.xs("NVDA").iloc[:27]  # nine whole minutes
    agg = minutes.groupby(minutes.index.floor("min")).agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    truth = ws.truth("NVDA").iloc[:9]
    np.testing.assert_allclose(agg.to_numpy(), truth[agg.columns].to_numpy(), rtol=1e-12)


# -- staying up --------------------------------------------------------------------------------
def test_a_dropped_connection_is_reopened_and_the_hole_filled_from_rest(short_market, rest, ws, caplog):
    caplog.set_level(logging.INFO, logger="finrpt_providers")
    ws.drop_after = 5
    with stream(["AAPL", "SPY"], config=cfg(short_market, rest, ws)) as s:
        frames = take(s, 120)
    assert ws.connections == 2
    fills = [f for f in frames if f.attrs["source"] == "fill"]
    assert fills, "nothing was filled after the reconnect"
    bars = pd.concat(frames)
    assert_exactly_the_truth(bars, ws, ["AAPL", "SPY"])  # every bar once, in order, no gap
    asked = [r.path for r in rest.aggregate_requests()]
    assert any("/range/1/minute/" in p for p in asked)
    said = [r.getMessage() for r in caplog.records if "filled" in r.getMessage()]
    assert said and "AAPL after 09:34:00" in said[0]
    # the filled bars are REST's (with trade counts); the streamed ones carry none
    assert fills[0]["transactions"].notna().all()


def test_a_stalled_connection_times_out_on_its_ping_and_is_reopened(short_market, rest, ws):
    ws.stall_after = 3
    t0 = time.monotonic()
    with stream(["AAPL"], config=cfg(short_market, rest, ws, MASSIVE_WS_PING_INTERVAL="0.3",
                                      MASSIVE_WS_PING_TIMEOUT="0.5")) as s:
        bars = pd.concat(take(s, 40))
    assert time.monotonic() - t0 < 30
    assert ws.connections == 2
    assert_exactly_the_truth(bars, ws, ["AAPL"])


def test_a_failed_fill_is_never_silent(short_market, rest, ws, caplog):
    ws.drop_after = 3
    rest.fail_next, rest.fail_status = 1000, 500
    with stream(["AAPL"], config=cfg(short_market, rest, ws)) as s:
        frames = take(s, 10)
    marked = [f for f in frames if "gaps" in f.attrs]
    assert marked and "AAPL" in marked[0].attrs["gaps"]
    after, before = marked[0].attrs["gaps"]["AAPL"]
    assert before - after > pd.Timedelta(minutes=1)
    assert any("could not fill" in r.getMessage() for r in caplog.records)


def test_a_slow_consumer_pauses_the_reader_and_loses_nothing(short_market, rest, ws, caplog):
    caplog.set_level(logging.WARNING, logger="finrpt_providers")
    ws.burst = True
    with stream(["AAPL", "SPY"], config=cfg(short_market, rest, ws, FINRPT_STREAM_QUEUE=4)) as s:
        frames, peak = [], 0
        for frame in s:
            peak = max(peak, s._queue.qsize())
            frames.append(frame)
            time.sleep(0.02)
            if len(frames) >= 40:
                break
    assert peak <= 4
    assert any("behind" in r.getMessage() and "no bar is dropped" in r.getMessage() for r in caplog.records)
    assert_exactly_the_truth(pd.concat(frames), ws, ["AAPL", "SPY"])


# -- faults that end the stream ----------------------------------------------------------------
def _first_error(s, timeout=15.0):
    t0 = time.monotonic()
    with pytest.raises(fp.ProviderError) as err:
        next(s)
    assert time.monotonic() - t0 < timeout
    assert s.closed
    return err


def test_a_refused_key_is_authentication_failed(short_market, rest, ws):
    ws.reject_auth = True
    err = _first_error(stream(["AAPL"], config=cfg(short_market, rest, ws)))
    assert err.type is AuthenticationFailed and "MASSIVE_API_KEY" in str(err.value)
    assert ws.connections == 1  # not retried


def test_a_plan_with_the_delayed_feed_only_is_told_to_use_it(short_market, rest, ws):
    ws.plan = ("delayed",)
    err = _first_error(stream(["AAPL"], config=cfg(short_market, rest, ws)))
    assert err.type is NotEntitled and "MASSIVE_WS_FEED=delayed" in str(err.value)
    ws.plan = ()
    err = _first_error(stream(["AAPL"], config=cfg(short_market, rest, ws)))
    assert err.type is NotEntitled and "MASSIVE_WS_FEED" not in str(err.value) and "pricing" in str(err.value)


def test_another_process_holding_the_connection_is_said_plainly(short_market, rest, ws):
    config = cfg(short_market, rest, ws)
    with stream(["AAPL"], config=config) as first:
        next(first)
        err = _first_error(stream(["SPY"], config=config))
        assert err.type is ProviderUnavailable and "another process holds it" in str(err.value)
        next(first)  # the first one is untouched


def test_a_server_that_is_gone_fails_after_the_configured_reconnects(short_market, rest, ws):
    config = cfg(short_market, rest, ws, FINRPT_STREAM_MAX_RECONNECTS=2)
    ws.stop()
    err = _first_error(stream(["AAPL"], config=config))
    assert err.type is ProviderUnavailable and "FINRPT_STREAM_MAX_RECONNECTS" in str(err.value)


def test_the_key_is_in_no_log_record_and_no_error_at_debug(short_market, rest, ws, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("websockets", "websockets.client", "websockets.server"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    ws.drop_after = 2
    with stream(["AAPL"], config=cfg(short_market, rest, ws)) as s:
        take(s, 8)
        assert KEY not in repr(s) and KEY not in repr(s._feed)
    ws.reject_auth = True
    err = _first_error(stream(["AAPL"], config=cfg(short_market, rest, ws)))
    texts = [r.getMessage() for r in caplog.records] + [str(err.value), repr(err.value)]
    assert len(caplog.records) > 5
    assert not [t for t in texts if KEY in t]


# -- the consumer's side -------------------------------------------------------------------------
def test_subscribe_and_unsubscribe_while_running(short_market, rest, ws):
    with stream(["AAPL"], config=cfg(short_market, rest, ws)) as s:
        take(s, 3)
        s.subscribe("SPY")
        seen = set()
        for frame in s:
            seen |= set(frame.index.get_level_values(0))
            if "SPY" in seen:
                break
        s.unsubscribe(["AAPL"])
        assert s.tickers == ["SPY"]
        time.sleep(0.3)
        later = take(s, 20)
    assert {"action": "unsubscribe", "params": "AM.AAPL", "feed": "real-time"} in ws.received
    tail = pd.concat(later[-5:])
    assert set(tail.index.get_level_values(0)) == {"SPY"}


def test_async_iteration_and_close(short_market, rest, ws):
    async def main():
        got = []
        async with stream(["AAPL"], config=cfg(short_market, rest, ws)) as s:
            async for frame in s:
                got.append(frame)
                if len(got) == 5:
                    break
        return got, s

    frames, s = asyncio.run(main())
    assert len(frames) == 5 and s.closed and not s._thread.is_alive()
    assert_exactly_the_truth(pd.concat(frames), ws, ["AAPL"])
    with pytest.raises(StopIteration):
        next(s)  # a closed stream ends


@pytest.mark.parametrize("args, kwargs, match", [
    ([[]], {}, "at least one ticker"),
    ([["AAPL"]], {"interval": "5m"}, "cannot be streamed"),
    ([["AAPL", "no such"]], {}, "ticker"),
])
def test_bad_arguments_fail_before_any_connection(short_market, rest, ws, args, kwargs, match):
    with pytest.raises(InvalidQuery, match=match):
        stream(*args, config=cfg(short_market, rest, ws), **kwargs)
    assert ws.connections == 0


def test_no_streaming_provider_or_no_key_is_a_configuration_error(short_market, rest, ws):
    with pytest.raises(ConfigurationError, match="add one of massive_rest"):
        stream(["AAPL"], config=cfg(short_market, rest, ws, FINRPT_PRICE_PROVIDERS="yfinance"))
    with pytest.raises(ConfigurationError, match="MASSIVE_API_KEY"):
        stream(["AAPL"], config=cfg(short_market, rest, ws, MASSIVE_API_KEY=""))
    assert ws.connections == 0


# -- today's session in the chain ----------------------------------------------------------------
def test_the_chain_joins_the_streams_bars_after_the_providers_last_one(short_market, rest, ws):
    day = short_market.sessions[-1]
    rest.intraday_until = pd.Timestamp(f"{day} 09:40", tz="America/New_York")  # a delayed plan's REST
    config = cfg(short_market, rest, ws)
    with stream(["AAPL"], config=config) as s:
        take(s, 25)
        one = fp.get_prices("AAPL", day, day, interval="1m", adjustment="raw", config=config)
        five = fp.get_prices("AAPL", day, day, interval="5m", adjustment="splits", config=config)
        basket = fp.get_prices(["AAPL", "SPY"], day, day, interval="1m", adjustment="raw", config=config)
    names = [src["provider"] for src in one.attrs["sources"]]
    assert names == ["massive_rest", "massive_rest (stream, real-time)"]
    assert one.attrs["sources"][1]["first"] == rest.intraday_until
    truth = short_market.truth("AAPL", day, day, "1m", "raw")
    truth = truth[truth.index <= one.index[-1]]
    assert one.index[-1] >= pd.Timestamp(f"{day} 09:54", tz="America/New_York")
    np.testing.assert_allclose(one[COLS].to_numpy(), truth[COLS].to_numpy(), rtol=1e-12)
    t5 = short_market.truth("AAPL", day, day, "5m", "splits")
    t5 = t5[t5.index <= five.index[-1]]
    np.testing.assert_allclose(five[COLS].to_numpy(), t5[COLS].to_numpy(), rtol=1e-9)
    assert (five.index[-1] + pd.Timedelta(minutes=5)) <= one.index[-1] + pd.Timedelta(minutes=1)  # closed only
    assert [src["provider"] for src in basket.attrs["sources"]["AAPL"]][-1] == "massive_rest (stream, real-time)"
    assert "SPY" not in basket.attrs["provider"] or "stream" not in basket.attrs["provider"]["SPY"]
    assert len(basket.xs("AAPL")) >= len(one)


def test_the_chain_refuses_to_join_across_a_hole(short_market, rest, ws, caplog):
    day = short_market.sessions[-1]
    rest.intraday_until = pd.Timestamp(f"{day} 09:10", tz="America/New_York")  # 09:10-09:29 known to nobody
    config = cfg(short_market, rest, ws)
    with stream(["AAPL"], config=config, extended_hours=True) as s:
        take(s, 5)
        df = fp.get_prices("AAPL", day, day, interval="1m", adjustment="raw", config=config, extended_hours=True)
        # the regular session starts at 09:30, where the stream starts: no hole, joined
        regular = fp.get_prices("AAPL", day, day, interval="1m", adjustment="raw", config=config)
    assert df.index[-1] < rest.intraday_until
    assert [src["provider"] for src in df.attrs["sources"]] == ["massive_rest"]
    assert any("not joined" in r.getMessage() for r in caplog.records)
    assert regular.index[0] == pd.Timestamp(f"{day} 09:30", tz="America/New_York")
    assert [src["provider"] for src in regular.attrs["sources"]] == [f"{s.provider} (stream, {s.feed})"]


# -- the command line ----------------------------------------------------------------------------
def _toml(tmp_path, short_market, rest, ws) -> str:
    path = tmp_path / "fp.toml"
    path.write_text(
        "[chain]\nproviders = \"massive_rest\"\n"
        f"today = \"{short_market.sessions[-1]}\"\n"
        f"[massive_rest]\napi_key = \"{KEY}\"\nbase_url = \"{rest.url}\"\n"
        f"ws_realtime_url = \"{ws.url('real-time')}\"\nws_delayed_url = \"{ws.url('delayed')}\"\n")
    return str(path)


def _cli(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASSIVE_", "FINRPT_", "POLYGON_"))}
    return subprocess.Popen([sys.executable, "-m", "finrpt_providers.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_cli_stops_after_count_bars_and_at_until(tmp_path, short_market, rest, ws):
    toml = _toml(tmp_path, short_market, rest, ws)
    p = _cli("--config", toml, "stream", "AAPL", "SPY", "--count", "5", "--format", "csv")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "ticker,timestamp,open,high,low,close,volume,vwap,source" and len(lines) == 6
    assert lines[1].startswith(f"AAPL,{short_market.sessions[-1]}T09:30:00-04:00,")
    assert "massive_rest (real-time feed)" in err
    ws.reset()  # the replay from 09:30 again
    p = _cli("--config", toml, "stream", "AAPL", "--until", "09:36", "--format", "json")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert [ln.count("\"ticker\": \"AAPL\"") for ln in out.strip().splitlines()] == [1] * 6  # 09:30..09:35


def test_cli_exits_0_on_ctrl_c_and_2_on_bad_input(tmp_path, short_market, rest, ws):
    toml = _toml(tmp_path, short_market, rest, ws)
    p = _cli("--config", toml, "stream", "AAPL")
    first = p.stdout.readline()
    assert "AAPL" in first
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0 and "stopped after" in err
    p = _cli("--config", toml, "stream", "AAPL", "--until", "25:99")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 2 and "HH:MM" in err
