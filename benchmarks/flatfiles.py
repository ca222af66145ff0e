"""Massive flat files at real size: ours vs the seed's way (pandas.read_csv + filter) and DuckDB.

Generates (once, cached in --data, default /tmp/finrpt-bench-flatfiles):
  * a year of day_aggs files (250 sessions x 12,000 tickers),
  * one minute_aggs file (~1.8M rows, sorted by ticker then time),
  * one trades file (>= 5M rows, sorted by ticker),
serves them from moto's S3 server (FakeFlatFiles) on 127.0.0.1 for the cold cases,
and runs every measurement in a fresh subprocess that reports its wall time (of the
work only, imports excluded) and its peak RSS. Ratios are against the seed's way in
the same run. Run:  ./dev bench flatfiles   (options: --help)
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve()
AGG_HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
N_TICKERS = 12_000
MINUTE_ROWS = 1_800_000
TRADE_ROWS = 5_000_000
START = dt.date(2025, 7, 1)


# -- data ---------------------------------------------------------------------------
def tickers(n: int = N_TICKERS) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(7)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    out = {"AAPL", "NA", "BRK.B", "TSLA"}
    while len(out) < n:
        k = int(rng.integers(1, 5))
        out.add("".join(rng.choice(letters, k)))
    return sorted(out)


def _write_gz(path: Path, table, level: int = 6) -> None:
    import io

    import pyarrow.csv as pacsv

    buf = io.BytesIO()
    buf.write((",".join(table.column_names) + "\n").encode())
    pacsv.write_csv(table, buf, write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))
    path.write_bytes(gzip.compress(buf.getvalue(), compresslevel=level))


#: the minute file is stamped on 2026-06-30; the sync case uses copies re-stamped on these
MINUTE_SYNC_DAYS = (dt.date(2026, 6, 24), dt.date(2026, 6, 25), dt.date(2026, 6, 26), dt.date(2026, 6, 29),
                    dt.date(2026, 6, 30), dt.date(2026, 7, 1))


def minute_files(root: Path) -> dict[dt.date, bytes]:
    """The minute file for each of MINUTE_SYNC_DAYS (made once, cached beside it)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    out = {}
    table = None
    for d in MINUTE_SYNC_DAYS:
        path = root / f"minute-{d.isoformat()}.csv.gz"
        if not path.exists():
            if table is None:
                table = pacsv.read_csv(root / "minute.csv.gz")
            shift = (d - dt.date(2026, 6, 30)).days * 86_400 * 10**9
            ws = pc.add(table.column("window_start").cast(pa.int64()), shift)
            _write_gz(path, table.set_column(table.column_names.index("window_start"), "window_start", ws))
        out[d] = path.read_bytes()
    return out


def make_data(root: Path) -> dict:
    import numpy as np
    import pyarrow as pa

    from finrpt_providers import calendar

    root.mkdir(parents=True, exist_ok=True)
    meta_path = root / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    tk = tickers()
    days = calendar.sessions(START, START + dt.timedelta(days=400))[:250]
    rng = np.random.default_rng(11)
    base = rng.lognormal(3, 1, len(tk))
    day_dir = root / "day_aggs_v1"
    day_dir.mkdir(exist_ok=True)
    print(f"generating {len(days)} day files of {len(tk)} tickers ...", file=sys.stderr)
    for d in days:
        if (day_dir / f"{d.isoformat()}.csv.gz").exists():
            continue
        ns = int(dt.datetime(d.year, d.month, d.day, tzinfo=ZoneInfo("America/New_York")).timestamp()) * 10**9
        o = np.round(base * rng.lognormal(0, 0.02, len(tk)), 4)
        c = np.round(o * rng.lognormal(0, 0.02, len(tk)), 4)
        table = pa.table({"ticker": tk, "volume": np.round(rng.lognormal(12, 2, len(tk)), 6), "open": o,
                          "close": c, "high": np.round(np.maximum(o, c) * 1.01, 4),
                          "low": np.round(np.minimum(o, c) * 0.99, 4), "window_start": np.full(len(tk), ns),
                          "transactions": rng.integers(1, 100000, len(tk))})
        _write_gz(day_dir / f"{d.isoformat()}.csv.gz", table)
    print(f"generating a minute file of ~{MINUTE_ROWS:,} rows ...", file=sys.stderr)
    weights = rng.pareto(1.2, len(tk)) + 0.05
    counts = np.minimum(960, np.maximum(1, (weights / weights.sum() * MINUTE_ROWS * 1.9).astype(int)))
    ticker_col = np.repeat(np.array(tk, dtype=object), counts)
    minute_of = np.concatenate([np.sort(rng.choice(960, c, replace=False)) for c in counts])
    n = len(ticker_col)
    t0 = 1782795600 * 10**9  # a 04:00 ET
    price = np.round(np.repeat(base, counts) * rng.lognormal(0, 0.001, n), 4)
    minute = pa.table({"ticker": pa.array(ticker_col, pa.string()), "volume": np.round(rng.lognormal(6, 2, n), 6),
                       "open": price, "close": price, "high": np.round(price * 1.001, 4),
                       "low": np.round(price * 0.999, 4), "window_start": t0 + minute_of * 60 * 10**9,
                       "transactions": rng.integers(1, 500, n)})
    if not (root / "minute.csv.gz").exists():
        _write_gz(root / "minute.csv.gz", minute)
    print(f"generating a trades file of >= {TRADE_ROWS:,} rows ...", file=sys.stderr)
    tcounts = np.maximum(1, (weights / weights.sum() * TRADE_ROWS).astype(int))
    tcounts[tk.index("AAPL")] = 60_000
    m = int(tcounts.sum())
    tt = np.repeat(np.array(tk, dtype=object), tcounts)
    ts = t0 + np.concatenate([np.sort(rng.integers(0, 16 * 3600 * 10**9, c)) for c in tcounts])
    trades = pa.table({
        "ticker": pa.array(tt, pa.string()),
        "conditions": pa.array(np.array(["", "12,37", "14,41", "37"], dtype=object)[rng.integers(0, 4, m)]),
        "correction": np.zeros(m, dtype="int64"), "exchange": rng.integers(1, 21, m),
        "id": pa.array(rng.integers(10**13, 10**14, m).astype(str)), "participant_timestamp": ts,
        "price": np.round(np.repeat(base, tcounts) * rng.lognormal(0, 0.001, m), 4),
        "sequence_number": np.arange(m), "sip_timestamp": ts + 150_000,
        "size": np.round(rng.lognormal(4, 1.5, m), 6), "tape": rng.integers(1, 4, m),
        "trf_id": pa.array(np.where(rng.random(m) < 0.3, "201", "")),
        "trf_timestamp": pa.array(np.where(rng.random(m) < 0.3, (ts + 90_000).astype(str), "")),
    })
    # pandas quotes only what needs it (conditions such as "12,37"), as the real files do
    (root / "trades.csv.gz").write_bytes(gzip.compress(
        trades.to_pandas().to_csv(index=False, lineterminator="\n").encode(), compresslevel=6))
    meta = {"days": [d.isoformat() for d in days], "minute_rows": int(n), "trade_rows": m,
            "far_ticker": tk[int(len(tk) * 0.89)], "mid_ticker": tk[int(len(tk) * 0.5)]}
    meta_path.write_text(json.dumps(meta))
    return meta


# -- one measurement, in a child process ----------------------------------------------
def child(case: str, args: dict) -> dict:
    out: dict = {}
    ticker = args.get("ticker", "AAPL")
    data = Path(args["data"])
    if case.startswith("daily"):
        days = args["days"]
        files = [data / "day_aggs_v1" / f"{d}.csv.gz" for d in days]
    if case == "daily_seed_s3":
        import io

        import boto3
        import pandas as pd
        from botocore.config import Config as BotoConfig

        s3 = boto3.client("s3", endpoint_url=args["endpoint"], aws_access_key_id=args["key"],
                          aws_secret_access_key=args["secret"], region_name="us-east-1",
                          config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "path"}))
        t = time.perf_counter()
        rows = []
        for d in days:
            day = dt.date.fromisoformat(d)
            key = f"us_stocks_sip/day_aggs_v1/{day.year:04d}/{day.month:02d}/{d}.csv.gz"
            body = s3.get_object(Bucket=args["bucket"], Key=key)["Body"].read()
            df = pd.read_csv(io.BytesIO(body), compression="gzip")
            rows.append(df[df["ticker"] == ticker])
        n = len(pd.concat(rows))
    elif case == "daily_seed_local":
        import pandas as pd

        t = time.perf_counter()
        n = len(pd.concat([(lambda df: df[df["ticker"] == ticker])(pd.read_csv(f)) for f in files]))
    elif case == "daily_duckdb":
        import duckdb

        t = time.perf_counter()
        n = len(duckdb.sql(f"select * from read_csv({[str(f) for f in files]!r}, header=true) "
                           f"where ticker = '{ticker}'").fetchall())
    elif case in ("daily_ours_cold", "daily_ours_warm"):
        import finrpt_providers as fp

        cfg = {"MASSIVE_S3_ENDPOINT": args["endpoint"], "MASSIVE_S3_BUCKET": args["bucket"],
               "MASSIVE_S3_ACCESS_KEY": args["key"], "MASSIVE_S3_SECRET_KEY": args["secret"],
               "FINRPT_PROVIDERS_CACHE_DIR": args["cache"], "FINRPT_PROVIDERS_TODAY": args["today"],
               "MASSIVE_FLATFILES_WORKERS": "4"}
        reps = 1 if case.endswith("cold") else 20
        if reps > 1:  # once, timed apart: the next query after the cold one builds the year's copy by ticker
            t1 = time.perf_counter()
            fp.get_prices(ticker, days[0], days[-1], adjustment="raw", providers=["massive_flatfiles"], config=cfg)
            out["first_seconds"] = time.perf_counter() - t1
        t = time.perf_counter()
        for _ in range(reps):
            n = len(fp.get_prices(ticker, days[0], days[-1], adjustment="raw", providers=["massive_flatfiles"],
                                  config=cfg))
        out["seconds"] = (time.perf_counter() - t) / reps
    elif case == "minute_pandas":
        import pandas as pd

        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            df = pd.read_csv(data / "minute.csv.gz", keep_default_na=False)
            n = len(df[df["ticker"] == ticker])
            best = min(best, time.perf_counter() - t)
        out["seconds"] = best
    elif case == "minute_duckdb":
        import duckdb

        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            n = len(duckdb.sql(f"select * from read_csv('{data / 'minute.csv.gz'}', header=true) "
                               f"where ticker = '{ticker}'").fetchall())
            best = min(best, time.perf_counter() - t)
        out["seconds"] = best
    elif case in ("minute_ours", "trades_ours"):
        import pyarrow.csv  # noqa: F401  imported before timing, as pandas is for the seed's way

        from finrpt_providers.providers.massive_flatfiles.files import _decompressor, scan_ticker

        _decompressor()  # imports ISA-L
        ds, name = ("minute_aggs_v1", "minute.csv.gz") if case == "minute_ours" else ("trades_v1", "trades.csv.gz")
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            with open(data / name, "rb") as fh:
                n = sum(tb.num_rows for tb in scan_ticker(fh, ticker, ds, name))
            best = min(best, time.perf_counter() - t)
        out["seconds"] = best
    elif case == "trades_pandas":
        import pandas as pd

        t = time.perf_counter()
        df = pd.read_csv(data / "trades.csv.gz", keep_default_na=False)
        n = len(df[df["ticker"] == ticker])
    elif case == "ceiling":
        from finrpt_providers.providers.massive_flatfiles.files import _chunks, iter_decompressed

        path = data / args["file"]
        t = time.perf_counter()
        with open(path, "rb") as fh:
            n = sum(len(b) for b in iter_decompressed(_chunks(fh), path.name))
    elif case == "ceiling_zlib":
        import zlib

        path = data / args["file"]
        t = time.perf_counter()
        d = zlib.decompressobj(wbits=31)
        n = 0
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                n += len(d.decompress(block))
    elif case == "sync":
        from finrpt_providers.config import Config
        from finrpt_providers.providers.massive_flatfiles import store_for
        from finrpt_providers.providers.massive_flatfiles.mirror import sync
        from finrpt_providers.providers.massive_flatfiles.s3 import FlatFilesS3

        cfg = Config.load({"MASSIVE_S3_ENDPOINT": args["endpoint"], "MASSIVE_S3_BUCKET": args["bucket"],
                           "MASSIVE_S3_ACCESS_KEY": args["key"], "MASSIVE_S3_SECRET_KEY": args["secret"],
                           "FINRPT_PROVIDERS_CACHE_DIR": args["cache"]}, environ={})
        sessions = [dt.date.fromisoformat(d) for d in args["sync_days"]]
        t = time.perf_counter()
        res = sync(FlatFilesS3(cfg), store_for(cfg), [args["dataset"]], sessions, 4)
        n = res[args["dataset"]].csv_bytes
    else:
        raise SystemExit(f"unknown case {case}")
    out.setdefault("seconds", time.perf_counter() - t)
    out["rows"] = int(n)
    out["rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: Path, case: str, args: dict, timeout: int = 1800) -> dict:
    """``script --child CASE ARGS`` in a fresh process: the JSON it prints last."""
    res = subprocess.run([sys.executable, str(script), "--child", case, json.dumps(args)], capture_output=True,
                         text=True, timeout=timeout)
    if res.returncode != 0:
        raise SystemExit(f"{case} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(case: str, **args) -> dict:
    return run_child(HERE, case, args)


def baseline_rss(imports: str) -> float:
    code = f"import sys; sys.path.insert(0, {str(HERE.parent)!r}); {imports}; import flatfiles; print(flatfiles.peak_rss_mb())"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)


def table(title: str, rows: list[tuple[str, dict]], base: str, extra: str = "") -> None:
    ref = dict(rows)[base]["seconds"]
    print(f"\n{title}{extra}")
    print(f"{'approach':<44} {'rows':>9} {'ms':>10} {'peak MB':>9} {'speed vs seed':>14}")
    for name, r in rows:
        print(f"{name:<44} {r['rows']:>9} {r['seconds'] * 1000:>10.1f} {r['rss_mb']:>9.0f} "
              f"{ref / r['seconds']:>13.1f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "finrpt-bench-flatfiles"))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=["daily"], help="run only the one-ticker daily table")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], json.loads(args.child[1]))))
        return 0

    from finrpt_providers.testing import FakeFlatFiles

    data = Path(args.data)
    meta = make_data(data)
    days = meta["days"]
    far = meta["far_ticker"]
    with FakeFlatFiles(days=[], minute_days=[]) as ff, tempfile.TemporaryDirectory() as tmp:
        print("uploading to moto ...", file=sys.stderr)
        for d in days:
            day = dt.date.fromisoformat(d)
            ff.put_raw(ff.key("day_aggs_v1", day), (data / "day_aggs_v1" / f"{d}.csv.gz").read_bytes())
        sync_days = [d.isoformat() for d in MINUTE_SYNC_DAYS]
        for d, body in minute_files(data).items():  # each stamped on its own session (ingest checks)
            ff.put_raw(ff.key("minute_aggs_v1", d), body)
        s3 = {"endpoint": ff.url, "bucket": ff.bucket, "key": ff.access_key, "secret": ff.secret_key,
              "data": str(data), "days": days, "today": (dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1)).isoformat()}
        base_pd = baseline_rss("import pandas")
        base_ours = baseline_rss("import finrpt_providers.providers.massive_flatfiles.files, pyarrow.csv, numpy")

        cache = os.path.join(tmp, "cache")
        daily = [
            ("seed: 250 x (S3 get + pandas.read_csv + filter)", run("daily_seed_s3", **s3)),
            ("seed, files already local: 250 x read_csv", run("daily_seed_local", **s3)),
            ("duckdb read_csv over the 250 local csv.gz", run("daily_duckdb", **s3)),
            ("ours cold: S3 -> Parquet store -> bars", run("daily_ours_cold", cache=cache, **s3)),
        ]
        warm = run("daily_ours_warm", cache=cache, **s3)
        daily += [("ours, the next query (builds the year copies)",
                   {**warm, "seconds": warm["first_seconds"]}),
                  ("ours warm: from the store (mean of 20 calls)", warm)]
        table("One ticker (AAPL), one year of daily bars (250 day files, 12k tickers each)", daily,
              "seed: 250 x (S3 get + pandas.read_csv + filter)")
        if args.only == "daily":
            return 0

        minute = []
        for tk in ("AAPL", meta["mid_ticker"], far):
            minute += [(f"pandas.read_csv + filter [{tk}]", run("minute_pandas", ticker=tk, **s3)),
                       (f"duckdb read_csv where ticker [{tk}]", run("minute_duckdb", ticker=tk, **s3)),
                       (f"ours: stream, skip by sort order [{tk}]", run("minute_ours", ticker=tk, **s3))]
        table(f"One ticker from one minute file ({meta['minute_rows']:,} rows), no store, best of 3", minute,
              "pandas.read_csv + filter [AAPL]",
              f"; {meta['mid_ticker']} sits 50%, {far} 89% into the file; after imports alone a process "
              f"holds {base_pd:.0f} MB (pandas) / {base_ours:.0f} MB (ours)")

        trades = [("pandas.read_csv of the whole file + filter", run("trades_pandas", ticker="AAPL", **s3)),
                  ("ours: stream, skip by sort order [AAPL]", run("trades_ours", ticker="AAPL", **s3)),
                  (f"ours: stream, skip by sort order [{far}]", run("trades_ours", ticker=far, **s3))]
        table(f"One ticker's trades from a trades file ({meta['trade_rows']:,} rows, "
              f"{(data / 'trades.csv.gz').stat().st_size / 1e6:.0f} MB gz)", trades,
              "pandas.read_csv of the whole file + filter")

        ceil_isal = run("ceiling", file="minute.csv.gz", **s3)
        ceil_zlib = run("ceiling_zlib", file="minute.csv.gz", **s3)
        sync_min = run("sync", dataset="minute_aggs_v1", sync_days=sync_days, cache=os.path.join(tmp, "c2"), **s3)
        sync_day = run("sync", dataset="day_aggs_v1", sync_days=days, cache=os.path.join(tmp, "c3"), **s3)
        print("\nSync throughput (MB/s of decompressed CSV) vs the ceiling (decompression alone, one core)")
        print(f"{'what':<58} {'MB/s':>8}")
        for name, r in [("gzip decompression, ISA-L (the ceiling)", ceil_isal),
                        ("gzip decompression, zlib (what pandas uses)", ceil_zlib),
                        (f"ours: sync {len(sync_days)} minute files (4 at once, parse + Parquet)", sync_min),
                        (f"ours: sync {len(days)} day files (4 at once, parse + Parquet)", sync_day)]:
            print(f"{name:<58} {r['rows'] / 1e6 / r['seconds']:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
