"""The demo (``finrpt-providers demo``): the whole system against the sandbox, every answer
checked against the synthetic market's truth. Offline."""

from __future__ import annotations


def run_demo(plot: str) -> int:
    """Fetch through the chain from the sandbox and check every answer against the truth."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    from .. import list_providers
    from ..chain import get_prices
    from ..cli import _table
    from .sandbox import require_sandbox_extra, sandbox

    require_sandbox_extra()
    print("Starting the sandbox: fake services on 127.0.0.1 serving a synthetic market (no internet).\n")
    with sandbox() as box:
        cfg, market = box.config, box.market
        rows = [[p["name"], p["plugin"], "ready" if p["ready"] else p["reason"]] for p in list_providers(cfg)]
        print(_table(rows, ["provider", "plugin", "status"]))
        print(f"chain order: {', '.join(cfg.providers)}\n")

        def rate_limited() -> None:
            box.rest.rate_limit_all, box.rest.retry_after = True, "0"

        def minute_plan_missing() -> None:
            box.rest.entitled = {"day"}

        last = market.sessions[-1]
        cases = [
            ("AAPL", "2026-02-02", "2026-02-13", "1d", "total", "quarterly dividend (ex 2026-02-10)", None),
            ("SPY", (last - dt.timedelta(days=7)).isoformat(), last.isoformat(), "1d", "splits",
             f"flat files lack {last} (published next morning): stitched from the next provider", None),
            ("NVDA", "2025-11-12", "2025-11-19", "1d", "raw", "4-for-1 split on 2025-11-17, as traded", None),
            ("NVDA", "2025-11-12", "2025-11-19", "1d", "splits", "the same, split-adjusted", None),
            ("RSPL", "2026-01-15", "2026-01-22", "1d", "raw", "1-for-3 reverse split on 2026-01-20", None),
            ("NVDA", "2025-11-03", "2025-12-31", "1wk", "total",
             "weekly bars, derived in the core from daily bars, adjusted before resampling", None),
            ("BRK.B", "2026-06-22", "2026-06-26", "1d", "splits",
             "fallback: Massive answers 429 to everything", rate_limited),
            ("BRK.B", "2026-06-26", "2026-06-26", "1h", "splits",
             "fallback: the Massive plan lacks minute aggregates", minute_plan_missing),
        ]
        worst = 0.0
        for ticker, start, end, interval, adj, what, fault in cases:
            box.rest.reset()
            if fault:
                fault()
            df = get_prices(ticker, start, end, interval=interval, adjustment=adj, config=cfg)
            truth = market.truth(ticker, start, end, interval, adj)
            diff = float(np.max(np.abs(df["close"].to_numpy() / truth["close"].to_numpy() - 1)))
            worst = max(worst, diff)
            print(f"== {ticker} {interval} {adj}: {what}")
            with pd.option_context("display.width", 120, "display.max_rows", 12):
                print(df[["open", "high", "low", "close", "volume"]].round(4).tail(6))
            for a in df.attrs["attempts"]:
                print(f"   {a['provider']:<18} {a['outcome']:<8} {a['detail'][:150]}")
            print(f"   served by {df.attrs['provider']}; {len(df)} bars; close vs truth: max rel. diff {diff:.1e}\n")
        box.rest.reset()
        from ..compare import Tolerances, compare

        print("== The three providers compared on NVDA, one quarter over its split, split-adjusted")
        result = compare("NVDA", "2025-10-01", "2025-12-31", providers=["massive_flatfiles", "massive_rest", "yfinance"],
                         adjustment="splits", config=cfg,
                         # Yahoo volumes are whole shares, Massive's fractional: a hair apart
                         tolerances=Tolerances(price_rtol=1e-9, volume_rtol=1e-6))
        print(result.report())
        result.plot(plot)
        print(f"\nchart written to {plot}")
    ok = worst < 1e-9 and result.agree
    print("All answers match the synthetic truth." if ok else f"MISMATCH against the truth: {worst:.3e}")
    return 0 if ok else 1
