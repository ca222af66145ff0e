"""The store under crashes and concurrency: SIGKILLed syncs, overlapping syncs, replaced
files upstream, damaged files; then `verify` and every query must give exactly the truth."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas.testing as pdt
import pytest

import finrpt_providers as fp
from finrpt_providers.providers.massive_flatfiles import store_for

DAYS = ("2026-05-01", "2026-06-26")


def _env(cfg) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINRPT_", "MASSIVE_"))}
    for name in ("MASSIVE_S3_ENDPOINT", "MASSIVE_S3_BUCKET", "MASSIVE_S3_ACCESS_KEY", "MASSIVE_S3_SECRET_KEY",
                 "FINRPT_PROVIDERS_CACHE_DIR", "FINRPT_PROVIDERS_TODAY"):
        env[name] = cfg.get(name)
    return env


def _cli(env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "finrpt_providers.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _truth_checks(cfg, market) -> None:
    flat = cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles"})
    for ticker in ("AAPL", "BRK.B", "NVDA"):
        df = fp.get_prices(ticker, *DAYS, adjustment="raw", config=flat)
        truth = market.truth(ticker, *DAYS, "1d", "raw")
        truth["vwap"] = float("nan")
        pdt.assert_frame_equal(df, truth, check_freq=False)
    m = fp.get_prices("AAPL", "2026-06-22", "2026-06-26", interval="1m", adjustment="raw", config=flat)
    truth = market.truth("AAPL", "2026-06-22", "2026-06-26", "1m", "raw")
    truth["vwap"] = float("nan")
    pdt.assert_frame_equal(m, truth, check_freq=False)


def test_sync_killed_at_random_points_then_rerun_is_exact(all_cfg, ff, market):
    env = {**_env(all_cfg), "MASSIVE_FLATFILES_DAY_FLUSH_SECONDS": "1"}
    args = ["sync", "--start", "2025-06-02", "--end", DAYS[1], "--datasets", "minute_aggs_v1", "day_aggs_v1",
            "--workers", "4"]
    # ~275 files at 0.1 s each over 4 workers: a full sync takes several seconds, so kills
    # 1.2-3 s into a run (the interpreter and imports take about one) land mid-sync
    ff.delay = 0.1
    rng = random.Random(20261124)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "finrpt_providers.cli", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.2, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        if kills == 3:
            break
    assert kills == 3
    ff.delay = 0.0
    res = _cli(env, *args)
    assert res.returncode == 0, res.stderr[-2000:]
    store = store_for(all_cfg)
    for dataset in ("day_aggs_v1", "minute_aggs_v1"):
        assert store.verify(dataset) == []
    assert list(Path(store.root).rglob("*.tmp")) == []
    ff.reset_counts()
    _truth_checks(all_cfg, market)
    assert ff.count() == 0  # all of it was in the store


def test_overlapping_syncs_in_two_processes(all_cfg, ff, market):
    env = _env(all_cfg)
    base = [sys.executable, "-m", "finrpt_providers.cli", "sync", "--datasets", "day_aggs_v1", "minute_aggs_v1",
            "--workers", "3"]
    a = subprocess.Popen(base + ["--start", DAYS[0], "--end", "2026-06-24"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    b = subprocess.Popen(base + ["--start", "2026-05-20", "--end", DAYS[1]], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    for p in (a, b):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    store = store_for(all_cfg)
    assert store.verify("day_aggs_v1") == [] and store.verify("minute_aggs_v1") == []
    ff.reset_counts()
    _truth_checks(all_cfg, market)
    assert ff.count() == 0


def test_verify_finds_and_repairs_damage_and_upstream_replacements(all_cfg, ff, market):
    env = _env(all_cfg)
    assert _cli(env, "sync", "--start", "2026-06-15", "--end", "2026-06-26", "--datasets", "day_aggs_v1",
                "minute_aggs_v1").returncode == 0
    assert _cli(env, "verify").returncode == 0
    store = store_for(all_cfg)
    # damage: a minute file cut in half, a stale temp file, a replaced file upstream
    minute = Path(store.root) / store.records("minute_aggs_v1", 2026)[dt.date(2026, 6, 23)].data
    minute.write_bytes(minute.read_bytes()[: minute.stat().st_size // 2])
    dead = Path(store.root) / "day_aggs_v1/year=2026" / ".data.parquet.999999999-dead.tmp"  # a killed writer's
    dead.write_bytes(b"half")
    replaced = dt.date(2026, 6, 17)
    ff.replace("day_aggs_v1", replaced, scale=1.05)
    try:
        res = _cli(env, "verify", "--upstream")
        assert res.returncode == 1
        assert "2026-06-23: damaged session" in res.stderr and "stale temp file" in res.stderr
        assert "2026-06-17: replaced upstream" in res.stderr and "--repair" in res.stderr
        res = _cli(env, "verify", "--upstream", "--repair")
        assert res.returncode == 0, res.stderr[-2000:]
        assert _cli(env, "verify", "--upstream").returncode == 0
        flat = all_cfg.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles"})
        day = fp.get_prices("AAPL", replaced, replaced, adjustment="raw", config=flat)
        assert day["close"].iloc[0] == pytest.approx(market.daily("AAPL").loc[str(replaced), "close"] * 1.05,
                                                     rel=1e-6)
        m = fp.get_prices("AAPL", "2026-06-23", "2026-06-23", interval="1m", adjustment="raw", config=flat,
                          extended_hours=True)  # the store keeps every minute, 04:00-20:00
        assert len(m) == len(market.minute("AAPL", dt.date(2026, 6, 23)))
    finally:
        ff.publish([replaced], ["day_aggs_v1"])
