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
    from ..text import table as _table
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
        live_ok = _live_demo(box)
    ok = worst < 1e-9 and result.agree and live_ok
    print("All answers match the synthetic truth." if ok else f"MISMATCH against the truth: {worst:.3e}")
    return 0 if ok else 1


def _live_demo(box) -> bool:
    """A few live bars from the fake WebSocket, a dropped connection and its REST fill, and
    the chain answering today's minutes with the stream's bars joined."""
    import numpy as np
    import pandas as pd

    from ..chain import get_prices
    from ..live import stream

    print(f"\n== Live bars: Massive's WebSocket (fake), {box.market.sessions[-1]} replayed from 09:30, "
          "60 minutes a second; the connection is cut after 4 messages")
    box.ws.drop_after = 4
    got = []
    with stream(["AAPL", "SPY"], config=box.stream_config) as live:
        for frame in live:
            got.append(frame)
            if frame.attrs["source"] == "fill":
                for ticker, part in frame.groupby(level=0):
                    ts = part.index.get_level_values(1)
                    print(f"   {ts[0]:%H:%M}-{ts[-1]:%H:%M} {ticker:<5} {len(part)} bars missed while the connection "
                          "was down: filled from REST")
                continue
            for (ticker, ts), row in frame.iterrows():
                print(f"   {ts:%H:%M} {ticker:<5} close {row.close:>9.2f}  volume {row.volume:>12,.0f}")
            if live.connections > 1 and sum(f.attrs["source"] == "stream" for f in got) >= 8:
                break
        bars = pd.concat(got)
        # REST as a delayed plan has it: today's minutes up to 09:40; the stream has the rest
        box.rest.intraday_until = pd.Timestamp(f"{box.market.sessions[-1]} 09:40", tz="America/New_York")
        today = get_prices("AAPL", box.market.sessions[-1], box.market.sessions[-1], interval="5m", config=box.config,
                           providers=["massive_flatfiles", "massive_rest"], adjustment="raw")
        box.rest.reset()
    ok = bars.index.is_unique and all(bars.xs(t).index.is_monotonic_increasing for t in ("AAPL", "SPY"))
    truth = box.ws.truth("AAPL")
    a = bars.xs("AAPL")
    ok = ok and bool(np.allclose(a["close"].to_numpy(), truth["close"].iloc[:len(a)].to_numpy(), rtol=0, atol=1e-9))
    print(f"   {box.ws.connections} connections; every bar once and in order: {ok}")
    src = ", ".join(f"{s['provider']} {s['first']:%H:%M}-{s['last']:%H:%M}" for s in today.attrs["sources"])
    print(f"   the chain's 5m bars of AAPL today (flat files lag a day, REST here stops at 09:40): {src}")
    want = box.market.truth("AAPL", box.market.sessions[-1], box.market.sessions[-1], "5m", "raw")
    want = want[want.index <= today.index[-1]]
    ok = ok and len(today) == len(want) and bool(np.allclose(today["close"].to_numpy(), want["close"].to_numpy()))
    return ok
