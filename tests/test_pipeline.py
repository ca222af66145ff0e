"""The one pipeline: derived intervals (1wk/1mo/3mo, minutes), derived adjustments with
validated corporate actions, declared settings, plugin commands, readiness."""

from __future__ import annotations

import datetime as dt
import logging
import sys

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import finrpt_providers as fp
from finrpt_providers import DataIntegrityError, InvalidQuery, PriceProvider, actions, hookimpl
from finrpt_providers.config import Config, ConfigurationError
from finrpt_providers.intervals import normalize_interval, period_end, period_start, resample_periods, widen
from finrpt_providers.testing import FakeFlatFiles, plugin_of
from tests.conftest import REST_KEY

TODAY = "2026-07-01"


# -- interval names and periods ---------------------------------------------------------
@pytest.mark.parametrize("given,want", [("1wk", "1wk"), ("week", "1wk"), ("1w", "1wk"), ("1mo", "1mo"),
                                        ("monthly", "1mo"), ("3mo", "3mo"), ("quarter", "3mo"), ("1m", "1m"),
                                        ("1D", "1d"), ("60m", "1h"), ("1H", "1h")])
def test_interval_names(given, want):
    assert normalize_interval(given) == want


@pytest.mark.parametrize("given,words", [("1M", r"write '1m' for 1 minute\(s\) or '1mo' for 1 month"),
                                         ("3M", "'3mo'"), ("1W", "ambiguous in case"), ("1WK", "ambiguous"),
                                         ("1y", "not supported")])
def test_ambiguous_or_unknown_intervals_are_refused(given, words):
    with pytest.raises(InvalidQuery, match=words):
        fp.PriceQuery("AAPL", "2026-01-05", "2026-01-09", given)


def test_period_bounds():
    wed = dt.date(2026, 7, 1)
    assert period_start(wed, "1wk") == dt.date(2026, 6, 29) and period_end(wed, "1wk") == dt.date(2026, 7, 5)
    assert period_start(wed, "1mo") == dt.date(2026, 7, 1) and period_end(wed, "1mo") == dt.date(2026, 7, 31)
    assert period_start(dt.date(2026, 2, 14), "3mo") == dt.date(2026, 1, 1)
    assert period_end(dt.date(2026, 11, 3), "3mo") == dt.date(2026, 12, 31)
    assert period_end(dt.date(2028, 2, 3), "1mo") == dt.date(2028, 2, 29)
    assert widen(dt.date(2026, 1, 7), dt.date(2026, 1, 14), "1wk") == (dt.date(2026, 1, 5), dt.date(2026, 1, 18))


def test_period_resampling_rules():
    idx = pd.DatetimeIndex(["2026-06-29", "2026-06-30", "2026-07-01", "2026-07-02"], tz="America/New_York",
                           name="timestamp")
    daily = pd.DataFrame({"open": [10.0, 11, 12, 13], "high": [12.0, 15, 13, 14], "low": [9.0, 10, 8, 12],
                          "close": [11.0, 12, 13, 12.5], "volume": [100.0, 300, 200, 200],
                          "vwap": [10.5, 11.5, np.nan, 12.8]}, index=idx)
    daily["transactions"] = pd.array([5, 6, 7, pd.NA], dtype="Int64")
    wk = resample_periods(daily, "1wk")
    assert list(wk.index) == [pd.Timestamp("2026-06-29", tz="America/New_York")]
    row = wk.iloc[0]
    assert (row.open, row.high, row.low, row.close, row.volume) == (10.0, 15.0, 8.0, 12.5, 800.0)
    assert np.isnan(wk["vwap"].iloc[0]) and pd.isna(wk["transactions"].iloc[0])  # one session lacks each
    mo = resample_periods(daily, "1mo")
    assert [t.date() for t in mo.index] == [dt.date(2026, 6, 1), dt.date(2026, 7, 1)]
    assert mo["vwap"].iloc[0] == pytest.approx((10.5 * 100 + 11.5 * 300) / 400)
    assert mo["transactions"].iloc[0] == 11 and pd.isna(mo["transactions"].iloc[1])
    assert str(mo.index.dtype) == "datetime64[ns, America/New_York]" and str(mo["transactions"].dtype) == "Int64"


# -- periods through the chain, stitched -------------------------------------------------
@pytest.fixture(scope="module")
def ff(market):
    with FakeFlatFiles(market, days=market.sessions[:-1]) as fake:  # lacks the newest session, as upstream
        yield fake


@pytest.fixture
def full_config(ff, rest, fake_yahoo, tmp_path):
    return Config.load({**ff.config(), "MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                        "FINRPT_YFINANCE_BASE_URL": fake_yahoo.url, "FINRPT_PROVIDERS_TODAY": TODAY,
                        "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path / "cache")}, environ={})


def assert_same_bars(got, want, price_rtol=1e-9):
    assert list(got.index) == list(want.index)
    for col in ("open", "high", "low", "close"):
        np.testing.assert_allclose(got[col], want[col], rtol=price_rtol, err_msg=col)
    np.testing.assert_allclose(got["volume"], want["volume"], rtol=1e-9, err_msg="volume")


@pytest.mark.parametrize("interval", ["1wk", "1mo", "3mo"])
def test_periods_from_stitched_daily_bars(full_config, market, interval):
    # NVDA's 4-for-1 split (2025-11-17) falls inside a week, a month and a quarter; the flat
    # files lack the last session, which Massive REST fills before the periods are built.
    df = fp.get_prices("NVDA", "2025-10-06", "2026-06-30", interval=interval, adjustment="total",
                       config=full_config)
    want = market.truth("NVDA", "2025-10-06", "2026-06-30", interval, "total")
    assert_same_bars(df, want)
    assert df.attrs["interval"] == interval and df.attrs["provider"] == "massive_flatfiles+massive_rest"
    assert df.attrs["actions"] == "massive_rest"
    assert df.attrs["partial_last"] is (interval == "1wk")  # today (07-01) is inside that week only
    assert df.index[0] == pd.Timestamp(period_start(dt.date(2025, 10, 6), interval), tz="America/New_York")


def test_yahoo_intraday_total_is_derived_not_taken_from_yfinance(full_config, market):
    """Yahoo's intraday charts carry no adjclose, so yfinance's intraday auto_adjust is not the
    total-return series; the core derives it (this was 3.7e-4 off with NVDA's 2025-12 dividend)."""
    df = fp.get_prices("NVDA", "2025-11-12", "2025-11-19", interval="1h", adjustment="total",
                       providers=["yfinance"], config=full_config)
    assert_same_bars(df, market.truth("NVDA", "2025-11-12", "2025-11-19", "1h", "total"), price_rtol=1e-12)
    assert df.attrs["actions"] == "massive_rest"


def test_adjusting_before_resampling_matters(full_config, market):
    """The month of a split: resampling raw bars then adjusting would mix two price bases."""
    raw = fp.get_prices("NVDA", "2025-11-01", "2025-11-30", interval="1mo", adjustment="raw", config=full_config)
    adj = fp.get_prices("NVDA", "2025-11-01", "2025-11-30", interval="1mo", adjustment="splits", config=full_config)
    truth_daily = market.truth("NVDA", "2025-11-03", "2025-11-28", "1d", "splits")
    assert adj["high"].iloc[0] == pytest.approx(truth_daily["high"].max())
    assert raw["high"].iloc[0] > 3 * adj["high"].iloc[0]  # the pre-split raw highs are ~4x


# -- corporate actions: validation, one source order, one cache ----------------------------
def test_a_split_listed_twice_is_one_event_dated_where_the_price_jumps(full_config, rest, market, caplog):
    rest.extra_splits = [("NVDA", "2025-11-10", 4.0)]  # as Massive's legacy data lists SHOP twice
    with caplog.at_level(logging.INFO, logger="finrpt_providers.actions"):
        df = fp.get_prices("NVDA", "2025-11-03", "2025-11-28", adjustment="splits", providers=["massive_flatfiles"],
                           config=full_config)
    assert_same_bars(df, market.truth("NVDA", "2025-11-03", "2025-11-28", "1d", "splits"))
    assert any("one event, dated 2025-11-17" in r.getMessage() for r in caplog.records)
    acts = actions.get_actions("NVDA", full_config, None)
    assert [t.date() for t in acts.splits.index if t.year == 2025] == [dt.date(2025, 11, 17)]


def test_a_ratio_the_prices_contradict_is_not_applied(full_config, rest, market):
    rest.split_ratio_override = {"NVDA": 2.0}  # the real split is 4-for-1
    only_rest = full_config.merged({"FINRPT_ACTIONS_PROVIDERS": "massive_rest"})
    with pytest.raises(fp.AllProvidersFailed, match=r"2-for-1 split of NVDA on 2025-11-17, but the as-traded "
                                                    r"price moves by 4\.\d+x there"):
        fp.get_prices("NVDA", "2025-11-03", "2025-11-28", adjustment="splits", providers=["massive_flatfiles"],
                      config=only_rest)
    # with the default order the next source (yfinance) is used, and the answer is right
    df = fp.get_prices("NVDA", "2025-11-03", "2025-11-28", adjustment="splits", providers=["massive_flatfiles"],
                       config=full_config)
    assert_same_bars(df, market.truth("NVDA", "2025-11-03", "2025-11-28", "1d", "splits"))
    assert df.attrs["actions"] == "yfinance"


def test_duplicates_without_as_traded_prices_are_an_error_not_a_guess(rest, fake_yahoo, market):
    rest.extra_splits = [("NVDA", "2025-11-10", 4.0)]
    cfg = Config.load({"MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                       "FINRPT_YFINANCE_BASE_URL": fake_yahoo.url, "FINRPT_PROVIDERS_TODAY": TODAY,
                       "FINRPT_PRICE_PROVIDERS": "yfinance", "FINRPT_ACTIONS_PROVIDERS": "massive_rest"}, environ={})
    with pytest.raises(fp.AllProvidersFailed, match="lists the 4-for-1 split of NVDA 2 times"):
        fp.get_prices("NVDA", "2025-11-03", "2025-11-28", adjustment="raw", config=cfg)


def test_actions_are_fetched_once_per_source_and_ticker(full_config, rest):
    for _ in range(3):
        fp.get_prices("AAPL", "2026-02-02", "2026-02-13", adjustment="total", providers=["massive_flatfiles"],
                      config=full_config)
    refs = [r for r in rest.requests if "splits" in r.path or "dividends" in r.path]
    assert len(refs) == 2  # one splits and one dividends request, then the one cache answers


def test_the_source_order_defaults_to_the_chain_and_never_beyond_it(full_config):
    assert actions.source_order(full_config) == ["massive_rest", "yfinance"]
    no_key = full_config.merged({"MASSIVE_API_KEY": ""})
    assert actions.available(no_key)[0] == ["yfinance"]
    assert actions.source_order(full_config.merged({"FINRPT_ACTIONS_PROVIDERS": "yfinance"})) == ["yfinance"]
    # yfinance out of the chain: never asked for corporate actions, whatever is installed
    only_files = full_config.merged({"FINRPT_PRICE_PROVIDERS": "massive_flatfiles"})
    assert actions.source_order(only_files) == [] and actions.available(only_files)[0] == []


def test_total_needs_the_close_of_the_session_right_before_the_ex_date(full_config, ff, market):
    # AAPL goes ex-dividend on 2026-02-10: drop the 2026-02-09 day file upstream
    ff.remove("day_aggs_v1", dt.date(2026, 2, 9))
    try:
        with pytest.raises(DataIntegrityError, match="no close for 2026-02-09, the session before the ex-date"):
            fp.chain.fetch_one(fp.plugins.registry()["massive_flatfiles"].provider, "AAPL", "2026-02-02",
                               "2026-02-06", adjustment="total", config=full_config)
    finally:
        ff.publish([dt.date(2026, 2, 9)])


# -- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,value,words", [
    ("MASSIVE_REST_REQUESTS_PER_MINUTE", "0.5", r"requests_per_minute\) = '0.5' is not valid: use a whole number >= 0"),
    ("MASSIVE_REST_MAX_RETRIES", "nan", r"max_retries\) = 'nan' is not valid: use a whole number >= 0 and <= 20"),
    ("MASSIVE_REST_READ_TIMEOUT", "0", r"read_timeout\) = '0' is not valid: out of range: use a number > 0"),
    ("MASSIVE_S3_ENDPOINT", "files.massive.com", r"endpoint\) = 'files.massive.com' is not valid: use an http"),
    ("FINRPT_PROVIDERS_TODAY", "tomorrow", r"today\) = 'tomorrow' is not valid: use a date YYYY-MM-DD"),
])
def test_bad_setting_values_name_the_setting_and_the_range(name, value, words):
    with pytest.raises(ConfigurationError, match=words):
        Config.load({name: value}, environ={})


def test_a_bad_secret_value_is_never_echoed():
    s = fp.config.Setting("MYPROV_API_KEY", "myprov", "api_key", "int", secret=True)
    with pytest.raises(ConfigurationError) as e:
        s.parse("sk-live-123")
    assert "sk-live-123" not in str(e.value) and "****" in str(e.value)


def test_a_directory_as_the_config_file(tmp_path):
    with pytest.raises(ConfigurationError, match="is a directory: point FINRPT_PROVIDERS_CONFIG"):
        Config.load(environ={"FINRPT_PROVIDERS_CONFIG": str(tmp_path)})


def test_toml_names_come_from_the_declarations(tmp_path):
    (tmp_path / "c.toml").write_text('[massive_rest]\nrequests_per_minute = 5\n[chain]\nactions = ["yfinance"]\n')
    cfg = Config.load(toml_path=tmp_path / "c.toml", environ={})
    assert cfg.value("MASSIVE_REST_REQUESTS_PER_MINUTE") == 5 and cfg.actions_providers == ["yfinance"]


# -- plugins: commands, readiness ------------------------------------------------------------
class EchoPlugin:
    @staticmethod
    @hookimpl
    def register_commands(cli):
        p = cli.command("echo-today", "print the configured date", lambda args, ctx: (ctx.out.write(
            f"{ctx.config.today()} {args.suffix}\n"), 0)[1])
        p.add_argument("--suffix", default="!")


def test_a_plugin_adds_a_command(register_plugin, capsys):
    from finrpt_providers import cli

    register_plugin(EchoPlugin(), name="echo-plugin")
    code = cli.main(["echo-today", "--suffix", "ok"])
    assert code == 0 and capsys.readouterr().out.endswith(" ok\n")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in ("echo-today", "sync", "verify", "trades", "quotes"):
        assert name in out


def test_a_broken_dependency_makes_a_provider_not_ready(register_plugin, tmp_path, monkeypatch):
    (tmp_path / "broken_dep_xyz.py").write_text("raise RuntimeError('compiled against another numpy')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))

    class Broken(PriceProvider):
        name = "broken_dep"
        requires = ("broken_dep_xyz",)

        def fetch(self, query):  # pragma: no cover - never reached
            raise AssertionError("called")

    register_plugin(plugin_of(Broken()), name="broken-dep-plugin")
    rows = {p["name"]: p for p in fp.list_providers({"FINRPT_PROVIDERS_TODAY": TODAY}, check_imports=True)}
    assert not rows["broken_dep"]["ready"]
    assert "broken install: broken_dep_xyz fails to import: RuntimeError: compiled against another numpy" \
        in rows["broken_dep"]["reason"]
    cfg = Config.load({"FINRPT_PRICE_PROVIDERS": "broken_dep", "FINRPT_PROVIDERS_TODAY": TODAY}, environ={})
    with pytest.raises(fp.AllProvidersFailed, match="broken_dep skipped .*broken install"):
        fp.get_prices("AAPL", "2026-03-02", "2026-03-03", config=cfg)
    sys.modules.pop("broken_dep_xyz", None)


def test_the_demo_without_the_sandbox_extra_says_which_extra(monkeypatch, capsys):
    import importlib.util

    from finrpt_providers import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real(name, *a))
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the sandbox needs moto (its fake flat files run on moto's S3 server): "
                   "pip install 'finrpt-providers[sandbox]'"]


def test_compare_weekly_bars_across_providers(full_config):
    from finrpt_providers.compare import Tolerances, compare

    result = compare("NVDA", "2025-11-03", "2025-12-31", interval="1wk", adjustment="total",
                     providers=["massive_rest", "yfinance", "massive_flatfiles"], config=full_config,
                     tolerances=Tolerances(price_rtol=1e-9, volume_rtol=1e-6))
    assert result.agree, result.reasons
    assert all(gone == [] for gone in result.missing.values())
    assert len(result.frames["yfinance"]) == 9  # Nov 3 .. Dec 29: nine Mondays
