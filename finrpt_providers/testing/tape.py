"""A whole market's minute bars for one session, made on demand: the fakes' source for
scale tests of the live stream (``stream("*")`` over thousands of tickers).

Nothing is stored: the bar of ticker ``i`` at minute ``m`` is a pure function of
``(i, m)``, so a 10,000-ticker session (~9 million bars) costs no memory in the fake,
and the truth of any bar can be recomputed by a test. Tickers are ``W0000``,
``W0001``...; minutes run 04:00-20:00 New York (960); a ticker has no bar in a minute
where ``(7 i + 13 m) % quiet == 0`` (minutes without trades exist, as in a real tape).
Prices are in cents, volumes whole shares, ``vwap`` inside [low, high].
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ..timebase import ET


class WideTape:
    def __init__(self, day: dt.date, tickers: int = 10_000, *, first: str = "04:00", minutes: int = 960,
                 quiet: int = 10) -> None:
        self.day = day
        self.n = tickers
        self.names = [f"W{i:04d}" for i in range(tickers)]
        self.index = {t: i for i, t in enumerate(self.names)}
        start = pd.Timestamp(f"{day} {first}", tz=ET)
        self.minutes = [start + pd.Timedelta(minutes=k) for k in range(minutes)]
        self._start_ms = int(start.value // 1_000_000)
        self.quiet = quiet
        i = np.arange(tickers, dtype=np.int64)
        self._base = 5.0 + (i * 7919 % 49_500) / 100.0  # 5.00 .. 500.00

    # -- the bars -----------------------------------------------------------------------------
    def _values(self, m: int, i: np.ndarray) -> dict[str, np.ndarray]:
        base = self._base[i]
        wave = np.sin(0.37 * i + 0.05 * m)
        o = np.round(base * (1 + 0.01 * wave), 2)
        c = np.round(base * (1 + 0.01 * np.sin(0.37 * i + 0.05 * (m + 1))), 2)
        h = np.round(np.maximum(o, c) + 0.01 * (1 + (i + m) % 5), 2)
        lo = np.round(np.maximum(np.minimum(o, c) - 0.01 * (1 + (i + 2 * m) % 5), 0.01), 2)
        v = (100 * (1 + (i * 31 + m * 17) % 97)).astype(np.float64)
        vw = np.round((h + lo + c) / 3, 4)
        n = 1 + (i + m) % 40
        return {"o": o, "h": h, "l": lo, "c": c, "v": v, "vw": vw, "n": n}

    def traded(self, m: int, i: np.ndarray) -> np.ndarray:
        return (7 * i + 13 * m) % self.quiet != 0

    def message(self, m: int, only: set[int] | None = None) -> str:
        """Minute ``m``'s ``AM`` events (every ticker that traded, or those in ``only``), as
        Massive sends them: one JSON array."""
        i = np.arange(self.n, dtype=np.int64) if only is None else np.array(sorted(only), dtype=np.int64)
        i = i[self.traded(m, i)]
        if not len(i):
            return ""
        x = self._values(m, i)
        s = self._start_ms + m * 60_000
        names = self.names
        o, h, lo, c, v, vw = (x[k].tolist() for k in ("o", "h", "l", "c", "v", "vw"))
        parts = [f'{{"ev":"AM","sym":"{names[k]}","v":{v[j]},"av":0,"op":0,"vw":{vw[j]},"o":{o[j]},"c":{c[j]},'
                 f'"h":{h[j]},"l":{lo[j]},"a":0,"z":0,"s":{s},"e":{s + 60_000}}}' for j, k in enumerate(i.tolist())]
        return "[" + ",".join(parts) + "]"

    def results(self, ticker: str, lo_ms: int, hi_ms: int) -> list[dict]:
        """REST aggregate results of ``ticker`` with starts in [lo_ms, hi_ms] (Massive's fields)."""
        k = self.index.get(ticker)
        if k is None:
            return []
        first = max(0, -(-(lo_ms - self._start_ms) // 60_000))
        last = min(len(self.minutes) - 1, (hi_ms - self._start_ms) // 60_000)
        out = []
        i = np.array([k], dtype=np.int64)
        for m in range(first, last + 1):
            if not self.traded(m, i)[0]:
                continue
            x = self._values(m, i)
            out.append({"v": float(x["v"][0]), "vw": float(x["vw"][0]), "o": float(x["o"][0]),
                        "c": float(x["c"][0]), "h": float(x["h"][0]), "l": float(x["l"][0]),
                        "t": self._start_ms + m * 60_000, "n": int(x["n"][0])})
        return out

    def truth(self, ticker: str, upto: pd.Timestamp | None = None) -> pd.DataFrame:
        """Every bar of ``ticker`` (to ``upto``, inclusive) as a bar frame."""
        hi = len(self.minutes) - 1 if upto is None else int((upto.value // 1_000_000 - self._start_ms) // 60_000)
        rows = self.results(ticker, self._start_ms, self._start_ms + hi * 60_000)
        idx = pd.DatetimeIndex(pd.to_datetime([r["t"] for r in rows], unit="ms", utc=True)).tz_convert(ET)
        out = pd.DataFrame({"open": [r["o"] for r in rows], "high": [r["h"] for r in rows],
                            "low": [r["l"] for r in rows], "close": [r["c"] for r in rows],
                            "volume": [r["v"] for r in rows], "vwap": [r["vw"] for r in rows]},
                           index=idx.rename("timestamp"))
        out["transactions"] = pd.array([r["n"] for r in rows], dtype="Int64")
        return out
