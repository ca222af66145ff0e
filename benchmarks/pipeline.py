"""What the one pipeline costs on the warm path: a year of daily bars from a warm flat-file
store, through get_prices, against the provider's own native read in the same run.

    ./dev bench pipeline

Baseline: ``provider.fetch`` of the native question (raw 1d, store already warm), i.e.
the store read and frame building alone. Every other row is a full ``get_prices`` call
(chain, plan, validation, derived adjustment or interval). Median of N calls each.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import finrpt_providers as fp  # noqa: E402
from finrpt_providers.config import Config  # noqa: E402
from finrpt_providers.plugins import registry  # noqa: E402
from finrpt_providers.testing import FakeFlatFiles, FakeMassiveREST, SyntheticMarket  # noqa: E402

START, END, TICKER, N = "2025-07-01", "2026-06-29", "NVDA", 30


def median_ms(fn, n: int = N) -> float:
    fn()  # warm
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    market = SyntheticMarket()
    with tempfile.TemporaryDirectory() as cache, FakeFlatFiles(market, days=market.sessions, minute_days=[]) as ff, \
            FakeMassiveREST(market, api_key="k") as rest:
        cfg = Config.load({**ff.config(), "MASSIVE_API_KEY": "k", "MASSIVE_REST_BASE_URL": rest.url,
                           "FINRPT_PROVIDERS_TODAY": market.today().isoformat(), "FINRPT_PROVIDERS_CACHE_DIR": cache,
                           "FINRPT_PRICE_PROVIDERS": "massive_flatfiles",
                           "FINRPT_ACTIONS_PROVIDERS": "massive_rest"}, environ={})
        provider = registry()["massive_flatfiles"].provider.configured(cfg)
        query = fp.PriceQuery(TICKER, START, END, "1d", "raw")
        fp.get_prices(TICKER, START, END, adjustment="total", config=cfg)  # fills the store and the actions cache
        rows = [("native read: provider.fetch (raw 1d), the baseline", median_ms(lambda: provider.fetch(query)))]
        for adj, iv in (("raw", "1d"), ("splits", "1d"), ("total", "1d"), ("splits", "1wk"), ("total", "1mo")):
            rows.append((f"get_prices {iv} {adj}",
                         median_ms(lambda adj=adj, iv=iv: fp.get_prices(TICKER, START, END, interval=iv,
                                                                        adjustment=adj, config=cfg))))
    base = rows[0][1]
    print(f"A year of {TICKER} daily bars from a warm flat-file store; median of {N} calls")
    print(f"{'what':<56}{'ms':>8}{'vs baseline':>14}")
    for what, ms in rows:
        print(f"{what:<56}{ms:>8.1f}{ms / base:>13.2f}x")


if __name__ == "__main__":
    main()
