"""Many tickers on the warm path, at real size: the generated year of day files of
``flatfiles.py`` (250 sessions x 12,000 tickers, cached in --data) served by moto's S3
server and filled into the flat-file store, with Massive REST's fake serving the
corporate actions of the synthetic market's tickers (AAPL's dividends among them) for the
adjusted rows. Each row next to its baseline, measured in the same run, and a final
"targets" section saying which speed target is met.

    ./dev bench baskets [--basket 500] [-n 15] [--skip-dask] [--dask-n 3]

Baselines: one ticker-year: the seed's way (a ``pandas.read_csv`` of each day file,
filtered to the ticker) and the Parquet read alone (pyarrow, the store's year files, with
a ticker filter); a basket: a loop of single-ticker ``get_prices`` calls of the same
adjustment, and DuckDB running the same question over the same store files (for
"splits"/"total" DuckDB applies the same split and dividend factors in SQL: events after
each bar, dividends weighed against the previous session's close, the market-wide events
handed to it as tables); a market session: the store's read of that session alone
(pyarrow, no gate, no frame), as information; ``read_bars`` (a LocalCluster of 2 worker
processes, one thread each, ``.compute()`` of the whole frame): a plain
``dask.dataframe.read_parquet`` of the same store files on the same cluster. Medians of N
calls after a warm-up call (which also fills the process's corporate-actions cache: a warm
store in a warm process). The basket's tickers are spread over the alphabet (every k-th
ticker), as an index's are.

Read the numbers with the machine in mind: the moto server, the REST fake, the driver and
(for read_bars) the cluster's workers share `nproc` cores; the load average is printed
before and after.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import finrpt_providers as fp  # noqa: E402
from finrpt_providers.config import Config  # noqa: E402
from finrpt_providers.testing import FakeFlatFiles, FakeMassiveREST, SyntheticMarket  # noqa: E402
from pipeline import median_ms  # noqa: E402  (benchmarks/ is on the path when run as a script)

KEY = "bench-key"


ADJUSTMENTS = ("raw", "splits", "total")


def _duckdb_sql(paths: list[str], basket: list[str], adjustment: str) -> str:
    """The basket's bars over the store files, adjusted in SQL as ``adjust.factors`` does:
    each bar's price times the product of its ticker's events after it (1/ratio for a split,
    1 - cash / the previous session's close for a dividend), volume times the split ratios.
    The events are the tables ``splits_ev`` and ``dividends_ev`` (ticker, ex, value)."""
    base = (f"SELECT ticker, window_start, open, high, low, close, volume, transactions FROM read_parquet({paths}) "
            f"WHERE ticker IN ({', '.join(repr(t) for t in basket)})")
    if adjustment == "raw":
        return base + " ORDER BY ticker, window_start"
    events = "SELECT ticker, ex, 1.0 / value AS pf, value AS vf FROM splits_ev"
    if adjustment == "total":
        events += (" UNION ALL SELECT d.ticker, d.ex, 1.0 - d.value / p.prev, 1.0 FROM dividends_ev d JOIN "
                   "(SELECT ticker, window_start, lag(close) OVER (PARTITION BY ticker ORDER BY window_start) AS prev "
                   "FROM b) p ON p.ticker = d.ticker AND p.window_start = d.ex")
    return (f"WITH b AS ({base}), ev AS ({events}), "
            "f AS (SELECT b.ticker, b.window_start, exp(sum(ln(ev.pf))) AS pf, exp(sum(ln(ev.vf))) AS vf "
            "FROM b JOIN ev ON ev.ticker = b.ticker AND ev.ex > b.window_start GROUP BY ALL) "
            "SELECT b.ticker, b.window_start, b.open * coalesce(f.pf, 1) AS open, b.high * coalesce(f.pf, 1) AS high, "
            "b.low * coalesce(f.pf, 1) AS low, b.close * coalesce(f.pf, 1) AS close, "
            "b.volume * coalesce(f.vf, 1) AS volume, b.transactions "
            "FROM b LEFT JOIN f USING (ticker, window_start) ORDER BY ticker, window_start")


def _events_frame(events):
    """A long events Series by (ticker, ex-date) -> a DataFrame (ticker, ex, value) for DuckDB."""
    import pandas as pd

    return pd.DataFrame({"ticker": events.index.get_level_values(0).astype(str),
                         "ex": pd.DatetimeIndex(events.index.get_level_values(1)).as_unit("ns"),
                         "value": events.to_numpy(dtype="float64")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "finrpt-bench-flatfiles"))
    ap.add_argument("--basket", type=int, default=500)
    ap.add_argument("-n", type=int, default=15)
    ap.add_argument("--skip-dask", action="store_true", help="skip read_bars on a LocalCluster (target 4)")
    ap.add_argument("--dask-n", type=int, default=3, help="medians of this many read_bars computes (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (target 4: 2)")
    args = ap.parse_args()
    import flatfiles

    from finrpt_providers.errors import ProviderError

    load_before = os.getloadavg()
    data = Path(args.data)
    meta = flatfiles.make_data(data)
    days = [dt.date.fromisoformat(d) for d in meta["days"]]
    START, END = days[0], days[-1]
    universe = flatfiles.tickers()
    got: dict[str, float] = {}  # what the targets read: ms, or a ratio
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, FakeFlatFiles(days=[], minute_days=[]) as ff, \
            FakeMassiveREST(SyntheticMarket(), api_key=KEY) as rest:
        for d in days:
            ff.put_raw(ff.key("day_aggs_v1", d), (data / "day_aggs_v1" / f"{d.isoformat()}.csv.gz").read_bytes())
        env = {**ff.config(), "MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": rest.url,
               "FINRPT_PROVIDERS_TODAY": (END + dt.timedelta(days=1)).isoformat(), "FINRPT_PROVIDERS_CACHE_DIR": tmp,
               "FINRPT_PRICE_PROVIDERS": "massive_flatfiles", "FINRPT_ACTIONS_PROVIDERS": "massive_rest"}
        cfg = Config.load(env, environ={})
        t1 = time.perf_counter()
        fp.get_prices("AAPL", START, END, adjustment="raw", config=cfg)  # cold: fills the store
        cold_s = time.perf_counter() - t1
        t1 = time.perf_counter()
        fp.get_prices("AAPL", START, END, adjustment="raw", config=cfg)  # the next one builds the year copies
        copies_s = time.perf_counter() - t1
        files = {d: ff.client.get_object(Bucket=ff.bucket, Key=ff.key("day_aggs_v1", d))["Body"].read() for d in days}

        def seed_way():
            import pandas as pd

            parts = [pd.read_csv(io.BytesIO(gzip.decompress(b)), keep_default_na=False) for b in files.values()]
            return pd.concat([p[p["ticker"] == "AAPL"] for p in parts])

        from finrpt_providers.providers.massive_flatfiles import store_for

        store = store_for(cfg)
        from finrpt_providers.store import layout

        # the years' copies by ticker (what a warm one-ticker read uses)
        paths = sorted({str(Path(store.root) / layout.merged_path("day_aggs_v1", d.year)) for d in days})

        def parquet_alone(tickers=("AAPL",)):
            import pyarrow as pa
            import pyarrow.parquet as pq

            return pa.concat_tables([pq.read_table(p, filters=[("ticker", "in", list(tickers))]) for p in paths])

        every = max(1, len(universe) // args.basket)
        basket = sorted(universe)[::every][: args.basket]
        if "AAPL" not in basket:
            basket[0] = "AAPL"
        rows: list[tuple[str, float, str]] = []

        # -- 1. one ticker-year --------------------------------------------------------------
        seed = median_ms(seed_way, 3)
        rows.append((f"one ticker-year: the seed's way (read_csv x {len(days)} + filter), baseline", seed, "1.0x"))
        alone = median_ms(parquet_alone, args.n)
        rows.append(("one ticker-year: the Parquet read alone (pyarrow, filters)", alone, f"{seed / alone:.0f}x"))
        for adj in ADJUSTMENTS:
            fp.get_prices("AAPL", START, END, adjustment=adj, config=cfg)  # warm-up (actions cached)
            ms = median_ms(lambda a=adj: fp.get_prices("AAPL", START, END, adjustment=a, config=cfg), args.n)
            got[f"single {adj}"] = ms
            rows.append((f"one ticker-year: get_prices {adj}", ms, f"{seed / ms:.0f}x"))

        # -- 2. a basket -----------------------------------------------------------------------
        def single(t: str, a: str):
            try:
                return fp.get_prices(t, START, END, adjustment=a, config=cfg)
            except ProviderError:  # the ticker the basket leaves out fails alone too
                return None

        con = None
        try:
            import duckdb

            from finrpt_providers.market import market_actions

            splits, dividends, _src, _refused = market_actions(cfg, START, cfg.today())
            con = duckdb.connect()
            con.register("splits_ev", _events_frame(splits[splits.index.get_level_values(0).isin(basket)]))
            con.register("dividends_ev", _events_frame(dividends[dividends.index.get_level_values(0).isin(basket)]))
        except ImportError:
            rows.append(("DuckDB: not installed (./dev bench installs it)", float("nan"), ""))
        for adj in ADJUSTMENTS:
            loop = median_ms(lambda a=adj: [single(t, a) for t in basket], 1)
            rows.append((f"{len(basket)} tickers: a loop of get_prices {adj}, baseline", loop, "1.0x"))
            ours = fp.get_prices(basket, START, END, adjustment=adj, config=cfg, errors="omit")  # warm-up
            failed = len(ours.attrs["failed"])  # the fake's events of a ticker may contradict generated prices
            one = median_ms(lambda a=adj: fp.get_prices(basket, START, END, adjustment=a, config=cfg,
                                                        errors="omit"), 5)
            got[f"basket {adj}"], got[f"basket {adj} vs loop"] = one, loop / one
            ratio = f"{loop / one:.1f}x the loop"
            if con is not None:
                q = _duckdb_sql(paths, basket, adj)
                duck = median_ms(lambda q=q: con.sql(q).df(), 5)
                got[f"basket {adj} vs duckdb"] = duck / one
                ratio += f", {duck / one:.2f}x DuckDB"
                check = con.sql(q).df()
                if adj != "raw":  # the baseline does the same arithmetic: compare closes of the tickers both serve
                    import numpy as np

                    ours_close = ours["close"]
                    mine = check.set_index("ticker")["close"]
                    common = sorted(set(ours_close.index.get_level_values(0)) & set(mine.index))
                    a_ = ours_close.loc[common].to_numpy()
                    b_ = mine.loc[common].to_numpy()
                    diff = float(np.max(np.abs(a_ / b_ - 1))) if len(a_) == len(b_) and len(a_) else float("nan")
                    notes.append(f"DuckDB {adj}: {len(check)} rows vs ours {len(ours)}; max relative difference of "
                                 f"the closes over the {len(common)} tickers both serve: {diff:.1e}")
            rows.append((f"{len(basket)} tickers: one basket get_prices {adj}"
                         + (f" ({failed} left out)" if failed else ""), one, ratio))
            if con is not None:
                rows.append((f"{len(basket)} tickers: DuckDB over the same store files, {adj} (to pandas)", duck, ""))
        pq_basket = median_ms(lambda: parquet_alone(basket), 5)
        rows.append((f"{len(basket)} tickers: the Parquet read alone (pyarrow, filters)", pq_basket, ""))

        # -- 3. the whole market, one session ---------------------------------------------------
        session = days[-2]
        read_alone = median_ms(lambda: store.read_days("day_aggs_v1", [session]), args.n)
        rows.append(("whole market, one session: the store's read alone (pyarrow table), information", read_alone,
                     "1.0x"))
        for adj in ADJUSTMENTS:
            m = fp.get_market(session, adjustment=adj, config=cfg)  # warm-up (market-wide actions listing)
            mkt = median_ms(lambda a=adj: fp.get_market(session, adjustment=a, config=cfg), args.n)
            got[f"market {adj}"] = mkt
            left = len(m.attrs.get("failed", {}))
            rows.append((f"whole market, one session ({len(universe)} tickers): get_market {adj}"
                         + (f" ({left} left out)" if left else ""), mkt, f"{read_alone / mkt:.2f}x"))

        # -- 4. read_bars on a cluster ------------------------------------------------------------
        if not args.skip_dask:
            import logging

            import dask.dataframe as dd
            from distributed import Client, LocalCluster

            from finrpt_providers.dask import read_bars

            with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                              silence_logs=logging.ERROR) as lc, Client(lc) as client:
                client.wait_for_workers(args.workers)
                plain_rows = len(dd.read_parquet(paths).compute())
                plain = median_ms(lambda: dd.read_parquet(paths).compute(), args.dask_n)
                what = (f"{len(days)} sessions x {len(universe)} tickers: dd.read_parquet(store files).compute() "
                        f"({args.workers} workers), baseline")
                rows.append((what, plain, "1.0x"))
                for adj in ("raw", "splits"):
                    bars = read_bars("day_aggs_v1", START, END, adjustment=adj, config=cfg, client=client)
                    n_rows, left = len(bars.compute()), len(bars.attrs["failed"])  # warm-up
                    ms = median_ms(lambda a=adj: read_bars("day_aggs_v1", START, END, adjustment=a, config=cfg,
                                                           client=client).compute(), args.dask_n)
                    got[f"read_bars {adj}"] = ms
                    what = (f"{len(days)} sessions x {len(universe)} tickers: read_bars {adj}.compute() "
                            f"({args.workers} workers)" + (f" ({left} left out)" if left else ""))
                    rows.append((what, ms, f"{plain / ms:.2f}x"))
                    notes.append(f"read_bars {adj}: {n_rows} rows; dd.read_parquet: {plain_rows} rows")
    load_after = os.getloadavg()
    print(f"warm flat-file store: {len(days)} sessions x {len(universe)} tickers ({START}..{END}, two years); "
          f"cold fill of the store by the first query: {cold_s:.1f} s, the year copies built by the next: "
          f"{copies_s:.1f} s; medians of {args.n} (5 for baskets, 1 for "
          f"loops, {args.dask_n} for read_bars) after a warm-up call")
    print(f"machine: {os.cpu_count()} cores; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          "(shared with the moto server, the REST fake and the cluster's workers)")
    print()
    print(f"{'what':<96} {'ms':>9}  vs baseline (its time / this row's: above 1 is faster)")
    for what, ms, ratio in rows:
        print(f"{what:<96} {ms:>9.1f}  {ratio}")
    for note in notes:
        print(f"  note: {note}")

    # -- the targets -------------------------------------------------------------------------
    targets: list[tuple[str, str, float | None, str, str]] = []  # (what, key, limit, unit, "max"/"min")
    for adj in ADJUSTMENTS:
        targets.append((f"1. one ticker-year get_prices {adj} <= 4 ms", f"single {adj}", 4.0, "ms", "max"))
    for adj in ADJUSTMENTS:
        targets.append((f"2. {len(basket)}-ticker basket {adj} <= 300 ms", f"basket {adj}", 300.0, "ms", "max"))
        targets.append((f"2. {len(basket)}-ticker basket {adj} >= 20x a loop of singles", f"basket {adj} vs loop",
                        20.0, "x", "min"))
        targets.append((f"2. {len(basket)}-ticker basket {adj} not slower than DuckDB", f"basket {adj} vs duckdb",
                        1.0, "x", "min"))
    targets.append(("3. market session get_market raw <= 50 ms", "market raw", 50.0, "ms", "max"))
    targets.append(("3. market session get_market splits <= 80 ms", "market splits", 80.0, "ms", "max"))
    targets.append(("3. market session get_market total (information)", "market total", None, "ms", "max"))
    for adj in ("raw", "splits"):
        targets.append((f"4. read_bars {adj} .compute(), {args.workers} workers <= 2.5 s", f"read_bars {adj}", 2500.0,
                        "ms", "max"))
    print()
    print("targets")
    for what, key, limit, unit, kind in targets:
        value = got.get(key)
        if value is None:
            verdict, shown = "not measured", "-"
        else:
            shown = f"{value:.1f} {unit}" if unit == "ms" else f"{value:.2f}{unit}"
            if limit is None:
                verdict = "information"
            else:
                met = value <= limit if kind == "max" else value >= limit
                verdict = "met" if met else "NOT met"
        print(f"  {what:<62} {shown:>12}  {verdict}")


if __name__ == "__main__":
    main()
