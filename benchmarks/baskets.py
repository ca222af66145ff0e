"""Many tickers on the warm path: a year of daily bars for one ticker, for a basket of 500,
and a whole-market session, from a warm flat-file store; each against its baseline in
the same run.

    ./dev bench baskets [--tickers 500]

Baselines: one ticker: the seed's way (a ``pandas.read_csv`` of every day file of the
year, filtered to the ticker) and the Parquet read alone (pyarrow, the store's year
file, row groups of the ticker); a basket: a loop of single-ticker ``get_prices`` calls
and DuckDB running the same query over the same store file; a market session: the
Parquet read of that session alone. Medians of N calls after one warm-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import finrpt_providers as fp  # noqa: E402
from finrpt_providers.config import Config  # noqa: E402
from finrpt_providers.testing import FakeFlatFiles, SyntheticMarket  # noqa: E402
from finrpt_providers.testing.market import DEFAULT_TICKERS, TickerSpec  # noqa: E402
from pipeline import median_ms  # noqa: E402  (benchmarks/ is on the path when run as a script)

START, END = dt.date(2025, 7, 1), dt.date(2026, 6, 30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickers", type=int, default=500)
    ap.add_argument("-n", type=int, default=15)
    args = ap.parse_args()
    fillers = tuple(TickerSpec(f"F{i:04d}", 10.0 + i % 90, 0.02, 2e5 + 1000 * i, minutes=False,
                               dividend=0.1 if i % 3 == 0 else 0.0, dividend_months=(8, 11, 2, 5) if i % 3 == 0 else ())
                    for i in range(args.tickers))
    market = SyntheticMarket(START, END, tickers=tuple(s for s in DEFAULT_TICKERS if s.ticker != "NEWC") + fillers)
    days = market.sessions
    with tempfile.TemporaryDirectory() as tmp, FakeFlatFiles(market, days=days, minute_days=[]) as ff:
        cfg = Config.load({**ff.config(), "FINRPT_PROVIDERS_TODAY": (END + dt.timedelta(days=1)).isoformat(),
                           "FINRPT_PROVIDERS_CACHE_DIR": tmp, "FINRPT_PRICE_PROVIDERS": "massive_flatfiles",
                           "FINRPT_ACTIONS_PROVIDERS": ""}, environ={})
        t0 = time.perf_counter()
        fp.get_prices("AAPL", START, END, adjustment="raw", config=cfg)  # cold: fills the store
        cold_s = time.perf_counter() - t0
        files = {d: ff.client.get_object(Bucket=ff.bucket, Key=ff.key("day_aggs_v1", d))["Body"].read() for d in days}

        def seed_way():
            import pandas as pd

            parts = [pd.read_csv(io.BytesIO(gzip.decompress(b)), keep_default_na=False) for b in files.values()]
            return pd.concat([p[p["ticker"] == "AAPL"] for p in parts])

        from finrpt_providers.providers.massive_flatfiles import store_for

        store = store_for(cfg)
        paths = sorted({store.data_path("day_aggs_v1", d) for d in days})  # the year files the range spans

        def parquet_alone():
            import pyarrow as pa
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            t = pa.concat_tables([pq.read_table(p, filters=[("ticker", "=", "AAPL")]) for p in paths])
            return t.filter(pc.equal(t.column("ticker"), "AAPL"))

        basket = [t for t in market.tickers][: args.tickers]
        rows: list[tuple[str, float, str]] = []
        seed = median_ms(seed_way, 3)
        rows.append(("one ticker-year: the seed's way (read_csv x 250 + filter), baseline", seed, "1.0x"))
        alone = median_ms(parquet_alone, args.n)
        rows.append(("one ticker-year: the Parquet read alone (pyarrow)", alone, f"{seed / alone:.0f}x faster"))
        ms = median_ms(lambda: fp.get_prices("AAPL", START, END, adjustment="raw", config=cfg), args.n)
        rows.append(("one ticker-year: get_prices raw", ms, f"{seed / ms:.0f}x faster"))
        loop = median_ms(lambda: [fp.get_prices(t, START, END, adjustment="raw", config=cfg) for t in basket], 1)
        rows.append((f"{len(basket)} tickers: a loop of get_prices, baseline", loop, "1.0x"))
        one = median_ms(lambda: fp.get_prices(basket, START, END, adjustment="raw", config=cfg), 3)
        rows.append((f"{len(basket)} tickers: one basket get_prices", one, f"{loop / one:.1f}x faster"))
        try:
            import duckdb

            q = (f"SELECT * FROM read_parquet({[str(p) for p in paths]}) WHERE ticker IN ({', '.join(repr(t) for t in basket)}) "
                 "ORDER BY ticker, window_start")
            duck = median_ms(lambda: duckdb.sql(q).df(), 3)
            rows.append((f"{len(basket)} tickers: DuckDB over the same store file", duck, f"{duck / one:.2f}x ours"))
        except ImportError:
            rows.append(("DuckDB: not installed (./dev bench installs it)", float("nan"), ""))
        session = days[-2]
        mkt = median_ms(lambda: fp.get_market(session, adjustment="raw", config=cfg), args.n)
        rows.append((f"whole market, one session ({len(market.tickers)} tickers): get_market raw", mkt, ""))
    print(f"warm flat-file store, {len(days)} sessions, {len(market.tickers)} tickers; cold fill of the store: "
          f"{cold_s:.1f} s; medians of {args.n}")
    print()
    print(f"{'what':<72} {'ms':>9}  ratio")
    for what, ms, ratio in rows:
        print(f"{what:<72} {ms:>9.1f}  {ratio}")


if __name__ == "__main__":
    main()
