"""One year of 1-minute bars for one ticker from the fake Massive REST server:
ours (`get_prices(..., providers=["massive_rest"])`) vs the official `massive`
client's `list_aggs`, same server, same run.

The fake runs in its own process (so its work does not share our GIL) and has its
frames built before timing; each variant runs `--repeat` times and the best time is
shown. Run:  ./dev bench rest   (or: python benchmarks/rest.py --help)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
import urllib.request

TICKER = "AAPL"
START, END = "2025-07-01", "2026-06-30"
KEY = "bench-key"


def _serve(queue, interval_warm: list[str]) -> None:
    from finrpt_providers.testing import FakeMassiveREST, SyntheticMarket

    srv = FakeMassiveREST(SyntheticMarket(), api_key=KEY)
    for adjusted in (True, False):
        for iv in interval_warm:
            srv.frame(TICKER, iv, adjusted)  # build once, before any timing
    srv.start()
    queue.put(srv.url)
    while True:
        time.sleep(3600)


def request_count(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_fake/requests") as r:
        return json.load(r)["count"]


def timed(url: str, fn, repeat: int):
    times, counts, rows = [], [], 0
    for _ in range(repeat):
        before = request_count(url)
        t0 = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - t0)
        counts.append(request_count(url) - before)
    return min(times), statistics.median(times), counts[-1], rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import pandas as pd

    import finrpt_providers as fp
    from finrpt_providers.config import Config
    from finrpt_providers.providers import massive_rest

    queue = mp.Queue()
    server = mp.Process(target=_serve, args=(queue, ["1m"]), daemon=True)
    server.start()
    url = queue.get(timeout=300)

    def ours(workers: int):
        cfg = Config.load({"MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": url, "MASSIVE_REST_WORKERS": str(workers),
                           "FINRPT_PROVIDERS_TODAY": "2026-07-01"}, environ={})

        def run():
            massive_rest.clear_caches()
            return len(fp.get_prices(TICKER, START, END, interval="1m", providers=["massive_rest"], config=cfg))
        return run

    try:
        from massive import RESTClient
    except ImportError:
        RESTClient = None

    def official(limit):
        client = RESTClient(api_key=KEY, base=url)

        def run():
            aggs = list(client.list_aggs(TICKER, 1, "minute", START, END, limit=limit))
            df = pd.DataFrame({"t": [a.timestamp for a in aggs], "o": [a.open for a in aggs],
                               "h": [a.high for a in aggs], "l": [a.low for a in aggs], "c": [a.close for a in aggs],
                               "v": [a.volume for a in aggs], "vw": [a.vwap for a in aggs],
                               "n": [a.transactions for a in aggs]})
            return len(df)
        return run

    variants = [("ours: get_prices, 4 workers (default)", ours(4)), ("ours: get_prices, 1 worker", ours(1))]
    if RESTClient is not None:
        variants += [("massive.RESTClient.list_aggs (default limit 5000)", official(None)),
                     ("massive.RESTClient.list_aggs (limit=50000)", official(50000))]
    else:
        print("note: the official client is not installed (pip install massive): only ours is measured",
              file=sys.stderr)

    results = []
    for name, fn in variants:
        fn()  # warm the connection pools and caches
        best, median, reqs, rows = timed(url, fn, args.repeat)
        results.append((name, best, median, reqs, rows))
    baseline = next((r for r in results if "default limit" in r[0]), results[0])
    print(f"\n{TICKER} 1-minute bars {START}..{END} from the fake Massive REST server (best of {args.repeat})\n")
    print(f"{'variant':<52} {'rows':>8} {'requests':>9} {'best s':>8} {'median s':>9} {'vs official':>12}")
    for name, best, median, reqs, rows in results:
        print(f"{name:<52} {rows:>8} {reqs:>9} {best:>8.3f} {median:>9.3f} {baseline[1] / best:>11.2f}x")
    server.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
