"""Concurrency and load: 8 threads give what serial calls give; 1,000 warm queries leave open
file descriptors and memory flat (measured here, from /proc)."""

from __future__ import annotations

import gc
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas.testing as pdt
import pytest

import finrpt_providers as fp

QUESTIONS = [
    ("AAPL", "2026-03-02", "2026-03-31", "1d", "total", "massive_flatfiles,massive_rest,yfinance"),
    ("NVDA", "2025-11-03", "2025-12-19", "1d", "raw", "massive_flatfiles,massive_rest,yfinance"),
    ("RSPL", "2026-01-05", "2026-02-27", "1d", "splits", "massive_rest,yfinance"),
    ("BRK.B", "2026-06-22", "2026-06-26", "1m", "raw", "massive_flatfiles,massive_rest,yfinance"),
    ("AAPL", "2026-06-22", "2026-06-26", "1h", "splits", "massive_rest,massive_flatfiles"),
    ("SPY", "2026-06-15", "2026-06-30", "1d", "splits", "massive_flatfiles,massive_rest"),  # stitched
    ("NVDA", "2026-06-22", "2026-06-26", "15m", "total", "yfinance,massive_rest"),
    ("BRK.B", "2025-12-01", "2026-01-30", "1d", "total", "yfinance,massive_flatfiles"),
    ("AAPL", "2026-06-23", "2026-06-24", "5m", "raw", "massive_flatfiles"),
    ("SPY", "2026-02-02", "2026-02-27", "1d", "total", "massive_rest"),
]


def _ask(cfg, q):
    ticker, start, end, interval, adjustment, chain = q
    return fp.get_prices(ticker, start, end, interval=interval, adjustment=adjustment, providers=chain.split(","),
                         config=cfg)


def test_eight_threads_give_the_serial_answers(all_cfg, tmp_path):
    serial = [_ask(all_cfg, q) for q in QUESTIONS]
    # a fresh store, so the threads also race on cold downloads and store writes
    cold = all_cfg.merged({"FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path / "threads")})
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda q: _ask(cold, q), QUESTIONS * 2))
    for i, df in enumerate(threaded):
        want = serial[i % len(QUESTIONS)]
        pdt.assert_frame_equal(df, want, check_freq=False)
        assert df.attrs["provider"] == want.attrs["provider"]
        assert [s["provider"] for s in df.attrs["sources"]] == [s["provider"] for s in want.attrs["sources"]]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_a_thousand_warm_queries_leave_fds_and_memory_flat(all_cfg, ff):
    flat = all_cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles"})
    asks = [("AAPL", "2026-01-05", "2026-06-26", "1d"), ("BRK.B", "2026-06-22", "2026-06-26", "1m"),
            ("NVDA", "2026-06-22", "2026-06-26", "1h"), ("SPY", "2025-06-02", "2026-06-29", "1d")]
    for t, s, e, i in asks * 25:  # warm the store and every cache first
        fp.get_prices(t, s, e, interval=i, adjustment="raw", config=flat)
    gc.collect()
    fds0, rss0 = _fds(), _rss_mb()
    ff.reset_counts()
    for n in range(1000):
        t, s, e, i = asks[n % len(asks)]
        df = fp.get_prices(t, s, e, interval=i, adjustment="raw", config=flat)
        assert len(df)
    gc.collect()
    fds1, rss1 = _fds(), _rss_mb()
    print(f"1,000 warm queries: open fds {fds0} -> {fds1}, RSS {rss0:.0f} -> {rss1:.0f} MB")
    assert ff.count() == 0  # warm: no S3 call at all
    assert fds1 - fds0 <= 2, f"open file descriptors grew from {fds0} to {fds1}"
    assert rss1 - rss0 < 40, f"RSS grew from {rss0:.0f} MB to {rss1:.0f} MB over 1,000 queries"
