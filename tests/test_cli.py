"""The command line: exit codes, formats, one-line errors, nothing secret printed."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pandas as pd
import pytest

from finrpt_providers import cli

SENTINEL = "sk-SENTINEL-cli-7731"


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as e:  # argparse
            code = e.code
    return code, out.getvalue(), err.getvalue()


def fetch_args(fake_yahoo, market, *extra):
    return ("fetch", "NVDA", "--start", "2025-11-13", "--end", "2025-11-18", "--provider", "yfinance", *extra)


@pytest.fixture
def yahoo_env(monkeypatch, fake_yahoo, market):
    monkeypatch.setenv("FINRPT_YFINANCE_BASE_URL", fake_yahoo.url)
    monkeypatch.setenv("FINRPT_PROVIDERS_TODAY", market.today().isoformat())


def test_fetch_table(yahoo_env, fake_yahoo, market):
    code, out, err = run(*fetch_args(fake_yahoo, market))
    assert code == 0, err
    assert "2025-11-17 00:00:00-05:00" in out and "timestamp" in out
    assert "4 bars from yfinance" in err


def test_fetch_csv_roundtrips_to_the_same_values(yahoo_env, fake_yahoo, market):
    code, out, err = run(*fetch_args(fake_yahoo, market, "--format", "csv", "--adjustment", "raw"))
    assert code == 0, err
    df = pd.read_csv(io.StringIO(out), index_col="timestamp")
    assert list(df.columns) == ["open", "high", "low", "close", "volume", "vwap", "transactions"]
    truth = market.truth("NVDA", "2025-11-13", "2025-11-18", "1d", "raw")
    assert df["close"].tolist() == pytest.approx(truth["close"].tolist(), rel=1e-9)


def test_fetch_json_has_bars_and_what_the_chain_did(yahoo_env, fake_yahoo, market):
    code, out, err = run("fetch", "AAPL", "--start", "2026-03-02", "--end", "2026-03-03", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["provider"] == "yfinance" and data["ticker"] == "AAPL" and len(data["bars"]) == 2
    assert data["bars"][0]["timestamp"] == "2026-03-02T00:00:00-05:00"
    assert data["bars"][0]["vwap"] is None and data["bars"][0]["transactions"] is None
    assert [a["outcome"] for a in data["attempts"]] == ["skipped", "skipped", "ok"]
    assert "missing credentials" in data["attempts"][0]["detail"]
    assert data["sources"][0]["first"] == "2026-03-02T00:00:00-05:00"


@pytest.mark.parametrize("args,code,words", [
    (("fetch", "AA PL", "--start", "2024-01-02"), 2, "whitespace"),
    (("fetch", "AAPL", "--start", "2024-02-30"), 2, "not a date"),
    (("fetch", "AAPL", "--start", "2024-01-02", "--interval", "2h"), 2, "interval"),
    (("fetch", "AAPL", "--start", "2024-01-05", "--end", "2024-01-02"), 2, "after end"),
    (("fetch", "AAPL"), 2, "--start"),
    (("fetch", "AAPL", "--start", "2024-01-02", "--format", "xml"), 2, "invalid choice"),
    (("fetch", "AAPL", "--start", "2024-01-02", "--provider", "nosuch"), 1, "no provider named 'nosuch'"),
])
def test_errors_are_one_line_with_the_right_exit_code(args, code, words):
    got, out, err = run(*args)
    assert got == code
    assert words in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error")]) == 1


def test_provider_failure_exits_1(yahoo_env, fake_yahoo):
    fake_yahoo.rate_limited = True
    code, out, err = run("fetch", "AAPL", "--start", "2026-03-02", "--end", "2026-03-03", "--provider", "yfinance")
    assert code == 1 and "RateLimited" in err and out == ""
    assert len(err.strip().splitlines()) == 1


def test_providers_and_config_never_print_secrets(monkeypatch):
    monkeypatch.setenv("MASSIVE_API_KEY", SENTINEL)
    monkeypatch.setenv("MASSIVE_S3_SECRET_KEY", SENTINEL)
    for args in (("providers",), ("config",), ("--debug", "providers")):
        code, out, err = run(*args)
        assert code == 0
        assert SENTINEL not in out + err
    code, out, _ = run("config")
    assert "MASSIVE_API_KEY" in out and "****" in out and "environment" in out


def test_providers_lists_the_chain_order(monkeypatch):
    monkeypatch.setenv("FINRPT_PRICE_PROVIDERS", "yfinance,polygon_legacy,massive_rest")
    code, out, _ = run("providers")
    assert code == 0
    assert "chain order: yfinance, polygon_legacy (not installed), massive_rest" in out
    assert "environment" in out
    assert "missing credentials: set MASSIVE_API_KEY" in out
    assert "missing credentials: set MASSIVE_S3_ACCESS_KEY, MASSIVE_S3_SECRET_KEY" in out


def test_sandbox_flag_fetches_offline():
    code, out, err = run("--sandbox", "fetch", "BRK.B", "--start", "2026-06-22", "--end", "2026-06-24")
    assert code == 0, err
    assert "3 bars from massive_flatfiles" in err


def test_demo_runs_and_matches_the_truth():
    code, out, err = run("demo")
    assert code == 0, err
    assert "All answers match the synthetic truth." in out


def test_no_command_shows_help():
    code, out, _ = run()
    assert code == 2 and "fetch" in out


def test_light_imports():
    """`import finrpt_providers`, `--help` and `providers` stay free of yfinance, boto3 and pyarrow
    (and of pandas, which imports pyarrow)."""
    probe = ("import sys, contextlib, io\n"
             "import finrpt_providers\n"
             "from finrpt_providers import cli\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    cli.main(['providers'])\n"
             "    try: cli.main(['--help'])\n"
             "    except SystemExit: pass\n"
             "heavy = [m for m in ('yfinance', 'boto3', 'botocore', 'pyarrow', 'curl_cffi', 'pandas') if m in sys.modules]\n"
             "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_public_shortcuts_load_lazily():
    import finrpt_providers as fp
    from finrpt_providers import dataer

    assert not hasattr(fp, "iter_trades")  # a provider's functions are imported from the provider
    assert fp.Dataer is dataer.Dataer and fp.DataerMixin is dataer.DataerMixin
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fp.nope  # noqa: B018
