"""Scale-out: the store on object storage (moto's S3 server: the upstream bucket AND, in
another bucket with its own keys, the store) and sync on a real Dask LocalCluster of
worker processes. The heavy forms (more sessions, more workers) are in
benchmarks/scale_out.py; these are small forms of each case."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

import finrpt_providers as fp
from finrpt_providers import ConfigurationError
from finrpt_providers.config import Config
from finrpt_providers.store import layout
from finrpt_providers.testing import FakeFlatFiles, FakeMassiveREST, SyntheticMarket

distributed = pytest.importorskip("distributed", reason="needs finrpt-providers[dask]")
from distributed import Client, LocalCluster  # noqa: E402

from finrpt_providers.providers.massive_flatfiles import store_for, sync  # noqa: E402

UPSTREAM_SECRET = "upstream-sentinel-9f2e7a11"
STORE_SECRET = "store-sentinel-4c81d0b3"
REST_KEY = "rest-sentinel-77aa12"
DAY, MINUTE = "day_aggs_v1", "minute_aggs_v1"
COLS = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def small_market() -> SyntheticMarket:
    return SyntheticMarket(start="2026-04-01", end="2026-06-30")


@pytest.fixture(scope="module")
def june(small_market) -> list:
    return [d for d in small_market.sessions if d.month == 6]


@pytest.fixture(scope="module")
def upstream(small_market, june):
    with FakeFlatFiles(small_market, days=june, minute_days=june, secret_key=UPSTREAM_SECRET) as ff:
        yield ff


@pytest.fixture(scope="module")
def rest(small_market):
    with FakeMassiveREST(small_market, api_key=REST_KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.WARNING) as lc:
        yield lc


_n = iter(range(10_000))


def s3_config(upstream, rest=None, **extra) -> Config:
    """A config whose store is a fresh prefix of a bucket with its own keys."""
    bucket = f"store-{next(_n)}"
    values = {**upstream.config(), **upstream.add_store_bucket(bucket, secret_key=STORE_SECRET),
              "FINRPT_PROVIDERS_CACHE_DIR": f"s3://{bucket}/research", "FINRPT_PROVIDERS_TODAY": "2026-07-01",
              "FINRPT_PRICE_PROVIDERS": "massive_flatfiles"}
    if rest is not None:
        values.update({"MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                       "FINRPT_PRICE_PROVIDERS": "massive_flatfiles,massive_rest"})
    values.update({k: str(v) for k, v in extra.items()})
    return Config.load(values, environ={})


def assert_every_session_is_the_truth(store, market, days, dataset=DAY) -> None:
    """Each stored session, every ticker, equal to the synthetic market (raw)."""
    from finrpt_providers.providers.massive_flatfiles import table_to_long

    assert sorted(store.stored(dataset, days)) == list(days)
    for d in days:
        got = table_to_long(store.read_days(dataset, [d]))
        for t in market.tickers:
            want = market.truth(t, d, d, "1d" if dataset == DAY else "1m", "raw", extended_hours=True)  # stored whole
            if want.empty:
                assert t not in got.index.get_level_values(0)
                continue
            mine = got.xs(t, level=0)
            assert len(mine) == len(want), (d, t)
            np.testing.assert_allclose(mine[COLS].to_numpy(), want[COLS].to_numpy(), rtol=1e-12)


# -- sync through the cluster -----------------------------------------------------------------------
def test_sync_on_the_cluster_into_an_s3_store_equals_the_truth(upstream, small_market, june, cluster, caplog):
    cfg = s3_config(upstream)
    lines = []
    bars: dict = {}  # the progress bar's feed: per dataset, (files, bytes) planned and each tick

    def progress(dataset, files, nbytes):
        bars[dataset] = {"planned": (files, nbytes), "ticks": []}
        return lambda done, got: bars[dataset]["ticks"].append((done, got))

    with Client(cluster) as client:
        out = sync(june[0], june[-1], datasets=[DAY, MINUTE], config=cfg, client=client, report=lines.append,
                   progress=progress)
        logs = repr(client.get_worker_logs()) + repr(client.get_scheduler_logs())
    assert len(out[DAY].fetched) == len(june) and len(out[MINUTE].fetched) == len(june)
    for ds in (DAY, MINUTE):  # one tick per file as the cluster finishes it, ending at the plan
        ticks = bars[ds]["ticks"]
        assert [n for n, _b in ticks] == list(range(1, len(june) + 1))
        assert ticks[-1] == (len(june), out[ds].bytes) and bars[ds]["planned"] == (len(june), out[ds].bytes)
    assert any("dashboard: http://" in ln for ln in lines)
    assert any("the year's copy by ticker holds 21 session(s) (rebuilt on the cluster)" in ln for ln in lines)
    store = store_for(cfg)
    assert store.verify(DAY) == [] and store.verify(MINUTE) == []
    assert_every_session_is_the_truth(store, small_market, june)
    assert_every_session_is_the_truth(store, small_market, june, MINUTE)
    # the store's objects: one per session plus its record, the derived year outside the dataset
    keys = {k for _m, k in upstream.store_requests}
    assert any(f"/day_aggs_v1/year=2026/date={june[0]}/part-" in k for k in keys)
    assert any(k.endswith(f"/_sources/day_aggs_v1/year=2026/{june[0]}.json") for k in keys)
    assert any("/_merged/day_aggs_v1/year=2026/data.parquet" in k for k in keys)
    # no secret in the workers' or the scheduler's logs, in our log records or report lines
    text = logs + repr(lines) + " ".join(r.getMessage() for r in caplog.records)
    for secret in (UPSTREAM_SECRET, STORE_SECRET):
        assert secret not in text


def test_task_names_and_the_graph_carry_no_secret(upstream, june, cluster):
    cfg = s3_config(upstream)
    upstream.delay = 0.3  # slow enough to look at the tasks while they run
    seen: dict = {}

    def spy():
        deadline = time.monotonic() + 20
        with Client(cluster, set_as_default=False) as watcher:  # a second default in a thread races the first
            while time.monotonic() < deadline and not seen:
                got = watcher.run_on_scheduler(_task_view)
                if got:
                    seen.update(got)
                time.sleep(0.05)

    t = threading.Thread(target=spy)
    t.start()
    try:
        with Client(cluster) as client:
            sync(june[0], june[5], datasets=[DAY], config=cfg, client=client)
    finally:
        upstream.delay = 0.0
        t.join()
    assert seen, "no task was seen running"
    assert all(k.startswith("finrpt-sync-day_aggs_v1-") for k in seen)
    blob = repr(seen)
    for secret in (UPSTREAM_SECRET, STORE_SECRET):
        assert secret not in blob


def _task_view(dask_scheduler=None):
    """On the scheduler: our tasks' keys and their pickled specs (what a graph written to disk holds)."""
    import pickle

    import cloudpickle

    out = {}
    for key, ts in dask_scheduler.tasks.items():
        if str(key).startswith("finrpt-sync-"):
            try:
                blob = cloudpickle.dumps(ts.run_spec)
            except Exception:  # noqa: BLE001
                blob = pickle.dumps(repr(ts.run_spec))
            out[str(key)] = blob
    return out


def test_a_worker_killed_mid_sync_the_sync_still_finishes_clean(upstream, small_market, june, cluster):
    cfg = s3_config(upstream)
    upstream.delay = 0.3  # 21 files on 2 workers: ~3 s, the kill lands mid-sync
    result: dict = {}

    def run():
        with Client(cluster) as client:
            result["out"] = sync(june[0], june[-1], datasets=[DAY], config=cfg, client=client)

    t = threading.Thread(target=run)
    t.start()
    try:
        with Client(cluster, set_as_default=False) as killer:
            time.sleep(1.0)
            pids = killer.run(os.getpid)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)  # really kill the worker process
            assert t.is_alive(), "the sync ended before the kill: the test would prove nothing"
        t.join(timeout=180)
    finally:
        upstream.delay = 0.0
    assert not t.is_alive()
    assert len(result["out"][DAY].fetched) == len(june)
    store = store_for(cfg)
    assert store.verify(DAY) == []
    assert_every_session_is_the_truth(store, small_market, june)
    with Client(cluster) as c:  # the nanny brought a worker back
        c.wait_for_workers(2, timeout=60)


def test_two_clients_syncing_overlapping_ranges_at_once_lose_and_duplicate_nothing(upstream, small_market, june):
    """Two clusters (two 'machines'), each with its own client, syncing overlapping ranges into one
    S3 store at the same time. The clusters start one after the other (distributed's dashboard
    import is not thread-safe); the syncs run at once."""
    cfg = s3_config(upstream)
    errors = []
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(Client(set_as_default=False, address=stack.enter_context(
            LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0",
                         silence_logs=logging.WARNING)))) for _ in range(2)]
        barrier = threading.Barrier(2)

        def run(client, lo, hi):
            try:
                barrier.wait(timeout=30)
                sync(lo, hi, datasets=[DAY, MINUTE], config=cfg, client=client)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=run, args=(clients[0], june[0], june[14])),
                   threading.Thread(target=run, args=(clients[1], june[5], june[-1]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
    assert errors == []
    store = store_for(cfg)
    assert store.verify(DAY) == [] and store.verify(MINUTE) == []
    assert_every_session_is_the_truth(store, small_market, june)
    assert_every_session_is_the_truth(store, small_market, june, MINUTE)
    rows = store.read_days(DAY, june)
    keys = pd.DataFrame({"t": rows.column("ticker").to_pylist(), "w": rows.column("window_start").to_pylist()})
    assert not keys.duplicated().any()
    assert len(rows) == sum(len(small_market.cross_section(d)) for d in june)


# -- reading the store --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synced(upstream, rest, june):
    """One S3 store with June's day files (and minute files), and a local store with the same."""
    cfg = s3_config(upstream, rest)
    sync(june[0], june[-1], datasets=[DAY, MINUTE], config=cfg)
    return cfg


def test_get_prices_from_the_s3_store_equals_the_local_store(synced, upstream, rest, june, tmp_path):
    local = Config.load({**{k: v for k, v in synced._values.items() if not k.startswith("FINRPT_STORE_S3")},
                         "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path)}, environ={})
    for adj in ("raw", "splits", "total"):
        a = fp.get_prices(["AAPL", "NVDA", "SPY"], june[0], june[-1], adjustment=adj, config=synced)
        b = fp.get_prices(["AAPL", "NVDA", "SPY"], june[0], june[-1], adjustment=adj, config=local)
        pd.testing.assert_frame_equal(a, b)
        assert set(a.attrs["provider"].values()) == {"massive_flatfiles"}
    m1 = fp.get_prices("AAPL", june[0], june[2], interval="5m", adjustment="raw", config=synced)
    m2 = fp.get_prices("AAPL", june[0], june[2], interval="5m", adjustment="raw", config=local)
    pd.testing.assert_frame_equal(m1, m2)


def test_a_warm_read_from_the_s3_store_costs_its_listings_only(synced, upstream, june):
    """The records are parsed once per object version and the merged copy's footer once: a
    warm one-ticker question lists the year's records (once for plan and read), asks for the
    merged copy's version and reads the ticker's row group; no record is fetched again."""
    fp.get_prices("AAPL", june[0], june[-1], adjustment="raw", config=synced)  # warm-up
    n0 = len(upstream.store_requests)
    got = fp.get_prices("AAPL", june[0], june[-1], adjustment="raw", config=synced)
    asked = upstream.store_requests[n0:]
    assert len(got) == len(june)
    assert not [k for _m, k in asked if "/_sources/" in k and k.endswith(".json")]
    assert len([1 for m, k in asked if m == "GET" and k.count("/") == 1]) == 1  # one listing: the records
    assert len(asked) <= 4, asked  # and the year's copy: its HEAD and the ticker's row group


def test_duckdb_polars_and_dask_read_the_same_rows(synced, june):
    import dask.dataframe as dd
    import duckdb
    import polars as pl
    import pyarrow.dataset as pads

    import pyarrow.fs as pafs

    store = store_for(synced)
    scheme, endpoint = synced.get("FINRPT_STORE_S3_ENDPOINT").split("://", 1)
    fs = pafs.S3FileSystem(access_key=synced.get("FINRPT_STORE_S3_ACCESS_KEY"), region="us-east-1",
                           secret_key=synced.get("FINRPT_STORE_S3_SECRET_KEY"), endpoint_override=endpoint,
                           scheme=scheme)
    base = f"{store.root.split('://', 1)[1]}/day_aggs_v1"
    ds = pads.dataset(base, filesystem=fs, format="parquet", partitioning="hive")
    arrow = ds.to_table()
    n = len(store.read_days(DAY, june))
    assert arrow.num_rows == n
    con = duckdb.connect()
    con.register("bars", ds)
    got = con.execute("select count(*), sum(volume), count(distinct ticker) from bars").fetchone()
    assert got[0] == n and got[1] == pytest.approx(float(np.sum(arrow.column("volume").to_numpy())))
    pl_count = pl.scan_pyarrow_dataset(ds).select(pl.len()).collect().item()
    assert pl_count == n
    dask_frame = dd.read_parquet(base, filesystem=fs)
    assert len(dask_frame) == n
    assert "year" in dask_frame.columns and "date" in dask_frame.columns  # the Hive partitions


def test_read_bars_adjusts_as_get_market_does_and_runs_the_readme_example(synced, june, cluster):
    from finrpt_providers.dask import read_bars

    with Client(cluster) as client:
        for adj in ("raw", "splits", "total"):
            bars = read_bars(DAY, june[0], june[-1], adjustment=adj, config=synced, client=client)
            assert bars.npartitions == 1  # one year
            got = bars.compute().set_index(["ticker", "timestamp"]).sort_index()
            want = fp.get_market(june[0], june[-1], adjustment=adj, config=synced, providers=["massive_flatfiles"])
            np.testing.assert_allclose(got[COLS].to_numpy(), want[COLS].to_numpy(), rtol=1e-12)
        minutes = read_bars(MINUTE, june[0], june[2], tickers=["AAPL"], config=synced, client=client)
        assert minutes.npartitions == 3  # one per session
        assert set(minutes.ticker.unique().compute()) == {"AAPL"}
        # intraday partitions adjusted on the workers by the same market pipeline (daily closes)
        got = (read_bars(MINUTE, june[0], june[2], adjustment="total", config=synced, client=client)
               .compute().set_index(["ticker", "timestamp"]).sort_index())
        want = fp.get_market(june[0], june[2], interval="1m", adjustment="total", config=synced,
                             providers=["massive_flatfiles"])
        assert got.index.equals(want.index)
        np.testing.assert_allclose(got[COLS].to_numpy(), want[COLS].to_numpy(), rtol=1e-12)
        # the README's market-wide example: average daily dollar volume, top tickers
        bars = read_bars(DAY, june[0], june[-1], adjustment="splits", config=synced, client=client)
        top = (bars.assign(dollar_volume=bars.close * bars.volume)
               .groupby("ticker").dollar_volume.mean().nlargest(3).compute())
    market = fp.get_market(june[0], june[-1], adjustment="splits", config=synced, providers=["massive_flatfiles"])
    dv = (market.close * market.volume).groupby(level=0).mean().nlargest(3)
    assert list(top.index) == list(dv.index)
    np.testing.assert_allclose(top.to_numpy(), dv.to_numpy(), rtol=1e-12)


# -- the store's rules on its own ------------------------------------------------------------------
def test_a_data_object_without_its_record_is_not_stored_and_verify_repairs_it(synced, small_market, june):
    store = store_for(synced)
    day = june[3]
    data = store.records(DAY, day.year)[day].data
    store.files.delete(layout.record_path(DAY, day))  # a writer stopped between the two writes
    assert day not in store.stored(DAY, [day])
    assert store.files.read(data) is not None
    assert [(p.day, p.what) for p in store.verify(DAY)] == [(day, "unrecorded data")]
    store.verify(DAY, repair=True)  # --repair: the orphan goes
    assert store.files.read(data) is None
    out = sync(june[0], june[-1], datasets=[DAY], config=synced)  # and the next sync fetches it again
    assert out[DAY].fetched == [day]
    assert store.verify(DAY) == []
    assert_every_session_is_the_truth(store, small_market, june)


def test_a_file_url_store_and_bad_locations(upstream, june, tmp_path):
    cfg = Config.load({**upstream.config(), "FINRPT_PROVIDERS_CACHE_DIR": f"file://{tmp_path}/shared",
                       "FINRPT_PROVIDERS_TODAY": "2026-07-01", "FINRPT_PRICE_PROVIDERS": "massive_flatfiles"},
                      environ={})
    sync(june[0], june[2], config=cfg)
    assert list((tmp_path / "shared/massive/us_stocks_sip/day_aggs_v1/year=2026" / f"date={june[0]}").glob("part-*"))
    assert store_for(cfg).verify(DAY) == []
    with pytest.raises(ConfigurationError, match="FINRPT_PROVIDERS_CACHE_DIR"):
        Config.load({"FINRPT_PROVIDERS_CACHE_DIR": "s3://"}, environ={}).store_location
    with pytest.raises(ConfigurationError, match="both FINRPT_STORE_S3_ACCESS_KEY"):
        store_for(Config.load({"FINRPT_PROVIDERS_CACHE_DIR": "s3://b/p", "FINRPT_STORE_S3_ACCESS_KEY": "x"},
                              environ={}))


def test_a_missing_extra_is_one_line_naming_it(monkeypatch):
    import importlib.util

    from finrpt_providers import dask as fpdask

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "distributed" else real(n, *a))
    with pytest.raises(ConfigurationError) as err:
        fpdask.read_bars(DAY, "2026-06-01", "2026-06-30")
    assert str(err.value) == "this needs distributed: pip install 'finrpt-providers[dask]'"


def test_cli_sync_on_a_local_cluster_and_bad_addresses(upstream, june, tmp_path):
    cfg = s3_config(upstream)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASSIVE_", "FINRPT_", "POLYGON_"))}
    env.update({k: str(v) for k, v in cfg._values.items()})
    args = [sys.executable, "-m", "finrpt_providers.cli", "sync", "--start", str(june[0]), "--end", str(june[4])]
    done = subprocess.run([*args, "--cluster", "local:1"], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "dashboard: http://" in done.stdout + done.stderr and "fetched 5 files" in done.stdout + done.stderr
    for secret in (UPSTREAM_SECRET, STORE_SECRET):
        assert secret not in done.stdout + done.stderr
    bad = subprocess.run([*args, "--cluster", "local:x"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "local:N" in bad.stderr
    # verify and repair on the S3 store, from the command line: a damaged session object
    store = store_for(cfg)
    store.files.write(store.records(DAY, 2026)[june[2]].data, b"not parquet at all")
    cli = [sys.executable, "-m", "finrpt_providers.cli", "verify", "--datasets", DAY]
    found = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=120)
    assert found.returncode == 1 and f"{DAY} {june[2]}" in found.stdout + found.stderr
    fixed = subprocess.run([*cli, "--repair"], capture_output=True, text=True, env=env, timeout=120)
    out = fixed.stdout + fixed.stderr
    assert fixed.returncode == 0, out
    assert "repaired 1 session(s)" in out and "the year's copy by ticker holds 5 session(s)" in out
    assert store.verify(DAY) == []


def test_a_session_object_vanishing_between_listing_and_read_is_an_error_not_a_gap(upstream, june, monkeypatch):
    """A concurrent repair may delete a session after it was listed: the read must fail loudly
    (the chain then asks the next provider), never answer as if the session had no rows."""
    from finrpt_providers import DataIntegrityError
    from finrpt_providers.store.engine import Engine

    cfg = s3_config(upstream)
    sync(june[0], june[1], datasets=[MINUTE], config=cfg)
    store = store_for(cfg)
    real = Engine.records

    def listed_then_gone(self, dataset, year, reuse=False):
        have = real(self, dataset, year, reuse)
        self.files.delete(have[june[1]].data)  # another process's repair, right after the listing
        return have

    monkeypatch.setattr(Engine, "records", listed_then_gone)
    with pytest.raises(DataIntegrityError, match=f"object of {june[1]} .*missing although its record names it"):
        store.read_tickers(MINUTE, june[:2], ["AAPL"])


def test_an_fsspec_store(upstream, small_market, june):
    """A scheme other than a path, file:// or s3:// goes through fsspec (here its in-memory
    filesystem): the same layout, the same checks."""
    import fsspec

    cfg = Config.load({**upstream.config(), "FINRPT_PROVIDERS_CACHE_DIR": "memory://scale-out-test/store",
                       "FINRPT_PROVIDERS_TODAY": "2026-07-01", "FINRPT_PRICE_PROVIDERS": "massive_flatfiles"},
                      environ={})
    sync(june[0], june[2], config=cfg)
    store = store_for(cfg)
    assert store.verify(DAY) == []
    assert_every_session_is_the_truth(store, small_market, june[:3])
    assert not [p for p in fsspec.filesystem("memory").find("/scale-out-test") if p.endswith(".tmp")]
