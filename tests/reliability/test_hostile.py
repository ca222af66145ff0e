"""What an adversarial review broke, one test per numbered finding (and per variant of it).

Each test makes the fakes (127.0.0.1 only) behave as a hostile server or a careless
user would and checks the outcome the README's reliability table documents: a
documented error naming the problem within a bounded time, the truth from the next
provider in the chain, nothing secret anywhere, nothing partial in the store.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

import finrpt_providers as fp
from finrpt_providers import (
    AllProvidersFailed,
    DataIntegrityError,
    InvalidQuery,
    PluginError,
    PriceProvider,
    ProviderError,
    ProviderUnavailable,
    UnsupportedQuery,
)
from finrpt_providers.chain import fetch_one
from finrpt_providers.config import Config
from finrpt_providers.plugins import registry
from finrpt_providers.provider import validate_bars
from finrpt_providers.providers.massive_flatfiles import files as F
from finrpt_providers.providers.massive_flatfiles import store_for
from finrpt_providers.providers.massive_flatfiles.mirror import verify
from finrpt_providers.providers.massive_flatfiles.s3 import FlatFilesS3
from finrpt_providers.providers.massive_rest import KEY_PARAMS
from finrpt_providers.testing import FakeFlatFiles, plugin_of
from finrpt_providers.testing.fake_flatfiles import render_aggs
from finrpt_providers.testing.hostile import gzip_bomb, measure
from tests.conftest import REST_KEY

TODAY = dt.date(2026, 7, 1)
WEEK = ("AAPL", "2026-03-02", "2026-03-06")
DAY = dt.date(2026, 3, 4)
BOUND = 20.0  # seconds any hostile answer may hold us


def _rest_cfg(rest, tmp_path, **extra) -> Config:
    return Config.load({"MASSIVE_API_KEY": REST_KEY, "MASSIVE_REST_BASE_URL": rest.url,
                        "FINRPT_PROVIDERS_TODAY": TODAY.isoformat(), "MASSIVE_REST_BACKOFF": "0.01",
                        "MASSIVE_REST_MAX_RETRIES": "1", "MASSIVE_REST_READ_TIMEOUT": "2",
                        "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path / "cache"), **extra}, environ={})


def _alone(name: str, cfg: Config, ticker, start, end, **kw) -> pd.DataFrame:
    return fetch_one(registry()[name].provider, ticker, start, end, config=cfg, **kw)


def _truth(market, ticker, start, end, interval="1d", adjustment="raw") -> pd.DataFrame:
    return market.truth(ticker, dt.date.fromisoformat(start), dt.date.fromisoformat(end), interval, adjustment)


def _same(got: pd.DataFrame, want: pd.DataFrame, vwap=True) -> None:
    cols = ["open", "high", "low", "close", "volume"] + (["vwap"] if vwap else [])
    pdt.assert_frame_equal(got[cols], want[cols], check_freq=False, rtol=1e-9)


def _csv(day_file: bytes) -> list[str]:
    return gzip.decompress(day_file).decode().splitlines()


def _gz(lines: list[str]) -> bytes:
    return gzip.compress(("\n".join(lines) + "\n").encode())


@pytest.fixture
def republish(ff):
    """Files a test damages upstream are restored afterwards (the fake is shared)."""
    touched: list[tuple[str, dt.date]] = []
    yield touched.append
    for dataset, day in touched:
        ff.publish([day], [dataset])


# -- 1. the key never leaves the configured host --------------------------------------
@pytest.mark.parametrize("base", ["1", "@127.0.0.2:8080", ".attacker.example", "//127.0.0.2:8080", "ftp://x",
                                  "http:evil"])
def test_a_next_url_that_would_leave_the_configured_host_is_refused(rest, tmp_path, base):
    rest.page_size, rest.next_url_base = 2, base
    with pytest.raises(DataIntegrityError, match="next_url"):
        _alone("massive_rest", _rest_cfg(rest, tmp_path), *WEEK, adjustment="raw")
    assert len(rest.aggregate_requests()) == 1  # the first page only, on the configured host


def test_a_next_url_naming_another_host_is_followed_on_the_configured_one(rest, tmp_path, market):
    rest.page_size, rest.next_url_base = 2, "https://evil.example:9999"
    got = _alone("massive_rest", _rest_cfg(rest, tmp_path), *WEEK, adjustment="raw")
    _same(got, _truth(market, *WEEK))
    assert len(rest.aggregate_requests()) == 3


def test_a_next_url_for_another_ticker_is_refused(rest, tmp_path):
    rest.page_size, rest.next_url_ticker = 2, "MSFT"
    with pytest.raises(DataIntegrityError, match="another endpoint"):
        _alone("massive_rest", _rest_cfg(rest, tmp_path), *WEEK, adjustment="raw")


def test_key_params_of_any_spelling_are_dropped_from_followed_urls(rest, tmp_path, market, caplog):
    rest.page_size = 2
    rest.next_url_extra = "&APIKEY=leak1&apikey=leak2&api_key=leak3&ApiKey=leak4&access_token=leak5"
    with caplog.at_level(logging.DEBUG):
        got = _alone("massive_rest", _rest_cfg(rest, tmp_path), *WEEK, adjustment="raw")
    _same(got, _truth(market, *WEEK))
    follow = rest.aggregate_requests()[1:]
    assert follow and all(k.lower() not in KEY_PARAMS for r in follow for k in r.query)
    assert "leak" not in caplog.text


# -- 2. echoed credentials ------------------------------------------------------------
def test_an_error_echoing_the_authorization_header_is_redacted(rest, tmp_path, caplog):
    rest.echo_next = 5
    with caplog.at_level(logging.DEBUG), pytest.raises(UnsupportedQuery) as info:
        _alone("massive_rest", _rest_cfg(rest, tmp_path), *WEEK, adjustment="raw")
    text = f"{info.value} {info.value!r} {caplog.text}"
    assert "Authorization: ****" in str(info.value)
    assert REST_KEY not in text


def test_an_s3_error_echoing_credential_is_redacted(ff, all_cfg, caplog):
    ff.echo_next = 5
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as info:
        _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")
    text = f"{info.value} {info.value!r} {caplog.text}"
    assert ff.access_key not in text and ff.secret_key not in text
    assert "Credential=" not in str(info.value) or "Credential=****" in str(info.value)


def test_s3_keys_that_botocore_logs_escaped_are_redacted_at_debug(market, tmp_path, caplog):
    access, secret = "AKID\\'SENTINELA1", "se/cr+et\\\"SENTINELB2"
    with FakeFlatFiles(market, days=market.sessions[-3:], minute_days=[], access_key=access,
                       secret_key=secret) as fake:
        cfg = Config.load({**fake.config(), "FINRPT_PROVIDERS_TODAY": market.sessions[-1].isoformat(),
                           "FINRPT_PROVIDERS_CACHE_DIR": str(tmp_path)}, environ={})
        fake.echo_next = 1  # an error echoing the signed header, then a normal answer
        with caplog.at_level(logging.DEBUG):
            for _ in range(2):
                try:
                    _alone("massive_flatfiles", cfg, "AAPL", market.sessions[-3], market.sessions[-2],
                           adjustment="raw")
                except ProviderError as e:
                    caplog.handler.emit(logging.makeLogRecord({"name": "test", "msg": f"{e} {e!r}"}))
    seen = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "botocore" in {r.name.split(".")[0] for r in caplog.records}
    assert "SENTINELA1" not in seen and "SENTINELB2" not in seen


# -- 3. REST results out of order -----------------------------------------------------
@pytest.mark.parametrize("order", ["desc", "shuffle"])
@pytest.mark.parametrize("interval,span", [("1d", ("AAPL", "2026-01-02", "2026-04-30")),
                                           ("1m", ("AAPL", "2026-03-02", "2026-03-03"))])
def test_rest_results_in_any_order_lose_no_bar(rest, tmp_path, market, order, interval, span):
    rest.results_order, rest.page_size = order, 7
    got = _alone("massive_rest", _rest_cfg(rest, tmp_path), *span, interval=interval, adjustment="raw")
    _same(got, _truth(market, *span, interval=interval))


# -- 4. flat-file rows of another session -----------------------------------------------
def _stray_day_file(market, how: str) -> bytes:
    lines = _csv(render_aggs(market, "day_aggs_v1", DAY))
    f = lines[1].split(",")
    if how == "other date":
        f[6] = str(int(f[6]) + 86_400 * 10**9)
        lines.append(",".join(f))
    elif how == "milliseconds":
        f[6] = str(int(f[6]) // 10**6)
        lines[1] = ",".join(f)
    return _gz(lines)


@pytest.mark.parametrize("how", ["other date", "milliseconds"])
def test_day_file_rows_of_another_session_are_refused_and_the_chain_stitches(ff, all_cfg, market, republish,
                                                                              how):
    republish(("day_aggs_v1", DAY))
    key = ff.key("day_aggs_v1", DAY)
    ff.put_raw(key, _stray_day_file(market, how))
    with pytest.raises(DataIntegrityError, match="another session") as info:
        _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")
    assert key in str(info.value)
    assert DAY not in store_for(all_cfg).stored("day_aggs_v1", [DAY])
    got = fp.get_prices(*WEEK, adjustment="raw", config=all_cfg)
    _same(got, _truth(market, *WEEK), vwap=False)


def test_a_stray_bar_from_another_day_in_a_minute_file_is_refused(ff, all_cfg, market, republish):
    day = dt.date(2026, 6, 23)
    republish(("minute_aggs_v1", day))
    lines = _csv(render_aggs(market, "minute_aggs_v1", day))
    f = lines[-1].split(",")
    f[6] = str(int(f[6]) - 86_400 * 10**9)
    ff.put_raw(ff.key("minute_aggs_v1", day), _gz(lines[:-1] + [",".join(f)]))
    with pytest.raises(DataIntegrityError, match="another session"):
        _alone("massive_flatfiles", all_cfg, "AAPL", day, day, interval="1m", adjustment="raw")


# -- 5. the one-ticker scan of an unsorted file ----------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_the_scan_of_an_unsorted_file_yields_exactly_the_tickers_rows(seed, caplog):
    rng = random.Random(seed)
    tickers = ["A", "AA", "AAPL", "B", "BRK.A", "BRKA", "MSFT", "NA", "Z"]
    rows = [f"{t},1,1.5,1.5,1.6,1.4,{1_772_000_000_000_000_000 + i},1" for t in tickers for i in range(300)]
    if seed:  # shuffled within pieces, or a few rows out of place
        k = 40 if seed == 1 else len(rows)
        part = rows[:k]
        rng.shuffle(part)
        rows = part + rows[k:] if seed == 1 else part
        if seed == 3:
            rows = sorted(rows[:-5]) + rows[-5:]
    data = _gz([",".join(F.AGG_COLUMNS)] + rows)
    for t in tickers:
        got = [r for tb in F.scan_ticker(io.BytesIO(data), t, "minute_aggs_v1", "k")
               for r in tb.column("ticker").to_pylist()]
        assert got == [t] * 300, t


# -- 6. inf and NaN -------------------------------------------------------------------
@pytest.mark.parametrize("column,value", [("open", np.inf), ("high", np.inf), ("volume", np.inf),
                                          ("volume", np.nan), ("close", -np.inf)])
def test_validate_bars_refuses_inf_and_missing_volume(market, column, value):
    df = market.truth("AAPL", dt.date(2026, 3, 2), dt.date(2026, 3, 6), "1d", "raw")
    df.iloc[2, df.columns.get_loc(column)] = value
    with pytest.raises(DataIntegrityError, match="infinite|missing"):
        validate_bars(df)


@pytest.mark.parametrize("poison", [("v", float("nan")), ("h", float("inf")), ("v", float("inf"))])
def test_rest_inf_or_nan_is_an_integrity_error_and_the_chain_moves_on(rest, fake_yahoo, tmp_path, market, poison):
    rest.poison = poison
    cfg = _rest_cfg(rest, tmp_path, FINRPT_YFINANCE_BASE_URL=fake_yahoo.url)
    with pytest.raises(DataIntegrityError):
        _alone("massive_rest", cfg, *WEEK, adjustment="splits")
    got = fp.get_prices(*WEEK, providers=["massive_rest", "yfinance"], config=cfg)
    assert got.attrs["provider"] == "yfinance"


def test_flat_file_inf_price_fails_the_query_and_verify_sees_it(ff, all_cfg, market, republish):
    republish(("day_aggs_v1", DAY))
    lines = _csv(render_aggs(market, "day_aggs_v1", DAY))
    i = next(i for i, ln in enumerate(lines) if ln.startswith("AAPL,"))
    f = lines[i].split(",")
    f[4] = "inf"
    lines[i] = ",".join(f)
    ff.put_raw(ff.key("day_aggs_v1", DAY), _gz(lines))
    with pytest.raises(DataIntegrityError, match="infinite"):
        _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")
    problems = store_for(all_cfg).verify("day_aggs_v1")
    assert [(p.day, p.what) for p in problems] == [(DAY, "bad rows")] and "AAPL" in problems[0].detail


# -- 7. duplicated upstream rows --------------------------------------------------------
def test_an_identical_duplicate_row_is_stored_once(ff, all_cfg, market, republish, caplog):
    republish(("day_aggs_v1", DAY))
    lines = _csv(render_aggs(market, "day_aggs_v1", DAY))
    i = next(i for i, ln in enumerate(lines) if ln.startswith("AAPL,"))
    ff.put_raw(ff.key("day_aggs_v1", DAY), _gz(lines[:i + 1] + [lines[i]] + lines[i + 1:]))
    got = _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")
    _same(got, _truth(market, *WEEK), vwap=False)
    assert "twice, identically" in caplog.text
    assert store_for(all_cfg).verify("day_aggs_v1") == []


def test_a_duplicate_row_with_other_values_is_refused(ff, all_cfg, market, republish):
    republish(("day_aggs_v1", DAY))
    lines = _csv(render_aggs(market, "day_aggs_v1", DAY))
    i = next(i for i, ln in enumerate(lines) if ln.startswith("AAPL,"))
    f = lines[i].split(",")
    f[1] = str(float(f[1]) + 1)
    ff.put_raw(ff.key("day_aggs_v1", DAY), _gz(lines[:i + 1] + [",".join(f)] + lines[i + 1:]))
    with pytest.raises(DataIntegrityError, match="two different"):
        _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")


def test_verify_sees_a_duplicate_already_in_the_store_and_repair_fixes_it(ff, all_cfg, market):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from finrpt_providers.store import layout

    _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")
    store = store_for(all_cfg)
    rec = store.records("day_aggs_v1", DAY.year)[DAY]
    path = Path(store.root) / rec.data
    t = pq.read_table(path, partitioning=None)  # the file alone: pyarrow < 25 adds columns from its path
    dup = t.filter(pa.compute.equal(t.column("ticker"), "AAPL")).slice(0, 1)
    bad = pa.concat_tables([t, dup]).sort_by([("ticker", "ascending"), ("window_start", "ascending")])
    pq.write_table(bad, path)  # tampered consistently: the record counts the extra row, no year copy
    body = json.loads((Path(store.root) / layout.record_path("day_aggs_v1", DAY)).read_text())
    body["rows"] = bad.num_rows
    store.files.write(layout.record_path("day_aggs_v1", DAY), json.dumps(body).encode())  # replaced, as writers do
    (Path(store.root) / layout.merged_path("day_aggs_v1", DAY.year)).unlink(missing_ok=True)
    with pytest.raises(DataIntegrityError, match="duplicate"):
        _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")
    assert any(p.what == "bad rows" and "duplicate" in p.detail and p.day == DAY for p in store.verify("day_aggs_v1"))
    left = verify(lambda: FlatFilesS3(all_cfg), store, ["day_aggs_v1"], upstream=False, repair=True, workers=2)
    assert left == []
    _same(_alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw"), _truth(market, *WEEK), vwap=False)


# -- 8. gzip bombs: bounded memory ---------------------------------------------------------
def test_a_gzip_bomb_day_file_is_refused_in_bounded_memory(ff, all_cfg, republish):
    republish(("day_aggs_v1", DAY))
    bomb = gzip_bomb(",".join(F.AGG_COLUMNS), b"AAPL,1,1,1,1,1,1,1\n", 21_000)
    assert len(bomb) < 1_200_000 and len(gzip.decompress(bomb)) > 390_000_000
    ff.put_raw(ff.key("day_aggs_v1", DAY), bomb)
    got = measure("query", dict(all_cfg._values), *WEEK)
    assert "decompression bomb" in got["error"]
    assert got["grew_mb"] < 200, got


def test_a_gzip_bomb_trades_file_is_refused_in_bounded_memory(tmp_path):
    path = tmp_path / "trades.csv.gz"
    path.write_bytes(gzip_bomb(",".join(F.TRADE_COLUMNS), b"AAPL,,0,4,x,1,1.0,1,1,1.0,1,,\n", 13_000))
    got = measure("scan", {}, str(path), "ZZZZ")
    assert "decompression bomb" in got["error"]
    assert got["grew_mb"] < 200, got


# -- 9. slow-loris ------------------------------------------------------------------------
def test_a_rest_server_trickling_its_answer_meets_the_total_deadline(rest, tmp_path):
    rest.trickle_next, rest.trickle_seconds = 10, 0.2
    cfg = _rest_cfg(rest, tmp_path, MASSIVE_REST_REQUEST_DEADLINE="1.5")
    t0 = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="MASSIVE_REST_REQUEST_DEADLINE"):
        _alone("massive_rest", cfg, *WEEK, adjustment="raw")
    assert time.monotonic() - t0 < 2 * (1.5 + 1)  # two tries of 1.5 s, not 0.2 s x every byte


def test_an_s3_server_trickling_a_body_meets_the_total_deadline(ff, all_cfg):
    ff.trickle_next, ff.trickle_seconds = 20, 0.2
    cfg = all_cfg.merged({"MASSIVE_S3_REQUEST_DEADLINE": "1.5"})
    t0 = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="took longer"):
        _alone("massive_flatfiles", cfg, *WEEK, adjustment="raw")
    assert time.monotonic() - t0 < 2 * (1.5 + 1)
    assert list(Path(store_for(cfg).root).rglob("*.tmp")) == []


# -- 10-11. endless pagination and huge bodies ----------------------------------------------
@pytest.mark.parametrize("mode,match", [("same", "stopped bringing new results"), ("new", "more than")])
def test_endless_pagination_is_bounded(rest, tmp_path, mode, match):
    rest.endless = mode
    with pytest.raises(DataIntegrityError, match=match):
        _alone("massive_rest", _rest_cfg(rest, tmp_path), *WEEK, adjustment="raw")
    assert len(rest.aggregate_requests()) <= 8


def test_endless_pagination_is_bounded_in_time(rest, tmp_path):
    rest.page_size, rest.delay = 1, 0.3  # a slow server with 125 one-bar pages
    cfg = _rest_cfg(rest, tmp_path, MASSIVE_REST_LISTING_DEADLINE="0.5")
    with pytest.raises(ProviderUnavailable, match="MASSIVE_REST_LISTING_DEADLINE"):
        _alone("massive_rest", cfg, "AAPL", "2026-01-02", "2026-06-30", adjustment="raw")
    assert len(rest.aggregate_requests()) <= 4


def test_a_huge_body_is_refused_unread(rest, tmp_path):
    rest.huge_body_mb = 60
    with pytest.raises(DataIntegrityError, match="MiB"):
        _alone("massive_rest", _rest_cfg(rest, tmp_path), *WEEK, adjustment="raw")
    assert len(rest.aggregate_requests()) == 1  # not retried


# -- 12. ranges -------------------------------------------------------------------------
def test_end_far_in_the_future_is_clipped_to_today(rest, tmp_path, market):
    cfg = _rest_cfg(rest, tmp_path)
    got = fp.get_prices("AAPL", "2026-06-29", "2200-12-31", interval="1m", adjustment="raw",
                        providers=["massive_rest"], config=cfg)
    assert got.index[-1].date() <= TODAY
    assert all(dt.date.fromisoformat(r.path.split("/")[-1]) <= TODAY for r in rest.aggregate_requests())
    assert len(rest.aggregate_requests()) == 1  # one window up to today, not 2,100 months of the future
    monthly = fp.get_prices("AAPL", "2026-01-02", "9999-12-31", interval="1mo", providers=["massive_rest"],
                            config=cfg)
    upto_today = fp.get_prices("AAPL", "2026-01-02", TODAY, interval="1mo", providers=["massive_rest"], config=cfg)
    pdt.assert_frame_equal(monthly, upto_today)


def test_absurd_intraday_spans_are_refused_before_any_request(ff, all_cfg, rest):
    with pytest.raises(InvalidQuery, match="FINRPT_MAX_INTRADAY_SESSIONS"):
        fp.get_prices("AAPL", "1970-01-02", "2026-06-30", interval="1m", config=all_cfg)
    assert ff.count() == 0 and rest.aggregate_requests() == []


def test_a_cold_flat_file_query_too_big_to_download_asks_for_sync(ff, all_cfg, market):
    with pytest.raises(UnsupportedQuery, match="finrpt-providers sync --start 2026-01-02"):
        _alone("massive_flatfiles", all_cfg, "AAPL", "2026-01-02", "2026-06-30", interval="1m", adjustment="raw")
    assert ff.count() == 0
    got = fp.get_prices("AAPL", "2026-06-01", "2026-06-02", interval="1m", adjustment="raw",
                        config=all_cfg.merged({"MASSIVE_FLATFILES_MAX_QUERY_MB": "30"}))
    assert got.attrs["provider"] == "massive_rest"  # one file fits, two do not: the chain moved on


# -- 13. a plugin's own checks, or sys.exit, fail only that plugin ---------------------------
class Broken(PriceProvider):
    intervals = frozenset({"1d"})
    adjustments = frozenset({"raw", "splits", "total"})

    def __init__(self, name, where, exc):
        self.name, self.where, self.exc = name, where, exc

    def _boom(self, *a, **k):
        raise self.exc

    def earliest(self, query, today):
        return self._boom() if self.where == "earliest" else None

    def missing_credentials(self):
        return self._boom() if self.where == "missing_credentials" else []

    def native_adjustments(self, interval):
        return self._boom() if self.where == "native_adjustments" else self.adjustments

    def fetch(self, query):
        return self._boom()


@pytest.mark.parametrize("where", ["earliest", "missing_credentials", "native_adjustments", "fetch"])
@pytest.mark.parametrize("exc", [RuntimeError("plugin bug"), SystemExit(3)])
def test_a_plugin_raising_anywhere_is_its_own_failure(register_plugin, market, where, exc, capsys):
    from tests.test_chain import Scripted

    bad, good = Broken(f"broken_{where}", where, exc), Scripted("good", market)
    register_plugin(plugin_of(bad, good), name="test-broken")
    cfg = Config.load({"FINRPT_PRICE_PROVIDERS": f"{bad.name},good", "FINRPT_PROVIDERS_TODAY": TODAY.isoformat()},
                      environ={})
    got = fp.get_prices(*WEEK, config=cfg)
    assert got.attrs["provider"] == "good"
    first = got.attrs["attempts"][0]
    assert first["outcome"] == "failed" and ("test-broken" in first["detail"] or "unexpected" in first["detail"])
    from finrpt_providers import cli

    assert cli.main(["providers"]) == 0
    assert "broken_" in capsys.readouterr().out


def test_a_plugin_whose_readiness_check_raises_is_listed_not_ready(register_plugin, market):
    class Sick(Broken):
        def not_ready_reason(self, deep=False):
            raise SystemExit(1)

    register_plugin(plugin_of(Sick("sick", "none", None)), name="test-sick")
    row = next(p for p in fp.list_providers({}) if p["name"] == "sick")
    assert not row["ready"] and "test-sick" in row["reason"] and "exit(1)" in row["reason"]
    with pytest.raises(PluginError):
        from finrpt_providers.plugins import guard

        guard(row and Sick("sick", "none", None), "x", Sick("s", "n", None).not_ready_reason)


# -- 14. a provider's own request refused is not the user's invalid question ---------------
def test_a_400_on_an_internal_actions_request_moves_to_the_next_source(rest, fake_yahoo, tmp_path, market):
    rest.reference_status = 400
    cfg = _rest_cfg(rest, tmp_path, FINRPT_YFINANCE_BASE_URL=fake_yahoo.url)
    got = fp.get_prices("AAPL", "2026-01-02", "2026-06-30", adjustment="total",
                        providers=["massive_rest", "yfinance"], config=cfg)
    assert got.attrs["actions"] == "yfinance"
    cfg_rest_only = cfg.merged({"FINRPT_ACTIONS_PROVIDERS": "massive_rest"})
    with pytest.raises(AllProvidersFailed) as info:
        fp.get_prices("AAPL", "2026-01-02", "2026-06-30", adjustment="total", providers=["massive_rest"],
                      config=cfg_rest_only)
    assert not isinstance(info.value, InvalidQuery) and "refused" in str(info.value)


# -- 15. damaged store files ------------------------------------------------------------------
def test_a_session_object_cut_in_half_is_an_integrity_error_and_repair_restores_it(ff, all_cfg, market):
    from finrpt_providers.store import layout

    _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")
    store = store_for(all_cfg)
    path = Path(store.root) / store.records("day_aggs_v1", DAY.year)[DAY].data
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (Path(store.root) / layout.merged_path("day_aggs_v1", DAY.year)).unlink(missing_ok=True)  # no copy answers
    with pytest.raises(DataIntegrityError, match="verify --repair") as info:
        _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")
    assert str(info.value).count(str(path)) == 1  # the path, once (never doubled)
    assert any(p.what == "damaged session" and p.refetch for p in store.verify("day_aggs_v1"))
    left = verify(lambda: FlatFilesS3(all_cfg), store, ["day_aggs_v1"], upstream=False, repair=True, workers=2)
    assert left == [] and store.verify("day_aggs_v1") == []
    ff.reset_counts()
    _same(_alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw"), _truth(market, *WEEK), vwap=False)
    assert ff.count() == 0


@pytest.mark.parametrize("damage", [{"days": []}, None, {"key": "k", "size": 1}, {"key": "k", "etag": "e", "size": "x"},
                                    [1, 2], "not json at all", {"key": "k", "etag": "e", "size": 1,
                                                                "data": "../../elsewhere.parquet"}])
def test_a_record_of_the_wrong_shape_is_reported_damaged_and_repaired(ff, all_cfg, market, damage):
    from finrpt_providers.store import layout

    _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")
    store = store_for(all_cfg)
    store.files.write(layout.record_path("day_aggs_v1", DAY),
                      (damage if isinstance(damage, str) else json.dumps(damage)).encode())  # replaced, as writers do
    problems = store.verify("day_aggs_v1")
    assert sorted((p.day, p.what) for p in problems) == [(DAY, "damaged record"), (DAY, "unrecorded data")]
    left = verify(lambda: FlatFilesS3(all_cfg), store, ["day_aggs_v1"], upstream=False, repair=True, workers=2)
    assert left == [] and store.verify("day_aggs_v1") == []
    _same(_alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw"), _truth(market, *WEEK), vwap=False)
    # and a query meeting a damaged record fetches that session again (never serves what it cannot vouch for)
    store.files.write(layout.record_path("day_aggs_v1", DAY),
                      (damage if isinstance(damage, str) else json.dumps(damage)).encode())  # replaced, as writers do
    _same(_alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw"), _truth(market, *WEEK), vwap=False)
    assert store.verify("day_aggs_v1") == []


# -- 16. a later page's 404 says what failed --------------------------------------------------
def test_a_404_on_a_second_reference_page_says_so(rest, tmp_path):
    rest.reference_page_size, rest.reference_404_after_first = 1, True
    client = registry()["massive_rest"].provider.configured(_rest_cfg(rest, tmp_path)).client()
    with pytest.raises(ProviderUnavailable) as info:
        client.dividends("AAPL")
    assert "page 2" in str(info.value) and "neither" not in str(info.value)


# -- 17. odd inputs ---------------------------------------------------------------------------
@pytest.mark.parametrize("start", [pd.NaT, float("nan"), np.datetime64("NaT"), None, pd.NA])
def test_missing_dates_are_an_invalid_query(start):
    with pytest.raises(InvalidQuery, match="missing|must be"):
        fp.PriceQuery("AAPL", start, "2026-01-02")


def test_json_nested_100000_deep_is_an_integrity_error(rest, tmp_path):
    rest.nested_next = 5
    with pytest.raises(DataIntegrityError, match="nested"):
        _alone("massive_rest", _rest_cfg(rest, tmp_path), *WEEK, adjustment="raw")


def test_a_cache_dir_that_is_a_file_names_the_path_and_the_chain_moves_on(ff, all_cfg, tmp_path, market):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    cfg = all_cfg.merged({"FINRPT_PROVIDERS_CACHE_DIR": str(blocker)})
    with pytest.raises(ProviderUnavailable, match="FINRPT_PROVIDERS_CACHE_DIR") as info:
        _alone("massive_flatfiles", cfg, *WEEK, adjustment="raw")
    assert str(blocker) in str(info.value)
    got = fp.get_prices(*WEEK, adjustment="raw", config=cfg)
    assert got.attrs["provider"] == "massive_rest"


def test_a_read_only_cache_dir_names_the_path_and_why(ff, all_cfg, monkeypatch):
    from finrpt_providers.store import files as store_files

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store_files.os, "replace", denied)
    with pytest.raises(ProviderUnavailable, match="Permission denied.*read-only.*FINRPT_PROVIDERS_CACHE_DIR"):
        _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")


def test_a_toml_nested_5000_deep_is_an_invalid_query(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(InvalidQuery, match="too deeply"):
        Config.load(toml_path=path, environ={})
    assert os.path.exists(path)


@pytest.mark.parametrize("lie", [False, True])
def test_a_bomb_is_refused_whether_or_not_its_trailer_tells(lie):
    bomb = bytearray(gzip_bomb(",".join(F.AGG_COLUMNS), b"AAPL,1,1,1,1,1,1,1\n", 21_000))
    if lie:  # the trailer claims a small file: the streaming bound must still stop it
        bomb[-4:] = (1000).to_bytes(4, "little")
    with pytest.raises(DataIntegrityError, match="decompression bomb"):
        F.parse_gzip(bytes(bomb), "day_aggs_v1", "k")
    with pytest.raises(DataIntegrityError, match="decompression bomb"):
        F.decompress(bytes(bomb), "k")


def test_an_object_larger_than_its_dataset_can_be_is_not_downloaded(ff, all_cfg, monkeypatch):
    from finrpt_providers.providers.massive_flatfiles import s3

    monkeypatch.setitem(s3.MAX_OBJECT, "day_aggs_v1", 100)  # the synthetic day files are ~300 bytes
    with pytest.raises(DataIntegrityError, match="more than any day_aggs_v1 file"):
        _alone("massive_flatfiles", all_cfg, *WEEK, adjustment="raw")
    assert list(Path(store_for(all_cfg).root).rglob("*.parquet")) == []


@pytest.mark.parametrize("value", ["/tmp/a\x00b", "/tmp/a\nb"])
def test_a_cache_dir_with_control_characters_is_a_configuration_error(value):
    from finrpt_providers.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="FINRPT_PROVIDERS_CACHE_DIR"):
        Config.load({"FINRPT_PROVIDERS_CACHE_DIR": value}, environ={})
