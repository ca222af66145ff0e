"""Live bars at scale: bars per second through the stream's core, its memory, and fills.

    ./dev bench stream [--minutes 960] [--wide 10000] [--quick]

The fake Massive cluster (``FakeMassiveWS``) replays a :class:`~finrpt_providers.testing.tape.WideTape`
(a whole market made on demand: ticker ``i``'s bar at minute ``m`` is a function of
``(i, m)``) as fast as the socket takes (``burst``; the fill cases at half a minute a
second, 30 times real time), in this process; the consumer runs in
a child process so its memory is its own. Cases: 1 ticker, 100 tickers, and ``"*"`` with
``--wide`` tickers (10,000: a whole US market), each for ``--minutes`` minutes of the
session (960: 04:00-20:00, the whole extended session).

Rows, per case:

* **transport only** (the baseline, same run, same messages): the WebSocket read and
  ``json.loads`` of every message, nothing else;
* **stream()**: every bar through the core (parse to a frame, the gate, exactly-once,
  the session's bars kept columnar under FINRPT_STREAM_MEMORY_MB, the consumer's queue).

Columns: bars, seconds, bars/s, the core's speed as a share of the transport's, the
consumer process's peak RSS above its start (after imports), the bytes the stream kept
and the most bytes that waited for the consumer.

Fills: a ``"*"`` stream of N tickers whose connection drops; the reconnect fills every
ticker's hole from the REST fake (``delay`` seconds a request); the fake pings the
client every half second throughout and counts the pongs. Baseline: the same fill
with MASSIVE_REST_WORKERS=1 (one ticker after the other, as the stream filled before
0.2). Columns: tickers with a hole, REST requests counted at the fake, fill calls, the
fill's seconds, pings the server sent during the fill and the slowest answer (the reader
kept reading).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

KEY = "bench-key"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the consumer (child process) -------------------------------------------------------------
def child(case: dict) -> dict:
    import pandas  # noqa: F401  (imports before the start line)
    import websockets.sync.client  # noqa: F401

    import finrpt_providers as fp
    from finrpt_providers.config import Config

    start = rss_mb()
    expect = case["bars"]
    t0 = time.perf_counter()
    if case["mode"] == "transport":
        from websockets.sync.client import connect

        got = 0
        with connect(case["url"], max_size=256 << 20, ping_interval=None) as ws:
            ws.recv(timeout=10)
            ws.send(json.dumps({"action": "auth", "params": KEY}))
            ws.recv(timeout=10)
            ws.send(json.dumps({"action": "subscribe", "params": ",".join(f"AM.{t}" for t in case["tickers"])}))
            while got < expect:
                data = json.loads(ws.recv(timeout=30))
                got += sum(1 for e in data if e.get("ev") == "AM")
        return {"bars": got, "seconds": time.perf_counter() - t0, "rss_mb": peak_mb() - start}
    cfg = Config.load(case["config"], environ={})
    got = 0
    with fp.stream(case["tickers"], config=cfg, extended_hours=True) as s:  # the tape starts at 04:00
        for frame in s:
            got += len(frame)
            if got >= expect:
                break
        out = {"bars": got, "seconds": time.perf_counter() - t0, "rss_mb": peak_mb() - start,
               "kept_mb": s.kept_bytes / 2**20, "waiting_mb": s.peak_waiting / 2**20, "fills": s.fills,
               "fill_seconds": s.fill_seconds,
               "filled": s.filled, "connections": s.connections}
    return out


def run_child(case: dict, timeout: float = 1800) -> dict:
    res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(case)],
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise SystemExit(f"the consumer failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- the driver ----------------------------------------------------------------------------------
def config(rest, ws, day, **extra) -> dict:
    return {"MASSIVE_API_KEY": KEY, "MASSIVE_REST_BASE_URL": rest.url, "FINRPT_PRICE_PROVIDERS": "massive_rest",
            "FINRPT_PROVIDERS_TODAY": day.isoformat(), "FINRPT_STREAM_BACKOFF": "0.02",
            "MASSIVE_WS_OPEN_TIMEOUT": "30", "MASSIVE_WS_PING_INTERVAL": "20", "MASSIVE_WS_PING_TIMEOUT": "60",
            **ws.config(), **{k: str(v) for k, v in extra.items()}}


def expected_bars(tape, minutes: list[int], tickers: list[str] | None) -> int:
    import numpy as np

    idx = np.arange(tape.n) if tickers is None else np.array([tape.index[t] for t in tickers])
    return int(sum(tape.traded(m, idx).sum() for m in minutes))


def throughput(market, day, wide: int, minutes: int) -> list[tuple[str, dict, dict]]:
    from finrpt_providers.testing import FakeMassiveREST
    from finrpt_providers.testing.fake_massive_ws import FakeMassiveWS
    from finrpt_providers.testing.tape import WideTape

    rows = []
    for label, n, star in (("1 ticker", 1, False), ("100 tickers", 100, False), (f'"*", {wide:,} tickers', wide, True)):
        tape = WideTape(day, tickers=n, minutes=minutes)
        tickers = ["*"] if star else tape.names[:n]
        want = expected_bars(tape, list(range(minutes)), None)
        out = {}
        for mode in ("transport", "stream"):
            with FakeMassiveREST(market, api_key=KEY) as rest, \
                    FakeMassiveWS(market, api_key=KEY, tape=tape, start="04:00", speed=1.0) as ws:
                ws.burst = True
                rest.tape = tape
                case = {"mode": mode, "url": ws.url(), "tickers": tickers, "bars": want,
                        "config": config(rest, ws, day)}
                print(f"  {label}: {mode} ...", file=sys.stderr)
                out[mode] = run_child(case)
        rows.append((label, out["transport"], out["stream"]))
    return rows


def fills(market, day, wide: int, delay: float, baseline_n: int) -> list[tuple[str, dict]]:
    from finrpt_providers.testing import FakeMassiveREST
    from finrpt_providers.testing.fake_massive_ws import FakeMassiveWS
    from finrpt_providers.testing.tape import WideTape

    rows = []
    for label, n, workers in ((f"{baseline_n:,} tickers, one request at a time (baseline)", baseline_n, 1),
                              (f"{baseline_n:,} tickers, MASSIVE_REST_WORKERS=16", baseline_n, 16),
                              (f"{wide:,} tickers, MASSIVE_REST_WORKERS=16", wide, 16)):
        tape = WideTape(day, tickers=n, minutes=960)
        with FakeMassiveREST(market, api_key=KEY) as rest, \
                FakeMassiveWS(market, api_key=KEY, tape=tape, start="09:30", speed=0.5) as ws:
            rest.tape, rest.delay = tape, delay
            ws.drop_after, ws.ping_every = 3, 0.5
            # the bars of the first minutes, the hole and the first minutes after the reconnect
            want = expected_bars(tape, list(range(330, 340)), None)
            case = {"mode": "stream", "url": ws.url(), "tickers": ["*"], "bars": want,
                    "config": config(rest, ws, day, MASSIVE_REST_WORKERS=workers, MASSIVE_WS_PING_INTERVAL=5,
                                     MASSIVE_WS_PING_TIMEOUT=30)}
            print(f"  fill: {label} ...", file=sys.stderr)
            t0 = time.monotonic()
            got = run_child(case, timeout=3600)
            asked = rest.aggregate_requests()
            pongs = [(t - t0, rtt) for t, rtt in ws.pongs]
        got["requests"] = len(asked)
        got["holes"] = len({r.path.split("/")[4] for r in asked})
        got["pings"] = len(pongs)
        got["answered"] = sum(1 for _, rtt in pongs if rtt is not None)
        got["slowest_pong"] = max((99.0 if r is None else r) for _, r in pongs) if pongs else float("nan")
        rows.append((label, got))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--minutes", type=int, default=960, help="minutes of the session replayed (960: all of it)")
    ap.add_argument("--wide", type=int, default=10_000, help='tickers under "*"')
    ap.add_argument("--delay", type=float, default=0.02, help="seconds the REST fake takes per request")
    ap.add_argument("--quick", action="store_true", help="60 minutes, 2,000 tickers: a smoke run")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    if args.quick:
        args.minutes, args.wide = 60, 2000

    from finrpt_providers.testing import SyntheticMarket

    market = SyntheticMarket(start="2026-06-22", end="2026-06-30")
    day = market.sessions[-1]
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", file=sys.stderr)
    rows = throughput(market, day, args.wide, args.minutes)
    print(f"\nThroughput: {args.minutes} minutes of the session replayed at once; the consumer reads every bar "
          "(FINRPT_STREAM_MEMORY_MB=256, the default)")
    print("| case | path | bars | s | bars/s | vs transport | peak RSS MB | kept MB | waited MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, base, core in rows:
        print(f"| {label} | transport only (baseline) | {base['bars']:,} | {base['seconds']:.2f} | "
              f"{base['bars'] / base['seconds']:,.0f} | 1.00x | {base['rss_mb']:.0f} | | |")
        print(f"| {label} | stream() | {core['bars']:,} | {core['seconds']:.2f} | "
              f"{core['bars'] / core['seconds']:,.0f} | {base['seconds'] / core['seconds']:.2f}x | "
              f"{core['rss_mb']:.0f} | {core['kept_mb']:.0f} | {core['waiting_mb']:.0f} |")
    frows = fills(market, day, args.wide, args.delay, baseline_n=min(1000, args.wide))
    print(f'\nFills: "*" drops once; every ticker\'s hole filled from REST ({args.delay * 1000:.0f} ms a request)')
    print("| case | tickers with a hole | REST requests | fill() calls | fill s | requests/s | vs one at a time | "
          "server pings answered | slowest pong s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    for label, r in frows:
        secs = r["fill_seconds"]
        rate = r["requests"] / secs if secs else float("nan")
        base = base or rate
        print(f"| {label} | {r['holes']:,} | {r['requests']:,} | {r['fills']} | {secs:.2f} | {rate:,.0f} | "
              f"{rate / base:.1f}x | {r['answered']}/{r['pings']} | {r['slowest_pong']:.3f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
