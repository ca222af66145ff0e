"""Many tickers on the warm path, at real size: the generated year of day files of
``flatfiles.py`` (250 sessions x 12,000 tickers, cached in --data) served by moto's S3
server and filled into the flat-file store, with Massive REST's fake serving the
corporate actions of the synthetic market's tickers (AAPL's dividends among them) for the
adjusted rows. Each row next to its baseline, measured in the same run.

    ./dev bench baskets [--basket 500] [-n 15]

Baselines: one ticker-year: the seed's way (a ``pandas.read_csv`` of each day file,
filtered to the ticker) and the Parquet read alone (pyarrow, the store's year files, with
a ticker filter); a basket: a loop of single-ticker ``get_prices`` calls, and DuckDB
running the same query over the same store files; a market session: nothing cheaper
exists in the project (the row is the target's). Medians of N calls after a warm-up call
(which also fills the process's corporate-actions cache: a warm store in a warm process).
The basket's tickers are spread over the alphabet (every k-th ticker), as an index's are.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "finrpt-bench-flatfiles"))
    ap.add_argument("--basket", type=int, default=500)
    ap.add_argument("-n", type=int, default=15)
    args = ap.parse_args()
    import flatfiles

    data = Path(args.data)
    meta = flatfiles.make_data(data)
    days = [dt.date.fromisoformat(d) for d in meta["days"]]
    START, END = days[0], days[-1]
    universe = flatfiles.tickers()
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
        files = {d: ff.client.get_object(Bucket=ff.bucket, Key=ff.key("day_aggs_v1", d))["Body"].read() for d in days}

        def seed_way():
            import pandas as pd

            parts = [pd.read_csv(io.BytesIO(gzip.decompress(b)), keep_default_na=False) for b in files.values()]
            return pd.concat([p[p["ticker"] == "AAPL"] for p in parts])

        from finrpt_providers.providers.massive_flatfiles import store_for

        store = store_for(cfg)
        paths = sorted({str(store.data_path("day_aggs_v1", d)) for d in days})  # the year files

        def parquet_alone(tickers=("AAPL",)):
            import pyarrow as pa
            import pyarrow.parquet as pq

            return pa.concat_tables([pq.read_table(p, filters=[("ticker", "in", list(tickers))]) for p in paths])

        every = max(1, len(universe) // args.basket)
        basket = sorted(universe)[::every][: args.basket]
        if "AAPL" not in basket:
            basket[0] = "AAPL"
        rows: list[tuple[str, float, str]] = []
        seed = median_ms(seed_way, 3)
        rows.append((f"one ticker-year: the seed's way (read_csv x {len(days)} + filter), baseline", seed, "1.0x"))
        alone = median_ms(parquet_alone, args.n)
        rows.append(("one ticker-year: the Parquet read alone (pyarrow, filters)", alone, f"{seed / alone:.0f}x"))
        for adj in ("raw", "splits", "total"):
            fp.get_prices("AAPL", START, END, adjustment=adj, config=cfg)  # warm-up (actions cached)
            ms = median_ms(lambda a=adj: fp.get_prices("AAPL", START, END, adjustment=a, config=cfg), args.n)
            rows.append((f"one ticker-year: get_prices {adj}", ms, f"{seed / ms:.0f}x"))
        loop = median_ms(lambda: [fp.get_prices(t, START, END, adjustment="raw", config=cfg) for t in basket], 1)
        rows.append((f"{len(basket)} tickers: a loop of get_prices raw, baseline", loop, "1.0x"))
        for adj in ("raw", "splits", "total"):
            got = fp.get_prices(basket, START, END, adjustment=adj, config=cfg, errors="omit")  # warm-up
            failed = len(got.attrs["failed"])  # the fake's events of a ticker may contradict generated prices
            one = median_ms(lambda a=adj: fp.get_prices(basket, START, END, adjustment=a, config=cfg,
                                                        errors="omit"), 5)
            rows.append((f"{len(basket)} tickers: one basket get_prices {adj}"
                         + (f" ({failed} left out)" if failed else ""), one, f"{loop / one:.1f}x"))
            if adj == "raw":
                raw_basket = one
        try:
            import duckdb

            q = (f"SELECT * FROM read_parquet({paths}) WHERE ticker IN ({', '.join(repr(t) for t in basket)}) "
                 "ORDER BY ticker, window_start")
            duck = median_ms(lambda: duckdb.sql(q).df(), 5)
            rows.append((f"{len(basket)} tickers: DuckDB over the same store file (to pandas)", duck,
                         f"ours raw is {duck / raw_basket:.2f}x its speed"))
        except ImportError:
            rows.append(("DuckDB: not installed (./dev bench installs it)", float("nan"), ""))
        pq_basket = median_ms(lambda: parquet_alone(basket), 5)
        rows.append((f"{len(basket)} tickers: the Parquet read alone (pyarrow, filters)", pq_basket, ""))
        session = days[-2]
        for adj in ("raw", "splits"):
            fp.get_market(session, adjustment=adj, config=cfg)  # warm-up (market-wide actions listing)
            mkt = median_ms(lambda a=adj: fp.get_market(session, adjustment=a, config=cfg), args.n)
            rows.append((f"whole market, one session ({len(universe)} tickers): get_market {adj}", mkt, ""))
    print(f"warm flat-file store: {len(days)} sessions x {len(universe)} tickers ({START}..{END}, two year files); "
          f"cold fill of the store by the first query: {cold_s:.1f} s; medians of {args.n} (5 for baskets)")
    print()
    print(f"{'what':<76} {'ms':>9}  vs baseline")
    for what, ms, ratio in rows:
        print(f"{what:<76} {ms:>9.1f}  {ratio}")


if __name__ == "__main__":
    main()
