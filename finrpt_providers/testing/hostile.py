"""Hostile inputs for the reliability tests and ``benchmarks/hostile.py``: gzip bombs, and
a fresh-process measurement of what a flat-file query or scan does against them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zlib


def gzip_bomb(header: str, row: bytes, thousands: int) -> bytes:
    """A gzip CSV of ``header`` then ``row`` x 1000 x ``thousands`` (inflates ~1000:1)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = row * 1000
    return c.compress(header.encode() + b"\n") + b"".join(c.compress(block) for _ in range(thousands)) + c.flush()


_MEASURE = textwrap.dedent("""
    import json, sys, time
    import finrpt_providers as fp
    from finrpt_providers.chain import fetch_one
    from finrpt_providers.plugins import registry
    from finrpt_providers.providers.massive_flatfiles import files as F
    kind, settings, args = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
    cfg = fp.Config.exact(settings, 'the probe')
    registry(); import pandas, pyarrow.csv, pyarrow.parquet, boto3  # what any query loads, before measuring

    def status(field):  # Linux: this process's own figures (ru_maxrss survives exec from a big parent)
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak: measure the work alone
    before = status("VmRSS")
    t0 = time.monotonic()
    try:
        if kind == "query":
            fetch_one(registry()["massive_flatfiles"].provider, args[0], args[1], args[2], adjustment="raw",
                      config=cfg)
        elif kind == "unbounded":  # what reading it whole costs (pyarrow inflates .gz itself)
            pyarrow.csv.read_csv(args[0])
        else:
            with open(args[0], "rb") as fh:
                for _ in F.scan_ticker(fh, args[1], "trades_v1", args[0]):
                    pass
        out = "no error"
    except Exception as e:
        out = f"{type(e).__name__}: {e}"
    peak = status("VmHWM")
    print(json.dumps({"error": out, "grew_mb": peak - before, "peak_mb": peak,
                      "seconds": time.monotonic() - t0}))
""")


def measure(kind: str, settings: dict, *args: str) -> dict:
    """In a fresh process: ``kind`` "query" (args: ticker, start, end; a flat-file query with
    ``settings``), "scan" (args: path, ticker; a trades scan of a local file) or "unbounded"
    (args: path; the file read whole by pyarrow, as a reader without bounds would). Returns
    its error (or "no error"), its peak memory and how much that grew in MB, and its seconds."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, kind, json.dumps(settings), *args],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


__all__ = ["gzip_bomb", "measure"]
