"""Scale-out: sync on a Dask cluster and the store on object storage, against the
single-process sync and the local store, measured in the same run.

Data: ``flatfiles.py``'s generated files of real size (cached in --data): the year of
day files (250 sessions x 12,000 tickers) and 6 minute files (~1.9M rows each), served
by moto's S3 server on 127.0.0.1 from THIS process; every case runs in a fresh child
process (as in flatfiles.py), so the upstream server never shares a process with the work.

    ./dev bench scale_out [--days 250] [--skip-minute]

Sync rows: MB/s of decompressed CSV (what the upstream files hold), from "sync started"
to "sync returned", merges included. Baseline: the single-process sync (4 downloads at
once, MASSIVE_FLATFILES_WORKERS) into a local store. The cluster rows use a LocalCluster
of N worker processes (one thread each), started before the clock (a cluster is
long-lived); the S3 store is another bucket of the same moto server.

Read rows: the same questions against the local store and the S3 store (medians of N
after a warm-up call, in one process each).

Read the ratios with the machine in mind: `nproc` cores are shared by the moto server,
the workers and the driver, so a 2-worker cluster on a 2-core machine measures the
overhead and the per-worker rate, not the cluster's reach (see the README's projection).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent))

DAY, MINUTE = "day_aggs_v1", "minute_aggs_v1"


def child(case: str, a: dict) -> dict:
    from finrpt_providers.config import Config

    cfg = Config.load(a["config"], environ={})
    out: dict = {}
    if case == "sync":
        import logging

        from finrpt_providers.providers.massive_flatfiles import sync

        client = cluster = None
        if a["cluster"]:
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=a["cluster"], threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=logging.ERROR)
            client = Client(cluster)
            client.wait_for_workers(a["cluster"])
        t = time.perf_counter()
        res = sync(a["start"], a["end"], datasets=[a["dataset"]], config=cfg, client=client)
        out["seconds"] = time.perf_counter() - t
        r = res[a["dataset"]]
        out["files"], out["csv_bytes"], out["gz_bytes"] = len(r.fetched), r.csv_bytes, r.bytes
        if client is not None:
            client.close()
            cluster.close()
    elif case == "read":
        import finrpt_providers as fp

        def median_ms(fn, n):
            fn()  # warm-up: the process's caches, the store's listings
            times = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return statistics.median(times) * 1000

        start, end, n = a["start"], a["end"], a["n"]
        if a.get("minute_day"):
            d = a["minute_day"]
            out["minute_day"] = median_ms(lambda: fp.get_prices("AAPL", d, d, interval="1m", adjustment="raw",
                                                                config=cfg, providers=["massive_flatfiles"]), n)
            return out
        out["ticker_year"] = median_ms(lambda: fp.get_prices("AAPL", start, end, adjustment="raw", config=cfg,
                                                             providers=["massive_flatfiles"]), n)
        out["basket_year"] = median_ms(lambda: fp.get_prices(a["basket"], start, end, adjustment="raw", config=cfg,
                                                             providers=["massive_flatfiles"]), max(3, n // 3))
        out["market_session"] = median_ms(lambda: fp.get_market(end, end, adjustment="raw", config=cfg,
                                                                providers=["massive_flatfiles"]), n)
    elif case == "read_bars":
        import logging

        from distributed import Client, LocalCluster

        from finrpt_providers.dask import read_bars

        with LocalCluster(n_workers=a["workers"], threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.ERROR) as lc, Client(lc) as client:
            client.wait_for_workers(a["workers"])
            t = time.perf_counter()
            bars = read_bars(DAY, a["start"], a["end"], adjustment="raw", config=cfg, client=client)
            top = (bars.assign(dollar_volume=bars.close * bars.volume)
                   .groupby("ticker").dollar_volume.mean().nlargest(20).compute())
            out["seconds"] = time.perf_counter() - t
            out["rows"] = int(len(top))
    else:
        raise SystemExit(f"unknown case {case}")
    return out


def run(case: str, **a) -> dict:
    from flatfiles import run_child

    return run_child(HERE, case, a, timeout=3600)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "finrpt-bench-flatfiles"))
    ap.add_argument("--days", type=int, default=250, help="day files to sync (of the generated 250)")
    ap.add_argument("--skip-minute", action="store_true", help="day files only")
    ap.add_argument("-n", type=int, default=9, help="calls per read row (median)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], json.loads(args.child[1]))))
        return 0

    import flatfiles

    from finrpt_providers.testing import FakeFlatFiles

    data = Path(args.data)
    meta = flatfiles.make_data(data)
    days = meta["days"][-args.days:]
    minute_days = [d.isoformat() for d in flatfiles.MINUTE_SYNC_DAYS]
    universe = flatfiles.tickers()
    basket = universe[:: max(1, len(universe) // 100)][:100]
    with FakeFlatFiles(days=[], minute_days=[]) as ff, tempfile.TemporaryDirectory() as tmp:
        print(f"uploading {len(days)} day files and {len(minute_days)} minute files to moto ...", file=sys.stderr)
        for d in days:
            ff.put_raw(ff.key(DAY, dt.date.fromisoformat(d)), (data / DAY / f"{d}.csv.gz").read_bytes())
        if not args.skip_minute:
            for d, body in flatfiles.minute_files(data).items():
                ff.put_raw(ff.key(MINUTE, d), body)
        today = (max(dt.date.fromisoformat(days[-1]), flatfiles.MINUTE_SYNC_DAYS[-1]) + dt.timedelta(days=1))
        common = {**ff.config(), "FINRPT_PROVIDERS_TODAY": today.isoformat(),
                  "FINRPT_PRICE_PROVIDERS": "massive_flatfiles"}
        n_store = iter(range(100))

        def local_store() -> dict:
            return {**common, "FINRPT_PROVIDERS_CACHE_DIR": os.path.join(tmp, f"store-{next(n_store)}")}

        def s3_store() -> dict:
            bucket = f"bench-store-{next(n_store)}"
            return {**common, **ff.add_store_bucket(bucket), "FINRPT_PROVIDERS_CACHE_DIR": f"s3://{bucket}/research"}

        cases = [("single process (4 downloads at once), local store", None, local_store),
                 ("single process (4 downloads at once), S3 store", None, s3_store),
                 ("cluster local:1, S3 store", 1, s3_store),
                 ("cluster local:2, S3 store", 2, s3_store),
                 ("cluster local:2, local store (year files merged by the driver)", 2, local_store)]
        runs = [(DAY, days[0], days[-1], f"{len(days)} day files (12,000 tickers each)")]
        if not args.skip_minute:
            runs.append((MINUTE, minute_days[0], minute_days[-1], f"{len(minute_days)} minute files (~1.9M rows each)"))
        stores: dict[str, dict] = {}
        print(f"\nSync throughput, MB/s of decompressed CSV; {os.cpu_count()} cores shared by moto, workers and "
              "driver; baseline: the single-process sync into a local store")
        print(f"{'what':<70} {'files':>5} {'CSV MB':>8} {'s':>7} {'MB/s':>6} {'vs baseline':>11}")
        for dataset, lo, hi, label in runs:
            base = None
            print(label)
            for name, workers, store in cases:
                cfg = store()
                r = run("sync", config=cfg, cluster=workers, dataset=dataset, start=lo, end=hi)
                mbs = r["csv_bytes"] / 1e6 / r["seconds"]
                base = base or mbs
                print(f"  {name:<68} {r['files']:>5} {r['csv_bytes'] / 1e6:>8.0f} {r['seconds']:>7.1f} "
                      f"{mbs:>6.1f} {mbs / base:>10.2f}x")
                if dataset == DAY and workers is None:
                    stores["local" if "local" in name else "s3"] = cfg
                if dataset == MINUTE and workers is None:  # the same stores get the minute files too
                    key = "local" if "local" in name else "s3"
                    stores.setdefault(f"{key}-minute", cfg)

        # reads: the stores the single-process rows filled (day files; the minute ones separately)
        print(f"\nThe store read from S3 vs local: medians of {args.n} calls after a warm-up (basket: 100 tickers)")
        print(f"{'question':<52} {'local ms':>9} {'S3 ms':>9} {'S3 / local':>10}")
        reads = {}
        for where in ("local", "s3"):
            reads[where] = run("read", config=stores[where], start=days[0], end=days[-1], basket=basket, n=args.n,
                               minute_day=None)
        rows = [("one ticker, the year (get_prices AAPL)", "ticker_year"),
                ("100 tickers, the year (one basket get_prices)", "basket_year"),
                ("whole market, one session (get_market)", "market_session")]
        if not args.skip_minute:
            for where in ("local", "s3"):
                reads[where].update(run("read", config=stores[f"{where}-minute"], start=minute_days[0],
                                        end=minute_days[0], basket=["AAPL"], n=args.n, minute_day=minute_days[2]))
            rows.append(("one ticker, one session of 1m bars", "minute_day"))
        for label, k in rows:
            lo, s3 = reads["local"][k], reads["s3"][k]
            print(f"  {label:<50} {lo:>9.1f} {s3:>9.1f} {s3 / lo:>9.1f}x")

        print("\nMarket-wide work: read_bars (S3 store) -> mean daily dollar volume per ticker, top 20")
        print(f"{'what':<52} {'s':>7} {'vs local:1':>10}")
        one = None
        for w in (1, 2):
            r = run("read_bars", config=stores["s3"], workers=w, start=days[0], end=days[-1])
            one = one or r["seconds"]
            print(f"  {f'LocalCluster of {w} worker(s), {len(days)} sessions':<50} {r['seconds']:>7.1f} "
                  f"{one / r['seconds']:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
