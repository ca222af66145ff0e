"""What a hostile server costs us now: memory under gzip bombs, seconds under slow-loris.

    ./dev bench hostile

Each hostile row has a baseline measured in the same run:

* gzip bombs (~1 MB that inflate to ~400 MB): peak memory of a fresh process running
  a flat-file query (or a trades scan) against the bomb, next to the same process
  answering from honest files, and next to the bomb read whole by pyarrow (what a
  reader without bounds pays; the review measured 1.8 GB through our old code);
* slow-loris (one byte every ``TRICKLE`` s): seconds until a REST request or an S3 GET
  gives up, with the total deadline set to ``DEADLINE`` s, next to the same request
  with the deadline out of the way (per-read timeouts only: the behaviour before).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finrpt_providers import ProviderError  # noqa: E402
from finrpt_providers.chain import fetch_one  # noqa: E402
from finrpt_providers.config import Config  # noqa: E402
from finrpt_providers.plugins import registry  # noqa: E402
from finrpt_providers.providers.massive_flatfiles import files as F  # noqa: E402
from finrpt_providers.testing import FakeFlatFiles, FakeMassiveREST, SyntheticMarket  # noqa: E402
from finrpt_providers.testing.fake_flatfiles import render_ticks  # noqa: E402
from finrpt_providers.testing.hostile import gzip_bomb, measure  # noqa: E402

TRICKLE, DEADLINE, READ_TIMEOUT = 0.1, 2.0, 2.0


def timed(fn) -> tuple[float, str]:
    t = time.monotonic()
    try:
        fn()
        out = "answered"
    except ProviderError as e:
        out = type(e).__name__
    return time.monotonic() - t, out


def main() -> None:
    market = SyntheticMarket()
    day = market.sessions[-2]
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, FakeFlatFiles(market, days=market.sessions[-6:], minute_days=[]) as ff:
        base = {**ff.config(), "FINRPT_PROVIDERS_TODAY": market.sessions[-1].isoformat(),
                "MASSIVE_S3_MAX_RETRIES": "0", "MASSIVE_S3_READ_TIMEOUT": str(READ_TIMEOUT)}
        span = ("AAPL", market.sessions[-5].isoformat(), day.isoformat())

        honest = measure("query", {**base, "FINRPT_PROVIDERS_CACHE_DIR": f"{tmp}/honest"}, *span)
        def row(what: str, got: dict) -> None:
            rows.append((what, got["error"].split(":")[0], f"{got['peak_mb']:.0f} (+{max(got['grew_mb'], 0):.0f})",
                         f"{got['seconds']:.2f}"))

        row("day-file query, honest files (baseline)", honest)
        day_bomb = gzip_bomb(",".join(F.AGG_COLUMNS), b"AAPL,1,1,1,1,1,1,1\n", 21_000)
        ff.put_raw(ff.key("day_aggs_v1", day), day_bomb)
        row("day-file query, one file a 1 MB -> 400 MB bomb", measure("query", {**base, "FINRPT_PROVIDERS_CACHE_DIR": f"{tmp}/bomb"}, *span))
        ff.publish([day], ["day_aggs_v1"])
        Path(tmp, "day.csv.gz").write_bytes(day_bomb)
        row("the same bomb read whole, no bound (pyarrow.csv.read_csv)", measure("unbounded", {}, f"{tmp}/day.csv.gz"))

        ticks = Path(tmp, "trades.csv.gz")
        ticks.write_bytes(render_ticks(market, "trades_v1", day, per_day=200_000))
        row(f"trades scan, honest {ticks.stat().st_size / 1e6:.1f} MB file (baseline)", measure("scan", {}, str(ticks), "ZZZZ"))
        ticks.write_bytes(gzip_bomb(",".join(F.TRADE_COLUMNS), b"AAPL,,0,4,x,1,1.0,1,1,1.0,1,,\n", 13_000))
        row(f"trades scan, {ticks.stat().st_size / 1e6:.1f} MB -> 400 MB bomb", measure("scan", {}, str(ticks), "ZZZZ"))

        flat = registry()["massive_flatfiles"].provider
        for label, deadline in (("per-read timeout only (before)", "3600"), (f"total deadline {DEADLINE:g} s", str(DEADLINE))):
            cfg = Config.load({**base, "FINRPT_PROVIDERS_CACHE_DIR": f"{tmp}/loris{deadline}",
                               "MASSIVE_S3_REQUEST_DEADLINE": deadline}, environ={})
            ff.trickle_next, ff.trickle_seconds = 1, TRICKLE
            size = ff.client.head_object(Bucket=ff.bucket, Key=ff.key("day_aggs_v1", day))["ContentLength"]
            secs, out = timed(lambda: fetch_one(flat, "AAPL", day, day, adjustment="raw", config=cfg))
            rows.append((f"S3 GET of {size} bytes at {TRICKLE:g} s/byte, {label}", out, "", f"{secs:.1f}"))
    with FakeMassiveREST(market, api_key="bench-key") as rest:
        rest_p = registry()["massive_rest"].provider
        for label, deadline in (("per-read timeout only (before)", "3600"), (f"total deadline {DEADLINE:g} s", str(DEADLINE))):
            cfg = Config.load({"MASSIVE_API_KEY": "bench-key", "MASSIVE_REST_BASE_URL": rest.url,
                               "FINRPT_PROVIDERS_TODAY": market.sessions[-1].isoformat(),
                               "MASSIVE_REST_MAX_RETRIES": "0", "MASSIVE_REST_READ_TIMEOUT": str(READ_TIMEOUT),
                               "MASSIVE_REST_REQUEST_DEADLINE": deadline}, environ={})
            rest.trickle_next, rest.trickle_seconds = 1, TRICKLE
            secs, out = timed(lambda: fetch_one(rest_p, "AAPL", day, day, adjustment="raw", config=cfg))
            rows.append((f"REST page (~500 B) at {TRICKLE:g} s/byte, {label}", out, "", f"{secs:.1f}"))

    print(f"read timeout {READ_TIMEOUT:g} s, no retries; peak MB: a fresh process's peak RSS during the work "
          "(+ its growth over the RSS before it)")
    print()
    print(f"{'what':<70} {'outcome':<20} {'peak MB (+grew)':>15} {'seconds':>8}")
    for what, out, mb, secs in rows:
        print(f"{what:<70} {out:<20} {mb:>15} {secs:>8}")


if __name__ == "__main__":
    main()
